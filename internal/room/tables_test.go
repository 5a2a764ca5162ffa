package room

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestSeenTableBounded: the dedupe memory keeps what it needs to drop a
// duplicate, forgets an author resendWindow after it left, and stays within
// maxSeenTotal however many identities send to us.
func TestSeenTableBounded(t *testing.T) {
	st := newSeenTable()
	alice := peer.ID("alice")
	if !st.firstSight(alice, "m1") || st.firstSight(alice, "m1") {
		t.Fatal("a duplicate was not dropped")
	}
	st.left(alice)
	st.prune(time.Now().Add(-time.Minute))
	if st.firstSight(alice, "m1") {
		t.Error("an author was forgotten within its resend window")
	}
	st.left(alice)
	st.prune(time.Now().Add(time.Second))
	if authors, _ := st.size(); authors != 0 {
		t.Errorf("%d authors remembered after their window passed, want 0", authors)
	}

	// A flood of identities, each with a full window of IDs.
	for i := range 4 * maxSeenTotal / maxSeenIDs {
		p := peer.ID(fmt.Sprintf("identity-%d", i))
		for j := range maxSeenIDs {
			st.firstSight(p, fmt.Sprintf("%d", j))
		}
	}
	if _, ids := st.size(); ids > maxSeenTotal {
		t.Errorf("%d IDs remembered, more than %d", ids, maxSeenTotal)
	}
	last := peer.ID(fmt.Sprintf("identity-%d", 4*maxSeenTotal/maxSeenIDs-1))
	if st.firstSight(last, "0") {
		t.Error("the most recent author was forgotten first")
	}
}

// TestDialMemoryBounded: the dialer's memories of peers stay within their
// bounds however many strangers there are, the oldest forgotten first.
func TestDialMemoryBounded(t *testing.T) {
	met := newBoundedSet(3)
	for i := range 10 {
		met.add(peer.ID(fmt.Sprint(i)))
	}
	if met.len() != 3 || !met.has("9") || met.has("0") {
		t.Errorf("bounded set holds %d, 9: %v, 0: %v", met.len(), met.has("9"), met.has("0"))
	}
	dialed := newTimedSet(time.Hour, 3)
	for i := range 10 {
		dialed.add(peer.ID(fmt.Sprint(i)))
	}
	if dialed.len() > 3 || !dialed.holds("9") {
		t.Errorf("timed set holds %d, and 9: %v", dialed.len(), dialed.holds("9"))
	}
	expired := newTimedSet(time.Nanosecond, 3)
	for i := range 3 {
		expired.add(peer.ID(fmt.Sprint(i)))
	}
	time.Sleep(time.Millisecond)
	if expired.holds("0") {
		t.Error("an expired entry still holds a peer back")
	}
	expired.add("new")
	if expired.len() != 1 {
		t.Errorf("adding past the bound kept %d entries, want the expired ones pruned", expired.len())
	}
}
