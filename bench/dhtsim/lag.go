package main

// lag.go: the simulation's time is the wall clock, so a starved process
// (other programs on the machine, or too many pairs at once) stretches
// every figure. Every second the monitor reads the Go runtime's histogram
// of scheduling latencies (how long goroutines waited, runnable, before
// they ran: /sched/latencies:seconds) and keeps that second's p99; the
// report gives them over the run and names the pairs whose time saw a bad
// second.

import (
	"math"
	"runtime/metrics"
	"sync"
	"time"
)

const (
	lagEvery  = time.Second
	schedName = "/sched/latencies:seconds"
)

// A lagMonitor keeps the p99 scheduling latency of every second, and how
// many cores other processes used in it.
type lagMonitor struct {
	mu      sync.Mutex
	at      []time.Time
	p99     []time.Duration
	others  []float64 // cores
	stop    chan struct{}
	stopped chan struct{}
}

func startLagMonitor() *lagMonitor {
	m := &lagMonitor{stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(m.stopped)
		sample := []metrics.Sample{{Name: schedName}}
		metrics.Read(sample)
		var last []uint64
		if sample[0].Value.Kind() == metrics.KindFloat64Histogram {
			last = append(last, sample[0].Value.Float64Histogram().Counts...)
		}
		prev := snapLoad()
		t := time.NewTicker(lagEvery)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case now := <-t.C:
				cur := snapLoad()
				others := math.NaN()
				if prev.ok && cur.ok {
					l := cur.since(prev)
					others = max(0, (l.busy-l.ours).Seconds()/l.wall.Seconds())
				}
				prev = cur
				metrics.Read(sample)
				if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
					continue
				}
				h := sample[0].Value.Float64Histogram()
				delta := make([]uint64, len(h.Counts))
				for i, c := range h.Counts {
					if i < len(last) {
						delta[i] = c - last[i]
					} else {
						delta[i] = c
					}
				}
				last = append(last[:0], h.Counts...)
				m.mu.Lock()
				m.at = append(m.at, now)
				m.p99 = append(m.p99, histPercentile(delta, h.Buckets, 0.99))
				m.others = append(m.others, others)
				m.mu.Unlock()
			}
		}
	}()
	return m
}

// histPercentile is the upper bound of the bucket that holds quantile q
// of the counts (buckets has one more entry than counts).
func histPercentile(counts []uint64, buckets []float64, q float64) time.Duration {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var cum uint64
	for i, c := range counts {
		cum += c
		if cum >= want {
			up := buckets[i+1]
			if math.IsInf(up, 1) {
				up = buckets[i]
			}
			return time.Duration(up * float64(time.Second))
		}
	}
	return 0
}

func (m *lagMonitor) close() {
	close(m.stop)
	<-m.stopped
}

// all returns every second's p99, in ms.
func (m *lagMonitor) all() []float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]float64, len(m.p99))
	for i, l := range m.p99 {
		out[i] = float64(l) / float64(time.Millisecond)
	}
	return out
}

// worst returns the worst second's p99 between from and to.
func (m *lagMonitor) worst(from, to time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var w time.Duration
	for i, at := range m.at {
		if !at.Before(from) && !at.After(to.Add(lagEvery)) {
			w = max(w, m.p99[i])
		}
	}
	return w
}

// othersCores returns the cores other processes used, each second.
func (m *lagMonitor) othersCores() []float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []float64
	for _, o := range m.others {
		if !math.IsNaN(o) {
			out = append(out, o)
		}
	}
	return out
}

// busiestOthers returns the most cores other processes used in one second
// between from and to.
func (m *lagMonitor) busiestOthers(from, to time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := 0.0
	for i, at := range m.at {
		if !at.Before(from) && !at.After(to.Add(lagEvery)) && !math.IsNaN(m.others[i]) {
			w = max(w, m.others[i])
		}
	}
	return w
}
