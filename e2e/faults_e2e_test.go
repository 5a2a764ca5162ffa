//go:build linux

package main

// End-to-end tests of faults and hostile input, against the real binary:
// a line that never ends, terminal escapes from a peer, a peer that freezes
// (SIGSTOP, like a cut network), peers and a bootstrap server that die and
// come back, odd stdin and a closed stdout, address and peer filters, a
// private network, and bad key files. They reuse the harness of e2e_test.go
// and follow its network rule: loopback only, -mdns=false, a loopback -peer.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/pnet"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// faultLoopPeer is a -peer for runs that must fail before they reach the
// network: should one start after all, it dials nothing but loopback.
const faultLoopPeer = "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWEj6PSyxHo7QdPRcbW7XhfzvJFwkvF1awg7gJNKTeEkh1"

// faultPeerArgs are the arguments of a JSON chat peer bootstrapping from
// server only, listening on listen, without mDNS.
func faultPeerArgs(server, listen, rendezvous string, extra ...string) []string {
	return append([]string{"-json", "-mdns=false", "-peer", server,
		"-listen", listen, "-rendezvous", rendezvous}, extra...)
}

// procStatusKiB returns a "kB" field of /proc/<pid>/status (VmRSS, VmHWM).
func procStatusKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return n
				}
			}
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// resetPeakRSS sets a process's VmHWM back to its current VmHWM (Linux
// clear_refs 5), so that the next reading of VmHWM is the peak since now.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// noEvents fails the test if p has reported any event of the kind that
// pred accepts.
func noEvents(t *testing.T, p *proc, kind EventKind, pred func(Event) bool, why string) {
	t.Helper()
	if es := p.all(kind, pred); len(es) > 0 {
		t.Errorf("%s: %s: %d %q event(s), e.g. %+v", p.name, why, len(es), kind, es[0])
	}
}

// readyID returns p's peer ID from its ready event, waiting for it, and may
// be called any number of times (ready consumes the event).
func readyID(t *testing.T, p *proc) string {
	t.Helper()
	if es := p.all(EventReady, nil); len(es) > 0 {
		return es[0].ID
	}
	return p.ready(t).ID
}

func errorContains(s string) func(Event) bool {
	return func(e Event) bool { return strings.Contains(e.Error, s) }
}

func textContains(s string) func(Event) bool {
	return func(e Event) bool { return strings.Contains(e.Text, s) }
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A rawProc is the binary run without the JSON harness: its stdout is kept
// as bytes (the human view), or left to the test to read and close.
type rawProc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *os.File // the read end of stdout, when the test reads it itself
	out    lockedBuffer
	stderr lockedBuffer
	done   chan struct{} // closed when the process is reaped
}

// startRawProc starts the binary with a pipe for stdin and one for stdout.
// With collect, a goroutine keeps all of stdout in out; otherwise the test
// reads (and may close) stdout itself.
func startRawProc(t *testing.T, name string, collect bool, args ...string) *rawProc {
	t.Helper()
	p := &rawProc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(e2eBinary(t), args...)
	p.cmd.Env = childEnv()
	p.cmd.Stderr = &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = w
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	w.Close()
	copied := make(chan struct{})
	if collect {
		go func() {
			defer close(copied)
			_, _ = io.Copy(&p.out, r)
			r.Close()
		}()
	} else {
		p.stdout = r
		close(copied)
	}
	go func() {
		_ = p.cmd.Wait()
		<-copied
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: still not reaped 10 s after SIGKILL", p.name)
		}
		if !collect {
			p.stdout.Close()
		}
		if strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector found a data race (stderr below)", p.name)
		}
		if t.Failed() {
			t.Logf("%s (pid %d) stdout:\n%s\nstderr:\n%s", p.name, p.cmd.Process.Pid, p.out.String(), p.stderr.String())
		}
	})
	return p
}

// waitOutput waits until the collected stdout contains s.
func (p *rawProc) waitOutput(t *testing.T, s string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := p.out.String()
		if strings.Contains(out, s) {
			return out
		}
		select {
		case <-p.done:
			t.Fatalf("%s: exited (%v) before printing %q", p.name, p.cmd.ProcessState, s)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: did not print %q within %v", p.name, s, timeout)
		}
	}
}

func (p *rawProc) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	return waitProcessExit(t, p.name, p.cmd, p.done, timeout)
}

// checkNoCrash fails the test if stderr shows a panic, a runtime crash or a
// data race.
func checkNoCrash(t *testing.T, name, stderr string) {
	t.Helper()
	for _, s := range []string{"panic:", "fatal error:", "goroutine ", "WARNING: DATA RACE"} {
		if strings.Contains(stderr, s) {
			t.Errorf("%s: stderr shows %q:\n%s", name, s, stderr)
		}
	}
}

