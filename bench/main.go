// Command bench is the benchmark suite of rendezvous-chat (issue 5): it
// starts the real binary as separate processes on loopback, a local
// -server as the only bootstrap peer and mDNS off, drives them through
// -json, and measures the time to meet, latency, throughput, rooms,
// start-up and an idle peer, each beside its natural floor where it has
// one; and a room of 50 processes on GossipSub beside the stream mesh
// (issue 8: stage room50, bigroom.go, three rooms of 50 on GossipSub); and
// last, internal/gossiproom's TestBenchRoom, the big rooms of up to 500
// peers in one process on mocknet (stage mocknet, mocknet.go), run by `go
// test` from the suite. `make bench` runs it in full and writes the whole of
// bench/results.md from that one run: every section names the run's ID and
// the commit (provenance.go). `-quick` is the smoke run that `go test ./...`
// does (bench_test.go); it leaves out the mocknet stage unless -only names it.
//
//	go run ./bench [-bin PATH] [-out FILE] [-quick] [-only STAGES] [-go GO]
//
// The same executable is also the floors' relays (relay.go, p2prelay.go),
// run as `bench relay-recv -listen ADDR` and `bench relay-send -to ADDR`
// (one TCP connection), and `bench p2p-recv -listen MULTIADDR` and `bench
// p2p-send -to MULTIADDR` (one libp2p stream).
//
// The exit status is 0 when everything was measured and behaved, 1 on a
// harness failure or a correctness failure (a line lost, duplicated or
// reordered, a malformed event, a data race), 2 on a bad command line. A
// missed performance target never fails it.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
)

// config is what to measure, and how much.
type config struct {
	bin   string // the chat binary; built from the module when empty
	out   string // results file; "" writes none
	raw   string // directory for every figure's values, one file each; "" writes none
	quick bool
	only  []string // stages to run; all when empty
	goCmd string   // the go command, for the mocknet stage

	startupRuns    int
	lateRuns       int
	togetherRuns   int
	latencyLines   int
	latencyWarmup  int
	latencyGap     time.Duration
	throughput     []int // lines per run
	throughputRuns []int
	driverLines    int
	roomSizes      []int
	roomRuns       int
	idle           time.Duration
	idleSettle     time.Duration
	// The room50 stage: its rooms, the lines each peer writes and the gap
	// between two lines over the room, the -presence-interval of its
	// GossipSub rooms (none given if 0), the pause between meeting and
	// the first line, and how long a room may take to meet.
	bigRooms        []bigRoom
	bigLinesPerPeer int
	bigLineGap      time.Duration
	bigPresence     time.Duration
	bigSettle       time.Duration
	bigMeetTimeout  time.Duration
	// mocknetEnv is added to the environment of the mocknet stage's test
	// (its knobs; the smoke run's are tiny).
	mocknetEnv []string

	readyTimeout time.Duration
	meetTimeout  time.Duration
	roomTimeout  time.Duration
	stallTimeout time.Duration
}

// stages, in the order they run.
var stages = []string{"startup", "late", "together", "latency", "throughput", "room", "room50", "idle", "mocknet"}

func fullConfig() config {
	return config{
		startupRuns:    20,
		lateRuns:       20,
		togetherRuns:   50,
		latencyLines:   1000,
		latencyWarmup:  50,
		latencyGap:     time.Millisecond,
		throughput:     []int{100_000, 1_000_000},
		throughputRuns: []int{5, 3},
		driverLines:    1_000_000,
		roomSizes:      []int{10, 30},
		roomRuns:       5,
		idle:           30 * time.Second,
		idleSettle:     2 * time.Second,
		// Three rooms of 50 on GossipSub, one after the other, for issue 8's
		// verdict; then the stream mesh beside them.
		bigRooms: []bigRoom{{gossip: true, size: 50}, {gossip: true, size: 50}, {gossip: true, size: 50},
			{gossip: false, size: 50}, {gossip: false, size: 30}},
		bigLinesPerPeer: 3,
		bigLineGap:      100 * time.Millisecond,
		bigSettle:       5 * time.Second,
		bigMeetTimeout:  90 * time.Second,
		readyTimeout:    20 * time.Second,
		meetTimeout:     10 * time.Second,
		roomTimeout:     30 * time.Second,
		stallTimeout:    15 * time.Second,
	}
}

