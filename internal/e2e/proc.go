//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// Timeouts for the tests on loopback. They are generous because the binary
// may be built with -race on a slow, shared machine.
const (
	// StartTimeout bounds the wait for a process's ready event.
	StartTimeout = 20 * time.Second
	// MeetTimeout bounds the wait for two peers to join each other.
	MeetTimeout = 20 * time.Second
	// EventTimeout bounds the wait for anything that should be quick once
	// peers are connected: a message, a left event.
	EventTimeout = 10 * time.Second
	// ExitTimeout bounds the wait for a process to exit after stdin closed
	// or a signal: the program itself gives queued lines up to 3 s.
	ExitTimeout = 15 * time.Second
	// reapTimeout bounds the wait for a killed process to be reaped.
	reapTimeout = 10 * time.Second
)

// Options say how to start a process; the zero value starts the binary
// with a pipe for stdin and reads JSON events from its stdout.
type Options struct {
	// Path is the command to run: the binary itself when empty, or a
	// command that runs it, such as ip (netns exec NS BINARY ...), which
	// execs it, so that signals and the kill reach the binary itself.
	Path string
	// Text keeps stdout as text (the human view) instead of reading JSON
	// events: see Proc.Output and Proc.WaitOutput.
	Text bool
	// Stdin is the process's stdin; a pipe, Proc.Stdin, when nil.
	Stdin *os.File
	// Terminal is the slave side of a pseudo-terminal: the process gets it
	// as stdin and stdout, and as its controlling terminal in a session of
	// its own. The test reads the screen from the master side.
	Terminal *os.File
	// Env is added to the environment (see Env).
	Env []string
}

// A Proc is one running child process. One goroutine reads its stdout
// (into the embedded Log, or as text) and reaps it.
type Proc struct {
	*Log
	Name string
	Cmd  *exec.Cmd
	// Stdin is a pipe to the process's stdin (nil with Options.Stdin or
	// Options.Terminal).
	Stdin io.WriteCloser
	// Started is the time just before the process was started.
	Started time.Time

	stderr tailBuffer
	text   bool
	output lockedBuffer // stdout, with Options.Text
	stdout *os.File     // the read end of stdout
	closed atomic.Bool  // stdout closed by CloseStdout
	done   chan struct{}
}

// procAttr starts a child in a process group of its own, so that a Ctrl-C
// at the terminal reaches only the parent, which ends its children itself,
// and Kill reaches whatever the child started; and with Pdeathsig, so that
// the kernel kills it if the test binary or the suite dies (a -timeout
// panic, a crash, SIGKILL).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// The registry holds every process started and not yet reaped, so that
// KillAll can end them whatever path a program leaves by.
var registry = struct {
	sync.Mutex
	procs map[*Proc]struct{}
}{procs: make(map[*Proc]struct{})}

// Start starts the binary (see Binary: it skips the test under -short)
// with args. It does not wait for the ready event, so that tests can start
// peers at the same instant. The process is killed and reaped when the
// test ends, whatever its outcome; a data race it reports, or a stdout
// line that is not a JSON event, fails the test, and on failure the test
// log shows its transcript.
func Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return StartWith(t, name, Options{}, args...)
}

// StartCmd is Start for a command path that runs the binary, such as
// ip netns exec NS BINARY.
func StartCmd(t testing.TB, name, path string, args ...string) *Proc {
	t.Helper()
	return StartWith(t, name, Options{Path: path}, args...)
}

// StartWith is Start with options.
func StartWith(t testing.TB, name string, o Options, args ...string) *Proc {
	t.Helper()
	if o.Path == "" {
		o.Path = Binary(t)
	}
	p, err := Launch(name, o, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		select {
		case <-p.done:
		case <-time.After(reapTimeout):
			t.Errorf("%s: still not reaped %v after SIGKILL", p.Name, reapTimeout)
		}
		for _, problem := range p.Problems() {
			t.Error(problem)
		}
		if t.Failed() {
			t.Logf("%s %s", p.Name, p.Transcript())
		}
	})
	return p
}

