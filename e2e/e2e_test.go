//go:build linux

package main

// End-to-end tests: they build the real binary, start it as separate
// processes on loopback and talk to it only through its command line, stdin,
// stdout (JSON events), stderr, signals and exit status.
//
// Network rule: outside a network namespace every process gets a loopback
// -listen address, a loopback -server as its only -peer and -mdns=false, so
// that nothing ever dials the public bootstrap peers or multicasts on a LAN.
//
// The files are Linux-only because every child process is started with
// Pdeathsig: if the test binary dies (a -timeout panic, a crash), the kernel
// kills the children too, and no server is left running.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// startTimeout bounds the wait for a process's ready event. It is
	// generous because the binary may be built with -race on a slow machine.
	startTimeout = 20 * time.Second
	// meetTimeout bounds the wait for two peers to join each other.
	meetTimeout = 20 * time.Second
	// eventTimeout bounds the wait for anything that should be quick once
	// peers are connected: a message, a left event.
	eventTimeout = 10 * time.Second
	// exitTimeout bounds the wait for a process to exit after stdin closed or
	// a signal: the program itself gives queued lines up to 3 s.
	exitTimeout = 15 * time.Second
)

// The binary is built at most once per test run, on first use, so that a
// run of only the unit tests pays nothing; TestMain removes it at the end.
var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// raceEnabled reports whether this test binary was built with -race. The
// program under test is then built with -race too, so that the end-to-end
// runs also look for data races in the real binary.
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

// e2eBinary returns the path of the program, building it on first use. It
// skips the calling test under -short: every end-to-end test calls it first.
func e2eBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "rendezvous-chat-e2e-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "rendezvous-chat")
		args := []string{"build", "-o", buildPath}
		if raceEnabled() {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build the binary: %v", buildErr)
	}
	return buildPath
}

// childEnv is the environment of every child: ours without go-log settings,
// which would add log lines to stderr, and with the race detector told to
// stop the program at the first race, so that it cannot go unnoticed, and
// not to linger for its default second at every exit.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOLOG_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	return append(env, "GORACE=halt_on_error=1 atexit_sleep_ms=100")
}

// lockedBuffer is a bytes.Buffer that the exec package's stderr copier and
// the test may use at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
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

// A proc is one running instance of the binary. One goroutine reads its
// stdout and records every JSON event; tests wait for events with waitEvent.
// Events are kept, not consumed from a queue, so that a test may wait for
// them in any order and count them afterwards.
type proc struct {
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  lockedBuffer
	started time.Time
	done    chan struct{} // closed when stdout is read to its end and the process reaped

	mu        sync.Mutex
	events    []Event
	taken     []bool        // events already returned by waitEvent
	lines     []string      // stdout as printed, for failure messages
	malformed []string      // stdout lines that are not JSON events
	changed   chan struct{} // closed and replaced whenever the above change
	exited    bool
}

// startProc starts the binary with args; see startCmd.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startCmd(t, name, e2eBinary(t), args...)
}

// startCmd starts a command that is or runs the binary (ip netns exec runs
// it in the same process). It does not wait for the ready event, so that
// tests can start peers at the same instant. The process is killed and
// reaped when the test ends, whatever its outcome.
func startCmd(t *testing.T, name, path string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{}), changed: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = childEnv()
	p.cmd.Stderr = &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go p.readStdout(stdout)

	t.Cleanup(func() {
		_ = p.cmd.Process.Kill() // an error only says it has exited already
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: still not reaped 10 s after SIGKILL", p.name)
		}
		if strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector found a data race (stderr below)", p.name)
		}
		p.mu.Lock()
		malformed := p.malformed
		p.mu.Unlock()
		if len(malformed) > 0 {
			t.Errorf("%s: stdout lines that are not JSON events: %q", p.name, malformed)
		}
		if t.Failed() {
			t.Logf("%s %s", p.name, p.transcript())
		}
	})
	return p
}

// readStdout records every line of stdout until it ends, then reaps the
// process. exec.Cmd.Wait must come after the last read of a StdoutPipe.
func (p *proc) readStdout(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		var e Event
		err := json.Unmarshal([]byte(line), &e)
		p.mu.Lock()
		p.lines = append(p.lines, line)
		if err != nil || e.Kind == "" {
			p.malformed = append(p.malformed, line)
		} else {
			p.events = append(p.events, e)
			p.taken = append(p.taken, false)
		}
		p.notifyLocked()
		p.mu.Unlock()
	}
	if err := sc.Err(); err != nil {
		p.mu.Lock()
		p.malformed = append(p.malformed, "<stdout: "+err.Error()+">")
		p.mu.Unlock()
		_, _ = io.Copy(io.Discard, stdout) // keep the process from blocking on a full pipe
	}
	_ = p.cmd.Wait()
	p.mu.Lock()
	p.exited = true
	p.notifyLocked()
	p.mu.Unlock()
	close(p.done)
}

