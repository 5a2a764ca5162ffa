package main

// lag.go: the simulation's time is the wall clock, so a starved process
// (other programs on the machine, or too many pairs at once) stretches
// every figure. A ticker measures by how much its timer fires late; the
// report gives the lag over the run and the pairs whose time saw a bad one.

import (
	"sync"
	"time"
)

const lagTick = 50 * time.Millisecond

// A lagMonitor records how late each tick came.
type lagMonitor struct {
	mu      sync.Mutex
	at      []time.Time
	lag     []time.Duration
	stop    chan struct{}
	stopped chan struct{}
}

func startLagMonitor() *lagMonitor {
	m := &lagMonitor{stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(m.stopped)
		next := time.Now().Add(lagTick)
		t := time.NewTimer(lagTick)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case now := <-t.C:
				late := max(now.Sub(next), 0)
				m.mu.Lock()
				m.at = append(m.at, now)
				m.lag = append(m.lag, late)
				m.mu.Unlock()
				next = time.Now().Add(lagTick)
				t.Reset(lagTick)
			}
		}
	}()
	return m
}

func (m *lagMonitor) close() {
	close(m.stop)
	<-m.stopped
}

// all returns every lag, in ms.
func (m *lagMonitor) all() []float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]float64, len(m.lag))
	for i, l := range m.lag {
		out[i] = float64(l) / float64(time.Millisecond)
	}
	return out
}

// worst returns the largest lag between from and to.
func (m *lagMonitor) worst(from, to time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var w time.Duration
	for i, at := range m.at {
		if !at.Before(from) && !at.After(to) {
			w = max(w, m.lag[i])
		}
	}
	return w
}
