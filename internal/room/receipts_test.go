package room

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

// testLines makes n lines with IDs prefix-0 to prefix-(n-1), sent at sent.
func testLines(prefix string, n int, sent time.Time) []*outgoing {
	lines := make([]*outgoing, n)
	for i := range lines {
		lines[i] = &outgoing{msg: wire.Frame{Type: wire.TypeMsg, ID: fmt.Sprintf("%s-%d", prefix, i)}, sent: sent}
	}
	return lines
}

// TestReceiptsMatchInAnyOrder: receipts that come in the order the lines
// were sent are matched at the head of the peer's queue; receipts that come
// in another order, twice, for lines never sent to that peer, or from a
// peer that had none, still count exactly once each, and a line is complete
// when every peer it went to has acknowledged it.
func TestReceiptsMatchInAnyOrder(t *testing.T) {
	a, b, c := peer.ID("peer-a"), peer.ID("peer-b"), peer.ID("peer-c")
	rc := newReceipts(newDeliveries())
	lines := testLines("l", 100, time.Now())
	rc.expectAll(lines, []peer.ID{a, b}, []string{"a", "b"})
	if n := rc.pendingCount(); n != 100 {
		t.Fatalf("%d lines wait, want 100", n)
	}

	// a acknowledges in order: nothing is complete until b has too.
	if done := rc.ack(a, msgIDs(lines)); len(done) != 0 {
		t.Fatalf("%d lines complete with b's receipts missing", len(done))
	}
	if rc.unacked[a] != nil {
		t.Error("a's queue kept after every receipt came")
	}

	// b acknowledges backwards, with strangers' IDs and repeats among
	// them; c, which had none, acknowledges everything.
	rc.ack(c, msgIDs(lines))
	var ids []string
	for i := len(lines) - 1; i >= 0; i-- {
		ids = append(ids, lines[i].msg.ID, "not-ours", lines[i].msg.ID)
	}
	done := rc.ack(b, ids)
	if len(done) != 100 {
		t.Fatalf("%d lines complete, want 100", len(done))
	}
	if n := rc.pendingCount(); n != 0 || len(rc.unacked) != 0 {
		t.Errorf("after every receipt: %d lines wait, %d queues kept; want none", n, len(rc.unacked))
	}
}

// TestReceiptsGiveUpAndExpire: a line given up for one peer no longer
// waits for it, a late receipt for it is ignored, and lines no peer
// acknowledged within the window expire with the peers they waited for.
func TestReceiptsGiveUpAndExpire(t *testing.T) {
	a, b := peer.ID("peer-a"), peer.ID("peer-b")
	rc := newReceipts(newDeliveries())
	old := testLines("old", 10, time.Now().Add(-time.Hour))
	fresh := testLines("new", 10, time.Now())
	rc.expectAll(old, []peer.ID{a, b}, []string{"a", "b"})
	rc.expectAll(fresh, []peer.ID{a}, []string{"a"})

	rc.giveUp(old[3], a)
	if old[3].waits(a) || !old[3].waits(b) {
		t.Fatal("giving up for a changed who the line waits for wrongly")
	}
	if done := rc.ack(b, []string{old[3].msg.ID}); len(done) != 0 {
		t.Errorf("a line given up for a counted as complete")
	}
	rc.ack(a, []string{old[3].msg.ID}) // late, and ignored
	if n := rc.pendingCount(); n != 19 {
		t.Fatalf("%d lines wait, want 19", n)
	}
	if got := rc.waitingIDs(5); len(got) != 5 {
		t.Errorf("waitingIDs(5) returned %d IDs", len(got))
	}

	gone := rc.expire(time.Now().Add(-time.Minute))
	if len(gone) != 9 {
		t.Fatalf("%d lines expired, want the 9 old ones still waiting", len(gone))
	}
	for _, e := range gone {
		if len(e.peers) != 2 {
			t.Errorf("%s expired waiting for %d peers, want 2", e.o.msg.ID, len(e.peers))
		}
	}
	if n := rc.pendingCount(); n != 10 {
		t.Errorf("%d lines wait after the expiry, want the 10 new ones", n)
	}
	if rc.unacked[b] != nil {
		t.Error("b's queue kept after all its lines expired")
	}
	if done := rc.ack(a, msgIDs(fresh)); len(done) != 10 {
		t.Errorf("%d new lines complete, want 10", len(done))
	}
}

