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
	// maxUnackedPeers bounds the peers whose receipts we wait for. A peer
	// that takes our lines and never acknowledges them, under a new
	// identity each time, would otherwise leave a queue behind for each
	// identity, for resendWindow. Past the bound the queue whose oldest
	// line is the oldest is given up, its lines reported not delivered: a
	// peer that acknowledges keeps the head of its queue recent, so that
	// is the peer most likely gone. The bound is far above the rooms the
	// program is made for (the benchmarks go to 500 peers).
	maxUnackedPeers = 1024
)

// An outgoing line is one we sent, followed until every peer it went to
// that can acknowledge it has done so.
type outgoing struct {
	// msg is the line's message frame: its ID, text and whether it is
	// private. The outboxes of every session it goes to hold a pointer to
	// it, so its ID is final before any session sees it (the topic's, when
	// the line was published there first; see Room.send).
	msg  wire.Frame
	sent time.Time
	// to are the peers on our protocol the line went to, and toIDs their
	// text form (which is costly to compute for every line). The lines of
	// a batch share both, as they went to the same peers, until one of
	// them goes to another peer (see expect); never change them in place.
	to    []peer.ID
	toIDs []string
	// waiting has a bit for each of to that has not acknowledged the line
	// yet; noReceipt are the peers on the plain protocol it went to, which
	// cannot (shared like to). failed is set when it could not be sent to
	// some peer (already reported).
	waiting   peerBits
	noReceipt []string
	failed    bool
	// topic is set when the line was published on the room's topic too;
	// its id is then the topic's message ID.
	topic bool
}

// waits reports whether o still waits for p's receipt.
func (o *outgoing) waits(p peer.ID) bool {
	i := slices.Index(o.to, p)
	return i >= 0 && o.waiting.has(i)
}

// stopWaiting stops waiting for p's receipt, and reports whether o waited
// for it.
func (o *outgoing) stopWaiting(p peer.ID) bool {
	i := slices.Index(o.to, p)
	return i >= 0 && o.waiting.clear(i)
}

// waitingPeers returns the peers whose receipts o waits for.
func (o *outgoing) waitingPeers() []peer.ID {
	var peers []peer.ID
	for i, p := range o.to {
		if o.waiting.has(i) {
			peers = append(peers, p)
		}
	}
	return peers
}

// peerBits is a set of small numbers (the indexes of a line's peers), in a
// word while they are below 64: a line goes to few peers, and a pipe sends
// a million lines.
type peerBits struct {
	low  uint64
	high []uint64 // bits 64 and up
	n    int      // how many are set
}

func (b *peerBits) has(i int) bool {
	if i < 64 {
		return b.low&(1<<i) != 0
	}
	w := i/64 - 1
	return w < len(b.high) && b.high[w]&(1<<(i%64)) != 0
}

// set adds i, and reports whether it was not there.
func (b *peerBits) set(i int) bool {
	if b.has(i) {
		return false
	}
	if i < 64 {
		b.low |= 1 << i
	} else {
		w := i/64 - 1
		for len(b.high) <= w {
			b.high = append(b.high, 0)
		}
		b.high[w] |= 1 << (i % 64)
	}
	b.n++
	return true
}

// setFirst adds 0 to n-1 to an empty set.
func (b *peerBits) setFirst(n int) {
	for i := 0; i < n && i < 64; i++ {
		b.low |= 1 << i
	}
	for i := 64; i < n; i++ {
		b.set(i)
	}
	b.n = n
}

// clear removes i, and reports whether it was there.
func (b *peerBits) clear(i int) bool {
	if !b.has(i) {
		return false
	}
	if i < 64 {
		b.low &^= 1 << i
	} else {
		b.high[i/64-1] &^= 1 << (i % 64)
	}
	b.n--
	return true
}

// A peerQueue holds the lines that wait for one peer's receipts, in the
// order sent. Receipts come in that order, so lines leave from the head;
// one that leaves out of order (given up, expired) stays until it reaches
// the head, and n counts only those still waiting.
//
// A receipt is matched against the first lines of the queue (see find):
// a table of the lines by ID, per line sent and per receipt, was a sixth of
// the sending peer's CPU when a pipe sends a million lines. index is built
// only when receipts stop coming in order (two streams to one peer, while
// the chat moves to a direct connection; a peer that acknowledges lines it
// never had), and kept with the queue from then on.
type peerQueue struct {
	list  []*outgoing
	head  int
	n     int
	index map[string]*outgoing
}

// inOrderLook is how many lines from the head find looks at before it
// uses the index.
const inOrderLook = 8

