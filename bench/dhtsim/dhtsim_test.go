package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
)

// TestSmoke runs the simulation small and short, so that it cannot rot:
// 60 servers, two pairs of each of two variants, a 15 s window. Its
// figures mean nothing; `make bench-dht` is the real run.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs DHT servers for about 20 s")
	}
	out := filepath.Join(t.TempDir(), "results.md")
	cfg := config{servers: 60, gone: 0.2, pairs: 2, parallel: 4, maxDelay: 2 * time.Second, window: 15 * time.Second,
		seed: 1, variants: []string{"today", "defaults"}, out: out}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{"### Time to meet", "| `today` | 2 |", "| `defaults` | 2 |", "### DHT messages per chat peer", "_Run `"} {
		if !strings.Contains(text, want) {
			t.Errorf("the results lack %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "| `defaults` | 2 | 0 (2 unmet)") {
		t.Errorf("no pair of the defaults met in 15 s:\n%s", text)
	}
}

func TestParseVariant(t *testing.T) {
	v, err := parseVariant("today+dial=2s+alpha=3+beta=2+opt+poll=3+early+first=1s+max=5s+timeout=10s+pollint=500ms+pollfor=1m")
	if err != nil {
		t.Fatal(err)
	}
	var c node.Config
	v.configure(&c)
	want := node.Discovery{DialTimeout: 2 * time.Second, Concurrency: 3, Resiliency: 2, OptimisticProvide: true,
		PollPeers: 3, EarlyStore: true, FindFirstInterval: time.Second, FindMaxInterval: 5 * time.Second,
		FindTimeout: 10 * time.Second, PollInterval: 500 * time.Millisecond, PollFor: time.Minute}
	if c.Discovery == nil || *c.Discovery != want {
		t.Errorf("got %+v, want %+v", c.Discovery, want)
	}
	for _, bad := range []string{"", "nothing", "today+dial=x", "today+what", "defaults+alpha=one"} {
		if _, err := parseVariant(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
