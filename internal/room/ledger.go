package room

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

// maxHeldLines bounds the lines held while nobody is in the room that no
// peer has had yet; twice as many are kept in all, for peers that join
// later (see ledger.held).
const maxHeldLines = 100

// errStalled says that lines could not even be held: nobody joined while
// the held lines were at their bound, for as long as the room was told to
// wait (Config.HoldWait).
var errStalled = errors.New("nobody joined and the held lines are at their bound")

// A ledger is the record of our lines: it names them, follows them until
// every peer acknowledged them (receipts) and until they are delivered
// (deliveries), and holds those typed while nobody is here. It is the one
// owner of the held lines.
//
// A held line goes once to every peer that joins within resendWindow of it,
// and on the topic when someone can be reached there (see
// topicBridge.publishHeld); after resendWindow it is forgotten, and said not
// delivered if nobody had it.
type ledger struct {
	r          *Room
	receipts   *receipts
	deliveries *deliveries
	msgIDs     string        // the prefix of our message IDs, new each run
	msgSeq     atomic.Uint64 // the rest of them

	mu   sync.Mutex
	held []*heldLine // oldest first
	// unsent counts the held lines that nobody has had yet; room is closed,
	// and replaced, when it drops, for a sender that waits (see hold).
	unsent int
	room   chan struct{}
}

// A heldLine is a line sent while nobody was here, with the peers that
// have had it since, and whether the topic carried it.
type heldLine struct {
	o  *outgoing
	to map[peer.ID]bool
}

// sentSomewhere reports whether someone has had the line.
func (h *heldLine) sentSomewhere() bool { return len(h.to) > 0 || h.o.topic }

func newLedger(r *Room) *ledger {
	dl := newDeliveries()
	return &ledger{r: r, receipts: newReceipts(dl), deliveries: dl,
		msgIDs: strconv.FormatUint(rand.Uint64(), 36) + "-", room: make(chan struct{})}
}

// lines names new lines of ours: a pipe sends a million, so the lines of a
// batch take one allocation for them all, and their IDs one string.
func (l *ledger) lines(texts []string, private bool, now time.Time) []*outgoing {
	if len(texts) == 0 {
		return nil
	}
	ids := make([]byte, 0, len(texts)*(len(l.msgIDs)+8))
	ends := make([]int, len(texts))
	first := l.msgSeq.Add(uint64(len(texts))) - uint64(len(texts)) + 1
	for i := range texts {
		ids = strconv.AppendUint(append(ids, l.msgIDs...), first+uint64(i), 36)
		ends[i] = len(ids)
	}
	all := string(ids)
	slab := make([]outgoing, len(texts))
	batch := make([]*outgoing, len(texts))
	start := 0
	for i, text := range texts {
		o := &slab[i]
		o.msg = wire.Frame{Type: wire.TypeMsg, ID: all[start:ends[i]], Text: text, Private: private}
		o.sent = now
		batch[i], start = o, ends[i]
	}
	return batch
}

// hold keeps lines until someone joins, as many as fit (maxHeldLines that
// nobody has had), and returns how many it kept and how many nobody has had
// in all. It makes room by forgetting the oldest lines that peers have had.
// It runs under the roster's lock (see roster.recipients).
func (l *ledger) hold(batch []*outgoing) (kept, unsent int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	kept = min(maxHeldLines-l.unsent, len(batch))
	for _, o := range batch[:kept] {
		l.held = append(l.held, &heldLine{o: o})
	}
	l.unsent += kept
	for i := 0; len(l.held) > 2*maxHeldLines && i < len(l.held); {
		if l.held[i].sentSomewhere() {
			l.held = append(l.held[:i], l.held[i+1:]...)
			continue
		}
		i++
	}
	return kept, l.unsent
}