// TestE2EFaultOversizedLine: a peer sends a line that never ends, up to
// 1 GiB. The binary must reset the stream after its 64 KiB line limit, say
// why, and not grow in memory; the room chats on.
func TestE2EFaultOversizedLine(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	bin := startPeer(t, "bin", server, "fault oversized")
	b := startPeer(t, "b", server, "fault oversized")
	r := bin.ready(t)
	binID, bID := r.ID, b.ready(t).ID
	meet(t, bin, b, binID, bID)

	h, ai := newClient(t, r.Addrs[0])
	clientID := h.ID().String()
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	st, err := h.NewStream(ctx, ai.ID, defaultProtocol)
	if err != nil {
		t.Fatalf("client: open a chat stream: %v", err)
	}
	// A first line, so that the attack comes from a peer in the room.
	exampleWrite(t, st, "hello")
	bin.waitEvent(t, EventMessage, msgFrom(clientID, "hello"), eventTimeout)

	pid := bin.cmd.Process.Pid
	peakReset := resetPeakRSS(pid) == nil
	if !peakReset {
		t.Logf("could not reset VmHWM; the growth is measured against the peak since start")
	}
	rss0, hwm0 := procStatusKiB(t, pid, "VmRSS"), procStatusKiB(t, pid, "VmHWM")

	const limit = 1 << 30
	chunk := bytes.Repeat([]byte("A"), 64<<10)
	_ = st.SetWriteDeadline(time.Now().Add(60 * time.Second))
	var sent int64
	var werr error
	start := time.Now()
	for sent < limit {
		n, err := st.Write(chunk)
		sent += int64(n)
		if err != nil {
			werr = err
			break
		}
	}
	t.Logf("the client could write %d KiB without a newline in %v before its write failed: %v",
		sent>>10, time.Since(start).Round(time.Millisecond), werr)
	if werr == nil {
		t.Fatalf("the binary took 1 GiB without a newline and never reset the stream")
	}
	// The binary reads 64 KiB of a line; what the client gets to write on
	// top is what yamux lets it send ahead (a window of a few hundred KiB).
	if sent > 16<<20 {
		t.Errorf("the stream was reset only after %d MiB; want long before 1 GiB, within a few window sizes of 64 KiB", sent>>20)
	}

	e := bin.waitEvent(t, EventError, errorContains("oversized line"), eventTimeout)
	if e.Peer != clientID {
		t.Errorf("oversized-line error names peer %q, want the client %s", e.Peer, clientID)
	}
	left := bin.waitEvent(t, EventLeft, byPeer(clientID), eventTimeout)
	t.Logf("left reason: %q", left.Reason)
	rss1, hwm1 := procStatusKiB(t, pid, "VmRSS"), procStatusKiB(t, pid, "VmHWM")
	growth := hwm1 - hwm0
	t.Logf("binary memory: VmHWM %d -> %d KiB (peak growth %d KiB; peak reset before: %v), VmRSS %d -> %d KiB",
		hwm0, hwm1, growth, peakReset, rss0, rss1)
	if growth >= 16<<10 {
		t.Errorf("the binary's peak memory grew by %d KiB under the endless line, want under 16 MiB", growth)
	}

	// The room goes on, and the attacker is not called back.
	chatBothWays(t, bin, b, binID, bID, "after the attack")
	if n := len(bin.all(EventJoined, byPeer(clientID))); n != 1 {
		t.Errorf("bin: %d joined events for the attacker, want 1 (no redial after an oversized line)", n)
	}
}

// hostileLines are chat lines that would change a terminal's state if
// printed raw, with what the human view must show instead.
var hostileLines = []struct{ sent, shown string }{
	{"clear \x1b[2J screen", `clear \x1b[2J screen`},
	{"title \x1b]0;pwned\x07 set", `title \x1b]0;pwned\x07 set`},
	{"clipboard \x1b]52;c;cm0gLXJmIH4K\x07 write", `clipboard \x1b]52;c;cm0gLXJmIH4K\x07 write`},
	{"over\rwritten", `over\x0dwritten`},
	{"bidi \u202eevil\u202c text", `bidi \u202eevil\u202c text`},
	{"invalid \xff utf8", `invalid \xff utf8`},
	{"c1 csi \u009b31m red", `c1 csi \u009b31m red`},
	{"nul \x00 del \x7f bell \a", `nul \x00 del \x7f bell \x07`},
}

// forbiddenOutput is what must never reach the terminal from a peer.
var forbiddenOutput = []struct{ name, seq string }{
	{"ESC", "\x1b"}, {"BEL", "\a"}, {"CR", "\r"}, {"NUL", "\x00"}, {"DEL", "\x7f"},
	{"U+202E", "\u202e"}, {"U+202C", "\u202c"}, {"C1 CSI", "\u009b"}, {"byte 0xff", "\xff"},
}

