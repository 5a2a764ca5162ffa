package gossiproom

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

func publish(t *testing.T, r *Room, text string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := r.Publish(ctx, text)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// (a) Two rooms on real loopback hosts chat both ways; neither gets its own
// lines back.
func TestTwoRoomsChatBothWays(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	a := newRoom(t, ha, "test room", Options{DisablePresence: true})
	b := newRoom(t, hb, "test room", Options{DisablePresence: true})
	connect(t, ha, hb)
	waitTopicPeer(t, a, hb.ID())
	waitTopicPeer(t, b, ha.ID())

	id := publish(t, a, "hello from a, ünïcödé ✓")
	m := nextMessage(t, b, 5*time.Second)
	if m.From != ha.ID() || m.ReceivedFrom != ha.ID() || m.Text != "hello from a, ünïcödé ✓" || m.ID != id {
		t.Fatalf("b got %+v, want the line from a with ID %s", m, id)
	}
	if !strings.HasPrefix(id, ha.ID().String()+"/") {
		t.Errorf("ID %q does not start with the author", id)
	}

	id2 := publish(t, b, "and hello from b")
	m = nextMessage(t, a, 5*time.Second)
	if m.From != hb.ID() || m.Text != "and hello from b" || m.ID != id2 {
		t.Fatalf("a got %+v, want the line from b with ID %s", m, id2)
	}
	if id == id2 {
		t.Fatal("two messages share an ID")
	}

	// Neither room hands back its own line.
	select {
	case m := <-a.Messages():
		t.Fatalf("a got an extra message %+v", m)
	case m := <-b.Messages():
		t.Fatalf("b got an extra message %+v", m)
	case <-time.After(200 * time.Millisecond):
	}
	if s := a.Stats(); s.Published != 1 || s.Delivered != 1 {
		t.Errorf("a's stats %+v: want 1 published, 1 delivered", s)
	}
}

// (b) A peer that speaks only raw GossipSub, as universal-connectivity's
// peers do, and our Room chat both ways; signers are verified. In the
// universal-connectivity room, the Room also relays the browser discovery
// topic between two such peers that are not connected to each other, and
// counts the raw peer as present though it never announces itself.
func TestRawGossipSubPeerChatsBothWays(t *testing.T) {
	raw := newRawPeer(t, UniversalConnectivity)
	raw2 := newRawPeer(t, UniversalConnectivity)
	h := newHost(t)
	r := newRoom(t, h, UniversalConnectivity, Options{SilentTTL: time.Minute})
	connect(t, raw.h, h)
	connect(t, raw2.h, h)
	waitTopicPeer(t, r, raw.h.ID())
	raw.waitTopicPeer(t, h.ID())
	raw.meshWith(t, r)

	// Raw peer to Room: the payload is the line, nothing around it.
	raw.publish(t, []byte("hi from a universal-connectivity peer"))
	m := nextMessage(t, r, 5*time.Second)
	if m.From != raw.h.ID() || m.Text != "hi from a universal-connectivity peer" {
		t.Fatalf("room got %+v", m)
	}

	// Room to raw peer: raw UTF-8, signed by us, with the default ID.
	id := publish(t, r, "hi from rendezvous-chat")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		got, err := raw.sub.Next(ctx)
		if err != nil {
			t.Fatal("raw peer never got our line:", err)
		}
		if got.GetFrom() == raw.h.ID() {
			continue // its own
		}
		if got.GetFrom() != h.ID() || string(got.Data) != "hi from rendezvous-chat" {
			t.Fatalf("raw peer got %q from %s", got.Data, got.GetFrom())
		}
		if len(got.Signature) == 0 || len(got.Key) == 0 && got.GetFrom() == "" {
			t.Fatal("our message is not signed")
		}
		if got.ID != pubsub.DefaultMsgIdFn(got.Message) || FormatID(got.Message) != id {
			t.Fatalf("raw peer's ID %q / %q, ours %q", got.ID, FormatID(got.Message), id)
		}
		break
	}

	// Presence: the raw peers are present, seen on the chat topic.
	eventually(t, 5*time.Second, "raw peers in the presence table", func() bool {
		c := r.Counts()
		return c.Total == 2 && c.Silent == 2
	})
	for _, p := range r.Peers() {
		if p.Announces || !p.Neighbour {
			t.Errorf("raw peer %+v: want a silent neighbour", p)
		}
	}

	// Browser discovery: raw2 publishes a record, raw (not connected to
	// raw2) receives it through our relay.
	dsub := joinTopic(t, raw.ps, BrowserDiscoveryTopic)
	dtopic2, err := raw2.ps.Join(BrowserDiscoveryTopic)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "discovery topic neighbours", func() bool {
		return len(dtopic2.ListPeers()) == 1 && len(dsub.topic.ListPeers()) == 1
	})
	record := []byte("\x0a\x03key\x12\x04addr") // the shape of a Peer protobuf
	// A plain GossipSub peer's mesh stays empty until its heartbeat, and
	// without flood publishing what it publishes before then is lost: it
	// publishes again until the record comes through, as a browser peer
	// does every few seconds. A fresh deadline: the waits above used some.
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	go func() {
		for {
			if err := dtopic2.Publish(dctx, record); err != nil {
				return
			}
			select {
			case <-dctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	got, err := dsub.sub.Next(dctx)
	dcancel() // stops the publisher
	if err != nil {
		t.Fatal("the record was not relayed:", err)
	}
	if got.GetFrom() != raw2.h.ID() || string(got.Data) != string(record) {
		t.Fatalf("relayed record %q from %s", got.Data, got.GetFrom())
	}
}

type joined struct {
	topic *pubsub.Topic
	sub   *pubsub.Subscription
}

func joinTopic(t *testing.T, ps *pubsub.PubSub, name string) joined {
	t.Helper()
	tp, err := ps.Join(name)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := tp.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	return joined{tp, sub}
}

// (c) Unsigned, oversized and non-UTF-8 messages never arrive; a good line
// after them does. The author that handed them to us directly is
// penalized.
func TestInvalidMessagesDropped(t *testing.T) {
	const room = "strict room"
	h := newHost(t)
	r := newRoom(t, h, room, Options{DisablePresence: true, MaxMessageBytes: 1000})
	signed := newRawPeer(t, room)
	// Without an author and a sequence number, the default message ID is
	// empty for every message, and the unsigned peer would take its own
	// second line for a duplicate of its first: it keys them by content.
	unsigned := newRawPeer(t, room, pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return string(m.GetData()) }))
	connect(t, signed.h, h)
	connect(t, unsigned.h, h)
	waitTopicPeer(t, r, signed.h.ID())
	waitTopicPeer(t, r, unsigned.h.ID())
	signed.waitTopicPeer(t, h.ID())
	unsigned.waitTopicPeer(t, h.ID())
	signed.meshWith(t, r)
	// The unsigned peer reaches us once its heartbeat has grafted us;
	// until then its lines go nowhere, so it repeats itself.
	n := 0
	eventually(t, 10*time.Second, "the unsigned line to be dropped", func() bool {
		n++
		unsigned.publish(t, fmt.Appendf(nil, "unsigned line %d", n))
		time.Sleep(100 * time.Millisecond)
		return r.Stats().Unsigned >= 1
	})

	signed.publish(t, []byte(strings.Repeat("x", 1001)))
	signed.publish(t, []byte("bad \xff\xfe bytes"))
	eventually(t, 5*time.Second, "the two bad lines to be dropped", func() bool {
		s := r.Stats()
		return s.TooLarge == 1 && s.InvalidUTF8 == 1
	})
	signed.publish(t, []byte("a good line"))
	m := nextMessage(t, r, 5*time.Second)
	if m.Text != "a good line" || m.From != signed.h.ID() {
		t.Fatalf("first message delivered: %+v", m)
	}
	s := r.Stats()
	if s.Blamed != 2 {
		t.Errorf("stats %+v: want 2 blamed", s)
	}
	// Two invalid messages cost 2² × 100; the unsigned peer one.
	eventually(t, 5*time.Second, "scores to fall", func() bool {
		ss, ok1 := r.PeerScore(signed.h.ID())
		us, ok2 := r.PeerScore(unsigned.h.ID())
		return ok1 && ok2 && ss <= -300 && us <= -50
	})

	// Publish refuses what the validator would drop.
	if _, err := r.Publish(context.Background(), strings.Repeat("y", 1001)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized publish: %v", err)
	}
	if _, err := r.Publish(context.Background(), "\xff"); !errors.Is(err, ErrInvalidUTF8) {
		t.Errorf("non-UTF-8 publish: %v", err)
	}
}

