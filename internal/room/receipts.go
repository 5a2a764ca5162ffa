package room

import (
	"slices"
	"sync"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

const (
	// resendWindow is how long a line waits for a peer's receipt. A line to
	// a peer whose session drops before it acknowledged the line is sent
	// again when the peer comes back within this time; after it, the
	// sender is told the line was not delivered.
	resendWindow = 5 * time.Minute
	// maxUnackedPerPeer bounds the lines waiting for one peer's receipts:
	// the window of lines in flight. A line beyond it waits (as a line
	// waits for room in a slow peer's outbox) until receipts come back.
	maxUnackedPerPeer = 4096
)

// An outgoing line is one we sent, followed until every peer it went to
// that can acknowledge it has done so.
type outgoing struct {
	id, text string
	private  bool
	sent     time.Time
	// waiting are the peers on our protocol that have not acknowledged it
	// (a slice: a line goes to few peers); acked those that have (and
	// ackedIDs their text form, which is costly to compute for every
	// line); noReceipt the peers on the plain protocol, which cannot;
	// failed is set when it could not be sent to some peer (already
	// reported).
	waiting   []peer.ID
	acked     []peer.ID
	ackedIDs  []string
	noReceipt []string
	failed    bool
	// topic is set when the line was published on the room's topic too;
	// its id is then the topic's message ID.
	topic bool
	// msg is its message frame, made once the id is final and shared by
	// every session's outbox (which holds pointers, so that an outbox of
	// thousands of slots costs little until it is used).
	msg *wire.Frame
}

// waits reports whether o still waits for p's receipt.
func (o *outgoing) waits(p peer.ID) bool { return slices.Contains(o.waiting, p) }

// stopWaiting removes p from the peers o waits for, and reports whether it
// was there.
func (o *outgoing) stopWaiting(p peer.ID) bool {
	i := slices.Index(o.waiting, p)
	if i < 0 {
		return false
	}
	o.waiting = slices.Delete(o.waiting, i, i+1)
	return true
}

// A peerQueue holds the lines that wait for one peer's receipts, in the
// order sent. Receipts come in that order, so lines leave from the head;
// one that leaves out of order (given up, expired) stays until it reaches
// the head, and n counts only those still waiting.
type peerQueue struct {
	list []*outgoing
	head int
	n    int
}

// trim drops acknowledged or given-up lines from the head.
func (q *peerQueue) trim(p peer.ID) {
	for q.head < len(q.list) && !q.list[q.head].waits(p) {
		q.list[q.head] = nil
		q.head++
	}
	if q.head == len(q.list) {
		q.list, q.head = q.list[:0], 0
	} else if q.head > len(q.list)/2 && q.head > 64 {
		// Reuse the space at the front once it is half the slice.
		q.list = append(q.list[:0], q.list[q.head:]...)
		q.head = 0
	}
}

// receipts follows our lines until they are acknowledged, and keeps them
// for sending again to a peer that comes back.
type receipts struct {
	dl      *deliveries // told of every receipt awaited, come or given up
	mu      sync.Mutex
	byID    map[string]*outgoing
	unacked map[peer.ID]*peerQueue
	// freed is closed, and replaced, whenever receipts arrive, to wake
	// senders that wait for the window (see waitWindow).
	freed chan struct{}
}

func newReceipts(dl *deliveries) *receipts {
	return &receipts{dl: dl, byID: make(map[string]*outgoing), unacked: make(map[peer.ID]*peerQueue), freed: make(chan struct{})}
}

// expect records that o went to p, which will acknowledge it.
func (t *receipts) expect(o *outgoing, p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o.waiting = append(o.waiting, p)
	t.byID[o.id] = o
	t.dl.to(o.id, true, false)
	q := t.unacked[p]
	if q == nil {
		q = &peerQueue{}
		t.unacked[p] = q
	}
	q.list = append(q.list, o)
	q.n++
}

// waitWindow returns once fewer than maxUnackedPerPeer lines wait for p's
// receipts, or an error saying why it gave up: cancel or done closed, or
// no receipt for enqueueTimeout.
func (t *receipts) waitWindow(p peer.ID, cancel, done <-chan struct{}) error {
	var timeout <-chan time.Time
	for {
		t.mu.Lock()
		full, freed := t.unacked[p] != nil && t.unacked[p].n >= maxUnackedPerPeer, t.freed
		t.mu.Unlock()
		if !full {
			return nil
		}
		if timeout == nil {
			timer := time.NewTimer(enqueueTimeout)
			defer timer.Stop()
			timeout = timer.C
		}
		select {
		case <-freed:
		case <-cancel:
			return errClosing
		case <-done:
			return errSessionEnded
		case <-timeout:
			return &deliveryError{why: event.WhyWindowFull, wait: enqueueTimeout, limit: maxUnackedPerPeer}
		}
	}
}

// giveUp stops waiting for p's receipt of o: o could not be sent to p (the
// caller reports it).
func (t *receipts) giveUp(o *outgoing, p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.giveUpLocked(o, p)
}

func (t *receipts) giveUpLocked(o *outgoing, p peer.ID) {
	if !o.stopWaiting(p) {
		return
	}
	o.failed = true
	t.leftQueueLocked(o, p)
	t.dl.done(o.id, true, false)
}

// leftQueueLocked updates p's queue after o stopped waiting for p.
func (t *receipts) leftQueueLocked(o *outgoing, p peer.ID) {
	if q := t.unacked[p]; q != nil {
		q.n--
		q.trim(p)
		if q.n == 0 {
			delete(t.unacked, p)
		}
	}
	if len(o.waiting) == 0 {
		delete(t.byID, o.id)
	}
}

// ack records p's receipts for ids and returns the lines that every peer
// has now acknowledged. A receipt for a line we do not know, or from a
// peer it did not go to, is ignored.
func (t *receipts) ack(p peer.ID, pID string, ids []string) (complete []*outgoing) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		o := t.byID[id]
		if o == nil || !o.stopWaiting(p) {
			continue
		}
		o.acked = append(o.acked, p)
		o.ackedIDs = append(o.ackedIDs, pID)
		t.leftQueueLocked(o, p)
		t.dl.done(o.id, true, true)
		if len(o.waiting) == 0 && !o.failed {
			complete = append(complete, o)
		}
	}
	close(t.freed)
	t.freed = make(chan struct{})
	return complete
}

