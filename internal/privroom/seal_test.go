package privroom

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestSealOpen(t *testing.T) {
	r := testRoom(t)
	a, b := testID(t, 1), testID(t, 2)
	plain := []byte("hello, private room")
	sealed, err := r.Seal(a, 42, plain)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(plain)+Overhead {
		t.Errorf("sealed %d bytes into %d, want +%d", len(plain), len(sealed), Overhead)
	}
	if bytes.Contains(sealed, plain) {
		t.Error("the plaintext shows in the sealed payload")
	}
	seq, got, err := r.Open(a, sealed)
	if err != nil || seq != 42 || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %d, %q, %v", seq, got, err)
	}
	// An empty payload seals too.
	if s, err := r.Seal(a, 0, nil); err != nil {
		t.Fatal(err)
	} else if _, got, err := r.Open(a, s); err != nil || len(got) != 0 {
		t.Fatalf("empty: %q, %v", got, err)
	}

	again, _ := r.Seal(a, 42, plain)
	if bytes.Equal(again, sealed) {
		t.Error("the same plaintext sealed twice gives the same payload")
	}

	mustFail := func(name string, r *Room, author peer.ID, s []byte) {
		t.Helper()
		if seq, got, err := r.Open(author, s); !errors.Is(err, ErrOpen) || got != nil || seq != 0 {
			t.Errorf("%s: Open = %d, %q, %v; want ErrOpen", name, seq, got, err)
		}
	}
	mustFail("another author", r, b, sealed)
	mustFail("another key", otherRoom(t), a, sealed)
	mustFail("no author", r, "", sealed)
	otherSeq := bytes.Clone(sealed)
	binary.BigEndian.PutUint64(otherSeq[1:9], 43)
	mustFail("another seq", r, a, otherSeq)
	for i := range sealed {
		flipped := bytes.Clone(sealed)
		flipped[i] ^= 0x01
		mustFail("flipped byte", r, a, flipped)
	}
	for n := range len(sealed) {
		mustFail("truncated", r, a, sealed[:n])
	}
	mustFail("extended", r, a, append(bytes.Clone(sealed), 0))
	mustFail("nil", r, a, nil)
	mustFail("oversized", r, a, make([]byte, MaxSealed+1))
}