// A bad message forwarded by a peer that did not author it is dropped
// without penalizing the forwarder: universal-connectivity's peers relay
// whatever is signed.
func TestForwardedInvalidIgnored(t *testing.T) {
	const room = "relay room"
	h := newHost(t)
	r := newRoom(t, h, room, Options{DisablePresence: true, MaxMessageBytes: 1000})
	author := newRawPeer(t, room)
	relay := newRawPeer(t, room)
	connect(t, author.h, relay.h)
	connect(t, relay.h, h)
	waitTopicPeer(t, r, relay.h.ID())
	author.waitTopicPeer(t, relay.h.ID())
	relay.waitTopicPeer(t, h.ID())
	// Let the meshes form, so that the relay forwards to us.
	author.meshWith(t, r)

	author.publish(t, []byte(strings.Repeat("z", 2000)))
	eventually(t, 5*time.Second, "the oversized line to be dropped", func() bool { return r.Stats().TooLarge == 1 })
	if s := r.Stats(); s.Blamed != 0 {
		t.Fatalf("the forwarder was blamed: %+v", s)
	}
	time.Sleep(1200 * time.Millisecond) // a score inspection period
	if sc, _ := r.PeerScore(relay.h.ID()); sc < 0 {
		t.Fatalf("relay's score %v after forwarding", sc)
	}
}

