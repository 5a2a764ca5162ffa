package main

// mocknet.go: the stage mocknet, the big rooms in one process (issue 8):
// internal/gossiproom's TestBenchRoom, rooms of 50 to 500 peers on
// go-libp2p's mocknet, run by `go test` as a child of the suite, so that its
// table is part of the same run as every other section of the results file.
// The test writes the table to a file and heads it with the run's ID, which
// the stage checks: a table from another run cannot end up in the results.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// mocknetKnobs are the test's settings that pass through from the
// environment (see TestBenchRoom's comment); the section names those set.
var mocknetKnobs = []string{"GOSSIPROOM_BENCH_SIZES", "GOSSIPROOM_BENCH_MSGS", "GOSSIPROOM_BENCH_RATE",
	"GOSSIPROOM_BENCH_BUSY_RATE", "GOSSIPROOM_BENCH_MESH_MAX", "GOSSIPROOM_BENCH_GOGC"}

// A mocknetResult is the stage's section of the results.
type mocknetResult struct {
	table string   // the test's table and summary, as it wrote them
	knobs []string // KNOB=value, for the knobs set
	took  time.Duration
}

func (s *suite) stageMocknet(ctx context.Context) error {
	if s.root == "" {
		return fmt.Errorf("the mocknet stage runs `go test` in the module: %v", s.rootErr)
	}
	dir, err := os.MkdirTemp("", "bench-mocknet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "table.md")
	res := &mocknetResult{}
	env := append(os.Environ(), "GOSSIPROOM_BENCH=1", "GOSSIPROOM_BENCH_OUT="+out, "GOSSIPROOM_BENCH_RUN="+s.rep.prov.runID)
	env = append(env, s.cfg.mocknetEnv...)
	for _, k := range mocknetKnobs {
		// The last setting of a name wins, as for exec.
		for i := len(env) - 1; i >= 0; i-- {
			if v, ok := strings.CutPrefix(env[i], k+"="); ok {
				res.knobs = append(res.knobs, k+"="+v)
				break
			}
		}
	}
	cmd := exec.CommandContext(ctx, s.cfg.goCmd, "test", "-count=1", "-run", "^TestBenchRoom$", "-v", "-timeout", "60m", "./internal/gossiproom/")
	cmd.Dir = s.root
	cmd.Env = env
	// A process group of its own, killed whole (go and the test binary it
	// starts) when the suite is interrupted; and killed by the kernel if
	// the suite dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var wg sync.WaitGroup
	var tail []string // the last lines, for an error
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.progress("mocknet: %s", line)
			tail = append(tail, line)
			if len(tail) > 20 {
				tail = tail[1:]
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	s.progress("mocknet: %s (in %s)", strings.Join(cmd.Args, " "), s.root)
	t0 := time.Now()
	err = cmd.Run()
	pw.Close()
	wg.Wait()
	res.took = time.Since(t0)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("go test TestBenchRoom: %v; its last lines:\n%s", err, strings.Join(tail, "\n"))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return fmt.Errorf("TestBenchRoom wrote no table (%v): is GOSSIPROOM_BENCH_OUT still honoured?", err)
	}
	if !strings.Contains(string(b), s.rep.prov.runID) {
		return fmt.Errorf("TestBenchRoom's table does not name this run (%s): not used", s.rep.prov.runID)
	}
	res.table = string(b)
	s.rep.mocknet = res
	return nil
}

// mocknetSection is the results file's section on the stage.
func (r *report) mocknetSection() string {
	m := r.mocknet
	if m == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("## Big rooms, in one process (mocknet: GossipSub vs stream mesh)\n\n")
	b.WriteString(r.prov.line())
	knobs := "the test's defaults"
	if len(m.knobs) > 0 {
		knobs = "`" + strings.Join(slices.Clone(m.knobs), "`, `") + "`"
	}
	fmt.Fprintf(&b, "The suite's stage mocknet: `go test -run '^TestBenchRoom$' ./internal/gossiproom/` as a child of\nthe suite, in %s, with %s.\n\n", m.took.Round(time.Second), knobs)
	b.WriteString(strings.TrimRight(m.table, "\n"))
	b.WriteString("\n\n")
	return b.String()
}