// TestE2EFaultSafeTerminal: a peer's escape sequences, control characters,
// bidi overrides and invalid UTF-8 never reach the terminal raw: the human
// view shows them escaped, and the JSON view stays valid JSON.
func TestE2EFaultSafeTerminal(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	const sentinel = "sentinel: all sent"

	sendHostile := func(t *testing.T, addr string) string {
		t.Helper()
		h, ai := newClient(t, addr)
		ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
		defer cancel()
		st, err := h.NewStream(ctx, ai.ID, defaultProtocol)
		if err != nil {
			t.Fatalf("client: open a chat stream: %v", err)
		}
		var all strings.Builder
		for _, l := range hostileLines {
			all.WriteString(l.sent + "\n")
		}
		all.WriteString(sentinel + "\n")
		if _, err := io.WriteString(st, all.String()); err != nil {
			t.Fatalf("client: write: %v", err)
		}
		return h.ID().String()
	}

	t.Run("human view", func(t *testing.T) {
		t.Parallel()
		bin := startRawProc(t, "bin", true, "-mdns=false", "-peer", server,
			"-listen", "/ip4/127.0.0.1/tcp/0", "-rendezvous", "fault safe terminal")
		out := bin.waitOutput(t, "Looking for peers", startTimeout)
		_, rest, ok := strings.Cut(out, "listening on ")
		if !ok {
			t.Fatalf("no listen address in the human view's greeting:\n%s", out)
		}
		addr := strings.Fields(rest)[0]
		clientID := sendHostile(t, addr)
		short := clientID[len(clientID)-8:]
		bin.waitOutput(t, short+": "+sentinel+"\n", eventTimeout)
		_ = bin.stdin.Close()
		if code := bin.waitExit(t, exitTimeout); code != 0 {
			t.Errorf("bin: exit status %d after end of input, want 0", code)
		}
		out = bin.out.String()
		for _, f := range forbiddenOutput {
			if i := strings.Index(out, f.seq); i >= 0 {
				t.Errorf("stdout carries a raw %s from the peer, at %q", f.name, out[max(0, i-30):min(len(out), i+30)])
			}
		}
		if !utf8.ValidString(out) {
			t.Errorf("stdout is not valid UTF-8")
		}
		for _, l := range hostileLines {
			if want := short + ": " + l.shown + "\n"; !strings.Contains(out, want) {
				t.Errorf("stdout lacks the escaped line %q", want)
			}
		}
		if strings.Contains(out, "\x1b[") {
			t.Errorf("colours on a pipe")
		}
	})

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		bin := startPeer(t, "bin", server, "fault safe terminal json")
		clientID := sendHostile(t, bin.ready(t).Addrs[0])
		bin.waitEvent(t, EventMessage, msgFrom(clientID, sentinel), eventTimeout)
		_ = bin.stdin.Close()
		if code := bin.waitExit(t, exitTimeout); code != 0 {
			t.Errorf("bin: exit status %d after end of input, want 0", code)
		}
		bin.mu.Lock()
		lines := slices.Clone(bin.lines)
		bin.mu.Unlock()
		for _, line := range lines {
			if !json.Valid([]byte(line)) || !utf8.ValidString(line) {
				t.Errorf("stdout line is not valid JSON in UTF-8: %q", line)
			}
			// C0 controls must be escaped in JSON; DEL, C1 and bidi
			// controls are valid raw JSON, which encoding/json keeps raw.
			for _, f := range forbiddenOutput[:4] {
				if strings.Contains(line, f.seq) {
					t.Errorf("JSON line carries a raw %s: %q", f.name, line)
				}
			}
		}
		// Each text comes out as JSON carries it: exact, except that invalid
		// UTF-8 becomes U+FFFD.
		var want []string
		for _, l := range hostileLines {
			want = append(want, strings.ToValidUTF8(l.sent, "\uFFFD"))
		}
		want = append(want, sentinel)
		if got := messageTexts(bin, clientID); !slices.Equal(got, want) {
			t.Errorf("messages:\n got %q\nwant %q", got, want)
		}
	})
}