// waitRoom waits until the held lines that nobody has had are below their
// bound, at most wait; it reports whether they are.
func (l *ledger) waitRoom(ctx context.Context, closing <-chan struct{}, wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		l.mu.Lock()
		free, room := l.unsent < maxHeldLines, l.room
		l.mu.Unlock()
		if free {
			return true
		}
		select {
		case <-room:
		case <-t.C:
			return false
		case <-closing:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// heldFor returns the held lines that p has not had, oldest first, and
// records that it has them now. It runs under the roster's lock, as the
// new session of p is filled (see streams.fill).
func (l *ledger) heldFor(p peer.ID) []*outgoing {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lines []*outgoing
	for _, h := range l.held {
		if h.to[p] {
			continue
		}
		if !h.sentSomewhere() {
			l.unsent--
		}
		if h.to == nil {
			h.to = make(map[peer.ID]bool)
		}
		h.to[p] = true
		lines = append(lines, h.o)
	}
	if len(lines) > 0 {
		l.notifyRoomLocked()
	}
	return lines
}

// unpublishedHeld returns the held lines that nobody has had, for the topic
// when someone can be reached there.
func (l *ledger) unpublishedHeld() []*outgoing {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lines []*outgoing
	for _, h := range l.held {
		if !h.sentSomewhere() {
			lines = append(lines, h.o)
		}
	}
	return lines
}

// republish records that the held line o went out on the topic, with the
// topic's message ID id: from now on it is that line, with that ID, on the
// sessions too, so that a peer that has it both ways shows it once. It
// reports false when a session had the line meanwhile (it stays as it was).
func (l *ledger) republish(o *outgoing, id string) (*outgoing, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.held {
		if h.o != o {
			continue
		}
		if h.sentSomewhere() {
			return nil, false
		}
		n := &outgoing{msg: wire.Frame{Type: wire.TypeMsg, ID: id, Text: o.msg.Text, Private: o.msg.Private}, sent: o.sent, topic: true}
		h.o = n
		l.unsent--
		l.notifyRoomLocked()
		return n, true
	}
	return nil, false
}

// hasUnsent reports whether some held line has gone nowhere yet.
func (l *ledger) hasUnsent() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.unsent > 0
}

func (l *ledger) notifyRoomLocked() {
	close(l.room)
	l.room = make(chan struct{})
}

// expireHeld forgets the held lines older than cutoff, and returns those
// that nobody had: they were not delivered.
func (l *ledger) expireHeld(cutoff time.Time) []*outgoing {
	l.mu.Lock()
	defer l.mu.Unlock()
	var kept []*heldLine
	var lost []*outgoing
	for _, h := range l.held {
		switch {
		case !h.o.sent.Before(cutoff):
			kept = append(kept, h)
		case !h.sentSomewhere():
			lost = append(lost, h.o)
			l.unsent--
		}
	}
	l.held = kept
	return lost
}

// dropHeld forgets the held lines, as we leave, and returns those that
// nobody had.
func (l *ledger) dropHeld() []*outgoing {
	return l.expireHeld(time.Now().Add(time.Hour))
}

// assign records that o goes to s: on our protocol it waits for s's
// receipt; on the plain one, for s's writer to flush it. Either way it is
// followed until then (see deliveries). Call it before o is queued on s.
func (l *ledger) assign(o *outgoing, s *session) {
	if s.framed() {
		l.receipts.expect(o, s.peer, s.peerID)
		return
	}
	o.noReceipt = append(slices.Clip(o.noReceipt), s.peerID)
	l.deliveries.plainQueued(1)
}

// unassign records that o could not be queued on s after assign.
func (l *ledger) unassign(o *outgoing, s *session) {
	if s.framed() {
		l.receipts.giveUp(o, s.peer)
		return
	}
	if i := slices.Index(o.noReceipt, s.peerID); i >= 0 {
		// A copy: lines of a batch share noReceipt.
		o.noReceipt = slices.Delete(slices.Clone(o.noReceipt), i, i+1)
	}
	l.deliveries.plainDone(1)
	l.deliveries.fail(o.msg.ID)
}

// reportUndelivered says, for the end of a run, which lines were not
// delivered; it returns how many.
func (l *ledger) reportUndelivered() int {
	n, ids := l.deliveries.failedIDs()
	pending, pendingIDs := l.inFlight(maxUndeliveredIDs - len(ids))
	n += pending
	ids = append(ids, pendingIDs...)
	if n > 0 {
		l.r.emit(event.Event{Kind: event.Error, Code: event.Undelivered, Count: n, MsgIDs: ids})
	}
	return n
}

// inFlight returns how many of our lines are on their way, not yet known
// to be delivered or not: waiting for a receipt, held for someone to join,
// queued to a peer on the plain protocol, or a direct message without its
// answer; with the IDs of up to max of them.
func (l *ledger) inFlight(max int) (int, []string) {
	ids := l.receipts.waitingIDs(max)
	n := l.receipts.pendingCount()
	l.mu.Lock()
	n += l.unsent
	for _, h := range l.held {
		if len(ids) >= max {
			break
		}
		if !h.sentSomewhere() {
			ids = append(ids, h.o.msg.ID)
		}
	}
	l.mu.Unlock()
	n += int(l.deliveries.plain.Load() + l.deliveries.dms.Load())
	return n, ids
}