// Launch starts a process without a test: the caller ends it (Stop,
// Terminate, Kill, or KillAll on every path out) and checks Problems.
// o.Path must be set.
func Launch(name string, o Options, args ...string) (*Proc, error) {
	if o.Path == "" {
		return nil, fmt.Errorf("start %s: no command", name)
	}
	p := &Proc{Log: NewLog(name), Name: name, text: o.Text, done: make(chan struct{})}
	p.Cmd = exec.Command(o.Path, args...)
	p.Cmd.Env = append(Env(), o.Env...)
	p.Cmd.Stderr = &p.stderr
	p.Cmd.SysProcAttr = procAttr()
	var closeAfterStart []*os.File
	switch {
	case o.Terminal != nil:
		p.Cmd.Stdin, p.Cmd.Stdout = o.Terminal, o.Terminal
		p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0, Pdeathsig: syscall.SIGKILL}
	default:
		if o.Stdin != nil {
			p.Cmd.Stdin = o.Stdin
		} else {
			w, err := p.Cmd.StdinPipe()
			if err != nil {
				return nil, err
			}
			p.Stdin = w
		}
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		p.Cmd.Stdout, p.stdout = w, r
		closeAfterStart = append(closeAfterStart, w)
	}
	registry.Lock()
	defer registry.Unlock()
	p.Started = time.Now()
	err := p.Cmd.Start()
	for _, f := range closeAfterStart {
		f.Close()
	}
	if err != nil {
		if p.stdout != nil {
			p.stdout.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	registry.procs[p] = struct{}{}
	go p.run()
	return p, nil
}

// run reads stdout until it ends, then reaps the process.
func (p *Proc) run() {
	var readErr error
	switch {
	case p.stdout == nil: // a terminal: the test reads it
	case p.text:
		_, readErr = io.Copy(&p.output, p.stdout)
	default:
		readErr = p.Log.read(p.stdout)
	}
	if readErr != nil && !p.closed.Load() {
		p.Log.addMalformed("<stdout: " + readErr.Error() + ">")
	}
	if p.stdout != nil {
		p.CloseStdout()
	}
	_ = p.Cmd.Wait()
	registry.Lock()
	delete(registry.procs, p)
	registry.Unlock()
	close(p.done)
	p.Log.end(fmt.Sprintf("exited (%v)", p.Cmd.ProcessState))
}

// CloseStdout closes the read end of the process's stdout, as a reader
// that goes away does: the process's next write to stdout fails.
func (p *Proc) CloseStdout() {
	if p.closed.CompareAndSwap(false, true) {
		p.stdout.Close()
	}
}

// KillAll kills every process started and not yet reaped, and waits
// (bounded) until they are reaped.
func KillAll() {
	registry.Lock()
	var ps []*Proc
	for p := range registry.procs {
		ps = append(ps, p)
	}
	registry.Unlock()
	for _, p := range ps {
		p.Kill()
	}
	for _, p := range ps {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// Kill sends SIGKILL to the process and to its process group (or
// session), which it leads.
func (p *Proc) Kill() {
	if !p.Exited() {
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	}
	_ = p.Cmd.Process.Kill() // an error only says it has exited already
}

// Stop ends the process as a user would, by the end of its stdin, and
// kills it after grace. It returns once the process is reaped.
func (p *Proc) Stop(grace time.Duration) {
	if p.Stdin != nil {
		_ = p.Stdin.Close()
	}
	p.endWithin(grace)
}

// Terminate ends the process with SIGTERM, and kills it after grace. It
// returns once the process is reaped.
func (p *Proc) Terminate(grace time.Duration) {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	p.endWithin(grace)
}

func (p *Proc) endWithin(grace time.Duration) {
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	p.Kill()
	<-p.done
}

// Pid is the process's ID.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Done is closed once the process has been reaped and its stdout read to
// the end.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has been reaped.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitFor is Log.WaitFor; when the process ended first, the error ends
// with the last lines of its stderr.
func (p *Proc) WaitFor(ctx context.Context, deadline time.Time, what string, cond func([]Event) bool) error {
	err := p.Log.WaitFor(ctx, deadline, what, cond)
	if err != nil && p.Exited() {
		if s := strings.TrimSpace(p.Stderr()); s != "" {
			lines := strings.Split(s, "\n")
			err = fmt.Errorf("%w; stderr: %s", err, strings.Join(lines[max(0, len(lines)-5):], "\n"))
		}
	}
	return err
}

// Ready waits for the ready event, which the program prints first, and
// checks that it names the peer and its addresses. It may be called any
// number of times.
func (p *Proc) Ready(t testing.TB) Event {
	t.Helper()
	if err := p.WaitFor(t.Context(), time.Now().Add(StartTimeout), "ready", Has(event.Ready, nil)); err != nil {
		t.Fatal(err)
	}
	e, _ := p.First(event.Ready, nil)
	if e.ID == "" || len(e.Addrs) == 0 {
		t.Fatalf("%s: ready event without id or addrs: %+v", p.Name, e)
	}
	return e
}

// Send writes one line to the process's stdin: one chat message or
// command.
func (p *Proc) Send(t testing.TB, line string) {
	t.Helper()
	if _, err := io.WriteString(p.Stdin, line+"\n"); err != nil {
		t.Fatalf("%s: write stdin: %v", p.Name, err)
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: send %v: %v", p.Name, sig, err)
	}
}

// WaitExit waits for the process to end and returns its exit status (-1
// when a signal killed it). It fails the test after timeout.
func (p *Proc) WaitExit(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("%s: still running %v later", p.Name, timeout)
		return 0
	}
}

// Stderr is what the process wrote to stderr so far (the last MiB).
func (p *Proc) Stderr() string { return p.stderr.String() }

// Output is the process's stdout so far, with Options.Text.
func (p *Proc) Output() string { return p.output.String() }

// WaitOutput waits until stdout (Options.Text) contains s, and returns it.
func (p *Proc) WaitOutput(t testing.TB, s string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := p.output.String()
		if strings.Contains(out, s) {
			return out
		}
		select {
		case <-p.done:
			if out := p.output.String(); strings.Contains(out, s) {
				return out
			}
			t.Fatalf("%s: exited (%v) before printing %q", p.Name, p.Cmd.ProcessState, s)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: did not print %q within %v", p.Name, s, timeout)
		}
	}
}

// Problems lists what the process did that it should not have: stdout
// lines that are not JSON events, a data race.
func (p *Proc) Problems() []string {
	var out []string
	malformed, n := p.Malformed()
	if n > 0 {
		out = append(out, fmt.Sprintf("%s: %d stdout line(s) that are not JSON events: %.200q", p.Name, n, malformed))
	}
	if p.stderr.raced() {
		out = append(out, fmt.Sprintf("%s: the race detector found a data race (stderr in the transcript)", p.Name))
	}
	return out
}

// Transcript is the process's stdout (long ones shortened in the middle)
// and stderr so far, for failure messages.
func (p *Proc) Transcript() string {
	lines := p.Lines()
	if p.text {
		lines = strings.Split(p.Output(), "\n")
	}
	const head, tail = 10, 20
	if len(lines) > head+tail {
		skipped := fmt.Sprintf("... %d lines ...", len(lines)-head-tail)
		lines = append(append(lines[:head:head], skipped), lines[len(lines)-tail:]...)
	}
	return fmt.Sprintf("(pid %d) stdout:\n%s\nstderr:\n%s", p.Pid(), strings.Join(lines, "\n"), p.Stderr())
}

// lockedBuffer is a strings.Builder that a copier and the test may use at
// once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tailBuffer keeps the last MiB written to it, and whether a data race was
// reported; the exec package's stderr copier and the reader may use it at
// once.
type tailBuffer struct {
	mu   sync.Mutex
	buf  []byte
	race bool
}

const (
	tailSize    = 1 << 20
	raceWarning = "WARNING: DATA RACE"
)

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// The warning may straddle two writes: look at the end of the last.
	from := max(0, len(b.buf)-len(raceWarning))
	b.buf = append(b.buf, p...)
	if !b.race && strings.Contains(string(b.buf[from:]), raceWarning) {
		b.race = true
	}
	if over := len(b.buf) - tailSize; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func (b *tailBuffer) raced() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.race
}

// Run runs the binary with args to its end, with stdin at /dev/null, and
// returns its exit status, stdout and stderr. It fails the test when the
// binary does not end within 30 s.
func Run(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	cmd.Env = Env()
	cmd.SysProcAttr = procAttr()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %q: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("run %q: did not end within 30 s; stdout:\n%s\nstderr:\n%s", args, &out, &errOut)
	}
	if strings.Contains(errOut.String(), raceWarning) {
		t.Errorf("run %q: the race detector found a data race:\n%s", args, &errOut)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}