// (d) One peer floods the topic with thousands of lines as fast as it can;
// two other peers keep chatting, the flooder is graylisted, and memory stays
// bounded.
func TestFloodLeavesChatWorking(t *testing.T) {
	const room = "flooded room"
	const floodN = 5000
	ha, hb := newHost(t), newHost(t)
	a := newRoom(t, ha, room, Options{DisablePresence: true, QueueSize: 64})
	b := newRoom(t, hb, room, Options{DisablePresence: true, QueueSize: 64})
	// The flooder queues everything it publishes instead of dropping.
	flooder := newRawPeer(t, room, pubsub.WithPeerOutboundQueueSize(floodN))
	connect(t, ha, hb)
	connect(t, flooder.h, ha)
	connect(t, flooder.h, hb)
	waitTopicPeer(t, a, hb.ID())
	waitTopicPeer(t, b, ha.ID())
	waitTopicPeer(t, a, flooder.h.ID())
	waitTopicPeer(t, b, flooder.h.ID())
	flooder.waitTopicPeer(t, ha.ID())
	flooder.waitTopicPeer(t, hb.ID())

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	// Each room's reader collects what it gets, by author.
	type tally struct {
		mu     sync.Mutex
		flood  int
		honest map[string]bool
	}
	collect := func(r *Room, from peer.ID) *tally {
		tl := &tally{honest: make(map[string]bool)}
		go func() {
			for m := range r.Messages() {
				tl.mu.Lock()
				if m.From == from {
					tl.honest[m.Text] = true
				} else {
					tl.flood++
				}
				tl.mu.Unlock()
			}
		}()
		return tl
	}
	ta, tb := collect(a, hb.ID()), collect(b, ha.ID())

	start := time.Now()
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		for i := range floodN {
			if err := flooder.topic.Publish(context.Background(), fmt.Appendf(nil, "flood %d", i)); err != nil {
				return
			}
		}
	}()

	// The honest peers chat during the flood and after it.
	const lines = 10
	for i := range lines {
		publish(t, a, fmt.Sprintf("a during %d", i))
		publish(t, b, fmt.Sprintf("b during %d", i))
		time.Sleep(20 * time.Millisecond)
	}
	<-floodDone
	floodTime := time.Since(start)
	for i := range lines {
		publish(t, a, fmt.Sprintf("a after %d", i))
		publish(t, b, fmt.Sprintf("b after %d", i))
	}
	want := func(who string) []string {
		var w []string
		for i := range lines {
			w = append(w, fmt.Sprintf("%s during %d", who, i), fmt.Sprintf("%s after %d", who, i))
		}
		return w
	}
	// Every honest line arrives, unless the receiver's validation queue
	// overflowed (the flood came faster than it validates, as on a loaded
	// machine): the router then drops what comes next, honest or not,
	// and counts it (Stats.QueueFull; rooms.md says so). Even then most
	// arrive. In the chat, such a line still comes by its session.
	type receiver struct {
		r    *Room
		tl   *tally
		want []string
	}
	receivers := []receiver{{a, ta, want("b")}, {b, tb, want("a")}}
	arrived := func(c receiver) int {
		c.tl.mu.Lock()
		defer c.tl.mu.Unlock()
		n := 0
		for _, w := range c.want {
			if c.tl.honest[w] {
				n++
			}
		}
		return n
	}
	eventually(t, 10*time.Second, "every honest line to arrive", func() bool {
		for _, c := range receivers {
			n := arrived(c)
			if n != len(c.want) && (c.r.Stats().QueueFull == 0 || n < len(c.want)/2) {
				return false
			}
		}
		return true
	})
	for _, c := range receivers {
		if n := arrived(c); n != len(c.want) {
			t.Logf("%d of %d honest lines arrived; the validation queue overflowed %d times", n, len(c.want), c.r.Stats().QueueFull)
		}
	}

	// The flooder is graylisted by both, and got little through: its
	// bucket (a burst of 50, then 10 a second) bounds what was accepted.
	eventually(t, 5*time.Second, "the flooder to be graylisted", func() bool {
		sa, _ := a.PeerScore(flooder.h.ID())
		sb, _ := b.PeerScore(flooder.h.ID())
		return sa < GraylistThreshold && sb < GraylistThreshold
	})
	maxFlood := DefaultBurst + int(DefaultRate*time.Since(start).Seconds()) + 1
	for name, tl := range map[string]*tally{"a": ta, "b": tb} {
		tl.mu.Lock()
		n := tl.flood
		tl.mu.Unlock()
		if n > maxFlood {
			t.Errorf("%s delivered %d flood lines, more than the bucket allows (%d)", name, n, maxFlood)
		}
		t.Logf("%s: %d of %d flood lines delivered (flood took %v)", name, n, floodN, floodTime.Round(time.Millisecond))
	}
	sa := a.Stats()
	t.Logf("a's stats: %+v", sa)
	if sa.RateLimited == 0 || sa.Blamed == 0 {
		t.Errorf("a rate-limited nothing: %+v", sa)
	}

	// Memory: the rooms queue at most QueueSize lines each, the router
	// at most its fixed queues; thousands of messages leave no trace.
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap: %d KiB before, %d KiB after the flood", before.HeapAlloc>>10, after.HeapAlloc>>10)
	if growth > 32<<20 {
		t.Errorf("heap grew by %d MiB during the flood", growth>>20)
	}
	if n := a.gate.chatLimit.size(); n > 3 {
		t.Errorf("a keeps %d rate buckets for 3 authors", n)
	}
}