// waitingFor returns p's unacknowledged lines, oldest first, to send again.
func (t *receipts) waitingFor(p peer.ID) []*outgoing {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.unacked[p]
	if q == nil {
		return nil
	}
	list := make([]*outgoing, 0, q.n)
	for _, o := range q.list[q.head:] {
		if o.waits(p) {
			list = append(list, o)
		}
	}
	return list
}

// An expiry is a line some peers never acknowledged within resendWindow.
type expiry struct {
	o     *outgoing
	peers []peer.ID
}

// expire gives up the lines sent before cutoff that still wait for
// receipts, and returns them with the peers that never acknowledged them.
func (t *receipts) expire(cutoff time.Time) []expiry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gone []expiry
	for _, o := range t.byID {
		if o.sent.After(cutoff) {
			continue
		}
		e := expiry{o: o, peers: slices.Clone(o.waiting)}
		for _, p := range e.peers {
			t.giveUpLocked(o, p)
		}
		gone = append(gone, e)
	}
	slices.SortFunc(gone, func(a, b expiry) int { return a.o.sent.Compare(b.o.sent) })
	return gone
}

// pending lists every line still waiting for receipts, oldest first, with
// the peers it waits for.
func (t *receipts) pending() []expiry {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := make([]expiry, 0, len(t.byID))
	for _, o := range t.byID {
		e := expiry{o: o, peers: slices.Clone(o.waiting)}
		slices.Sort(e.peers)
		list = append(list, e)
	}
	slices.SortFunc(list, func(a, b expiry) int { return a.o.sent.Compare(b.o.sent) })
	return list
}

// unackedCounts says, for each peer, how many lines wait for its receipts.
func (t *receipts) unackedCounts() map[peer.ID]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	counts := make(map[peer.ID]int, len(t.unacked))
	for p, q := range t.unacked {
		counts[p] = q.n
	}
	return counts
}
