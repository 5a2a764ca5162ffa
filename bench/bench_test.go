package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain lets the test binary be the suite's relays too: the suite starts
// os.Executable() as `relay-recv …` and `relay-send …`.
func TestMain(m *testing.M) {
	if code, ok := relayMain(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// raceEnabled reports whether this test binary was built with -race; the
// smoke run then builds the chat binary with it too, as the end-to-end
// tests do, which also reuses their build cache.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
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
	if testing.Short() {
		t.Skip("smoke run of the benchmark suite: skipped with -short")
	}
	cfg := quickConfig()
	cfg.race = raceEnabled()
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

func TestFastMessage(t *testing.T) {
	for _, tc := range []struct {
		line, peer, text string
		ok               bool
	}{
		{`{"event":"message","time":"2026-11-27T03:08:17.370629076Z","peer":"12D3KooWA","text":"l00000042"}`, "12D3KooWA", "l00000042", true},
		{`{"event":"message","time":"t","peer":"P","text":"with \"quotes\""}`, "", "", false},
		{`{"event":"message","time":"t","peer":"P","text":"back\\slash"}`, "", "", false},
		{`{"event":"message","time":"t","peer":"P"}`, "", "", false},
		{`{"event":"message","time":"t","text":"x","peer":"P"}`, "", "", false},
	} {
		peer, text, ok := fastMessage([]byte(tc.line))
		if ok != tc.ok || (ok && (string(peer) != tc.peer || string(text) != tc.text)) {
			t.Errorf("fastMessage(%s) = %q, %q, %v; want %q, %q, %v", tc.line, peer, text, ok, tc.peer, tc.text, tc.ok)
		}
	}
}

// A message with escapes takes the slow path and still reaches the sink,
// unescaped; other events are kept.
func TestHandleLine(t *testing.T) {
	p := &proc{name: "t", changed: make(chan struct{}), done: make(chan struct{})}
	var got []string
	p.setSink(func(peer, text []byte, _ time.Time) { got = append(got, string(peer)+":"+string(text)) })
	p.readLoop(strings.NewReader(`{"event":"ready","id":"me","addrs":["/ip4/127.0.0.1"]}
{"event":"message","time":"t","peer":"P","text":"plain"}
{"event":"message","time":"t","peer":"P","text":"tab\tand \"quote\""}
not json
`))
	if want := []string{"P:plain", "P:tab\tand \"quote\""}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("sink got %q, want %q", got, want)
	}
	if e, ok := p.first(isKind("ready")); !ok || e.ID != "me" {
		t.Errorf("ready event not kept: %+v", p.events)
	}
	if len(p.problems()) != 1 {
		t.Errorf("problems = %q, want the one line that is not JSON", p.problems())
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

func TestProcStats(t *testing.T) {
	pid := os.Getpid()
	rss, hwm, err := memKB(pid)
	if err != nil || rss <= 0 || hwm < rss {
		t.Errorf("memKB = %d, %d, %v", rss, hwm, err)
	}
	before, err := cpuTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the process's CPU time has grown: on a loaded machine a
	// fixed spell of spinning may get little CPU, so the bound is generous
	// and only a CPU time that never grows fails.
	after := before
	for end := time.Now().Add(5 * time.Second); after-before < 50*time.Millisecond && time.Now().Before(end); {
		for spin := time.Now().Add(10 * time.Millisecond); time.Now().Before(spin); {
		}
		if after, err = cpuTime(pid); err != nil {
			t.Fatal(err)
		}
	}
	if after-before < 50*time.Millisecond {
		t.Errorf("cpuTime went from %v to %v over 5 s of spinning", before, after)
	}
}