// A flood that reaches us through an honest relay (a plain GossipSub peer,
// which forwards whatever is signed) cannot be pinned on the relay: it is
// ignored, the relay keeps its score, and the author's bucket still bounds
// what gets through. The other room's lines keep arriving.
func TestFloodThroughRelay(t *testing.T) {
	const room = "relayed flood"
	const floodN = 3000
	ha, hb := newHost(t), newHost(t)
	a := newRoom(t, ha, room, Options{DisablePresence: true, QueueSize: 64})
	b := newRoom(t, hb, room, Options{DisablePresence: true, QueueSize: 64})
	flooder := newRawPeer(t, room, pubsub.WithPeerOutboundQueueSize(floodN))
	relay := newRawPeer(t, room, pubsub.WithPeerOutboundQueueSize(floodN))
	connect(t, ha, hb)
	connect(t, flooder.h, relay.h)
	connect(t, relay.h, ha)
	waitTopicPeer(t, a, hb.ID())
	waitTopicPeer(t, b, ha.ID())
	waitTopicPeer(t, a, relay.h.ID())
	flooder.waitTopicPeer(t, relay.h.ID())
	relay.waitTopicPeer(t, ha.ID())
	flooder.meshWith(t, a)

	var mu sync.Mutex
	flood, honest := 0, map[string]bool{}
	go func() {
		for m := range a.Messages() {
			mu.Lock()
			if m.From == hb.ID() {
				honest[m.Text] = true
			} else {
				flood++
			}
			mu.Unlock()
		}
	}()

	start := time.Now()
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		for i := range floodN {
			if err := flooder.topic.Publish(context.Background(), fmt.Appendf(nil, "flood %d", i)); err != nil {
				return
			}
		}
	}()
	const lines = 10
	for i := range lines {
		publish(t, b, fmt.Sprintf("b %d", i))
		time.Sleep(30 * time.Millisecond)
	}
	<-floodDone
	// Every line of b arrives, except one the router dropped because the
	// flood had filled its validation queue at that moment: b sent it only
	// to a, so it is lost (see the package doc). Most must arrive.
	eventually(t, 10*time.Second, "b's lines", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(honest) == lines || (a.Stats().QueueFull > 0 && len(honest) >= lines/2)
	})
	time.Sleep(100 * time.Millisecond) // lines still on their way
	mu.Lock()
	if len(honest) < lines {
		t.Logf("%d of b's %d lines arrived; the validation queue overflowed %d times", len(honest), lines, a.Stats().QueueFull)
	}
	mu.Unlock()
	// Wait for the relay's queue to drain into a.
	time.Sleep(time.Second)
	mu.Lock()
	n := flood
	mu.Unlock()
	maxFlood := DefaultBurst + int(DefaultRate*time.Since(start).Seconds()) + 1
	s := a.Stats()
	t.Logf("a: %d of %d flood lines delivered; stats %+v", n, floodN, s)
	if n > maxFlood {
		t.Errorf("a delivered %d flood lines, more than the bucket allows (%d)", n, maxFlood)
	}
	if s.Blamed != 0 {
		t.Errorf("a blamed the relay %d times", s.Blamed)
	}
	if sc, _ := a.PeerScore(relay.h.ID()); sc < 0 {
		t.Errorf("the relay's score fell to %v", sc)
	}
}