// TestE2EFaultSilentVanish: a peer frozen with SIGSTOP sends nothing, not
// even a RST, like a peer whose network was cut. The other side must say it
// left within the liveness bound (8 s by design), must not take it back
// while it is still frozen, and once the peer runs again the two must find
// each other again by themselves.
func TestE2EFaultSilentVanish(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	a := startPeer(t, "a", server, "fault silent vanish")
	b := startPeer(t, "b", server, "fault silent vanish")
	// Cleanups run last-registered first: b is resumed before the harness
	// kills it, and a failed test never leaves a stopped process behind.
	t.Cleanup(func() { _ = b.cmd.Process.Signal(syscall.SIGCONT) })
	aID, bID := a.ready(t).ID, b.ready(t).ID
	meet(t, a, b, aID, bID)
	chatBothWays(t, a, b, aID, bID, "before the freeze")

	stopped := time.Now()
	b.signal(t, syscall.SIGSTOP)
	left := a.waitEvent(t, EventLeft, byPeer(bID), 12*time.Second)
	t.Logf("a reported b left %v after SIGSTOP (bound by design 8 s): %q",
		left.Time.Sub(stopped).Round(time.Millisecond), left.Reason)
	if !strings.Contains(left.Reason, "stopped answering") {
		t.Errorf("a: b left with reason %q, want it to mention \"stopped answering\"", left.Reason)
	}

	// A frozen peer must not seem to come back: a may take it back only once
	// it answers again. Meanwhile a goes on searching the rendezvous (every
	// 0.25 s at first, doubling up to 20 s), where b's record still is; at
	// a's age here, 12 s hold at least one search, while the connection to
	// the frozen b is still up (yamux gives up on it only after 30 s or
	// more), so a dial of b would open a stream on it.
	time.Sleep(12 * time.Second)
	if es := a.all(EventJoined, func(e Event) bool { return e.Peer == bID && e.Time.After(left.Time) }); len(es) > 0 {
		t.Errorf("a: the frozen b seemed to rejoin %v after it left, while still stopped (%d joined events, then %d left)",
			es[0].Time.Sub(left.Time).Round(time.Millisecond), len(es),
			len(a.all(EventLeft, func(e Event) bool { return e.Peer == bID && e.Time.After(left.Time) })))
	}

	resumed := time.Now()
	b.signal(t, syscall.SIGCONT)
	jb := b.waitEvent(t, EventJoined, byPeer(aID), 15*time.Second)
	chatBothWays(t, a, b, aID, bID, "after the thaw")
	// a has b in the room again: its last word about b is a joined event.
	var last EventKind
	a.mu.Lock()
	for _, e := range a.events {
		if e.Peer == bID && (e.Kind == EventJoined || e.Kind == EventLeft) {
			last = e.Kind
		}
	}
	a.mu.Unlock()
	if last != EventJoined {
		t.Errorf("a: b is not in the room after the thaw: %s", sessionLog(a, bID, left.Time, resumed))
	}
	t.Logf("after SIGCONT b joined a again in %v (b's left events: %q); a's events for b since b left: %s",
		jb.Time.Sub(resumed).Round(time.Millisecond), reasons(b.all(EventLeft, nil)), sessionLog(a, bID, left.Time, resumed))
}

// sessionLog lists p's joined and left events for peer after since, with
// their times relative to ref.
func sessionLog(p *proc, peer string, since, ref time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s []string
	for _, e := range p.events {
		if e.Peer == peer && e.Time.After(since) && (e.Kind == EventJoined || e.Kind == EventLeft) {
			s = append(s, fmt.Sprintf("%s %+.1fs", e.Kind, e.Time.Sub(ref).Seconds()))
		}
	}
	return strings.Join(s, ", ")
}

func reasons(es []Event) []string {
	var s []string
	for _, e := range es {
		s = append(s, e.Reason)
	}
	return s
}

// TestE2EFaultRestartSameIdentity: a peer killed with SIGKILL and started
// again with the same -identity file is the same peer; the survivor must
// take it back without anyone restarting.
func TestE2EFaultRestartSameIdentity(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	keyFile := filepath.Join(t.TempDir(), "b.key")
	const rendezvous = "fault restart same identity"
	a := startPeer(t, "a", server, rendezvous)
	b := startPeer(t, "b", server, rendezvous, "-identity", keyFile)
	aID, bID := a.ready(t).ID, b.ready(t).ID
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("identity file: %v, mode %v; want it created with mode 0600", err, fi.Mode())
	}
	meet(t, a, b, aID, bID)
	chatBothWays(t, a, b, aID, bID, "first life")

	b.signal(t, syscall.SIGKILL)
	b.waitExit(t, exitTimeout)
	left := a.waitEvent(t, EventLeft, byPeer(bID), eventTimeout)
	t.Logf("a: b left: %q", left.Reason)

	restarted := time.Now()
	b2 := startPeer(t, "b2", server, rendezvous, "-identity", keyFile)
	if id := b2.ready(t).ID; id != bID {
		t.Fatalf("b2: peer ID %s, want %s from the same identity file", id, bID)
	}
	ja := a.waitEvent(t, EventJoined, byPeer(bID), 10*time.Second)
	jb := b2.waitEvent(t, EventJoined, byPeer(aID), eventTimeout)
	t.Logf("the restarted b was joined by a %v after its start (b2 joined a after %v)",
		ja.Time.Sub(restarted).Round(time.Millisecond), jb.Time.Sub(restarted).Round(time.Millisecond))
	chatBothWays(t, a, b2, aID, bID, "second life")
}