func (p *proc) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// transcript is the process's stdout (long ones shortened in the middle)
// and stderr so far, for failure messages.
func (p *proc) transcript() string {
	p.mu.Lock()
	lines := slices.Clone(p.lines)
	p.mu.Unlock()
	const head, tail = 10, 20
	if len(lines) > head+tail {
		skipped := fmt.Sprintf("... %d lines ...", len(lines)-head-tail)
		lines = append(append(lines[:head:head], skipped), lines[len(lines)-tail:]...)
	}
	return fmt.Sprintf("(pid %d) stdout:\n%s\nstderr:\n%s", p.cmd.Process.Pid, strings.Join(lines, "\n"), p.stderr.String())
}

// waitEvent returns the first event of the kind that pred accepts (nil
// accepts any) and that no earlier waitEvent returned. It fails the test if
// none comes within timeout or the process ends first.
func (p *proc) waitEvent(t *testing.T, kind EventKind, pred func(Event) bool, timeout time.Duration) Event {
	t.Helper()
	e, err := p.await(kind, pred, timeout)
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	return e
}

// await is waitEvent that returns an error instead of failing the test.
func (p *proc) await(kind EventKind, pred func(Event) bool, timeout time.Duration) (Event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for i, e := range p.events {
			if !p.taken[i] && e.Kind == kind && (pred == nil || pred(e)) {
				p.taken[i] = true
				p.mu.Unlock()
				return e, nil
			}
		}
		changed, exited := p.changed, p.exited
		p.mu.Unlock()
		if exited {
			return Event{}, fmt.Errorf("exited (%v) before the awaited %q event", p.cmd.ProcessState, kind)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return Event{}, fmt.Errorf("no awaited %q event within %v", kind, timeout)
		}
	}
}

// all returns every event of the kind so far that pred accepts, in order.
func (p *proc) all(kind EventKind, pred func(Event) bool) []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	var es []Event
	for _, e := range p.events {
		if e.Kind == kind && (pred == nil || pred(e)) {
			es = append(es, e)
		}
	}
	return es
}

// ready waits for the ready event, which the program prints first.
func (p *proc) ready(t *testing.T) Event {
	t.Helper()
	e := p.waitEvent(t, EventReady, nil, startTimeout)
	if e.ID == "" || len(e.Addrs) == 0 {
		t.Fatalf("%s: ready event without id or addrs: %+v", p.name, e)
	}
	return e
}

// send writes one line to the process's stdin: one chat message.
func (p *proc) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("%s: write stdin: %v", p.name, err)
	}
}

// waitExit waits for the process to end and returns its exit status (-1
// when a signal killed it).
func (p *proc) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	return waitProcessExit(t, p.name, p.cmd, p.done, timeout)
}

// waitProcessExit waits until done is closed (cmd has been waited for) and
// returns cmd's exit status, failing the test after timeout.
func waitProcessExit(t *testing.T, name string, cmd *exec.Cmd, done <-chan struct{}, timeout time.Duration) int {
	t.Helper()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("%s: still running %v later", name, timeout)
		return 0
	}
}

// signal sends sig to the process.
func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: send %v: %v", p.name, sig, err)
	}
}

func byPeer(id string) func(Event) bool {
	return func(e Event) bool { return e.Peer == id }
}

func msgFrom(from, text string) func(Event) bool {
	return func(e Event) bool { return e.Peer == from && e.Text == text }
}

// startServer starts a bootstrap server on loopback and returns it with the
// full address that peers pass to -peer.
func startServer(t *testing.T) (*proc, string) {
	t.Helper()
	s := startProc(t, "server", "-server", "-json", "-listen", "/ip4/127.0.0.1/tcp/0")
	r := s.ready(t)
	if !r.Server {
		t.Fatalf("server: ready event does not say server: %+v", r)
	}
	addr := r.Addrs[0]
	if !strings.HasPrefix(addr, "/ip4/127.0.0.1/tcp/") || !strings.HasSuffix(addr, "/p2p/"+r.ID) {
		t.Fatalf("server: unexpected address %q", addr)
	}
	return s, addr
}

// startPeer starts a chat peer that bootstraps from server only, listens on
// loopback only and does not use mDNS.
func startPeer(t *testing.T, name, server, rendezvous string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"-json", "-mdns=false", "-peer", server,
		"-listen", "/ip4/127.0.0.1/tcp/0", "-rendezvous", rendezvous}, extra...)
	return startProc(t, name, args...)
}

// meet waits until a and b have joined each other and checks the joined
// events. The directions are not checked: usually one side dials and the
// other accepts, but when both dial at once each may keep its own outbound
// stream, and both then say "outbound" (see Room.attach).
func meet(t *testing.T, a, b *proc, aID, bID string) (Event, Event) {
	t.Helper()
	ja := a.waitEvent(t, EventJoined, byPeer(bID), meetTimeout)
	jb := b.waitEvent(t, EventJoined, byPeer(aID), meetTimeout)
	for _, j := range []Event{ja, jb} {
		if j.Protocol != string(chatProtocol) || j.Addr == "" || (j.Direction != "inbound" && j.Direction != "outbound") {
			t.Errorf("joined event with unexpected protocol, address or direction: %+v", j)
		}
	}
	return ja, jb
}

// messageTexts returns the texts of the messages p received from peer, in order.
func messageTexts(p *proc, from string) []string {
	var s []string
	for _, e := range p.all(EventMessage, byPeer(from)) {
		s = append(s, e.Text)
	}
	return s
}

func medianDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestE2EMessagesBothWays: two peers meet through a loopback server, and
// lines typed on either side arrive on the other, exactly, in order, and
// attributed to the sender.
func TestE2EMessagesBothWays(t *testing.T) {
	_, server := startServer(t)
	a := startPeer(t, "a", server, "both ways")
	b := startPeer(t, "b", server, "both ways")
	aID, bID := a.ready(t).ID, b.ready(t).ID
	meet(t, a, b, aID, bID)

	// Text with spaces, tabs, non-ASCII and JSON-special characters must
	// come out of the other side's JSON exactly as it went in.
	lineA := `hello from a: "quotes", <tags> & tabs	and ünïcödé ✓`
	lineB := "hello from b \\ backslash"
	a.send(t, lineA)
	b.send(t, lineB)
	b.waitEvent(t, EventMessage, msgFrom(aID, lineA), eventTimeout)
	a.waitEvent(t, EventMessage, msgFrom(bID, lineB), eventTimeout)

	// One-way latency: the time from writing a line to a's stdin until b
	// emits it (b's event timestamp; both run on this machine's clock).
	var lat []time.Duration
	for i := range 20 {
		line := fmt.Sprintf("ping %d", i)
		sent := time.Now()
		a.send(t, line)
		e := b.waitEvent(t, EventMessage, msgFrom(aID, line), eventTimeout)
		lat = append(lat, e.Time.Sub(sent))
	}
	t.Logf("one-way latency, stdin of a to message event of b: median %v, min %v, max %v",
		medianDuration(lat), slices.Min(lat), slices.Max(lat))

	// A burst written at once arrives complete and in order.
	var want []string
	var burst strings.Builder
	for i := range 200 {
		line := fmt.Sprintf("burst line %03d", i)
		want = append(want, line)
		burst.WriteString(line + "\n")
	}
	if _, err := io.WriteString(b.stdin, burst.String()); err != nil {
		t.Fatal(err)
	}
	a.waitEvent(t, EventMessage, msgFrom(bID, want[len(want)-1]), eventTimeout)
	got := messageTexts(a, bID)[1:] // after lineB
	if !slices.Equal(got, want) {
		t.Errorf("a received the burst as %d lines %q..., want %d lines in order", len(got), got[:min(5, len(got))], len(want))
	}
	if n := len(a.all(EventJoined, nil)) + len(b.all(EventJoined, nil)); n != 2 {
		t.Errorf("%d joined events in all, want one on each side", n)
	}
}

// TestE2ESimultaneousStart: two peers started at the same instant must meet,
// every time. This is where a naive design fails: both dial at once, both
// search before either has advertised. Each round uses its own rendezvous
// so that rounds cannot meet each other, and closes its pair before the next.
func TestE2ESimultaneousStart(t *testing.T) {
	const rounds = 20
	_, server := startServer(t)
	var times []time.Duration
	for round := range rounds {
		t.Run(fmt.Sprintf("round%02d", round), func(t *testing.T) {
			rendezvous := fmt.Sprintf("simultaneous %d %d", os.Getpid(), round)
			a := startPeer(t, "a", server, rendezvous)
			b := startPeer(t, "b", server, rendezvous)
			aID, bID := a.ready(t).ID, b.ready(t).ID
			ja, jb := meet(t, a, b, aID, bID)
			// From the second peer's start to the later joined event.
			times = append(times, later(ja.Time, jb.Time).Sub(b.started))

			// Close both; each must end cleanly, having joined exactly once
			// (two streams opened at once must not make two sessions).
			_ = a.stdin.Close()
			_ = b.stdin.Close()
			for _, p := range []*proc{a, b} {
				if code := p.waitExit(t, exitTimeout); code != 0 {
					t.Errorf("%s: exit status %d after end of input, want 0", p.name, code)
				}
				if n := len(p.all(EventJoined, nil)); n != 1 {
					t.Errorf("%s: %d joined events, want 1", p.name, n)
				}
			}
		})
	}
	if len(times) > 0 {
		t.Logf("%d of %d rounds met; from the second peer's start to both joined: median %v, min %v, max %v",
			len(times), rounds, medianDuration(times), slices.Min(times), slices.Max(times))
	}
}

// later returns the later of two times.
func later(x, y time.Time) time.Time {
	if x.After(y) {
		return x
	}
	return y
}