// A room whose reader never reads keeps forwarding the room's lines: its
// queues are bounded and the router drops only what was meant for it.
func TestSlowReaderStillForwards(t *testing.T) {
	const room = "slow reader"
	const lines = 60
	// The lines are published at once: the router's queue of RPCs to
	// each neighbour (32 by default) must hold them, or the sender drops
	// some before b ever sees them, which is not what this test is about.
	extraPubSubOptions = []pubsub.Option{pubsub.WithPeerOutboundQueueSize(4 * lines)}
	ha, hb, hc := newHost(t), newHost(t), newHost(t)
	fast := Options{DisablePresence: true, Rate: 1000, Burst: 1000}
	a := newRoom(t, ha, room, fast)
	b := newRoom(t, hb, room, Options{DisablePresence: true, Rate: 1000, Burst: 1000, QueueSize: 4})
	c := newRoom(t, hc, room, fast)
	extraPubSubOptions = nil
	connect(t, ha, hb)
	connect(t, hb, hc)
	waitTopicPeer(t, a, hb.ID())
	waitTopicPeer(t, b, hc.ID())
	waitTopicPeer(t, c, hb.ID())
	// a reaches c through b's mesh, which b's next heartbeat forms.
	eventually(t, 10*time.Second, "a's line to reach c", func() bool {
		publish(t, a, "probe")
		select {
		case <-c.Messages():
			return true
		case <-time.After(300 * time.Millisecond):
			return false
		}
	})
	time.Sleep(300 * time.Millisecond)
	for len(c.Messages()) > 0 {
		<-c.Messages() // late probes
	}

	for i := range lines {
		publish(t, a, fmt.Sprintf("line %d", i))
	}
	got := map[string]bool{}
	for range lines {
		got[nextMessage(t, c, 5*time.Second).Text] = true
	}
	for i := range lines {
		if !got[fmt.Sprintf("line %d", i)] {
			t.Fatalf("c never got line %d", i)
		}
	}
	eventually(t, 5*time.Second, "b to drop lines for its reader", func() bool { return b.Stats().SlowConsumer > 0 })
	if n := len(b.Messages()); n > 4 {
		t.Fatalf("b holds %d lines, QueueSize 4", n)
	}
}

// Malformed and oversized announcements from their author are rejected
// and never show up in the table.
func TestBadPresenceDropped(t *testing.T) {
	const room = "bad presence"
	h := newHost(t)
	r := newRoom(t, h, room, Options{PresenceInterval: time.Second})
	raw := newRawPeer(t, PresenceTopic(room))
	connect(t, raw.h, h)
	raw.waitTopicPeer(t, h.ID())
	// The raw peer reaches us once its heartbeat has grafted us; until
	// then it repeats itself.
	eventually(t, 10*time.Second, "bad announcements", func() bool {
		raw.publish(t, []byte(`{"v":1,"t":"dance"}`))
		raw.publish(t, []byte(`{"v":1,"t":"here","nick":"`+strings.Repeat("x", MaxPresenceBytes)+`"}`))
		time.Sleep(100 * time.Millisecond)
		return r.Stats().BadPresence >= 2
	})
	for _, p := range r.Peers() {
		if p.Announces {
			t.Fatalf("a bad announcer is in the table: %+v", p)
		}
	}
	eventually(t, 5*time.Second, "the author's score to fall", func() bool {
		s, ok := r.PeerScore(raw.h.ID())
		return ok && s <= -300
	})
}

// Close leaves no goroutine of the room or its router behind.
func TestCloseReleasesGoroutines(t *testing.T) {
	h := newHost(t)
	time.Sleep(200 * time.Millisecond)
	before := runtime.NumGoroutine()
	for range 3 {
		r, err := New(context.Background(), h, "leak check", Options{PresenceInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A leak would leave dozens per room; a few of the host's own come and go.
	eventually(t, 10*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before+5 })
}