// TestE2EFaultRestartNewIdentity: the same with a fresh identity, that is a
// new peer ID: the survivor joins the newcomer.
func TestE2EFaultRestartNewIdentity(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	const rendezvous = "fault restart new identity"
	a := startPeer(t, "a", server, rendezvous)
	b := startPeer(t, "b", server, rendezvous)
	aID, bID := a.ready(t).ID, b.ready(t).ID
	meet(t, a, b, aID, bID)

	b.signal(t, syscall.SIGKILL)
	b.waitExit(t, exitTimeout)
	a.waitEvent(t, EventLeft, byPeer(bID), eventTimeout)

	restarted := time.Now()
	c := startPeer(t, "c", server, rendezvous)
	cID := c.ready(t).ID
	if cID == bID {
		t.Fatalf("c has b's peer ID without an identity file")
	}
	ja := a.waitEvent(t, EventJoined, byPeer(cID), 10*time.Second)
	c.waitEvent(t, EventJoined, byPeer(aID), eventTimeout)
	t.Logf("a joined the newcomer %v after its start", ja.Time.Sub(restarted).Round(time.Millisecond))
	chatBothWays(t, a, c, aID, cID, "newcomer")
}

// TestE2EFaultBootstrapGone: the bootstrap server is only needed to meet.
// Killed, the peers it introduced chat on and notice they lost the DHT;
// started again on the same port with the same identity, it has lost every
// record, and the old peers reconnect to it and advertise again, so that a
// newcomer meets them.
func TestE2EFaultBootstrapGone(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "server.key")
	listen := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", freeLoopbackPort(t))
	startFixedServer := func(name string) (*proc, string) {
		s := startProc(t, name, "-server", "-json", "-identity", keyFile, "-listen", listen)
		return s, s.ready(t).Addrs[0]
	}
	s, server := startFixedServer("server")
	const rendezvous = "fault bootstrap gone"
	a := startPeer(t, "a", server, rendezvous)
	b := startPeer(t, "b", server, rendezvous)
	aID, bID := a.ready(t).ID, b.ready(t).ID
	meet(t, a, b, aID, bID)

	killed := time.Now()
	s.signal(t, syscall.SIGKILL)
	s.waitExit(t, exitTimeout)
	chatBothWays(t, a, b, aID, bID, "server gone")
	// Each checks its hold on the DHT every 5 s.
	for _, p := range []*proc{a, b} {
		e := p.waitEvent(t, EventError, errorContains("lost every DHT peer"), 10*time.Second)
		t.Logf("%s noticed the loss %v after the kill", p.name, e.Time.Sub(killed).Round(time.Millisecond))
	}

	restarted := time.Now()
	_, server2 := startFixedServer("server2")
	if server2 != server {
		t.Fatalf("the restarted server is at %s, want %s (same port, same identity)", server2, server)
	}
	c := startPeer(t, "c", server, rendezvous)
	cID := c.ready(t).ID

	// The restarted server knows nothing of a and b until they advertise
	// again. A passive DHT client asks it who is at the rendezvous: a and
	// b must be back, whoever met whom first.
	h, _ := newClient(t, server)
	probe, err := dht.New(h, dht.Mode(dht.ModeClient))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = probe.Close() })
	rd := drouting.NewRoutingDiscovery(probe)
	deadline := restarted.Add(30 * time.Second)
	var listed map[string]bool
	for {
		listed = make(map[string]bool)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if ch, err := rd.FindPeers(ctx, rendezvous); err == nil {
			for ai := range ch {
				listed[ai.ID.String()] = true
			}
		}
		cancel()
		if listed[aID] && listed[bID] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the server's restart, its rendezvous lists a %v and b %v: they did not advertise again",
				listed[aID], listed[bID])
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("server down for %v; a and b advertised again at the restarted server within %v of its restart",
		restarted.Sub(killed).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	for _, p := range []*proc{a, b} {
		if e, err := p.await(EventInfo, func(e Event) bool {
			return e.Time.After(restarted) && strings.Contains(e.Text, "bootstrap peers")
		}, 0); err == nil {
			t.Logf("%s reconnected to the server %v after its restart", p.name, e.Time.Sub(restarted).Round(time.Millisecond))
		}
	}

	for _, w := range []struct {
		p  *proc
		id string
	}{{a, cID}, {b, cID}, {c, aID}, {c, bID}} {
		w.p.waitEvent(t, EventJoined, byPeer(w.id), time.Until(deadline))
	}
	t.Logf("c met a and b %v after the server's restart", time.Since(restarted).Round(time.Millisecond))
	chatBothWays(t, c, a, cID, aID, "newcomer")
	chatBothWays(t, c, b, cID, bID, "newcomer")
}