// push queues lines that wait for the peer's receipts.
func (q *peerQueue) push(lines ...*outgoing) {
	q.list = append(q.list, lines...)
	q.n += len(lines)
	if q.index != nil {
		for _, o := range lines {
			q.index[o.msg.ID] = o
		}
	}
}

// find returns the queued line whose ID is id, or nil.
func (q *peerQueue) find(id string) *outgoing {
	for _, o := range q.list[q.head:min(q.head+inOrderLook, len(q.list))] {
		if o.msg.ID == id {
			return o
		}
	}
	if q.index == nil {
		q.index = make(map[string]*outgoing, len(q.list)-q.head)
		for _, o := range q.list[q.head:] {
			q.index[o.msg.ID] = o
		}
	}
	return q.index[id]
}

// trim drops acknowledged or given-up lines from the head.
func (q *peerQueue) trim(p peer.ID) {
	for q.head < len(q.list) && !q.list[q.head].waits(p) {
		if q.index != nil {
			delete(q.index, q.list[q.head].msg.ID)
		}
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
// for sending again to a peer that comes back. Each line that waits is in
// the queue of every peer it waits for; waiting counts those lines. It is
// the one owner of the queues: queueFor creates them, at most
// maxUnackedPeers, and leftQueueLocked drops each once it is empty.
type receipts struct {
	dl      *deliveries // told of the lines given up
	mu      sync.Mutex
	waiting int
	unacked map[peer.ID]*peerQueue
	// spare is the last queue emptied, kept for the next peer that needs
	// one: a fast peer empties its queue with nearly every receipt, and a
	// new queue grows its list again from nothing.
	spare *peerQueue
	// dropped are the lines given up when a queue was dropped to make
	// room for another (see queueFor), until the ledger takes them to
	// report them (see ledger.reportDropped).
	dropped []expiry
	// freed is closed, and replaced, whenever receipts arrive, to wake
	// senders that wait for the window (see waitWindow).
	freed chan struct{}
}

func newReceipts(dl *deliveries) *receipts {
	return &receipts{dl: dl, unacked: make(map[peer.ID]*peerQueue), freed: make(chan struct{})}
}

// expect records that o went to p, which will acknowledge it: a held line
// that goes to a peer who joined (see ledger.assign).
func (t *receipts) expect(o *outgoing, p peer.ID, pID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := slices.Index(o.to, p)
	if i < 0 {
		// Clipped, so that a shared slice is copied, never written.
		o.to, o.toIDs = append(slices.Clip(o.to), p), append(slices.Clip(o.toIDs), pID)
		i = len(o.to) - 1
	}
	wasWaiting := o.waiting.n > 0
	if o.waiting.set(i) {
		t.queueFor(p).push(o)
		if !wasWaiting {
			t.waiting++
		}
	}
}

// expectAll records that new lines went to the peers to (toIDs their text
// form), which will acknowledge them: a batch, under one lock.
func (t *receipts) expectAll(lines []*outgoing, to []peer.ID, toIDs []string) {
	if len(to) == 0 || len(lines) == 0 {
		return
	}
	to, toIDs = slices.Clip(to), slices.Clip(toIDs)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, o := range lines {
		o.to, o.toIDs = to, toIDs
		o.waiting.setFirst(len(to))
	}
	for _, p := range to {
		t.queueFor(p).push(lines...)
	}
	t.waiting += len(lines)
}

// queueFor returns p's queue, and creates it if need be; at the bound of
// queues it first gives up the one whose oldest line is the oldest (see
// maxUnackedPeers).
func (t *receipts) queueFor(p peer.ID) *peerQueue {
	q := t.unacked[p]
	if q == nil {
		if len(t.unacked) >= maxUnackedPeers {
			t.dropOldestLocked()
		}
		q, t.spare = t.spare, nil
		if q == nil {
			q = &peerQueue{}
		}
		t.unacked[p] = q
	}
	return q
}

// dropOldestLocked gives up the queue whose head, its oldest line still
// waiting, was sent first, and keeps its lines for the ledger to report
// (see takeDropped). A queue's head waits (see trim), so it is the oldest
// line of the queue.
func (t *receipts) dropOldestLocked() {
	var oldest peer.ID
	var oldestAt time.Time
	for p, q := range t.unacked {
		if q.head == len(q.list) {
			oldest = p // empty: nothing to give up
			break
		}
		if at := q.list[q.head].sent; oldest == "" || at.Before(oldestAt) {
			oldest, oldestAt = p, at
		}
	}
	q := t.unacked[oldest]
	if q == nil {
		return
	}
	// Listed first: giving up a line trims the queue under us.
	lines := slices.Clone(q.list[q.head:])
	for _, o := range lines {
		// A line sent again after it was given up for the peer is in
		// the queue twice: given up once.
		if !o.waits(oldest) {
			continue
		}
		t.giveUpLocked(o, oldest)
		t.dropped = append(t.dropped, expiry{o: o, peers: []peer.ID{oldest}})
	}
	// Emptied, the queue is gone already (see leftQueueLocked), unless it
	// held nothing that waited.
	delete(t.unacked, oldest)
}

// takeDropped returns the lines given up by dropOldestLocked since it was
// last called.
func (t *receipts) takeDropped() []expiry {
	t.mu.Lock()
	defer t.mu.Unlock()
	gone := t.dropped
	t.dropped = nil
	return gone
}

// waitWindow waits until fewer than maxUnackedPerPeer lines wait for p's
// receipts, and returns how many more may go to p; or it returns an error
// saying why it gave up: cancel or done closed, or no receipt for
// enqueueTimeout.
func (t *receipts) waitWindow(p peer.ID, cancel, done <-chan struct{}) (int, error) {
	var timeout <-chan time.Time
	for {
		t.mu.Lock()
		room, freed := maxUnackedPerPeer, t.freed
		if q := t.unacked[p]; q != nil {
			room -= q.n
		}
		t.mu.Unlock()
		if room > 0 {
			return room, nil
		}
		if timeout == nil {
			timer := time.NewTimer(enqueueTimeout)
			defer timer.Stop()
			timeout = timer.C
		}
		select {
		case <-freed:
		case <-cancel:
			return 0, errClosing
		case <-done:
			return 0, errSessionEnded
		case <-timeout:
			return 0, &deliveryError{why: event.WhyWindowFull, wait: enqueueTimeout, limit: maxUnackedPerPeer}
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
	t.dl.fail(o.msg.ID)
}

// leftQueueLocked updates p's queue after o stopped waiting for p.
func (t *receipts) leftQueueLocked(o *outgoing, p peer.ID) {
	if q := t.unacked[p]; q != nil {
		q.n--
		q.trim(p)
		if q.n == 0 {
			delete(t.unacked, p)
			// Emptied, its list is empty too (trim took every line that
			// waits no more); its index, if any, is dropped with it.
			q.index = nil
			t.spare = q
		}
	}
	if o.waiting.n == 0 {
		t.waiting--
	}
}

// ack records p's receipts for ids and returns the lines that every peer
// has now acknowledged. A receipt for a line we do not know, or from a
// peer it did not go to, is ignored.
func (t *receipts) ack(p peer.ID, ids []string) (complete []*outgoing) {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.unacked[p]
	for _, id := range ids {
		if q == nil || q.n == 0 {
			break // nothing of ours waits for p: the rest are not ours
		}
		o := q.find(id)
		if o == nil || !o.stopWaiting(p) {
			continue
		}
		t.leftQueueLocked(o, p)
		if o.waiting.n == 0 && !o.failed {
			if complete == nil {
				complete = make([]*outgoing, 0, len(ids))
			}
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
	for _, o := range t.waitingLocked(-1) {
		if o.sent.After(cutoff) {
			continue
		}
		e := expiry{o: o, peers: o.waitingPeers()}
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
	lines := t.waitingLocked(-1)
	list := make([]expiry, 0, len(lines))
	for _, o := range lines {
		e := expiry{o: o, peers: o.waitingPeers()}
		slices.Sort(e.peers)
		list = append(list, e)
	}
	slices.SortFunc(list, func(a, b expiry) int { return a.o.sent.Compare(b.o.sent) })
	return list
}

// pendingCount returns how many lines wait for some receipt.
func (t *receipts) pendingCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.waiting
}

// waitingIDs returns the IDs of up to max lines that wait for some
// receipt.
func (t *receipts) waitingIDs(max int) []string {
	if max <= 0 {
		return nil // a count alone (see ledger.inFlight), polled while we linger
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return msgIDs(t.waitingLocked(max))
}

// waitingLocked returns the lines that wait for some receipt, each once,
// at most max of them (all if max < 0).
func (t *receipts) waitingLocked(max int) []*outgoing {
	var lines []*outgoing
	listed := make(map[*outgoing]bool)
	for p, q := range t.unacked {
		for _, o := range q.list[q.head:] {
			if max >= 0 && len(lines) >= max {
				return lines
			}
			if !listed[o] && o.waits(p) {
				listed[o] = true
				lines = append(lines, o)
			}
		}
	}
	return lines
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