// TestE2EKillNine: a peer killed with SIGKILL cannot say goodbye; the other
// side must notice it left, keep running, keep accepting input, and chat
// with a newcomer.
func TestE2EKillNine(t *testing.T) {
	_, server := startServer(t)
	a := startPeer(t, "a", server, "kill nine")
	b := startPeer(t, "b", server, "kill nine")
	aID, bID := a.ready(t).ID, b.ready(t).ID
	meet(t, a, b, aID, bID)

	killed := time.Now()
	b.signal(t, syscall.SIGKILL)
	left := a.waitEvent(t, EventLeft, byPeer(bID), 5*time.Second)
	t.Logf("a reported b left %v after SIGKILL: %q", left.Time.Sub(killed), left.Reason)

	// With nobody in the room, a holds a line for the next peer to join.
	a.send(t, "is anyone there?")
	a.waitEvent(t, EventInfo, func(e Event) bool { return strings.Contains(e.Text, "holding the line") }, eventTimeout)

	c := startPeer(t, "c", server, "kill nine")
	cID := c.ready(t).ID
	meet(t, a, c, aID, cID)
	c.waitEvent(t, EventMessage, msgFrom(aID, "is anyone there?"), eventTimeout)
	a.send(t, "welcome, c")
	c.waitEvent(t, EventMessage, msgFrom(aID, "welcome, c"), eventTimeout)
	c.send(t, "thanks, a")
	a.waitEvent(t, EventMessage, msgFrom(cID, "thanks, a"), eventTimeout)

	if n := len(a.all(EventLeft, nil)); n != 1 {
		t.Errorf("a: %d left events, want 1 (for b only)", n)
	}
}

// TestE2EEndOfInput: closing stdin is how a script ends a chat. The program
// must deliver the last line, exit 0, and the other side must see it leave.
func TestE2EEndOfInput(t *testing.T) {
	_, server := startServer(t)
	a := startPeer(t, "a", server, "end of input")
	b := startPeer(t, "b", server, "end of input")
	aID, bID := a.ready(t).ID, b.ready(t).ID
	meet(t, a, b, aID, bID)

	a.send(t, "first of two")
	a.send(t, "last words")
	if err := a.stdin.Close(); err != nil {
		t.Fatal(err)
	}
	if code := a.waitExit(t, exitTimeout); code != 0 {
		t.Errorf("a: exit status %d after end of input, want 0", code)
	}
	b.waitEvent(t, EventMessage, msgFrom(aID, "last words"), eventTimeout)
	left := b.waitEvent(t, EventLeft, byPeer(aID), eventTimeout)
	if left.Reason != "closed the chat" {
		t.Errorf("b: a left with reason %q, want %q", left.Reason, "closed the chat")
	}
	if got := messageTexts(b, aID); !slices.Equal(got, []string{"first of two", "last words"}) {
		t.Errorf("b received %q, want both lines in order", got)
	}
	if es := a.all(EventError, nil); len(es) > 0 {
		t.Errorf("a reported errors while leaving: %+v", es)
	}

	// A burst piped in and ended at once, as in `cat notes.txt | rendezvous-chat`:
	// every line must arrive before the program exits. Three pairs in turn,
	// because a loss at shutdown depends on timing.
	t.Run("burst", func(t *testing.T) {
		const n = 2000
		var burst strings.Builder
		pad := strings.Repeat("x", 100)
		for i := range n {
			fmt.Fprintf(&burst, "burst line %04d %s\n", i, pad)
		}
		for attempt := range 3 {
			rendezvous := fmt.Sprintf("end of input, burst %d", attempt)
			a := startPeer(t, "a", server, rendezvous)
			b := startPeer(t, "b", server, rendezvous)
			aID, bID := a.ready(t).ID, b.ready(t).ID
			meet(t, a, b, aID, bID)
			if _, err := io.WriteString(a.stdin, burst.String()); err != nil {
				t.Fatal(err)
			}
			_ = a.stdin.Close()
			if code := a.waitExit(t, exitTimeout); code != 0 {
				t.Errorf("a: exit status %d after end of input, want 0", code)
			}
			left := b.waitEvent(t, EventLeft, byPeer(aID), eventTimeout)
			_ = b.stdin.Close()
			b.waitExit(t, exitTimeout)
			got := messageTexts(b, aID)
			if len(got) != n {
				t.Errorf("attempt %d: b received %d of %d lines (a reported %d errors), and a left with %q",
					attempt, len(got), n, len(a.all(EventError, nil)), left.Reason)
				return
			}
			if left.Reason != "closed the chat" {
				t.Errorf("attempt %d: a left with reason %q, want %q", attempt, left.Reason, "closed the chat")
				return
			}
		}
	})

	// Alone, a line written just before the end cannot be delivered: the
	// program must say so and still exit 0.
	t.Run("alone", func(t *testing.T) {
		c := startPeer(t, "c", server, "end of input, alone")
		c.ready(t)
		c.send(t, "nobody hears this")
		_ = c.stdin.Close()
		if code := c.waitExit(t, exitTimeout); code != 0 {
			t.Errorf("c: exit status %d after end of input, want 0", code)
		}
		if len(c.all(EventError, func(e Event) bool { return strings.Contains(e.Error, "1 held line(s) not delivered") })) != 1 {
			t.Errorf("c: no error event saying the held line was not delivered")
		}
	})
}