func TestSealSizes(t *testing.T) {
	r := testRoom(t)
	a := testID(t, 1)
	big := make([]byte, MaxPlaintext)
	sealed, err := r.Seal(a, 1, big)
	if err != nil || len(sealed) != MaxSealed {
		t.Fatalf("largest plaintext: %d bytes, %v", len(sealed), err)
	}
	if _, _, err := r.Open(a, sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Seal(a, 1, make([]byte, MaxPlaintext+1)); err == nil {
		t.Error("a plaintext over MaxPlaintext was sealed")
	}
}

// TestVectorSeal: a payload sealed with a fixed nonce.
func TestVectorSeal(t *testing.T) {
	r := testRoom(t)
	nonce := bytes.Repeat([]byte{0xcc}, 24)
	sealed, err := r.sealWithNonce(testID(t, 1), 0x0102030405060708, nonce, []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	const want = "010102030405060708ccccccccccccccccccccccccccccccccccccccccccccccccb905ae3cb7eb950db152013e18c0f1de619e"
	if got := hex.EncodeToString(sealed); got != want {
		t.Fatalf("sealed = %s, want %s", got, want)
	}
}

func TestCounter(t *testing.T) {
	clock := time.Unix(1_700_000_000, 0)
	c := &Counter{now: func() time.Time { return clock }}
	first := c.Next()
	if first != uint64(clock.UnixNano()) {
		t.Errorf("first = %d, want the clock %d", first, clock.UnixNano())
	}
	if n := c.Next(); n != first+1 {
		t.Errorf("same instant: %d, want %d", n, first+1)
	}
	clock = clock.Add(-time.Hour) // the clock goes back: the numbers do not
	if n := c.Next(); n != first+2 {
		t.Errorf("clock back: %d, want %d", n, first+2)
	}
	clock = clock.Add(2 * time.Hour)
	if n := c.Next(); n != uint64(clock.UnixNano()) {
		t.Errorf("clock ahead: %d, want %d", n, clock.UnixNano())
	}

	// Concurrent use: all different.
	var real Counter
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				n := real.Next()
				mu.Lock()
				if seen[n] {
					t.Errorf("%d twice", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestReplayGuard(t *testing.T) {
	a, b := testID(t, 1), testID(t, 2)
	g := NewReplayGuard(10, 0)
	accept := func(author peer.ID, seq uint64, ok bool) {
		t.Helper()
		err := g.Accept(author, seq)
		if ok && err != nil {
			t.Errorf("%d: %v", seq, err)
		}
		if !ok && !errors.Is(err, ErrReplay) {
			t.Errorf("%d: %v, want ErrReplay", seq, err)
		}
	}
	accept(a, 100, true)
	accept(a, 100, false) // again
	accept(b, 100, true)  // another author's 100
	accept(a, 90, true)   // out of order, never seen
	accept(a, 90, false)
	accept(a, 0, true)
	accept(a, 0, false)
	// Fill the window: 0 and 90 fall out; below them is refused.
	for s := uint64(1000); s < 1000+replayWindow; s++ {
		accept(a, s, true)
	}
	accept(a, 95, false)  // below the floor
	accept(a, 100, false) // seen, and now the floor
	accept(a, 999, true)  // not seen, above the floor: out of order still passes
	accept(a, 1000, false)
	accept(a, 1000+replayWindow-1, false)
	accept(a, 1000+replayWindow, true)
}

func TestReplayGuardMaxAge(t *testing.T) {
	a := testID(t, 1)
	now := time.Unix(1_000_000, 0)
	g := NewReplayGuard(10, 10*time.Minute)
	g.now = func() time.Time { return now }
	if err := g.Accept(a, uint64(now.Add(-11*time.Minute).UnixNano())); !errors.Is(err, ErrReplay) {
		t.Errorf("11 minutes old: %v, want ErrReplay", err)
	}
	if err := g.Accept(a, uint64(now.Add(-9*time.Minute).UnixNano())); err != nil {
		t.Errorf("9 minutes old: %v", err)
	}
	if err := g.Accept(a, uint64(now.Add(time.Hour).UnixNano())); err != nil {
		t.Errorf("from a clock ahead: %v", err)
	}
}

// TestReplayGuardBounded: it remembers maxAuthors authors, and forgets the
// one heard from least recently.
func TestReplayGuardBounded(t *testing.T) {
	g := NewReplayGuard(3, 0)
	ids := []peer.ID{testID(t, 1), testID(t, 2), testID(t, 3), testID(t, 4)}
	for _, id := range ids[:3] {
		g.Accept(id, 1)
	}
	g.Accept(ids[0], 2) // 0 heard from again; 1 is now the oldest
	g.Accept(ids[3], 1) // forgets 1
	if len(g.authors) != 3 {
		t.Fatalf("%d authors kept, want 3", len(g.authors))
	}
	if _, ok := g.authors[ids[1]]; ok {
		t.Error("kept the author heard from least recently")
	}
	if err := g.Accept(ids[0], 1); !errors.Is(err, ErrReplay) {
		t.Errorf("author 0 forgotten: %v", err)
	}
}

// TestSealedTopicFlow is the receiver's path of doc.go: Open, then Accept.
func TestSealedTopicFlow(t *testing.T) {
	r := testRoom(t)
	a, m := testID(t, 1), testID(t, 4)
	var c Counter
	g := NewReplayGuard(100, 10*time.Minute)
	receive := func(from peer.ID, data []byte) ([]byte, error) {
		seq, plain, err := r.Open(from, data)
		if err != nil {
			return nil, err
		}
		if err := g.Accept(from, seq); err != nil {
			return nil, err
		}
		return plain, nil
	}
	msg, _ := r.Seal(a, c.Next(), []byte("one"))
	if got, err := receive(a, msg); err != nil || string(got) != "one" {
		t.Fatalf("%q, %v", got, err)
	}
	if _, err := receive(a, msg); !errors.Is(err, ErrReplay) {
		t.Errorf("replayed: %v, want ErrReplay", err)
	}
	if _, err := receive(m, msg); !errors.Is(err, ErrOpen) {
		t.Errorf("re-attributed to m: %v, want ErrOpen", err)
	}
	msg2, _ := r.Seal(a, c.Next(), []byte("two"))
	if got, err := receive(a, msg2); err != nil || string(got) != "two" {
		t.Fatalf("%q, %v", got, err)
	}
}