// quickConfig is the smoke run: every stage, tiny counts. It checks that the
// suite still works, not how fast the program is.
func quickConfig() config {
	c := fullConfig()
	c.quick = true
	c.startupRuns, c.lateRuns, c.togetherRuns = 2, 2, 2
	c.latencyLines, c.latencyWarmup = 20, 5
	c.throughput, c.throughputRuns, c.driverLines = []int{1000}, []int{1}, 1000
	c.roomSizes, c.roomRuns = []int{3}, 1
	c.idle, c.idleSettle = 2*time.Second, 500*time.Millisecond
	c.bigRooms, c.bigLinesPerPeer, c.bigSettle = []bigRoom{{gossip: true, size: 6}, {gossip: false, size: 6}}, 1, 500*time.Millisecond
	c.mocknetEnv = []string{"GOSSIPROOM_BENCH_SIZES=6", "GOSSIPROOM_BENCH_MSGS=5", "GOSSIPROOM_BENCH_BUSY_RATE=0", "GOSSIPROOM_BENCH_MESH_MAX=6"}
	// Generous: the smoke run may share two cores with the other tests and
	// a binary built with the race detector.
	c.meetTimeout = 20 * time.Second
	return c
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "", "the chat binary to measure (default: build it from this module into a temporary directory)")
	out := fs.String("out", "", "write the results as Markdown to this file (default bench/results.md for the full suite; none with -quick or -only)")
	raw := fs.String("raw", "", "also write every figure's values, in the order measured, to one file per figure in this directory")
	quick := fs.Bool("quick", false, "the smoke run: every stage with tiny counts, in well under a minute")
	only := fs.String("only", "", "run only these stages, comma-separated: "+strings.Join(stages, ","))
	goCmd := fs.String("go", cmp.Or(os.Getenv("GO"), "go"), "the go command, for the mocknet stage (default $GO, or go)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./bench [flags]   (or: make bench)\n\nThe benchmark suite of rendezvous-chat: the real binary on loopback.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := fullConfig()
	if *quick {
		cfg = quickConfig()
	}
	cfg.bin = *bin
	cfg.out = *out
	cfg.raw = *raw
	cfg.goCmd = *goCmd
	// Only the full suite writes bench/results.md unasked: a partial run
	// there would replace the full one.
	if cfg.out == "" && !cfg.quick && *only == "" {
		cfg.out = filepath.Join("bench", "results.md")
	}
	if *only != "" {
		for _, st := range strings.Split(*only, ",") {
			st = strings.TrimSpace(st)
			if !slices.Contains(stages, st) {
				return config{}, fmt.Errorf("-only: unknown stage %q (stages: %s)", st, strings.Join(stages, ", "))
			}
			cfg.only = append(cfg.only, st)
		}
	}
	return cfg, nil
}

