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
	cfg.goCmd = "go"
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
		"## Room of 50 real processes", "| GossipSub | 1 | 6 |", "| stream mesh (-gossip=false) | 1 | 6 |", "30 of 30 (6 lines)",
		"TCP: ", "libp2p stream: ", "Latency through the libp2p stream relay pair", "| whole run |",
		"_Run `" + rep.prov.runID + "`, commit `"} {
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

func TestBigVerdict(t *testing.T) {
	room := func(seq int, p99 float64, rssMax float64, delivered int) *bigRoomResult {
		r := &bigRoomResult{room: bigRoom{gossip: true, size: 3}, seq: seq, met: true, lines: 3, expected: 6, delivered: delivered}
		for range delivered - 1 {
			r.lat = append(r.lat, 1)
		}
		r.lat = append(r.lat, p99)
		r.rss = []float64{30, 31, rssMax}
		return r
	}
	rs := []*bigRoomResult{room(1, 10, 35, 6), room(2, 70, 35, 6), room(3, 10, 41, 5)}
	v := verdictOf(rs)
	if v.onceRooms != 2 || v.p99Rooms != 2 || v.rssRooms != 2 || v.allRooms != 1 {
		t.Errorf("verdict %+v", v)
	}
	if v.worstP99 != 70 || v.worstRoom != 2 || v.rssMax != 41 || len(v.lat) != 17 {
		t.Errorf("worst p99 %v in room %d, RSS max %v, %d deliveries", v.worstP99, v.worstRoom, v.rssMax, len(v.lat))
	}
	text := bigVerdictText(rs)
	for _, want := range []string{"all three met in 1 of 3 rooms", "once: met in 2 of 3 rooms", "p99 ≤ 50 ms: met in 2 of 3 rooms",
		"the worst room's p99: 70.0 ms, room 2", "≤ 40 MB: met in 2 of 3 rooms (max 41.0 MB over 9 peers)", "- Room 3: met after"} {
		if !strings.Contains(text, want) {
			t.Errorf("verdict lacks %q:\n%s", want, text)
		}
	}
}

func TestCPUSpanUnknown(t *testing.T) {
	at := time.Now()
	a := cpuSnap{at: at, busy: 10 * time.Second, busyOK: true, ours: 5 * time.Second, oursOK: true, steal: time.Second, stealOK: true}
	b := cpuSnap{at: at.Add(10 * time.Second), busy: 20 * time.Second, busyOK: true, ours: 12 * time.Second, oursOK: true, steal: 3 * time.Second, stealOK: true}
	sp := spanOf("x", a, b)
	if !sp.others.ok || sp.others.d != 3*time.Second || sp.steal.d != 2*time.Second {
		t.Errorf("span %+v", sp)
	}
	// Our processes used more than the machine's busy time: unknown, not 0.
	b.ours = 20 * time.Second
	sp = spanOf("x", a, b)
	if sp.others.ok || !strings.Contains(cpuTable([]cpuSpan{sp}, 2), "| unknown |") {
		t.Errorf("a negative difference reads %v:\n%s", sp.others, cpuTable([]cpuSpan{sp}, 2))
	}
	// A missing input: unknown.
	b.ours, b.busyOK = 12*time.Second, false
	if sp = spanOf("x", a, b); sp.others.ok || sp.busy.ok {
		t.Errorf("a missing input reads %v", sp.others)
	}
	// The real counters can be read here.
	if s := snapCPU(func() []*e2e.Proc { return nil }); !s.busyOK || !s.oursOK {
		t.Errorf("snapCPU: %+v", s)
	}
}
