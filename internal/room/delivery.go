package room

import (
	"context"
	"sync"
)

// maxUndeliveredIDs bounds the IDs of undelivered lines kept for the
// report at the end; past it they are only counted.
const maxUndeliveredIDs = 1000

// deliveries follows every line the user sent until it is delivered or
// known not to be, so that the program can wait for its lines when input
// ends (-linger) and say which did not arrive. A line is delivered when it
// went somewhere (a session, or the topic) and every session it went to has
// it: acknowledged on our protocol, written (flushed) on the plain one,
// which has no receipts; a line published on the topic is delivered as far
// as anyone can know. It is not delivered when any of that failed, or
// when it is still held, or still waiting, at the end.
//
// It is the one owner of the tracking of lines in flight (byID, bounded by
// the receipt windows and the held lines: a line leaves it once settled).
type deliveries struct {
	mu sync.Mutex
	// byID are the lines not settled yet.
	byID map[string]*tracking
	// undelivered are the IDs of lines known not to be delivered (the
	// first maxUndeliveredIDs), and lost counts them all, with the lines
	// refused before they had an ID.
	undelivered []string
	lost        int
	// changed is closed, and replaced, whenever a line settles.
	changed chan struct{}
}

// tracking is how far one line got.
type tracking struct {
	sent   bool // it went to a session or the topic
	framed int  // sessions on our protocol whose receipt is awaited
	writes int  // sessions on the plain protocol whose flush is awaited
	failed bool
}

func newDeliveries() *deliveries {
	return &deliveries{byID: make(map[string]*tracking), changed: make(chan struct{})}
}

// begin starts following a line.
func (d *deliveries) begin(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.byID[id] = &tracking{}
}

// refused counts n lines that were not sent at all (and have no ID, or are
// not followed).
func (d *deliveries) refused(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lost += n
	d.notifyLocked()
}

// to records that the line id went to a session (framed: one that
// acknowledges), or, with topic, was published.
func (d *deliveries) to(id string, framed, topic bool) {
	d.update(id, func(t *tracking) {
		t.sent = true
		switch {
		case topic:
		case framed:
			t.framed++
		default:
			t.writes++
		}
	})
}

// done records that a session has the line id (ok), or does not.
func (d *deliveries) done(id string, framed, ok bool) {
	d.update(id, func(t *tracking) {
		if framed {
			t.framed--
		} else {
			t.writes--
		}
		if !ok {
			t.failed = true
		}
	})
}

// fail records that the line id did not reach someone it was for.
func (d *deliveries) fail(id string) {
	d.update(id, func(t *tracking) { t.failed = true })
}

// rename follows the line old under the ID new from now on.
func (d *deliveries) rename(old, new string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t := d.byID[old]; t != nil {
		delete(d.byID, old)
		d.byID[new] = t
	}
}

// update changes a line's tracking, and settles it when that decides it.
func (d *deliveries) update(id string, change func(*tracking)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.byID[id]
	if t == nil {
		return // settled already, or not followed
	}
	change(t)
	switch {
	case t.failed:
		delete(d.byID, id)
		d.lost++
		if len(d.undelivered) < maxUndeliveredIDs {
			d.undelivered = append(d.undelivered, id)
		}
	case t.sent && t.framed <= 0 && t.writes <= 0:
		delete(d.byID, id)
	default:
		return
	}
	d.notifyLocked()
}

func (d *deliveries) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// wait returns when no line is in flight, or when ctx ends.
func (d *deliveries) wait(ctx context.Context) {
	for {
		d.mu.Lock()
		pending, changed := len(d.byID), d.changed
		d.mu.Unlock()
		if pending == 0 {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// report returns how many lines were not delivered, or are not yet, with
// their IDs (the first maxUndeliveredIDs).
func (d *deliveries) report() (n int, ids []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids = append([]string(nil), d.undelivered...)
	for id := range d.byID {
		if len(ids) < maxUndeliveredIDs {
			ids = append(ids, id)
		}
	}
	return d.lost + len(d.byID), ids
}
