package main

// proc.go: the processes the suite starts (the chat binary and its own
// relays) run by internal/e2e's harness, which reads the events they print
// on stdout (each timed when the driver reads its line: Event.At; the
// events' own "time" fields are not used), and ends them on every path
// out: a normal end, an error, a signal, a crash of the suite (Pdeathsig).
// What stays here is what only the suite needs.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// ready waits for the process's ready event and returns it.
func ready(ctx context.Context, p *e2e.Proc, timeout time.Duration) (e2e.Event, error) {
	if err := p.WaitFor(ctx, time.Now().Add(timeout), "ready", e2e.Has(event.Ready, nil)); err != nil {
		return e2e.Event{}, err
	}
	e, _ := p.First(event.Ready, nil)
	if e.ID == "" || len(e.Addrs) == 0 {
		return e, fmt.Errorf("%s: ready event without id or addrs", p.Name)
	}
	return e, nil
}

// stopAll stops processes in parallel (see e2e.Proc.Stop); nil ones are
// skipped.
func stopAll(grace time.Duration, ps ...*e2e.Proc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		if p == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Stop(grace)
		}()
	}
	wg.Wait()
}

// ignoreMessages is the sink of a sending peer while a stage measures: it
// gets no messages, and its receipt events (a sent and a delivered event
// for every line) are then dropped, not decoded and kept.
func ignoreMessages(_, _ []byte, _ bool, _ time.Time) {}