// TestReceiptsResentLine: a line sent again to a peer after it was given up
// for it waits for that peer again, once.
func TestReceiptsResentLine(t *testing.T) {
	a := peer.ID("peer-a")
	rc := newReceipts(newDeliveries())
	lines := testLines("l", 3, time.Now())
	rc.expectAll(lines, []peer.ID{a}, []string{"a"})
	rc.giveUp(lines[0], a)
	rc.expect(lines[0], a, "a")
	if n := rc.pendingCount(); n != 3 {
		t.Fatalf("%d lines wait, want 3", n)
	}
	done := rc.ack(a, []string{lines[1].msg.ID, lines[2].msg.ID, lines[0].msg.ID})
	if len(done) != 2 { // lines[0] failed once: it is reported, not complete
		t.Errorf("%d lines complete, want 2", len(done))
	}
	if n := rc.pendingCount(); n != 0 || len(rc.unacked) != 0 {
		t.Errorf("%d lines wait, %d queues kept; want none", n, len(rc.unacked))
	}
}

// TestReceiptsBoundedPeers: identities that take our lines and never
// acknowledge them leave at most maxUnackedPeers queues; past it the queue
// whose oldest line is the oldest is given up, its lines counted as not
// delivered and kept for the ledger to report, once each.
func TestReceiptsBoundedPeers(t *testing.T) {
	dl := newDeliveries()
	rc := newReceipts(dl)
	start := time.Now().Add(-time.Minute)
	peerN := func(i int) peer.ID { return peer.ID(fmt.Sprintf("peer-%d", i)) }
	for i := range maxUnackedPeers {
		p := peerN(i)
		rc.expectAll(testLines(string(p), 2, start.Add(time.Duration(i)*time.Millisecond)), []peer.ID{p}, []string{string(p)})
	}
	if len(rc.unacked) != maxUnackedPeers || len(rc.takeDropped()) != 0 {
		t.Fatalf("%d queues, want %d and nothing given up yet", len(rc.unacked), maxUnackedPeers)
	}

	// A line that peer-0, the oldest, had once, given up and sent again,
	// is in its queue twice.
	again := rc.unacked[peerN(0)].list[1]
	rc.giveUp(again, peerN(0))
	rc.expect(again, peerN(0), "peer-0")
	if n, _ := dl.failedIDs(); n != 1 {
		t.Fatalf("%d lines failed before the bound was passed, want 1", n)
	}

	// One more peer: peer-0's queue goes, and its two lines are given up.
	late := peerN(maxUnackedPeers)
	rc.expectAll(testLines("late", 1, time.Now()), []peer.ID{late}, []string{"late"})
	if len(rc.unacked) != maxUnackedPeers || rc.unacked[peerN(0)] != nil || rc.unacked[late] == nil {
		t.Fatalf("%d queues, peer-0's kept %v, the new one's made %v; want %d, peer-0's given up",
			len(rc.unacked), rc.unacked[peerN(0)] != nil, rc.unacked[late] != nil, maxUnackedPeers)
	}
	gone := rc.takeDropped()
	if len(gone) != 2 {
		t.Fatalf("%d lines given up, want peer-0's 2", len(gone))
	}
	for _, e := range gone {
		if len(e.peers) != 1 || e.peers[0] != peerN(0) || e.o.waits(peerN(0)) {
			t.Errorf("%s given up for %v, and still waits: %v; want peer-0's, no longer waiting", e.o.msg.ID, e.peers, e.o.waits(peerN(0)))
		}
	}
	if len(rc.takeDropped()) != 0 {
		t.Error("lines given up are handed over twice")
	}
	if n, _ := dl.failedIDs(); n != 2 {
		t.Errorf("%d lines failed, want peer-0's 2 (one of them twice)", n)
	}
	if n := rc.pendingCount(); n != 2*(maxUnackedPeers-1)+1 {
		t.Errorf("%d lines wait, want %d", n, 2*(maxUnackedPeers-1)+1)
	}
	if done := rc.ack(peerN(0), []string{gone[0].o.msg.ID}); len(done) != 0 {
		t.Error("a late receipt for a line given up completed it")
	}
}