// TestE2ESignals: SIGTERM and SIGINT end a peer and a server with status 0,
// and a peer that ends by signal still says goodbye to the others.
func TestE2ESignals(t *testing.T) {
	s, server := startServer(t)
	a := startPeer(t, "a", server, "signals")
	b := startPeer(t, "b", server, "signals")
	aID, bID := a.ready(t).ID, b.ready(t).ID
	meet(t, a, b, aID, bID)
	// A line each way first, so that the connection has settled: what is
	// tested here is the signal, not a departure moments after joining,
	// which TestE2EEndOfInput covers.
	a.send(t, "from a")
	b.waitEvent(t, EventMessage, msgFrom(aID, "from a"), eventTimeout)
	b.send(t, "from b")
	a.waitEvent(t, EventMessage, msgFrom(bID, "from b"), eventTimeout)

	a.signal(t, syscall.SIGTERM)
	if code := a.waitExit(t, exitTimeout); code != 0 {
		t.Errorf("a: exit status %d after SIGTERM, want 0", code)
	}
	left := b.waitEvent(t, EventLeft, byPeer(aID), eventTimeout)
	if left.Reason != "closed the chat" {
		t.Errorf("b: a left with reason %q, want %q", left.Reason, "closed the chat")
	}

	b.signal(t, syscall.SIGINT)
	if code := b.waitExit(t, exitTimeout); code != 0 {
		t.Errorf("b: exit status %d after SIGINT, want 0", code)
	}

	s.signal(t, syscall.SIGTERM)
	if code := s.waitExit(t, exitTimeout); code != 0 {
		t.Errorf("server: exit status %d after SIGTERM, want 0", code)
	}
	for _, p := range []*proc{a, b, s} {
		if strings.TrimSpace(p.stderr.String()) != "" {
			t.Errorf("%s: stderr is not empty after a clean exit:\n%s", p.name, p.stderr.String())
		}
	}
}

// runOnce runs the binary to its end with stdin at /dev/null and returns
// its exit status, stdout and stderr.
func runOnce(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e2eBinary(t), args...)
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %q: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("run %q: did not end within 30 s; stdout:\n%s\nstderr:\n%s", args, &stdout, &stderr)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// checkOneLineError checks the form of every start-up error: nothing on
// stdout, and on stderr exactly one line that names the program once,
// mentions want, and points to -h at most once.
func checkOneLineError(t *testing.T, stdout, stderr, want string) {
	t.Helper()
	if stdout != "" {
		t.Errorf("stdout is not empty: %q", stdout)
	}
	if !strings.HasSuffix(stderr, "\n") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr is not exactly one line:\n%s", stderr)
	}
	if !strings.HasPrefix(stderr, "rendezvous-chat: ") {
		t.Errorf("stderr does not start with the program's name: %q", stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr does not mention %q: %q", want, stderr)
	}
	if strings.Count(stderr, "(see -h)") > 1 {
		t.Errorf("stderr repeats \"(see -h)\": %q", stderr)
	}
}

