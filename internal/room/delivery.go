package room

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxUndeliveredIDs bounds the IDs of undelivered lines kept for the
	// report at the end; past it they are only counted.
	maxUndeliveredIDs = 1000
	// deliveryPoll spaces the looks at the lines in flight while the
	// program waits for them (-linger).
	deliveryPoll = 20 * time.Millisecond
)

// deliveries keeps the count of the user's lines that were not delivered,
// so that the program can say which when it leaves, and the count of the
// lines on their way that no other table follows: lines queued to peers on
// the plain protocol (until their writer flushes them) and direct messages
// (until their answer). A line is delivered when it went somewhere (a
// session, or the topic) and every session it went to has it:
// acknowledged on our protocol, written on the plain one; a line published
// on the topic is delivered as far as anyone can know.
//
// It follows nothing per line that succeeds: which lines are still in
// flight the ledger knows (receipts, held lines; see ledger.inFlight), so a
// pipe of a million lines costs no bookkeeping here.
type deliveries struct {
	// plain counts the lines queued to plain sessions and not yet written
	// or lost; dms the direct messages waiting for their answer.
	plain atomic.Int64
	dms   atomic.Int64

	mu sync.Mutex
	// failed are the IDs of lines known not to be delivered (the first
	// maxUndeliveredIDs, once each), and lost counts every such line, with
	// those refused before they had an ID.
	failed map[string]struct{}
	order  []string
	lost   int
}

func newDeliveries() *deliveries {
	return &deliveries{failed: make(map[string]struct{})}
}

// refused counts n lines that were not sent at all.
func (d *deliveries) refused(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lost += n
}

// fail records that the line id did not reach someone it was for.
func (d *deliveries) fail(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, seen := d.failed[id]; seen {
		return
	}
	d.lost++
	if len(d.order) < maxUndeliveredIDs {
		d.failed[id] = struct{}{}
		d.order = append(d.order, id)
	}
}

// strictCounts makes a miscount of the lines in flight panic, where it
// happened; the package's tests set it (see helpers_test.go).
var strictCounts = false

// plainQueued and plainDone follow the lines queued to plain sessions.
func (d *deliveries) plainQueued(n int) { d.plain.Add(int64(n)) }

// plainDone never takes plain below zero. A negative count would cancel out
// lines really on their way (held, or waiting for a receipt) in
// ledger.inFlight, and the program would stop lingering and exit 0 with
// lines undelivered: better a count that is too high by the lines a bug
// missed, which at worst makes it wait out -linger and say they were not
// delivered. Counting down what was never counted up is a bug all the
// same: the tests make it panic, and otherwise it is logged.
func (d *deliveries) plainDone(n int) {
	for {
		cur := d.plain.Load()
		next := cur - int64(n)
		if next < 0 {
			if strictCounts {
				panic(fmt.Sprintf("room: %d plain lines done, but only %d were queued", n, cur))
			}
			log.Errorw("more plain lines done than were queued", "done", n, "queued", cur)
			next = 0
		}
		if d.plain.CompareAndSwap(cur, next) {
			return
		}
	}
}

// failedIDs returns how many lines were not delivered, and (the first of)
// their IDs.
func (d *deliveries) failedIDs() (int, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lost, append([]string(nil), d.order...)
}

// waitDelivered returns when inFlight says no line is on its way, or when
// ctx ends.
func waitDelivered(ctx context.Context, inFlight func() int) {
	t := time.NewTicker(deliveryPoll)
	defer t.Stop()
	for inFlight() > 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