// TestE2EFaultStdinFile: stdin is a regular file. The program reads its
// lines at once, holds them while nobody is there, reaches the end of input
// and exits 0, reporting the held lines as not delivered.
func TestE2EFaultStdinFile(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	const rendezvous = "fault stdin file"
	b := startPeer(t, "b", server, rendezvous)
	b.ready(t)

	path := filepath.Join(t.TempDir(), "lines.txt")
	if err := os.WriteFile(path, []byte("line one\nline two\nline three\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e2eBinary(t), faultPeerArgs(server, "/ip4/127.0.0.1/tcp/0", rendezvous)...)
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdin = f
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	_ = cmd.Run()
	t.Logf("exited after %v with status %d", time.Since(start).Round(time.Millisecond), cmd.ProcessState.ExitCode())
	if ctx.Err() != nil {
		t.Fatalf("did not end within 30 s with stdin at the end of a file")
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	checkNoCrash(t, "bin", stderr.String())
	var events []Event
	for _, line := range strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n") {
		var e Event
		if err := json.Unmarshal([]byte(line), &e); err != nil || e.Kind == "" {
			t.Errorf("stdout line is not a JSON event: %q", line)
			continue
		}
		events = append(events, e)
	}
	held, notDelivered := 0, 0
	for _, e := range events {
		switch {
		case e.Kind == EventInfo && strings.Contains(e.Text, "until someone joins"):
			// Lines read together are held together, with one notice.
			held += len(e.MsgIDs)
		case e.Kind == EventError && strings.Contains(e.Error, "3 held line(s) not delivered"):
			notDelivered++
		}
	}
	if held != 3 || notDelivered != 1 {
		t.Errorf("%d lines said held and %d not-delivered errors, want 3 and 1; stdout:\n%s", held, notDelivered, stdout.String())
	}
	if len(events) == 0 || events[0].Kind != EventReady {
		t.Errorf("the first event is not ready")
	}
	// Nothing reached the peer waiting at the rendezvous: the report is true.
	if len(events) > 0 {
		noEvents(t, b, EventMessage, byPeer(events[0].ID), "received a line reported as not delivered")
	}
}

// TestE2EFaultStdoutClosed: when whoever reads stdout goes away, the next
// write fails; the program must end by itself with status 0, not die of
// SIGPIPE, panic or hang.
func TestE2EFaultStdoutClosed(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	for _, jsonView := range []bool{true, false} {
		name := "json"
		if !jsonView {
			name = "human view"
		}
		t.Run(name, func(t *testing.T) {
			args := []string{"-mdns=false", "-peer", server, "-listen", "/ip4/127.0.0.1/tcp/0",
				"-rendezvous", "fault stdout closed " + name}
			if jsonView {
				args = append(args, "-json")
			}
			bin := startRawProc(t, "bin", false, args...)
			// Read up to the end of the start-up notices: the ready event
			// and then the advertisement at the rendezvous.
			br := bufio.NewReader(bin.stdout)
			lineCh := make(chan string)
			go func() {
				defer close(lineCh)
				for {
					line, err := br.ReadString('\n')
					if line != "" {
						lineCh <- line
					}
					if err != nil {
						return
					}
				}
			}()
			var got []string
			timeout := time.After(startTimeout)
		read:
			for {
				select {
				case line, ok := <-lineCh:
					if !ok {
						t.Fatalf("stdout ended early: %q", got)
					}
					got = append(got, line)
					if strings.Contains(line, "advertising at rendezvous") {
						break read
					}
				case <-timeout:
					t.Fatalf("no advertising notice within %v; stdout so far: %q", startTimeout, got)
				}
			}
			if jsonView && !strings.Contains(got[0], `"event":"ready"`) {
				t.Errorf("first line is not the ready event: %q", got[0])
			}
			bin.stdout.Close()
			for range lineCh { // the reader ends with the closed pipe
			}

			// Nobody is here: the line is held, and the notice saying so is
			// a write to the closed stdout.
			closed := time.Now()
			if _, err := io.WriteString(bin.stdin, "is anyone reading?\n"); err != nil {
				t.Fatalf("write stdin: %v", err)
			}
			code := bin.waitExit(t, 5*time.Second)
			t.Logf("exited %v after stdout was closed, with status %d; stderr %q",
				time.Since(closed).Round(time.Millisecond), code, bin.stderr.String())
			if code != 0 {
				t.Errorf("exit status %d (%v), want 0", code, bin.cmd.ProcessState)
			}
			if ws, ok := bin.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Errorf("killed by %v", ws.Signal())
			}
			checkNoCrash(t, "bin", bin.stderr.String())
		})
	}
}

// TestE2EFaultFilters: -deny, -allow and -allow-peer through the binary.
// In each case a filtered peer never joins directly, while an allowed third
// peer in the same rendezvous does, which shows that discovery worked.
// (-deny and -allow filter connections; the room's topic may still show the
// filtered peer by way of the third, as a member "via" "topic".)
func TestE2EFaultFilters(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	const (
		lo1 = "/ip4/127.0.0.1/tcp/0"
		lo2 = "/ip4/127.0.0.2/tcp/0"
	)
	// check waits for f (filtered) and ok to join each other, and other
	// and ok too, which shows that f and other found each other's records;
	// then a while longer, and checks that f and other never joined, on
	// either side.
	// joinsAllowed is how often the refused peer may see f join: never when
	// f refuses its connections (-deny, -allow); at most once with
	// -allow-peer, where f accepts the connection (the DHT needs it) and
	// resets the chat stream just after the protocol is agreed, so the
	// other may see f join, then leave with "reset the chat", and leaves f
	// alone afterwards.
	check := func(t *testing.T, f, other, ok *proc, joinsAllowed int) {
		t.Helper()
		fID, otherID, okID := readyID(t, f), readyID(t, other), readyID(t, ok)
		meet(t, f, ok, fID, okID)
		meet(t, other, ok, otherID, okID)
		time.Sleep(3 * time.Second)
		// The filters are about connections: through the room's topic, the
		// two may still see each other by way of ok, which relays it ("via"
		// "topic"); they must never chat directly.
		direct := func(id string) func(Event) bool {
			return func(e Event) bool { return e.Peer == id && e.Via != viaTopic }
		}
		noEvents(t, f, EventJoined, direct(otherID), "joined the filtered peer")
		// The filtered peer has no filter itself; the one that refuses it
		// must not appear to it either, let alone join and leave over and
		// over.
		if j, l := len(other.all(EventJoined, direct(fID))), len(other.all(EventLeft, direct(fID))); j > joinsAllowed {
			t.Errorf("%s: the peer that refuses it (%s) joined %d times and left %d times in %v",
				other.name, f.name, j, l, time.Since(f.started).Round(time.Second))
		}
	}

	t.Run("deny", func(t *testing.T) {
		t.Parallel()
		const rv = "fault filter deny"
		f := startProc(t, "f", faultPeerArgs(server, lo1, rv, "-deny", "127.0.0.2/32")...)
		other := startProc(t, "other@127.0.0.2", faultPeerArgs(server, lo2, rv)...)
		ok := startProc(t, "ok", faultPeerArgs(server, lo1, rv)...)
		check(t, f, other, ok, 0)
	})
	t.Run("allow", func(t *testing.T) {
		t.Parallel()
		const rv = "fault filter allow"
		f := startProc(t, "f", faultPeerArgs(server, lo1, rv, "-allow", "127.0.0.1/32")...)
		other := startProc(t, "other@127.0.0.2", faultPeerArgs(server, lo2, rv)...)
		ok := startProc(t, "ok", faultPeerArgs(server, lo1, rv)...)
		check(t, f, other, ok, 0)
	})
	t.Run("allow-peer", func(t *testing.T) {
		t.Parallel()
		const rv = "fault filter allow peer"
		ok := startProc(t, "ok", faultPeerArgs(server, lo1, rv)...)
		f := startProc(t, "f", faultPeerArgs(server, lo1, rv, "-allow-peer", readyID(t, ok))...)
		other := startProc(t, "other", faultPeerArgs(server, lo1, rv)...)
		check(t, f, other, ok, 1)
		for _, e := range other.all(EventLeft, byPeer(readyID(t, f))) {
			if e.Reason != "reset the chat" {
				t.Errorf("other: f left with %q, want \"reset the chat\"", e.Reason)
			}
		}
	})
}

// TestE2EFaultPrivateNetwork: -psk-gen writes a swarm key safely and once;
// a server and peers sharing it meet and chat; a peer without it, or with
// another key, cannot even bootstrap.
func TestE2EFaultPrivateNetwork(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "swarm.key")
	code, stdout, stderr := runOnce(t, "-psk-gen", keyFile)
	if code != 0 || stderr != "" || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("-psk-gen: exit status %d, stdout %q, stderr %q; want 0, one line and nothing", code, stdout, stderr)
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("-psk-gen wrote the key with mode %04o, want 0600", fi.Mode().Perm())
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pnet.DecodeV1PSK(bytes.NewReader(key)); err != nil {
		t.Errorf("-psk-gen wrote a key that does not decode: %v", err)
	}
	code, stdout, stderr = runOnce(t, "-psk-gen", keyFile)
	if code != 1 {
		t.Errorf("second -psk-gen to the same file: exit status %d, want 1", code)
	}
	checkOneLineError(t, stdout, stderr, "exists")
	if again, _ := os.ReadFile(keyFile); !bytes.Equal(again, key) {
		t.Errorf("a second -psk-gen changed the existing key")
	}

	// Each asks for QUIC as well, which a private network cannot use.
	quicAndTCP := []string{"-listen", "/ip4/127.0.0.1/tcp/0", "-listen", "/ip4/127.0.0.1/udp/0/quic-v1"}
	s := startProc(t, "server", append([]string{"-server", "-json", "-psk", keyFile}, quicAndTCP...)...)
	sr := s.ready(t)
	server := sr.Addrs[0]
	for _, a := range sr.Addrs {
		if strings.Contains(a, "/quic") {
			t.Errorf("server: a private network listens on QUIC: %s", a)
		}
	}
	const rendezvous = "fault private network"
	peerArgs := func(extra ...string) []string {
		return append(append([]string{"-json", "-mdns=false", "-peer", server, "-rendezvous", rendezvous}, quicAndTCP...), extra...)
	}
	a := startProc(t, "a", peerArgs("-psk", keyFile)...)
	b := startProc(t, "b", peerArgs("-psk", keyFile)...)
	aID, bID := a.ready(t).ID, b.ready(t).ID
	for _, p := range []*proc{s, a, b} {
		p.waitEvent(t, EventInfo, textContains("QUIC is off"), eventTimeout)
	}
	meet(t, a, b, aID, bID)
	chatBothWays(t, a, b, aID, bID, "private")

	otherKey := filepath.Join(dir, "other.key")
	if code, _, stderr := runOnce(t, "-psk-gen", otherKey); code != 0 {
		t.Fatalf("-psk-gen: exit status %d: %s", code, stderr)
	}
	outsiders := []*proc{
		startProc(t, "no key", peerArgs()...),
		startProc(t, "other key", peerArgs("-psk", otherKey)...),
	}
	for _, o := range outsiders {
		o.ready(t)
	}
	for _, o := range outsiders {
		e := o.waitEvent(t, EventError, errorContains("no bootstrap peer reachable"), 25*time.Second)
		t.Logf("%s: %s", o.name, e.Error)
	}
	time.Sleep(2 * time.Second)
	for _, o := range outsiders {
		oID := o.all(EventReady, nil)[0].ID
		noEvents(t, o, EventJoined, nil, "an outsider joined someone")
		noEvents(t, o, EventInfo, textContains("connected to"), "an outsider reached the private server")
		for _, p := range []*proc{a, b} {
			noEvents(t, p, EventJoined, byPeer(oID), "joined an outsider")
		}
	}
}

