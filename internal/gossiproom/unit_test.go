package gossiproom

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestAuthorLimiter(t *testing.T) {
	l := newAuthorLimiter(10, 5, 2)
	t0 := time.Unix(0, 0)
	for i := range 5 {
		if !l.allow("a", t0) {
			t.Fatalf("burst line %d refused", i)
		}
	}
	if l.allow("a", t0) {
		t.Fatal("line past the burst accepted")
	}
	if !l.allow("a", t0.Add(100*time.Millisecond)) || l.allow("a", t0.Add(100*time.Millisecond)) {
		t.Fatal("the rate does not refill one token per 100 ms")
	}
	// Authors have their own buckets.
	for range 5 {
		if !l.allow("b", t0) {
			t.Fatal("b refused for a's flood")
		}
	}
	// The map is full (2); a third author gets in only once a bucket has
	// refilled, and not before the next prune.
	if l.allow("c", t0.Add(200*time.Millisecond)) {
		t.Fatal("c fits while a and b are busy")
	}
	if !l.allow("c", t0.Add(2*time.Second)) {
		t.Fatal("c refused after a and b went quiet")
	}
	if n := l.size(); n > 2 {
		t.Fatalf("%d buckets kept, max 2", n)
	}
}

func TestPacer(t *testing.T) {
	p := newPacer(100, 2)
	start := time.Now()
	for range 4 {
		if err := p.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// Two from the burst, two at 10 ms each.
	if d := time.Since(start); d < 15*time.Millisecond || d > time.Second {
		t.Fatalf("4 tokens at 100/s with a burst of 2 took %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := newPacer(0.001, 1)
	_ = slow.wait(ctx)
	if err := slow.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait on a cancelled context: %v", err)
	}
}

func TestDialPolicy(t *testing.T) {
	p := DefaultDialPolicy()
	if p.D != 6 || p.Dout != 2 || p.Dhi != 12 || p.Dlazy != 6 {
		t.Fatalf("defaults %+v: not go-libp2p-pubsub v0.19.0's", p)
	}
	for _, c := range []struct {
		conns, out, inFlight int
		want                 bool
		budget               int
	}{
		{0, 0, 0, true, 6},
		{0, 0, 4, true, 2},
		{5, 2, 0, true, 1},
		{6, 2, 0, false, 0},
		{6, 0, 0, true, 2},  // enough peers, but none we dialed
		{20, 1, 0, true, 1}, // plenty dialed us
		{20, 5, 0, false, 0},
		{3, 3, 10, true, 0},
	} {
		if got := p.WantDial(c.conns, c.out); got != c.want {
			t.Errorf("WantDial(%d, %d) = %v", c.conns, c.out, got)
		}
		if got := p.Budget(c.conns, c.out, c.inFlight); got != c.budget {
			t.Errorf("Budget(%d, %d, %d) = %d, want %d", c.conns, c.out, c.inFlight, got, c.budget)
		}
	}
	if low, high := p.WaterMarks(40); low != 58 || high != 174 {
		t.Errorf("WaterMarks(40) = %d, %d", low, high)
	}
}

func TestOptions(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxMessageBytes != 64<<10 || o.Rate != 10 || o.Burst != 50 || o.PresenceInterval != 30*time.Second {
		t.Fatalf("defaults %+v", o)
	}
	for _, bad := range []Options{
		{MaxMessageBytes: -1}, {MaxMessageBytes: 1 << 20}, {Rate: -1}, {Burst: 1},
		{Nick: strings.Repeat("n", 65)}, {Nick: "\xff"}, {Capabilities: []string{""}},
		{Capabilities: make([]string, 9)}, {PresenceInterval: time.Millisecond},
		{SilentTTL: -1}, {MaxPresencePeers: -1}, {QueueSize: -1}, {LeaveLinger: -1},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("options %+v accepted", bad)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	h := newHost(t)
	for _, room := range []string{"", "x" + PresenceSuffix} {
		if r, err := New(context.Background(), h, room, Options{}); err == nil {
			_ = r.Close()
			t.Errorf("room %q accepted", room)
		}
	}
	if _, err := New(context.Background(), h, "ok", Options{Nick: "\xff"}); err == nil {
		t.Error("bad nick accepted")
	}
	// After the refusals, the host still takes a room.
	r := newRoom(t, h, "ok", Options{})
	if err := r.SetNick(strings.Repeat("n", 65)); err == nil {
		t.Error("SetNick took a long nick")
	}
}

func TestFormatID(t *testing.T) {
	id, err := peer.Decode("12D3KooWAgHEAVXjH7FiyqYJUHBsXNnH2RzcjN3vBLEyL62NWAxJ")
	if err != nil {
		t.Fatal(err)
	}
	m := &pb.Message{From: []byte(id), Seqno: []byte{0x18, 0xa3, 0, 0, 0, 0, 0, 7}}
	if got, want := FormatID(m), id.String()+"/18a3000000000007"; got != want {
		t.Fatalf("FormatID = %q, want %q", got, want)
	}
	// Garbage from a peer does not panic.
	_ = FormatID(&pb.Message{From: []byte{0xff}, Seqno: nil})
	_ = FormatID(&pb.Message{})
	if seqNumber([]byte{1, 2}) != 0x102 || seqNumber(nil) != 0 {
		t.Fatal("seqNumber")
	}
}
