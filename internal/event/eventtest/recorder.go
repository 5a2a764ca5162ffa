// Package eventtest records the events of an in-process node or room, for
// tests: they wait for an event that matches, count them, and print them
// all when a wait fails.
package eventtest

import (
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// A Recorder keeps every event emitted to it. The zero value is not
// ready; use New.
type Recorder struct {
	mu      sync.Mutex
	events  []event.Event
	changed chan struct{} // closed and replaced with every event
}

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{changed: make(chan struct{})} }

// Emit records e; it is an event.Emit.
func (r *Recorder) Emit(e event.Event) {
	e.Time = time.Now()
	r.mu.Lock()
	r.events = append(r.events, e)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// Count returns how many events match.
func (r *Recorder) Count(match func(event.Event) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if match(e) {
			n++
		}
	}
	return n
}

// WaitCount waits until at least n events match, and fails the test after
// timeout; what says what was awaited.
func (r *Recorder) WaitCount(t testing.TB, n int, timeout time.Duration, what string, match func(event.Event) bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		got := 0
		for _, e := range r.events {
			if match(e) {
				got++
			}
		}
		changed := r.changed
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s (%d of %d); events: %+v", timeout, what, got, n, r.Snapshot())
		}
	}
}

// Snapshot returns every event so far.
func (r *Recorder) Snapshot() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

// Is accepts the events of a kind, and about p when p is not empty. It
// encodes the peer ID once: WaitCount runs matchers over every event each
// time one arrives.
func Is(kind event.Kind, p peer.ID) func(event.Event) bool {
	id := ""
	if p != "" {
		id = p.String()
	}
	return func(e event.Event) bool { return e.Kind == kind && (id == "" || e.Peer == id) }
}

// Coded accepts the events with code c.
func Coded(c event.Code) func(event.Event) bool {
	return func(e event.Event) bool { return e.Code == c }
}

// Message accepts the message from p with text.
func Message(from peer.ID, text string) func(event.Event) bool {
	id := from.String()
	return func(e event.Event) bool { return e.Kind == event.Message && e.Peer == id && e.Text == text }
}