// TestE2EFaultKeyFiles: a key file that others can read, or that is not a
// key, stops the program at once with status 1 and one line on stderr.
func TestE2EFaultKeyFiles(t *testing.T) {
	t.Parallel()
	e2eBinary(t)
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
		return path
	}
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyData, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pskData := []byte("/key/swarm/psk/1.0.0/\n/base16/\n" + strings.Repeat("ab", 32) + "\n")

	safe := []string{"-json", "-mdns=false", "-peer", faultLoopPeer, "-listen", "/ip4/127.0.0.1/tcp/0"}
	tests := []struct {
		name, flag, path, want string
	}{
		{"identity readable by others", "-identity", write("id-0644.key", keyData, 0o644), "chmod 600"},
		{"identity readable by the group", "-identity", write("id-0640.key", keyData, 0o640), "chmod 600"},
		{"identity garbage", "-identity", write("id-garbage.key", []byte("not a key\n"), 0o600), "not a libp2p private key"},
		{"identity truncated", "-identity", write("id-short.key", keyData[:len(keyData)/2], 0o600), "not a libp2p private key"},
		{"identity empty", "-identity", write("id-empty.key", nil, 0o600), "not a libp2p private key"},
		{"identity directory", "-identity", dir, "not a regular file"},
		{"psk readable by others", "-psk", write("psk-0644.key", pskData, 0o644), "chmod 600"},
		{"psk garbage", "-psk", write("psk-garbage.key", []byte("not a key\n"), 0o600), "not a /key/swarm/psk/1.0.0/ key"},
		{"psk short", "-psk", write("psk-short.key", []byte("/key/swarm/psk/1.0.0/\n/base16/\nabcd\n"), 0o600), "not a /key/swarm/psk/1.0.0/ key"},
		{"psk empty", "-psk", write("psk-empty.key", nil, 0o600), "not a /key/swarm/psk/1.0.0/ key"},
		{"psk missing", "-psk", filepath.Join(dir, "no-such.key"), "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runOnce(t, append(slices.Clone(safe), tc.flag, tc.path)...)
			if code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			checkOneLineError(t, stdout, stderr, tc.want)
		})
	}
	// The refusal leaves the file alone: no one "fixes" it behind the user.
	if fi, err := os.Stat(filepath.Join(dir, "id-0644.key")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the refused identity file was changed: %v %v", fi.Mode(), err)
	}
}