func main() {
	if code, ok := relayMain(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(benchMain(os.Args[1:], os.Stdout, os.Stderr))
}

func benchMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}

	// Ctrl-C, SIGTERM, SIGHUP: stop measuring and end every process. The
	// children have their own process groups, so the terminal's signal
	// reaches only us; a second signal, or no end within 10 s, exits at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	interrupted := atomic.Bool{}
	go func() {
		sig := <-sigs
		interrupted.Store(true)
		fmt.Fprintf(stderr, "\nbench: %v: stopping every process\n", sig)
		cancel()
		e2e.KillAll()
		select {
		case <-sigs:
		case <-time.After(10 * time.Second):
		}
		e2e.KillAll()
		os.Exit(130)
	}()

	rep, err := runSuite(ctx, cfg, stderr)
	if interrupted.Load() {
		return 130
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, table(rep.figures))
	if len(rep.bigRooms) > 0 {
		fmt.Fprintln(stdout)
		fmt.Fprint(stdout, bigRoomTable(rep.bigRooms))
	}
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, floorTable(rep.floors))
	if rep.mocknet != nil {
		fmt.Fprintln(stdout)
		fmt.Fprint(stdout, rep.mocknetSection())
	}
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, cpuTable(rep.cpu, rep.machine.cpus))
	if cfg.out != "" {
		fmt.Fprintf(stdout, "\nwritten to %s\n", cfg.out)
	}
	if len(rep.failures) > 0 {
		fmt.Fprintf(stderr, "\nbench: %d failure(s):\n", len(rep.failures))
		for _, f := range rep.failures {
			fmt.Fprintf(stderr, "  %s\n", f)
		}
		return 1
	}
	return 0
}

// A suite is one run of the benchmarks.
type suite struct {
	cfg        config
	self       string // this executable, for the relays
	root       string // the module's directory, for the mocknet stage ("" if not found: rootErr)
	rootErr    error
	server     string // the local server's address, for -peer
	serverProc *e2e.Proc
	log        io.Writer
	rep        *report
	rssFloor   *figure
	seq        atomic.Int64

	tmp string // the run's temporary directory
	// The libp2p stream relay (bench/p2prelay), built once when first
	// needed.
	p2pOnce sync.Once
	p2pBin  string
	p2pErr  error

	mu    sync.Mutex
	procs []*e2e.Proc // every process started, for the final checks
}

// live returns the processes started and not yet reaped.
func (s *suite) live() []*e2e.Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ps []*e2e.Proc
	for _, p := range s.procs {
		if !p.Exited() {
			ps = append(ps, p)
		}
	}
	return ps
}

// selected reports whether the run includes the stage.
func (c config) selected(name string) bool {
	if len(c.only) > 0 {
		return slices.Contains(c.only, name)
	}
	// The smoke run leaves out the mocknet stage, which would build and
	// run another test binary, unless -only names it.
	return !(c.quick && name == "mocknet")
}