// TestE2ECommandLine: a bad command line is refused at once with status 2
// and one line on stderr naming the bad value; -h and -version succeed.
func TestE2ECommandLine(t *testing.T) {
	e2eBinary(t)
	// A valid -peer for the cases where only one other flag is wrong, so that
	// a parser that let the bad flag through would still not reach the
	// public bootstrap peers.
	const loopPeer = "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWEj6PSyxHo7QdPRcbW7XhfzvJFwkvF1awg7gJNKTeEkh1"
	safe := []string{"-mdns=false", "-peer", loopPeer, "-listen", "/ip4/127.0.0.1/tcp/0"}
	tests := []struct {
		name string
		args []string
		want string // what stderr must mention
	}{
		{"listen not a multiaddr", []string{"-mdns=false", "-peer", loopPeer, "-listen", "notamultiaddr"}, `"notamultiaddr"`},
		{"peer without p2p", []string{"-mdns=false", "-listen", "/ip4/127.0.0.1/tcp/0", "-peer", "/ip4/127.0.0.1/tcp/1"}, "/p2p/"},
		{"peer garbage", []string{"-mdns=false", "-listen", "/ip4/127.0.0.1/tcp/0", "-peer", "garbage"}, `"garbage"`},
		{"peer bad ID", []string{"-mdns=false", "-listen", "/ip4/127.0.0.1/tcp/0", "-peer", "/ip4/127.0.0.1/tcp/1/p2p/notanid"}, "notanid"},
		{"pid", append(slices.Clone(safe), "-pid", "nope"), `"nope"`},
		{"empty rendezvous", append(slices.Clone(safe), "-rendezvous", ""), "-rendezvous"},
		{"log level", append(slices.Clone(safe), "-log-level", "loud"), `"loud"`},
		{"reachability", append(slices.Clone(safe), "-reachability", "maybe"), `"maybe"`},
		{"unknown flag", append(slices.Clone(safe), "-nosuchflag"), "-nosuchflag"},
		{"flag without value", append(slices.Clone(safe), "-listen"), "-listen"},
		{"positional argument", append(slices.Clone(safe), "extra"), `"extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runOnce(t, tc.args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			checkOneLineError(t, stdout, stderr, tc.want)
		})
	}

	// A listen address the program cannot use is a failure to start (1),
	// not a bad command line (2), and is still reported in one line.
	startFailures := []struct {
		name   string
		listen func(t *testing.T) string
		want   string
	}{
		{"port held by a plain listener", func(t *testing.T) string {
			// A listener without SO_REUSEPORT, which go-libp2p's TCP
			// transport uses, so the kernel refuses the second bind.
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", l.Addr().(*net.TCPAddr).Port)
		}, "address already in use"},
		{"no transport for the address", func(*testing.T) string { return "/ip4/127.0.0.1/udp/0" }, "no transport"},
	}
	for _, tc := range startFailures {
		t.Run(tc.name, func(t *testing.T) {
			listen := tc.listen(t)
			code, stdout, stderr := runOnce(t, "-json", "-mdns=false", "-peer", loopPeer, "-listen", listen)
			if code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			checkOneLineError(t, stdout, stderr, tc.want)
		})
	}

	// A port held by another instance of the program: both sockets would
	// have SO_REUSEPORT, so the kernel lets the second bind succeed and then
	// splits incoming connections between two different peer IDs. The second
	// instance must refuse to start instead.
	t.Run("port held by another instance", func(t *testing.T) {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		listen := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
		first := startProc(t, "first", "-server", "-json", "-listen", listen)
		first.ready(t)
		second := startProc(t, "second", "-server", "-json", "-listen", listen)
		// Whichever comes first tells: a ready event, or the end of the process.
		deadline := time.After(exitTimeout)
		for {
			second.mu.Lock()
			changed, started := second.changed, len(second.events) > 0
			second.mu.Unlock()
			if started {
				t.Errorf("a second instance started on TCP port %d, which the first one listens on; it should exit 1 (address already in use)", port)
				return
			}
			select {
			case <-second.done:
				if code := second.cmd.ProcessState.ExitCode(); code != 1 {
					t.Errorf("second instance: exit status %d, want 1", code)
				}
				checkOneLineError(t, "", second.stderr.String(), "address already in use")
				return
			case <-changed:
			case <-deadline:
				t.Fatalf("second instance: neither ready nor ended within %v", exitTimeout)
			}
		}
	})

	t.Run("help", func(t *testing.T) {
		code, stdout, stderr := runOnce(t, "-h")
		if code != 0 || stderr != "" {
			t.Errorf("-h: exit status %d and stderr %q, want 0 and nothing", code, stderr)
		}
		// Every flag the program defines must be in the usage text.
		newFlagSet(&Config{}, &flagValues{}).VisitAll(func(f *flag.Flag) {
			if !strings.Contains(stdout, "\n  -"+f.Name+" ") && !strings.Contains(stdout, "\n  -"+f.Name+"\n") {
				t.Errorf("-h: usage does not list -%s:\n%s", f.Name, stdout)
			}
		})
	})

	t.Run("version", func(t *testing.T) {
		code, stdout, stderr := runOnce(t, "-version")
		if code != 0 || stderr != "" {
			t.Errorf("-version: exit status %d and stderr %q, want 0 and nothing", code, stderr)
		}
		if !strings.HasPrefix(stdout, "rendezvous-chat ") || strings.Count(stdout, "\n") != 1 {
			t.Errorf("-version printed %q, want one line \"rendezvous-chat VERSION\"", stdout)
		}
	})
}

// streamLine is a line an in-test client read from one of its streams.
type streamLine struct {
	stream int
	line   string
	err    error // set on the last read of a stream
}

// readLines reads a stream line by line, like the example's readData, and
// hands every line (and the final error) to out until done closes.
func readLines(st network.Stream, n int, out chan<- streamLine, done <-chan struct{}) {
	r := bufio.NewReader(st)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			select {
			case out <- streamLine{stream: n, line: line}:
			case <-done:
				return
			}
		}
		if err != nil {
			select {
			case out <- streamLine{stream: n, err: err}:
			case <-done:
			}
			return
		}
	}
}

// newClient starts an in-process libp2p host on loopback, with go-libp2p's
// defaults as the chat example uses them, and connects it to the binary at
// addr, with opts added. It is closed when the test ends.
func newClient(t *testing.T, addr string, opts ...libp2p.Option) (host.Host, *peer.AddrInfo) {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	if err := h.Connect(ctx, *ai); err != nil {
		t.Fatalf("client: connect to the binary: %v", err)
	}
	return h, ai
}

// exampleWrite writes a line as the chat example's writeData does:
// rw.WriteString(fmt.Sprintf("%s\n", sendData)), where sendData still ends
// in the "\n" that ReadString kept, so every line is followed by an empty one.
func exampleWrite(t *testing.T, st network.Stream, line string) {
	t.Helper()
	if _, err := fmt.Fprintf(st, "%s\n", line+"\n"); err != nil {
		t.Fatalf("client: write: %v", err)
	}
}

// TestE2EInteropChatExample: the binary must chat with go-libp2p's
// chat-with-rendezvous example. The client here is an in-process libp2p host
// that speaks exactly what the example speaks on /chat/1.1.0: it writes
// every line followed by an empty line ("hello\n\n", because it appends
// "\n" to a line read with its "\n"), reads with ReadString('\n'), and may
// open a second stream to the same peer.
func TestE2EInteropChatExample(t *testing.T) {
	_, server := startServer(t)
	bin := startPeer(t, "bin", server, "interop")
	r := bin.ready(t)

	h, ai := newClient(t, r.Addrs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)

	lines := make(chan streamLine, 64)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	nextLine := func(t *testing.T) streamLine {
		t.Helper()
		return nextStreamLine(t, lines)
	}
	write := exampleWrite

	s1, err := h.NewStream(ctx, ai.ID, defaultProtocol)
	if err != nil {
		t.Fatalf("client: open a chat stream: %v", err)
	}
	go readLines(s1, 1, lines, done)
	write(t, s1, "hello")
	clientID := h.ID().String()
	j := bin.waitEvent(t, EventJoined, byPeer(clientID), eventTimeout)
	if j.Direction != "inbound" || j.Protocol != defaultProtocol {
		t.Errorf("bin: joined event %+v, want inbound on %s", j, defaultProtocol)
	}
	bin.waitEvent(t, EventMessage, msgFrom(clientID, "hello"), eventTimeout)

	bin.send(t, "hello, example")
	if l := nextLine(t); l.stream != 1 || l.line != "hello, example\n" {
		t.Errorf("client: read %+v, want \"hello, example\\n\" on stream 1", l)
	}

	// The example opens a stream to every peer it finds, so it may have a
	// second one with us, and splits its lines between them. Lines on either
	// must arrive, and ours must not be duplicated.
	s2, err := h.NewStream(ctx, ai.ID, defaultProtocol)
	if err != nil {
		t.Fatalf("client: open a second chat stream: %v", err)
	}
	go readLines(s2, 2, lines, done)
	write(t, s2, "on the second stream")
	bin.waitEvent(t, EventMessage, msgFrom(clientID, "on the second stream"), eventTimeout)
	write(t, s1, "back on the first")
	bin.waitEvent(t, EventMessage, msgFrom(clientID, "back on the first"), eventTimeout)
	bin.send(t, "after the second stream")
	bin.send(t, "sentinel")
	var got []string
	for len(got) == 0 || got[len(got)-1] != "sentinel\n" {
		l := nextLine(t)
		if l.err != nil {
			t.Fatalf("client: stream %d ended: %v", l.stream, l.err)
		}
		got = append(got, l.line)
	}
	if !slices.Equal(got, []string{"after the second stream\n", "sentinel\n"}) {
		t.Errorf("client read %q, want each line once", got)
	}

	// The client closing its second stream must not end the chat either.
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if l := nextLine(t); l.stream != 2 || l.err == nil {
		t.Fatalf("client: read %+v, want the end of stream 2, which it closed", l)
	}
	write(t, s1, "still here")
	bin.waitEvent(t, EventMessage, msgFrom(clientID, "still here"), eventTimeout)
	bin.send(t, "so am I")
	if l := nextLine(t); l.line != "so am I\n" {
		t.Errorf("client: read %+v, want \"so am I\\n\"", l)
	}

	want := []string{"hello", "on the second stream", "back on the first", "still here"}
	if got := messageTexts(bin, clientID); !slices.Equal(got, want) {
		t.Errorf("bin: messages %q, want %q (each once, no empty ones)", got, want)
	}
	if n := len(bin.all(EventJoined, nil)); n != 1 {
		t.Errorf("bin: %d joined events, want 1: a second stream is not a second peer", n)
	}
	if es := bin.all(EventLeft, nil); len(es) > 0 {
		t.Errorf("bin: unexpected left events: %+v", es)
	}

	// When the binary's input ends, it closes the stream cleanly: the
	// example's reader sees the end of the stream, not a reset.
	_ = bin.stdin.Close()
	if code := bin.waitExit(t, exitTimeout); code != 0 {
		t.Errorf("bin: exit status %d after end of input, want 0", code)
	}
	for {
		l := nextLine(t)
		if l.err == nil {
			t.Errorf("client: unexpected line %q after the binary left", l.line)
			continue
		}
		if !errors.Is(l.err, io.EOF) {
			t.Errorf("client: stream 1 ended with %v, want a clean end of stream", l.err)
		}
		break
	}
}

// TestE2ELastLinesBeforeLeft: a peer's last lines must all be delivered, and
// reported before the peer leaves. When two peers dial each other at the
// same instant, each keeps its own outbound stream for writing and reads the
// other's as an extra stream (see session.adopt). A peer that leaves then
// writes its last lines on its own stream, which is the extra one on our
// side, and then closes our primary. This client does exactly that, with
// enough lines that our reader of the extra stream is still busy when the
// primary ends.
//
// The two streams may also ride on two connections: both dials of such a
// race succeed (seen with ss on loopback: one connection between the two
// listen ports, thanks to SO_REUSEPORT, and one from a random port). Then
// the end of the primary may even overtake the lines on the extra stream.
// The client models that peer with two hosts that share one identity.
func TestE2ELastLinesBeforeLeft(t *testing.T) {
	_, server := startServer(t)
	for _, twoConns := range []bool{false, true} {
		name := "one connection"
		if twoConns {
			name = "two connections"
		}
		t.Run(name, func(t *testing.T) {
			bin := startPeer(t, "bin", server, "last lines "+name)
			addr := bin.ready(t).Addrs[0]
			key, _, err := crypto.GenerateEd25519Key(nil)
			if err != nil {
				t.Fatal(err)
			}
			h1, ai := newClient(t, addr, libp2p.Identity(key))
			h2 := h1
			if twoConns {
				h2, _ = newClient(t, addr, libp2p.Identity(key))
			}
			clientID := h1.ID().String()
			ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
			defer cancel()

			// The first stream becomes the session's primary; the second one,
			// once a line on it arrives, is known to be adopted as the extra.
			primary, err := h1.NewStream(ctx, ai.ID, defaultProtocol)
			if err != nil {
				t.Fatal(err)
			}
			exampleWrite(t, primary, "on the primary")
			bin.waitEvent(t, EventMessage, msgFrom(clientID, "on the primary"), eventTimeout)
			extra, err := h2.NewStream(ctx, ai.ID, defaultProtocol)
			if err != nil {
				t.Fatal(err)
			}
			exampleWrite(t, extra, "on the extra")
			bin.waitEvent(t, EventMessage, msgFrom(clientID, "on the extra"), eventTimeout)
			if n := len(bin.all(EventJoined, nil)); n != 1 {
				t.Fatalf("bin: %d joined events, want 1 session for both streams", n)
			}

			// Leave as the program does: the last lines on our stream, then
			// the end of it, then the end of the other one.
			const n = 2000
			var burst strings.Builder
			for i := range n {
				fmt.Fprintf(&burst, "last line %04d\n", i)
			}
			if _, err := io.WriteString(extra, burst.String()); err != nil {
				t.Fatal(err)
			}
			if err := extra.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if err := primary.CloseWrite(); err != nil {
				t.Fatal(err)
			}

			// Once the binary has exited, everything it will ever report is
			// on its stdout, so the order can be checked without sleeping.
			bin.waitEvent(t, EventLeft, byPeer(clientID), eventTimeout)
			_ = bin.stdin.Close()
			if code := bin.waitExit(t, exitTimeout); code != 0 {
				t.Errorf("bin: exit status %d after end of input, want 0", code)
			}
			got, afterLeft, left := 0, 0, false
			bin.mu.Lock()
			for _, e := range bin.events {
				switch {
				case e.Kind == EventLeft && e.Peer == clientID:
					left = true
				case e.Kind == EventMessage && e.Peer == clientID && strings.HasPrefix(e.Text, "last line "):
					got++
					if left {
						afterLeft++
					}
				}
			}
			bin.mu.Unlock()
			if got != n {
				t.Errorf("bin: %d of the peer's last %d lines arrived; %d were lost", got, n, n-got)
			}
			if afterLeft > 0 {
				t.Errorf("bin: %d of the peer's last %d lines were reported after its left event", afterLeft, n)
			}
		})
	}
}

// TestE2EParallelStreams: a peer may open several chat streams to us at the
// same time (the chat example opens one per discovery result, and a burst of
// results names us several times). They must make one session, and every
// line on any of them must arrive. Under -race this also checks the
// binary's bookkeeping of those streams for data races.
func TestE2EParallelStreams(t *testing.T) {
	_, server := startServer(t)
	bin := startPeer(t, "bin", server, "parallel streams")
	h, ai := newClient(t, bin.ready(t).Addrs[0])
	clientID := h.ID().String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// As many streams at once as the resource manager lets one peer open;
	// past that they are refused (see TestHostileStreamFlood).
	const rounds, parallel = 10, maxChatStreamsPerPeer
	for round := range rounds {
		streams := make([]network.Stream, parallel)
		errs := make([]error, parallel)
		var wg sync.WaitGroup
		for i := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := h.NewStream(ctx, ai.ID, defaultProtocol)
				if err == nil {
					_, err = fmt.Fprintf(st, "round %d stream %d\n\n", round, i)
				}
				streams[i], errs[i] = st, err
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: client: %v", round, err)
		}
		for i := range streams {
			bin.waitEvent(t, EventMessage, msgFrom(clientID, fmt.Sprintf("round %d stream %d", round, i)), eventTimeout)
		}
		// Closing every stream ends the session; the next round makes a new one.
		for _, st := range streams {
			_ = st.Close()
		}
		bin.waitEvent(t, EventLeft, byPeer(clientID), eventTimeout)
	}
	if j, l := len(bin.all(EventJoined, nil)), len(bin.all(EventLeft, nil)); j != rounds || l != rounds {
		t.Errorf("bin: %d joined and %d left events, want %d of each: one session per round", j, l, rounds)
	}
}

// chatBothWays checks that a line crosses from a to b and one from b to a.
func chatBothWays(t *testing.T, a, b *proc, aID, bID, tag string) {
	t.Helper()
	a.send(t, tag+": from "+a.name)
	b.waitEvent(t, EventMessage, msgFrom(aID, tag+": from "+a.name), eventTimeout)
	b.send(t, tag+": from "+b.name)
	a.waitEvent(t, EventMessage, msgFrom(bID, tag+": from "+b.name), eventTimeout)
}

// leaveByEndOfInput closes a's stdin and checks that a exits with status 0
// and that b sees it leave.
func leaveByEndOfInput(t *testing.T, a, b *proc, aID string) {
	t.Helper()
	_ = a.stdin.Close()
	if code := a.waitExit(t, exitTimeout); code != 0 {
		t.Errorf("%s: exit status %d after end of input, want 0", a.name, code)
	}
	b.waitEvent(t, EventLeft, byPeer(aID), eventTimeout)
}
