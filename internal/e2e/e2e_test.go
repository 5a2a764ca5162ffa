//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

func TestMain(m *testing.M) { Main(m) }

func TestFastMessage(t *testing.T) {
	for _, tc := range []struct {
		line, peer, text string
		ok               bool
	}{
		{`{"event":"message","time":"2026-11-27T03:08:17.370629076Z","peer":"12D3KooWA","text":"l00000042"}`, "12D3KooWA", "l00000042", true},
		{`{"event":"message","time":"t","peer":"P","text":"l1","via":"topic"}`, "P", "l1", true},
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
// unescaped; receipts are dropped while a sink is set; other events are
// kept, and a line that is not JSON is reported.
func TestLogSink(t *testing.T) {
	l := NewLog("t")
	var got []string
	l.SetSink(func(peer, text []byte, viaTopic bool, _ time.Time) {
		got = append(got, fmt.Sprintf("%s:%s:%v", peer, text, viaTopic))
	})
	err := l.ReadEvents(strings.NewReader(`{"event":"ready","id":"me","addrs":["/ip4/127.0.0.1"]}
{"event":"message","time":"2026-11-27T03:08:17Z","peer":"P","text":"plain"}
{"event":"message","time":"2026-11-27T03:08:17Z","peer":"P","text":"tab\tand \"quote\"","via":"topic"}
{"event":"message","time":"2026-11-27T03:08:17Z","peer":"P","text":"by topic","via":"topic"}
{"event":"sent","time":"2026-11-27T03:08:17Z","text":"mine"}
{"event":"delivered","time":"2026-11-27T03:08:17Z","text":"mine"}
not json
`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"P:plain:false", "P:tab\tand \"quote\":true", "P:by topic:true"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("sink got %q, want %q", got, want)
	}
	if es := l.Events(); len(es) != 1 || es[0].Kind != event.Ready || es[0].ID != "me" || es[0].At.IsZero() {
		t.Errorf("events %+v, want the ready event only, with the time it was read", es)
	}
	if m, n := l.Malformed(); n != 1 || m[0] != "not json" {
		t.Errorf("malformed = %q (%d), want the one line that is not JSON", m, n)
	}
	l.SetSink(nil)
}

// feed starts a log read from a pipe and returns the pipe's writer.
func feed(t *testing.T) (*Log, *io.PipeWriter) {
	l := NewLog("fed")
	r, w := io.Pipe()
	go func() { _ = l.ReadEvents(r) }()
	t.Cleanup(func() { w.Close() })
	return l, w
}

func TestLogWait(t *testing.T) {
	l, w := feed(t)
	go fmt.Fprint(w, `{"event":"info","code":"advertising","rendezvous":"r"}
{"event":"message","peer":"A","text":"one"}
{"event":"message","peer":"A","text":"two"}
{"event":"error","code":"held_undelivered","count":3}
`)
	// Waits take events in any order, and each at most once.
	e := l.Wait(t, event.Error, Code(event.HeldUndelivered, func(e Event) bool { return e.Count == 3 }), time.Second)
	if e.Count != 3 {
		t.Errorf("waited for %+v", e)
	}
	if e := l.Wait(t, event.Message, Peer("A"), time.Second); e.Text != "one" {
		t.Errorf("first message %q, want one", e.Text)
	}
	if e := l.Wait(t, event.Message, Peer("A"), time.Second); e.Text != "two" {
		t.Errorf("second message %q, want two", e.Text)
	}
	if _, err := l.Await(event.Message, Peer("A"), 50*time.Millisecond); err == nil {
		t.Errorf("a third wait for two messages succeeded")
	}
	l.Wait(t, event.Info, Code(event.Advertising), time.Second)
	if n := l.Count(event.Message, From("A", "two")); n != 1 {
		t.Errorf("count %d, want 1 (taken events still count)", n)
	}
	if _, ok := l.First(event.Info, Code(event.DHTLost)); ok {
		t.Errorf("found an event with another code")
	}
	l.NoEvent(t, 0, event.Left, nil, "nobody left")
	l.NoEvent(t, 50*time.Millisecond, event.Joined, nil, "nobody joined")

	// The end of the input ends every wait at once.
	w.Close()
	start := time.Now()
	_, err := l.Await(event.Joined, nil, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "end of its stdout") || time.Since(start) > 5*time.Second {
		t.Errorf("await after the end: %v after %v", err, time.Since(start))
	}
	if err := l.WaitFor(context.Background(), time.Now().Add(time.Second), "x", Has(event.Joined, nil)); err == nil {
		t.Errorf("WaitFor after the end succeeded")
	}
}

func TestLogWaitForTimeout(t *testing.T) {
	l, _ := feed(t)
	err := l.WaitFor(context.Background(), time.Now().Add(20*time.Millisecond), "nothing", Has(event.Ready, nil))
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("WaitFor = %v, want ErrTimeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.WaitFor(ctx, time.Now().Add(time.Minute), "nothing", Has(event.Ready, nil)); err != context.Canceled {
		t.Errorf("WaitFor with a cancelled context = %v", err)
	}
}

// sh starts a shell script as a process of the harness.
func sh(t *testing.T, o Options, script string) *Proc {
	o.Path = "/bin/sh"
	p, err := Launch("sh", o, "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill(); <-p.Done() })
	return p
}

func TestProc(t *testing.T) {
	p := sh(t, Options{}, `echo '{"event":"ready","id":"me","addrs":["a"]}'
read line
echo "{\"event\":\"message\",\"peer\":\"P\",\"text\":\"$line\"}"
echo 'not an event'
printf 'WARNING: DATA' >&2
printf ' RACE\n' >&2
exit 3`)
	if r := p.Ready(t); r.ID != "me" || r.At.Before(p.Started) {
		t.Errorf("ready %+v", r)
	}
	p.Send(t, "hello")
	p.Wait(t, event.Message, From("P", "hello"), 5*time.Second)
	if code := p.WaitExit(t, 5*time.Second); code != 3 {
		t.Errorf("exit status %d, want 3", code)
	}
	// The race detector's warning came in two writes; it still counts.
	if got := p.Problems(); len(got) != 2 || !strings.Contains(got[0], "not an event") || !strings.Contains(got[1], "data race") {
		t.Errorf("problems %q, want the line that is not an event and the race", got)
	}
	if !strings.Contains(p.Transcript(), "not an event") {
		t.Errorf("transcript %q", p.Transcript())
	}
	if _, err := p.Await(event.Left, nil, 5*time.Second); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("await after the exit: %v", err)
	}
}

func TestProcText(t *testing.T) {
	p := sh(t, Options{Text: true}, `echo 'Looking for peers'; read line; echo "got $line"; sleep 1; echo more; echo done >&2`)
	p.WaitOutput(t, "Looking for peers", 5*time.Second)
	p.Send(t, "x")
	p.WaitOutput(t, "got x\n", 5*time.Second)
	// Whoever reads stdout goes away: the next write fails, and sh dies of
	// SIGPIPE before it says done.
	p.CloseStdout()
	if code := p.WaitExit(t, 5*time.Second); code != -1 {
		t.Errorf("exit status %d, want -1 (SIGPIPE)", code)
	}
	if len(p.Problems()) != 0 || strings.Contains(p.Stderr(), "done") {
		t.Errorf("problems %q, stderr %q", p.Problems(), p.Stderr())
	}
}

func TestProcStdinFile(t *testing.T) {
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := sh(t, Options{Stdin: f}, `cat; echo '{"event":"ready","id":"x","addrs":["a"]}'`)
	p.Ready(t)
	if p.Stdin != nil || p.WaitExit(t, 5*time.Second) != 0 {
		t.Errorf("stdin %v, state %v", p.Stdin, p.Cmd.ProcessState)
	}
}

func TestStopAndKillAll(t *testing.T) {
	p := sh(t, Options{}, `cat >/dev/null; echo '{"event":"info","code":"held_undelivered"}'`)
	start := time.Now()
	p.Stop(5 * time.Second)
	if !p.Exited() || time.Since(start) > 4*time.Second {
		t.Errorf("stopped after %v, exited %v", time.Since(start), p.Exited())
	}
	if p.Count(event.Info, Code(event.HeldUndelivered)) != 1 {
		t.Errorf("the last event before the end of stdin is missing: %q", p.Lines())
	}

	// A process that ignores the end of stdin and SIGTERM is killed after
	// the grace; KillAll ends the others, and what they started.
	stubborn := sh(t, Options{}, `trap '' TERM; sleep 60 & wait`)
	start = time.Now()
	stubborn.Terminate(200 * time.Millisecond)
	if !stubborn.Exited() || time.Since(start) > 4*time.Second {
		t.Errorf("terminated after %v, exited %v", time.Since(start), stubborn.Exited())
	}
	ps := []*Proc{sh(t, Options{}, `sleep 60`), sh(t, Options{}, `sleep 60 & sleep 60`)}
	KillAll()
	for _, p := range ps {
		if !p.Exited() {
			t.Errorf("%d still running after KillAll", p.Pid())
		}
	}
}

func TestProcStats(t *testing.T) {
	pid := os.Getpid()
	m, err := ReadMem(pid)
	if err != nil || m.RSS <= 0 || m.HWM < m.RSS || m.Anon <= 0 || m.Threads <= 0 {
		t.Errorf("ReadMem = %+v, %v", m, err)
	}
	if pss, err := PSS(pid); err != nil || pss <= 0 {
		t.Logf("PSS = %d, %v (smaps_rollup may be missing on old kernels)", pss, err)
	}
	before, err := CPUTime(pid)
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
		if after, err = CPUTime(pid); err != nil {
			t.Fatal(err)
		}
	}
	if after-before < 50*time.Millisecond {
		t.Errorf("CPUTime went from %v to %v over 5 s of spinning", before, after)
	}
}

func TestWaitStopped(t *testing.T) {
	p := sh(t, Options{}, `sleep 60`)
	t.Cleanup(func() { _ = p.Cmd.Process.Signal(syscall.SIGCONT) })
	p.Signal(t, syscall.SIGSTOP)
	p.WaitStopped(t)
}

// fakeTB records how a helper ends a test.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Skipf(format string, a ...any)  { f.skipped = fmt.Sprintf(format, a...) }
func (f *fakeTB) Fatalf(format string, a ...any) { f.failed = fmt.Sprintf(format, a...) }

func TestSetupFailed(t *testing.T) {
	for _, ci := range []string{"", "false", "true", "1"} {
		t.Setenv("CI", ci)
		var f fakeTB
		SetupFailed(&f, "no %s here", "bridge")
		wantFail := ci == "true" || ci == "1"
		if got := f.failed != ""; got != wantFail || (f.skipped != "") == wantFail ||
			!strings.Contains(f.failed+f.skipped, "no bridge here") {
			t.Errorf("CI=%q: failed %q, skipped %q", ci, f.failed, f.skipped)
		}
	}
}

// TestBinary builds the program (with -race when this test binary has it)
// and runs it once.
func TestBinary(t *testing.T) {
	path := Binary(t)
	if again := Binary(t); again != path {
		t.Errorf("built twice: %s, %s", path, again)
	}
	out, err := exec.Command("go", "version", "-m", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Contains(string(out), "-race=true"); got != Race() {
		t.Errorf("the binary built with -race %v, the test binary %v:\n%s", got, Race(), out)
	}
	code, stdout, stderr := Run(t, "-version")
	if code != 0 || !strings.HasPrefix(stdout, "rendezvous-chat ") || stderr != "" {
		t.Errorf("-version: %d, %q, %q", code, stdout, stderr)
	}
}
