package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
)

// TestMain lets the test binary be the suite's relays too: the suite starts
// os.Executable() as `relay-recv …` and `relay-send …`.
func TestMain(m *testing.M) {
	if code, ok := relayMain(os.Args[1:]); ok {
		os.Exit(code)
	}
	e2e.Main(m)
}

// syncWriter lets the suite's goroutines log at once.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestSmoke runs the whole suite with tiny counts (-quick), so that it
// cannot rot: every stage must measure something, and the chat must lose,
// duplicate or reorder nothing. Performance targets are not checked: this
// is a test of the suite and of behaviour, not a benchmark.
func TestSmoke(t *testing.T) {
	cfg := quickConfig()
	// The binary of the end-to-end tests, with the race detector under
	// -race; e2e.Binary skips the test under -short.
	cfg.bin = e2e.Binary(t)
	cfg.out = filepath.Join(t.TempDir(), "results.md")
	var log syncWriter
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := runSuite(ctx, cfg, &log)
	t.Logf("smoke run took %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("suite: %v\nlog:\n%s", err, log.String())
	}
	for _, f := range rep.failures {
		t.Errorf("failure: %s", f)
	}
	// Every figure was measured.
	if len(rep.figures) < 10 {
		t.Errorf("only %d figures", len(rep.figures))
	}
	for _, f := range rep.figures {
		if f.err != "" || (len(f.vals) == 0 && f.custom == "") {
			t.Errorf("figure %q not measured (%s)", f.name, f.err)
		}
	}
	for _, f := range rep.floors {
		if len(f.vals) == 0 {
			t.Errorf("floor %q not measured", f.name)
		}
	}
	out, err := os.ReadFile(cfg.out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Machine", "| Time to meet, late second peer |", "| Latency, one-way |",
		"| Throughput: lines lost / duplicated / reordered |", "0 / 0 / 0", "| Room of 3: peak RSS per peer |", "## Floors",
		"## Room of 50 real processes", "| GossipSub | 6 |", "| stream mesh (-gossip=false) | 6 |", "30 of 30 (6 lines)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("results file lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s\nresults:\n%s", log.String(), out)
	}
}

func TestPercentile(t *testing.T) {
	vs := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for _, tc := range []struct{ p, want float64 }{{50, 5}, {90, 9}, {99, 10}, {100, 10}, {1, 1}} {
		if got := percentile(vs, tc.p); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile([]float64{3}, 90); got != 3 {
		t.Errorf("percentile of one value = %v", got)
	}
}
