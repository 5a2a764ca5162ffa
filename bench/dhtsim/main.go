// Command dhtsim measures how long two chat peers take to meet through a
// public-sized DHT (issue 18), simulated in one process: at least 500
// kad-dht servers on go-libp2p's mocknet, with a round trip of 20 to 300 ms
// on every link, a share of the servers gone after they entered the
// others' routing tables, and pairs of chat peers built with internal/node
// (its DHT options, its advertise and find loops) that join one rendezvous,
// the second 0 to 30 s after the first. Several configurations of the node
// (variants) run side by side in the same network, pair for pair.
//
//	go run ./bench/dhtsim [-servers 500] [-gone 0.2] [-pairs 50] [-parallel 60] [-variants a,b] [-out bench/results-dht.md]
//
// `make bench-dht` runs it in full. Everything stays in memory: mocknet
// connections are not sockets, and nothing is dialled outside the process.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
)

type config struct {
	servers  int
	gone     float64
	pairs    int
	parallel int
	maxDelay time.Duration
	window   time.Duration
	seed     uint64
	variants []string
	out      string
}

func main() {
	var cfg config
	var variants string
	flag.IntVar(&cfg.servers, "servers", 500, "DHT servers")
	flag.Float64Var(&cfg.gone, "gone", 0.2, "share of the servers gone after they entered the others' routing tables")
	flag.IntVar(&cfg.pairs, "pairs", 50, "pairs of chat peers per variant")
	flag.IntVar(&cfg.parallel, "parallel", 60, "pairs running at once (all variants together)")
	flag.DurationVar(&cfg.maxDelay, "max-delay", 30*time.Second, "the second peer starts 0 to this long after the first")
	flag.DurationVar(&cfg.window, "window", time.Minute, "a pair that has not met this long after the second start is unmet; each peer's messages are counted over its first this long")
	flag.Uint64Var(&cfg.seed, "seed", 0, "seed of the network and the schedule (0: random)")
	flag.StringVar(&variants, "variants", strings.Join(defaultVariants, ","), "variants to run side by side, comma-separated; each is "+variantSyntax)
	flag.StringVar(&cfg.out, "out", "", "write the results (markdown) to this file")
	flag.Parse()
	cfg.variants = strings.Split(variants, ",")
	if cfg.seed == 0 {
		cfg.seed = rand.Uint64()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "dhtsim:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	var vs []variant
	for _, name := range cfg.variants {
		v, err := parseVariant(name)
		if err != nil {
			return err
		}
		vs = append(vs, v)
	}
	prov := newProvenance()
	logf("run %s, commit %s, seed %d", prov.runID, prov.commit, cfg.seed)
	load0 := snapLoad()
	t0 := time.Now()

	lag := startLagMonitor()
	s := newSim(cfg.seed)
	s.window = cfg.window
	defer s.mn.Close()
	if err := s.buildServers(cfg.servers, s.countRequests); err != nil {
		return fmt.Errorf("build the servers: %w", err)
	}
	s.killShare(cfg.gone)
	entries, stale := s.routingTableStats()
	built := time.Since(t0)
	logf("%d servers built in %s, %d gone; the live servers' routing tables hold %d entries, %d of them (%.1f %%) gone",
		cfg.servers, built.Round(time.Millisecond), len(s.servers)-len(s.live), entries, stale, 100*float64(stale)/float64(entries))

	// The schedule: pair i has the same offset in every variant, and the
	// variants take turns, so that they share the machine alike.
	type job struct {
		v      variant
		index  int
		offset time.Duration
	}
	var jobs []job
	for i := range cfg.pairs {
		off := time.Duration(s.rnd.Int64N(int64(cfg.maxDelay) + 1))
		for _, v := range vs {
			jobs = append(jobs, job{v, i, off})
		}
	}
	results := make([]pairResult, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for range cfg.parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				j := jobs[k]
				r := s.runPair(ctx, prov.runID, j.v, j.index, j.offset)
				results[k] = r
				mu.Lock()
				done++
				status := "unmet"
				if r.met {
					status = fmt.Sprintf("met in %.2f s", r.meet.Seconds())
				}
				if r.err != nil {
					status = "error: " + r.err.Error()
				}
				logf("[%d/%d] %s pair %d (B %.1f s after A): %s; A→B %s, B→A %s; requests %d / %d; worst lag %s, others %.2f cores",
					done, len(jobs), j.v.name, j.index, j.offset.Seconds(), status,
					secs(r.aFound), secs(r.bFound), r.at60[0].total(), r.at60[1].total(),
					lag.worst(r.from, r.to).Round(time.Millisecond), lag.busiestOthers(r.from, r.to))
				mu.Unlock()
			}
		}()
	}
	// Starts are spread a little, so that the first pairs do not all
	// bootstrap in the same instant.
feed:
	for k := range jobs {
		select {
		case next <- k:
		case <-ctx.Done():
			break feed
		}
		if k < cfg.parallel {
			node.Sleep(ctx, 300*time.Millisecond)
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, r := range results {
		if r.err != nil {
			return fmt.Errorf("%s pair %d: %w", r.variant, r.index, r.err)
		}
	}
	took := time.Since(t0)
	load := snapLoad().since(load0)
	lag.close()
	rep := report{cfg: cfg, prov: prov, variants: vs, results: results, built: built, took: took,
		entries: entries, stale: stale, load: load, lag: lag, rtts: s.rttSample(20000), live: len(s.live)}
	text := rep.markdown()
	fmt.Print(text)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(text), 0o644); err != nil {
			return err
		}
		logf("wrote %s", cfg.out)
	}
	return nil
}

func secs(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s dhtsim: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
