//go:build linux

package e2e

// End-to-end tests of faults and hostile input, against the real binary:
// a line that never ends, terminal escapes from a peer, a peer that freezes
// (SIGSTOP, like a cut network), peers and a bootstrap server that die and
// come back, odd stdin and a closed stdout, address and peer filters, a
// private network, and bad key files. They use internal/e2e's harness and
// e2e_test.go's helpers, and follow its network rule: loopback only,
// -mdns=false, a loopback -peer.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/pnet"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
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
	r := bin.Ready(t)
	binID, bID := r.ID, b.Ready(t).ID
	meet(t, bin, b, binID, bID)

	h, ai := newClient(t, r.Addrs[0])
	clientID := h.ID().String()
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	st, err := h.NewStream(ctx, ai.ID, plainProtocol)
	if err != nil {
		t.Fatalf("client: open a chat stream: %v", err)
	}
	// A first line, so that the attack comes from a peer in the room.
	exampleWrite(t, st, "hello")
	bin.Wait(t, event.Message, e2e.From(clientID, "hello"), eventTimeout)

	peakReset := e2e.ResetPeak(bin.Pid()) == nil
	if !peakReset {
		t.Logf("could not reset VmHWM; the growth is measured against the peak since start")
	}
	mem0 := bin.Mem(t)
	rss0, hwm0 := mem0.RSS, mem0.HWM

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

	e := bin.Wait(t, event.Error, e2e.Code(event.ProtocolViolation, func(e e2e.Event) bool { return e.Plain }), eventTimeout)
	if e.Peer != clientID {
		t.Errorf("oversized-line error names peer %q, want the client %s", e.Peer, clientID)
	}
	left := bin.Wait(t, event.Left, e2e.Peer(clientID), eventTimeout)
	t.Logf("left: %s (%q)", left.Code, left.Reason)
	mem1 := bin.Mem(t)
	rss1, hwm1 := mem1.RSS, mem1.HWM
	growth := hwm1 - hwm0
	t.Logf("binary memory: VmHWM %d -> %d KiB (peak growth %d KiB; peak reset before: %v), VmRSS %d -> %d KiB",
		hwm0, hwm1, growth, peakReset, rss0, rss1)
	if growth >= 16<<10 {
		t.Errorf("the binary's peak memory grew by %d KiB under the endless line, want under 16 MiB", growth)
	}

	// The room goes on, and the attacker is not called back.
	chatBothWays(t, bin, b, binID, bID, "after the attack")
	if n := len(bin.All(event.Joined, e2e.Peer(clientID))); n != 1 {
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
		st, err := h.NewStream(ctx, ai.ID, plainProtocol)
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
		bin := e2e.StartWith(t, "bin", e2e.Options{Text: true}, "-mdns=false", "-peer", server,
			"-listen", "/ip4/127.0.0.1/tcp/0", "-rendezvous", "fault safe terminal")
		out := bin.WaitOutput(t, "Looking for peers", startTimeout)
		_, rest, ok := strings.Cut(out, "listening on ")
		if !ok {
			t.Fatalf("no listen address in the human view's greeting:\n%s", out)
		}
		addr := strings.Fields(rest)[0]
		clientID := sendHostile(t, addr)
		short := clientID[len(clientID)-8:]
		bin.WaitOutput(t, short+": "+sentinel+"\n", eventTimeout)
		_ = bin.Stdin.Close()
		if code := bin.WaitExit(t, exitTimeout); code != 0 {
			t.Errorf("bin: exit status %d after end of input, want 0", code)
		}
		out = bin.Output()
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
		clientID := sendHostile(t, bin.Ready(t).Addrs[0])
		bin.Wait(t, event.Message, e2e.From(clientID, sentinel), eventTimeout)
		_ = bin.Stdin.Close()
		if code := bin.WaitExit(t, exitTimeout); code != 0 {
			t.Errorf("bin: exit status %d after end of input, want 0", code)
		}
		for _, line := range bin.Lines() {
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
	t.Cleanup(func() { _ = b.Cmd.Process.Signal(syscall.SIGCONT) })
	aID, bID := a.Ready(t).ID, b.Ready(t).ID
	meet(t, a, b, aID, bID)
	chatBothWays(t, a, b, aID, bID, "before the freeze")

	stopped := time.Now()
	b.Signal(t, syscall.SIGSTOP)
	left := a.Wait(t, event.Left, e2e.Peer(bID), 12*time.Second)
	t.Logf("a reported b left %v after SIGSTOP (bound by design 8 s): %s (%q)",
		left.Time.Sub(stopped).Round(time.Millisecond), left.Code, left.Reason)
	if left.Code != event.LeftNotAnswering {
		t.Errorf("a: b left with %q (%q), want %q: it stopped answering", left.Code, left.Reason, event.LeftNotAnswering)
	}

	// A frozen peer must not seem to come back: a may take it back only once
	// it answers again. Meanwhile a goes on searching the rendezvous (every
	// 0.25 s at first, doubling up to 20 s), where b's record still is; at
	// a's age here, 12 s hold at least one search, while the connection to
	// the frozen b is still up (yamux gives up on it only after 30 s or
	// more), so a dial of b would open a stream on it.
	time.Sleep(12 * time.Second)
	if es := a.All(event.Joined, func(e e2e.Event) bool { return e.Peer == bID && e.Time.After(left.Time) }); len(es) > 0 {
		t.Errorf("a: the frozen b seemed to rejoin %v after it left, while still stopped (%d joined events, then %d left)",
			es[0].Time.Sub(left.Time).Round(time.Millisecond), len(es),
			len(a.All(event.Left, func(e e2e.Event) bool { return e.Peer == bID && e.Time.After(left.Time) })))
	}

	resumed := time.Now()
	b.Signal(t, syscall.SIGCONT)
	jb := b.Wait(t, event.Joined, e2e.Peer(aID), 15*time.Second)
	chatBothWays(t, a, b, aID, bID, "after the thaw")
	// a has b in the room again: its last word about b is a joined event.
	var last event.Kind
	for _, e := range a.Events() {
		if e.Peer == bID && (e.Kind == event.Joined || e.Kind == event.Left) {
			last = e.Kind
		}
	}
	if last != event.Joined {
		t.Errorf("a: b is not in the room after the thaw: %s", sessionLog(a, bID, left.Time, resumed))
	}
	t.Logf("after SIGCONT b joined a again in %v (b's left events: %q); a's events for b since b left: %s",
		jb.Time.Sub(resumed).Round(time.Millisecond), reasons(b.All(event.Left, nil)), sessionLog(a, bID, left.Time, resumed))
}

// sessionLog lists p's joined and left events for peer after since, with
// their times relative to ref.
func sessionLog(p *e2e.Proc, peer string, since, ref time.Time) string {
	var s []string
	for _, e := range p.Events() {
		if e.Peer == peer && e.Time.After(since) && (e.Kind == event.Joined || e.Kind == event.Left) {
			s = append(s, fmt.Sprintf("%s %+.1fs", e.Kind, e.Time.Sub(ref).Seconds()))
		}
	}
	return strings.Join(s, ", ")
}

// reasons lists the codes of left events.
func reasons(es []e2e.Event) []event.Code {
	var s []event.Code
	for _, e := range es {
		s = append(s, e.Code)
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
	aID, bID := a.Ready(t).ID, b.Ready(t).ID
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("identity file: %v, mode %v; want it created with mode 0600", err, fi.Mode())
	}
	meet(t, a, b, aID, bID)
	chatBothWays(t, a, b, aID, bID, "first life")

	b.Signal(t, syscall.SIGKILL)
	b.WaitExit(t, exitTimeout)
	left := a.Wait(t, event.Left, e2e.Peer(bID), eventTimeout)
	t.Logf("a: b left: %s (%q)", left.Code, left.Reason)

	restarted := time.Now()
	b2 := startPeer(t, "b2", server, rendezvous, "-identity", keyFile)
	if id := b2.Ready(t).ID; id != bID {
		t.Fatalf("b2: peer ID %s, want %s from the same identity file", id, bID)
	}
	ja := a.Wait(t, event.Joined, e2e.Peer(bID), 10*time.Second)
	jb := b2.Wait(t, event.Joined, e2e.Peer(aID), eventTimeout)
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
	aID, bID := a.Ready(t).ID, b.Ready(t).ID
	meet(t, a, b, aID, bID)

	b.Signal(t, syscall.SIGKILL)
	b.WaitExit(t, exitTimeout)
	a.Wait(t, event.Left, e2e.Peer(bID), eventTimeout)

	restarted := time.Now()
	c := startPeer(t, "c", server, rendezvous)
	cID := c.Ready(t).ID
	if cID == bID {
		t.Fatalf("c has b's peer ID without an identity file")
	}
	ja := a.Wait(t, event.Joined, e2e.Peer(cID), 10*time.Second)
	c.Wait(t, event.Joined, e2e.Peer(aID), eventTimeout)
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
	startFixedServer := func(name string) (*e2e.Proc, string) {
		s := e2e.Start(t, name, "-server", "-json", "-identity", keyFile, "-listen", listen)
		return s, s.Ready(t).Addrs[0]
	}
	s, server := startFixedServer("server")
	const rendezvous = "fault bootstrap gone"
	a := startPeer(t, "a", server, rendezvous)
	b := startPeer(t, "b", server, rendezvous)
	aID, bID := a.Ready(t).ID, b.Ready(t).ID
	meet(t, a, b, aID, bID)

	killed := time.Now()
	s.Signal(t, syscall.SIGKILL)
	s.WaitExit(t, exitTimeout)
	chatBothWays(t, a, b, aID, bID, "server gone")
	// Each checks its hold on the DHT every 5 s.
	for _, p := range []*e2e.Proc{a, b} {
		e := p.Wait(t, event.Error, e2e.Code(event.DHTLost), 10*time.Second)
		t.Logf("%s noticed the loss %v after the kill", p.Name, e.Time.Sub(killed).Round(time.Millisecond))
	}

	restarted := time.Now()
	_, server2 := startFixedServer("server2")
	if server2 != server {
		t.Fatalf("the restarted server is at %s, want %s (same port, same identity)", server2, server)
	}
	c := startPeer(t, "c", server, rendezvous)
	cID := c.Ready(t).ID

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
	for _, p := range []*e2e.Proc{a, b} {
		if e, err := p.Await(event.Info, func(e e2e.Event) bool {
			return e.Time.After(restarted) && e.Code == event.BootstrapConnected
		}, 0); err == nil {
			t.Logf("%s reconnected to the server %v after its restart", p.Name, e.Time.Sub(restarted).Round(time.Millisecond))
		}
	}

	for _, w := range []struct {
		p  *e2e.Proc
		id string
	}{{a, cID}, {b, cID}, {c, aID}, {c, bID}} {
		w.p.Wait(t, event.Joined, e2e.Peer(w.id), time.Until(deadline))
	}
	t.Logf("c met a and b %v after the server's restart", time.Since(restarted).Round(time.Millisecond))
	// c may know b from the topic first (a passes on b's announcement), and
	// a line on the topic reaches a newcomer only once GossipSub's mesh
	// takes it in (see docs/rooms.md); the chat goes over sessions, which
	// the rendezvous brings.
	for _, w := range []struct {
		p  *e2e.Proc
		id string
	}{{c, aID}, {c, bID}} {
		waitSession(t, w.p, w.id, time.Until(deadline))
	}
	chatBothWays(t, c, a, cID, aID, "newcomer")
	chatBothWays(t, c, b, cID, bID, "newcomer")
}

// TestE2EFaultStdinFile: stdin is a regular file (rendezvous-chat <
// file). The program reads its lines at once and holds them while nobody
// is there; at the end of the input it stays (-linger) until they are
// delivered to the peer waiting at the rendezvous, then exits 0. (It used
// to exit at once, reporting success, and the lines were lost.)
func TestE2EFaultStdinFile(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	const rendezvous = "fault stdin file"
	b := startPeer(t, "b", server, rendezvous)
	b.Ready(t)

	path := filepath.Join(t.TempDir(), "lines.txt")
	if err := os.WriteFile(path, []byte("line one\nline two\nline three\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	bin := e2e.StartWith(t, "bin", e2e.Options{Stdin: f}, faultPeerArgs(server, "/ip4/127.0.0.1/tcp/0", rendezvous)...)
	code := bin.WaitExit(t, 30*time.Second) // fails the test if it does not end
	t.Logf("exited after %v with status %d", time.Since(start).Round(time.Millisecond), code)
	if code != 0 {
		t.Errorf("exit status %d, want 0: the file's lines reach the peer at the rendezvous", code)
	}
	checkNoCrash(t, "bin", bin.Stderr())
	// (Lines that are not JSON events fail the test when it ends.)
	events := bin.Events()
	if len(events) == 0 || events[0].Kind != event.Ready {
		t.Fatalf("the first event is not ready")
	}
	// The input ended at once, before anyone joined: the lines were held,
	// and the program stayed (-linger) until the peer had them.
	held := 0
	for _, e := range bin.All(event.Info, e2e.Code(event.Held)) {
		held += len(e.MsgIDs)
	}
	if held != 3 {
		t.Errorf("%d lines said held, want 3", held)
	}
	bin.NoEvent(t, 0, event.Error, e2e.Code(event.Undelivered), "every line was delivered")
	id := events[0].ID
	b.Wait(t, event.Message, e2e.From(id, "line three"), eventTimeout)
	if got := messageTexts(b, id); strings.Join(got, "|") != "line one|line two|line three" {
		t.Errorf("b got %q, want the file's lines once, in order", got)
	}
}

// TestE2EFaultStdoutClosed: when whoever reads stdout goes away, the next
// write fails; the program must end by itself, not die of SIGPIPE, panic or
// hang. Its input is a pipe and the line it holds is never delivered, so
// it says so with its exit status: 3.
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
			// Read up to the end of the start-up notices: the ready event
			// and then the advertisement at the rendezvous; then close
			// stdout, as a reader that goes away does.
			var bin *e2e.Proc
			if jsonView {
				bin = e2e.Start(t, "bin", args...)
				bin.Wait(t, event.Info, e2e.Code(event.Advertising), startTimeout)
				if es := bin.Events(); es[0].Kind != event.Ready {
					t.Errorf("the first event is not ready: %+v", es[0])
				}
			} else {
				// The human view has no codes: what it shows is the words.
				bin = e2e.StartWith(t, "bin", e2e.Options{Text: true}, args...)
				bin.WaitOutput(t, "advertising at rendezvous", startTimeout)
			}
			bin.CloseStdout()

			// Nobody is here: the line is held, and the notice saying so is
			// a write to the closed stdout.
			closed := time.Now()
			if _, err := io.WriteString(bin.Stdin, "is anyone reading?\n"); err != nil {
				t.Fatalf("write stdin: %v", err)
			}
			code := bin.WaitExit(t, 5*time.Second)
			t.Logf("exited %v after stdout was closed, with status %d; stderr %q",
				time.Since(closed).Round(time.Millisecond), code, bin.Stderr())
			if code != 3 {
				t.Errorf("exit status %d (%v), want 3: a line was not delivered", code, bin.Cmd.ProcessState)
			}
			if ws, ok := bin.Cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Errorf("killed by %v", ws.Signal())
			}
			checkNoCrash(t, "bin", bin.Stderr())
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
	check := func(t *testing.T, f, other, ok *e2e.Proc, joinsAllowed int) {
		t.Helper()
		fID, otherID, okID := f.Ready(t).ID, other.Ready(t).ID, ok.Ready(t).ID
		meet(t, f, ok, fID, okID)
		meet(t, other, ok, otherID, okID)
		time.Sleep(3 * time.Second)
		// The filters are about connections: through the room's topic, the
		// two may still see each other by way of ok, which relays it ("via"
		// "topic"); they must never chat directly.
		direct := func(id string) func(e2e.Event) bool {
			return func(e e2e.Event) bool { return e.Peer == id && e.Via != event.ViaTopic }
		}
		f.NoEvent(t, 0, event.Joined, direct(otherID), "joined the filtered peer")
		// The filtered peer has no filter itself; the one that refuses it
		// must not appear to it either, let alone join and leave over and
		// over.
		if j, l := len(other.All(event.Joined, direct(fID))), len(other.All(event.Left, direct(fID))); j > joinsAllowed {
			t.Errorf("%s: the peer that refuses it (%s) joined %d times and left %d times in %v",
				other.Name, f.Name, j, l, time.Since(f.Started).Round(time.Second))
		}
	}

	t.Run("deny", func(t *testing.T) {
		t.Parallel()
		const rv = "fault filter deny"
		f := e2e.Start(t, "f", faultPeerArgs(server, lo1, rv, "-deny", "127.0.0.2/32")...)
		other := e2e.Start(t, "other@127.0.0.2", faultPeerArgs(server, lo2, rv)...)
		ok := e2e.Start(t, "ok", faultPeerArgs(server, lo1, rv)...)
		check(t, f, other, ok, 0)
	})
	t.Run("allow", func(t *testing.T) {
		t.Parallel()
		const rv = "fault filter allow"
		f := e2e.Start(t, "f", faultPeerArgs(server, lo1, rv, "-allow", "127.0.0.1/32")...)
		other := e2e.Start(t, "other@127.0.0.2", faultPeerArgs(server, lo2, rv)...)
		ok := e2e.Start(t, "ok", faultPeerArgs(server, lo1, rv)...)
		check(t, f, other, ok, 0)
	})
	t.Run("allow-peer", func(t *testing.T) {
		t.Parallel()
		const rv = "fault filter allow peer"
		ok := e2e.Start(t, "ok", faultPeerArgs(server, lo1, rv)...)
		f := e2e.Start(t, "f", faultPeerArgs(server, lo1, rv, "-allow-peer", ok.Ready(t).ID)...)
		other := e2e.Start(t, "other", faultPeerArgs(server, lo1, rv)...)
		check(t, f, other, ok, 1)
		for _, e := range other.All(event.Left, e2e.Peer(f.Ready(t).ID)) {
			if e.Code != event.LeftRefused {
				t.Errorf("other: f left with %q (%q), want %q: it reset the chat", e.Code, e.Reason, event.LeftRefused)
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
	code, stdout, stderr := e2e.Run(t, "-psk-gen", keyFile)
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
	code, stdout, stderr = e2e.Run(t, "-psk-gen", keyFile)
	if code != 1 {
		t.Errorf("second -psk-gen to the same file: exit status %d, want 1", code)
	}
	checkOneLineError(t, stdout, stderr, "exists")
	if again, _ := os.ReadFile(keyFile); !bytes.Equal(again, key) {
		t.Errorf("a second -psk-gen changed the existing key")
	}

	// Each asks for QUIC as well, which a private network cannot use.
	quicAndTCP := []string{"-listen", "/ip4/127.0.0.1/tcp/0", "-listen", "/ip4/127.0.0.1/udp/0/quic-v1"}
	s := e2e.Start(t, "server", append([]string{"-server", "-json", "-psk", keyFile}, quicAndTCP...)...)
	sr := s.Ready(t)
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
	a := e2e.Start(t, "a", peerArgs("-psk", keyFile)...)
	b := e2e.Start(t, "b", peerArgs("-psk", keyFile)...)
	aID, bID := a.Ready(t).ID, b.Ready(t).ID
	for _, p := range []*e2e.Proc{s, a, b} {
		p.Wait(t, event.Info, e2e.Code(event.PSKTCPOnly), eventTimeout)
	}
	meet(t, a, b, aID, bID)
	chatBothWays(t, a, b, aID, bID, "private")

	otherKey := filepath.Join(dir, "other.key")
	if code, _, stderr := e2e.Run(t, "-psk-gen", otherKey); code != 0 {
		t.Fatalf("-psk-gen: exit status %d: %s", code, stderr)
	}
	outsiders := []*e2e.Proc{
		e2e.Start(t, "no key", peerArgs()...),
		e2e.Start(t, "other key", peerArgs("-psk", otherKey)...),
	}
	for _, o := range outsiders {
		o.Ready(t)
	}
	for _, o := range outsiders {
		e := o.Wait(t, event.Error, e2e.Code(event.BootstrapUnreachable), 25*time.Second)
		t.Logf("%s: %s", o.Name, e.Error)
	}
	time.Sleep(2 * time.Second)
	for _, o := range outsiders {
		oID := o.All(event.Ready, nil)[0].ID
		o.NoEvent(t, 0, event.Joined, nil, "an outsider joined someone")
		o.NoEvent(t, 0, event.Info, func(e e2e.Event) bool {
			return e.Code == event.BootstrapConnected || e.Code == event.ConnectedDirectly
		}, "an outsider reached the private server")
		for _, p := range []*e2e.Proc{a, b} {
			p.NoEvent(t, 0, event.Joined, e2e.Peer(oID), "joined an outsider")
		}
	}
}

// TestE2EFaultKeyFiles: a key file that others can read, or that is not a
// key, stops the program at once with status 1 and one line on stderr.
func TestE2EFaultKeyFiles(t *testing.T) {
	t.Parallel()
	e2e.Binary(t)
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
			code, stdout, stderr := e2e.Run(t, append(slices.Clone(safe), tc.flag, tc.path)...)
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