// runSuite runs the stages the config asks for and returns the report,
// written to cfg.out when set. It returns an error only when it could not
// start at all; failures within stages are in the report.
func runSuite(ctx context.Context, cfg config, log io.Writer) (*report, error) {
	began := time.Now()
	defer e2e.KillAll()
	s := &suite{cfg: cfg, log: log, rep: &report{quick: cfg.quick, only: cfg.only}}
	s.root, s.rootErr = moduleRoot()
	s.rep.prov = newProvenance(s.root)
	var err error
	if s.self, err = os.Executable(); err != nil {
		return nil, err
	}
	if s.tmp, err = os.MkdirTemp("", "rendezvous-chat-bench-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(s.tmp)
	if s.cfg.bin == "" {
		s.progress("building the chat binary")
		if s.cfg.bin, err = e2e.Build(filepath.Join(s.tmp, "rendezvous-chat"), false); err != nil {
			return nil, err
		}
	} else if s.cfg.bin, err = filepath.Abs(s.cfg.bin); err != nil {
		return nil, err
	}
	s.rep.machine = describeMachine(s.cfg.bin)
	if s.rep.machine.binary == "" {
		return nil, fmt.Errorf("%s -version failed: is it the chat binary?", s.cfg.bin)
	}
	s.progress("run %s, commit %s; binary %s", s.rep.prov.runID, s.rep.prov.commit, s.rep.machine.binary)
	if c, _, _ := strings.Cut(s.rep.prov.commit, "+"); len(c) >= 7 && !strings.Contains(s.rep.machine.binary, c[:7]) {
		s.note(fmt.Sprintf("the binary's version (%s) does not name the commit of the tree (%s): it may be built from another commit", s.rep.machine.binary, s.rep.prov.commit))
	}
	if cfg.selected("latency") || cfg.selected("throughput") {
		// Built before the stages, so that no stage's figures share the
		// CPU with the compiler.
		s.progress("building bench/p2prelay, the libp2p stream floor")
		if _, err := s.p2pRelayBin(); err != nil {
			return nil, err
		}
	}
	snap0 := snapCPU(s.live)
	needServer := false
	for _, st := range stages {
		needServer = needServer || (st != "mocknet" && cfg.selected(st))
	}
	if needServer {
		if err := s.startServer(ctx); err != nil {
			return nil, fmt.Errorf("start the local server: %w", err)
		}
		s.progress("server %s", s.server)
	}

	run := func(name string, stage func(context.Context) error) {
		if !cfg.selected(name) {
			return
		}
		if ctx.Err() != nil {
			return
		}
		c0 := snapCPU(s.live)
		s.progress("== %s", name)
		first := len(s.rep.figures)
		if err := stage(ctx); err != nil && ctx.Err() == nil {
			s.fail(fmt.Sprintf("%s: %v", name, err))
			// Figures the stage could not measure at all say so.
			for _, f := range s.rep.figures[first:] {
				if len(f.vals) == 0 && f.custom == "" {
					f.err = "stage failed, see Failures"
				}
			}
		}
		sp := spanOf(name, c0, snapCPU(s.live))
		s.rep.cpu = append(s.rep.cpu, sp)
		s.progress("== %s took %v; CPU: ours %s, other processes %s, steal %s", name, sp.wall.Round(100*time.Millisecond),
			cpuS(sp.ours), cpuS(sp.others), cpuS(sp.steal))
	}
	// The start-up stage runs first: it measures the floor that peak RSS is
	// compared with. The table follows the order (figure.group).
	run("startup", s.stageStartup)
	run("late", s.stageLate)
	run("together", s.stageTogether)
	run("latency", s.stageLatency)
	run("throughput", func(ctx context.Context) error {
		if err := s.stageThroughput(ctx); err != nil {
			return err
		}
		return s.driverAlone(cfg.driverLines)
	})
	run("room", s.stageRoom)
	run("room50", s.stageRoom50)
	run("idle", s.stageIdle)
	// Last: the big rooms in one process, with the chat's processes gone.
	if s.serverProc != nil {
		s.serverProc.Terminate(stopGrace)
	}
	run("mocknet", s.stageMocknet)
	slices.SortStableFunc(s.rep.figures, func(a, b *figure) int { return a.group - b.group })

	e2e.KillAll()
	s.mu.Lock()
	for _, p := range s.procs {
		s.rep.failures = append(s.rep.failures, p.Problems()...)
	}
	s.mu.Unlock()
	if ctx.Err() != nil {
		return s.rep, ctx.Err()
	}
	s.rep.elapsed = time.Since(began)
	s.rep.machine.loadEnd = loadavg()
	s.rep.cpu = append(s.rep.cpu, spanOf("whole run", snap0, snapCPU(s.live)))
	if cfg.raw != "" {
		if err := writeRaw(cfg.raw, append(slices.Clone(s.rep.figures), s.rep.floors...)); err != nil {
			return s.rep, err
		}
	}
	if cfg.out != "" {
		f, err := os.Create(cfg.out)
		if err != nil {
			return s.rep, err
		}
		s.rep.write(f)
		if err := f.Close(); err != nil {
			return s.rep, err
		}
	}
	return s.rep, nil
}

// figure adds a figure to the results table; floor adds one to the floors.
func (s *suite) figure(f *figure) *figure {
	s.rep.figures = append(s.rep.figures, f)
	return f
}

func (s *suite) floor(f *figure) *figure {
	s.rep.floors = append(s.rep.floors, f)
	return f
}

// fail records a correctness or harness failure: the suite exits 1.
func (s *suite) fail(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rep.failures = append(s.rep.failures, msg)
}

func (s *suite) note(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rep.notes = append(s.rep.notes, msg)
}

func (s *suite) progress(format string, args ...any) {
	fmt.Fprintf(s.log, "bench: "+format+"\n", args...)
}
