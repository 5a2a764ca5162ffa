package main

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/console"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// eventPipe carries events from the node and the room to the one goroutine
// that renders them. It hands them over in batches: a busy room emits an
// event per message, and a channel operation and a wake-up for each, with
// an event of several hundred bytes copied in and out, cost more than
// writing it. Emitters wait while eventBuffer events are waiting, so a slow
// terminal slows the room rather than growing memory.
type eventPipe struct {
	mu      sync.Mutex
	pending []event.Event
	// ready holds a signal while events may be pending; room is closed, and
	// replaced, when the view takes them, to wake emitters that wait.
	ready  chan struct{}
	room   chan struct{}
	closed bool

	viewDone chan struct{}
	stopOnce sync.Once
}

func newEventPipe() *eventPipe {
	return &eventPipe{ready: make(chan struct{}, 1), room: make(chan struct{}), viewDone: make(chan struct{})}
}

// startView starts the view that cfg asks for, on its own goroutine. A
// write error (stdout closed, terminal gone) cancels the program.
func startView(cfg *Config, con *console.Console, stdout *os.File, cancel context.CancelFunc) *eventPipe {
	var v view
	if cfg.JSON {
		v = newJSONView(stdout)
	} else {
		hv := newHumanView(con.Out(), con.Flush, useColor(stdout))
		if con.Interactive() {
			hv.status = con.SetStatus
			hv.screen = con.Screen()
		}
		v = hv
	}
	p := newEventPipe()
	go func() {
		defer close(p.viewDone)
		viewLoop(v, p, func(err error) {
			log.Debugw("output closed", "err", err)
			cancel()
		})
	}()
	return p
}

// emit hands an event to the view; after stop it drops it.
func (p *eventPipe) emit(e event.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	p.mu.Lock()
	for len(p.pending) >= eventBuffer && !p.closed {
		room := p.room
		p.mu.Unlock()
		<-room
		p.mu.Lock()
	}
	if p.closed {
		p.mu.Unlock()
		return
	}
	// The view waits for a signal only once it has taken everything: the
	// first event after that wakes it, and those behind it come along.
	first := len(p.pending) == 0
	p.pending = append(p.pending, e)
	p.mu.Unlock()
	if first {
		select {
		case p.ready <- struct{}{}:
		default:
		}
	}
}

// take waits for events and returns them; it returns an empty slice once
// the pipe is stopped and every event was taken. buf is the caller's
// previous batch, empty and cleared: the pipe keeps it for the events that
// come next, and the two slices change places, so that no event is copied
// on the way out.
func (p *eventPipe) take(buf []event.Event) []event.Event {
	for {
		p.mu.Lock()
		if len(p.pending) > 0 {
			buf, p.pending = p.pending, buf[:0]
			close(p.room)
			p.room = make(chan struct{})
			p.mu.Unlock()
			return buf
		}
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return buf
		}
		<-p.ready
	}
}

// waiting reports whether events are pending.
func (p *eventPipe) waiting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending) > 0
}

// stop closes the pipe and waits until the view has written every event.
func (p *eventPipe) stop() {
	p.stopOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.room)
		p.room = make(chan struct{})
		p.mu.Unlock()
		select {
		case p.ready <- struct{}{}:
		default:
		}
		<-p.viewDone
	})
}

// viewLoop renders events until the pipe is stopped. After the first write
// error (stdout closed, terminal gone) it calls failed once and keeps
// taking events, so that emitters never block on a dead view. It flushes
// the view when no further event is waiting, so bursts are written in few
// system calls.
func viewLoop(v view, p *eventPipe, failed func(error)) {
	var once sync.Once
	broken := false
	fail := func(err error) {
		broken = true
		once.Do(func() { failed(err) })
	}
	var batch []event.Event
	for {
		batch = p.take(batch[:0])
		if len(batch) == 0 {
			break
		}
		for i := range batch {
			if broken {
				break
			}
			if err := v.render(&batch[i]); err != nil {
				fail(err)
			}
		}
		clear(batch) // take hands it back to the pipe
		if !broken && !p.waiting() {
			if err := v.flush(); err != nil {
				fail(err)
			}
		}
	}
	if !broken {
		if err := v.flush(); err != nil {
			fail(err)
		}
	}
}
