//go:build linux

package e2e

// End-to-end tests: they build the real binary, start it as separate
// processes on loopback and talk to it only through its command line, stdin,
// stdout (JSON events), stderr, signals and exit status. The harness that
// runs the processes is internal/e2e.
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
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
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

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/room"
)

// TestMain runs the tests, or, when the test binary is started again as
// TestE2EWebRTCDirect's WebRTC-direct peer, that peer.
func TestMain(m *testing.M) {
	if url := os.Getenv(webrtcPeerEnv); url != "" {
		os.Exit(webrtcPeerMain(url))
	}
	e2e.Main(m)
}

const (
	// startTimeout, meetTimeout, eventTimeout and exitTimeout: see
	// internal/e2e.
	startTimeout = e2e.StartTimeout
	meetTimeout  = e2e.MeetTimeout
	eventTimeout = e2e.EventTimeout
	exitTimeout  = e2e.ExitTimeout

	// ourProtocol is our own framed chat protocol, which our peers speak
	// with each other.
	ourProtocol = string(room.Protocol)
	// plainProtocol is the plain chat protocol, -pid's default: go-libp2p's
	// chat example speaks it.
	plainProtocol = "/chat/1.1.0"
	// maxChatStreamsPerPeer is how many chat streams the resource manager
	// lets one peer open at once (internal/node's maxChatStreamsPerPeer).
	maxChatStreamsPerPeer = 2
)

// startServer starts a bootstrap server on loopback and returns it with the
// full address that peers pass to -peer.
func startServer(t *testing.T) (*e2e.Proc, string) {
	t.Helper()
	s := e2e.Start(t, "server", "-server", "-json", "-listen", "/ip4/127.0.0.1/tcp/0")
	r := s.Ready(t)
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
func startPeer(t *testing.T, name, server, rendezvous string, extra ...string) *e2e.Proc {
	t.Helper()
	args := append([]string{"-json", "-mdns=false", "-peer", server,
		"-listen", "/ip4/127.0.0.1/tcp/0", "-rendezvous", rendezvous}, extra...)
	return e2e.Start(t, name, args...)
}

// meet waits until a and b have joined each other and checks the joined
// events. The directions are not checked: usually one side dials and the
// other accepts, but when both dial at once each may keep its own outbound
// stream, and both then say "outbound" (see Room.attach).
func meet(t *testing.T, a, b *e2e.Proc, aID, bID string) (e2e.Event, e2e.Event) {
	t.Helper()
	ja := a.Wait(t, event.Joined, e2e.Peer(bID), meetTimeout)
	jb := b.Wait(t, event.Joined, e2e.Peer(aID), meetTimeout)
	for _, j := range []e2e.Event{ja, jb} {
		if j.Protocol != ourProtocol || j.Plain || j.Addr == "" || (j.Direction != "inbound" && j.Direction != "outbound") {
			t.Errorf("joined event with unexpected protocol, address or direction: %+v", j)
		}
	}
	return ja, jb
}

// waitSession waits until p has a chat session with the peer id: a joined
// event over a stream, or, for a peer that joined on the topic first, the
// connected_directly that follows.
func waitSession(t *testing.T, p *e2e.Proc, id string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, e := range p.All(event.Joined, e2e.Peer(id)) {
			if e.Via == "" {
				return
			}
		}
		if len(p.All(event.Info, e2e.Code(event.ConnectedDirectly, e2e.Peer(id)))) > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s has no session with %s after %v", p.Name, id, timeout)
}

// messageTexts returns the texts of the messages p received from peer, in order.
func messageTexts(p *e2e.Proc, from string) []string {
	var s []string
	for _, e := range p.All(event.Message, e2e.Peer(from)) {
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
	aID, bID := a.Ready(t).ID, b.Ready(t).ID
	meet(t, a, b, aID, bID)

	// Text with spaces, tabs, non-ASCII and JSON-special characters must
	// come out of the other side's JSON exactly as it went in.
	lineA := `hello from a: "quotes", <tags> & tabs	and ünïcödé ✓`
	lineB := "hello from b \\ backslash"
	a.Send(t, lineA)
	b.Send(t, lineB)
	b.Wait(t, event.Message, e2e.From(aID, lineA), eventTimeout)
	a.Wait(t, event.Message, e2e.From(bID, lineB), eventTimeout)

	// One-way latency: the time from writing a line to a's stdin until b
	// emits it (b's event timestamp; both run on this machine's clock).
	var lat []time.Duration
	for i := range 20 {
		line := fmt.Sprintf("ping %d", i)
		sent := time.Now()
		a.Send(t, line)
		e := b.Wait(t, event.Message, e2e.From(aID, line), eventTimeout)
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
	if _, err := io.WriteString(b.Stdin, burst.String()); err != nil {
		t.Fatal(err)
	}
	a.Wait(t, event.Message, e2e.From(bID, want[len(want)-1]), eventTimeout)
	got := messageTexts(a, bID)[1:] // after lineB
	if !slices.Equal(got, want) {
		t.Errorf("a received the burst as %d lines %q..., want %d lines in order", len(got), got[:min(5, len(got))], len(want))
	}
	if n := len(a.All(event.Joined, nil)) + len(b.All(event.Joined, nil)); n != 2 {
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
			aID, bID := a.Ready(t).ID, b.Ready(t).ID
			ja, jb := meet(t, a, b, aID, bID)
			// From the second peer's start to the later joined event.
			times = append(times, later(ja.Time, jb.Time).Sub(b.Started))

			// Close both; each must end cleanly, having joined exactly once
			// (two streams opened at once must not make two sessions).
			_ = a.Stdin.Close()
			_ = b.Stdin.Close()
			for _, p := range []*e2e.Proc{a, b} {
				if code := p.WaitExit(t, exitTimeout); code != 0 {
					t.Errorf("%s: exit status %d after end of input, want 0", p.Name, code)
				}
				if n := len(p.All(event.Joined, nil)); n != 1 {
					t.Errorf("%s: %d joined events, want 1", p.Name, n)
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
	aID, bID := a.Ready(t).ID, b.Ready(t).ID
	meet(t, a, b, aID, bID)

	killed := time.Now()
	b.Signal(t, syscall.SIGKILL)
	left := a.Wait(t, event.Left, e2e.Peer(bID), 5*time.Second)
	t.Logf("a reported b left %v after SIGKILL: %q", left.Time.Sub(killed), left.Reason)

	// With nobody in the room, a holds a line for the next peer to join.
	a.Send(t, "is anyone there?")
	a.Wait(t, event.Info, e2e.Code(event.Held, func(e e2e.Event) bool { return len(e.MsgIDs) == 1 }), eventTimeout)

	c := startPeer(t, "c", server, "kill nine")
	cID := c.Ready(t).ID
	meet(t, a, c, aID, cID)
	c.Wait(t, event.Message, e2e.From(aID, "is anyone there?"), eventTimeout)
	a.Send(t, "welcome, c")
	c.Wait(t, event.Message, e2e.From(aID, "welcome, c"), eventTimeout)
	c.Send(t, "thanks, a")
	a.Wait(t, event.Message, e2e.From(cID, "thanks, a"), eventTimeout)

	if n := len(a.All(event.Left, nil)); n != 1 {
		t.Errorf("a: %d left events, want 1 (for b only)", n)
	}
}

// TestE2EEndOfInput: closing stdin is how a script ends a chat. The program
// must deliver the last line, exit 0, and the other side must see it leave.
func TestE2EEndOfInput(t *testing.T) {
	_, server := startServer(t)
	a := startPeer(t, "a", server, "end of input")
	b := startPeer(t, "b", server, "end of input")
	aID, bID := a.Ready(t).ID, b.Ready(t).ID
	meet(t, a, b, aID, bID)

	a.Send(t, "first of two")
	a.Send(t, "last words")
	if err := a.Stdin.Close(); err != nil {
		t.Fatal(err)
	}
	if code := a.WaitExit(t, exitTimeout); code != 0 {
		t.Errorf("a: exit status %d after end of input, want 0", code)
	}
	b.Wait(t, event.Message, e2e.From(aID, "last words"), eventTimeout)
	left := b.Wait(t, event.Left, e2e.Peer(aID), eventTimeout)
	if left.Code != event.LeftClosed {
		t.Errorf("b: a left with %q (%q), want %q", left.Code, left.Reason, event.LeftClosed)
	}
	if got := messageTexts(b, aID); !slices.Equal(got, []string{"first of two", "last words"}) {
		t.Errorf("b received %q, want both lines in order", got)
	}
	if es := a.All(event.Error, nil); len(es) > 0 {
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
			aID, bID := a.Ready(t).ID, b.Ready(t).ID
			meet(t, a, b, aID, bID)
			if _, err := io.WriteString(a.Stdin, burst.String()); err != nil {
				t.Fatal(err)
			}
			_ = a.Stdin.Close()
			if code := a.WaitExit(t, exitTimeout); code != 0 {
				t.Errorf("a: exit status %d after end of input, want 0", code)
			}
			left := b.Wait(t, event.Left, e2e.Peer(aID), eventTimeout)
			_ = b.Stdin.Close()
			b.WaitExit(t, exitTimeout)
			got := messageTexts(b, aID)
			if len(got) != n {
				t.Errorf("attempt %d: b received %d of %d lines (a reported %d errors), and a left with %q",
					attempt, len(got), n, len(a.All(event.Error, nil)), left.Reason)
				return
			}
			if left.Code != event.LeftClosed {
				t.Errorf("attempt %d: a left with %q (%q), want %q", attempt, left.Code, left.Reason, event.LeftClosed)
				return
			}
		}
	})

	// Alone, a line written just before the end cannot be delivered: the
	// program waits -linger for someone to join, says which line was not
	// delivered, and exits 3.
	t.Run("alone", func(t *testing.T) {
		c := startPeer(t, "c", server, "end of input, alone", "-linger", "1s")
		c.Ready(t)
		c.Send(t, "nobody hears this")
		_ = c.Stdin.Close()
		if code := c.WaitExit(t, exitTimeout); code != 3 {
			t.Errorf("c: exit status %d after end of input with a line not delivered, want 3", code)
		}
		if len(c.All(event.Error, e2e.Code(event.HeldUndelivered, func(e e2e.Event) bool { return e.Count == 1 }))) != 1 {
			t.Errorf("c: no error event saying the held line was not delivered")
		}
		if len(c.All(event.Error, e2e.Code(event.Undelivered, func(e e2e.Event) bool { return e.Count == 1 }))) != 1 {
			t.Errorf("c: no undelivered event for the line")
		}
	})
}

// TestE2ESignals: SIGTERM and SIGINT end a peer and a server with status 0,
// and a peer that ends by signal still says goodbye to the others.
func TestE2ESignals(t *testing.T) {
	s, server := startServer(t)
	a := startPeer(t, "a", server, "signals")
	b := startPeer(t, "b", server, "signals")
	aID, bID := a.Ready(t).ID, b.Ready(t).ID
	meet(t, a, b, aID, bID)
	// A line each way first, so that the connection has settled: what is
	// tested here is the signal, not a departure moments after joining,
	// which TestE2EEndOfInput covers.
	a.Send(t, "from a")
	b.Wait(t, event.Message, e2e.From(aID, "from a"), eventTimeout)
	b.Send(t, "from b")
	a.Wait(t, event.Message, e2e.From(bID, "from b"), eventTimeout)

	a.Signal(t, syscall.SIGTERM)
	if code := a.WaitExit(t, exitTimeout); code != 0 {
		t.Errorf("a: exit status %d after SIGTERM, want 0", code)
	}
	left := b.Wait(t, event.Left, e2e.Peer(aID), eventTimeout)
	if left.Code != event.LeftClosed {
		t.Errorf("b: a left with %q (%q), want %q", left.Code, left.Reason, event.LeftClosed)
	}

	b.Signal(t, syscall.SIGINT)
	if code := b.WaitExit(t, exitTimeout); code != 0 {
		t.Errorf("b: exit status %d after SIGINT, want 0", code)
	}

	s.Signal(t, syscall.SIGTERM)
	if code := s.WaitExit(t, exitTimeout); code != 0 {
		t.Errorf("server: exit status %d after SIGTERM, want 0", code)
	}
	for _, p := range []*e2e.Proc{a, b, s} {
		if strings.TrimSpace(p.Stderr()) != "" {
			t.Errorf("%s: stderr is not empty after a clean exit:\n%s", p.Name, p.Stderr())
		}
	}
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

// programFlags returns the names of the flags the program defines: the
// name given to each fs.StringVar, fs.Var, fs.Func ... in newFlagSet in
// the program's flags.go. (The program is package main, which a test
// elsewhere cannot import.)
func programFlags(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../flags.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Name.Name != "newFlagSet" {
			continue
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "fs" {
				return true
			}
			switch sel.Sel.Name {
			case "Var", "Func", "BoolFunc", "TextVar", "StringVar", "BoolVar", "IntVar", "Int64Var",
				"UintVar", "Uint64Var", "Float64Var", "DurationVar", "String", "Bool", "Int", "Int64",
				"Uint", "Uint64", "Float64", "Duration":
			default:
				return true
			}
			for _, arg := range call.Args { // the name is the first string literal
				if lit, ok := arg.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					name, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					names = append(names, name)
					break
				}
			}
			return true
		})
	}
	if len(names) < 10 {
		t.Fatalf("found only %d flags (%q) in newFlagSet in ../flags.go: has it moved?", len(names), names)
	}
	return names
}

// TestE2ECommandLine: a bad command line is refused at once with status 2
// and one line on stderr naming the bad value; -h and -version succeed.
func TestE2ECommandLine(t *testing.T) {
	e2e.Binary(t)
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
			code, stdout, stderr := e2e.Run(t, tc.args...)
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
			code, stdout, stderr := e2e.Run(t, "-json", "-mdns=false", "-peer", loopPeer, "-listen", listen)
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
		first := e2e.Start(t, "first", "-server", "-json", "-listen", listen)
		first.Ready(t)
		second := e2e.Start(t, "second", "-server", "-json", "-listen", listen)
		// Whichever comes first tells: an event (ready), or the end of the
		// process.
		err = second.WaitFor(t.Context(), time.Now().Add(exitTimeout), "an event",
			func(es []e2e.Event) bool { return len(es) > 0 })
		switch {
		case err == nil:
			t.Errorf("a second instance started on TCP port %d, which the first one listens on; it should exit 1 (address already in use)", port)
		case second.Exited():
			if code := second.Cmd.ProcessState.ExitCode(); code != 1 {
				t.Errorf("second instance: exit status %d, want 1", code)
			}
			checkOneLineError(t, "", second.Stderr(), "address already in use")
		default:
			t.Fatalf("second instance: neither ready nor ended within %v: %v", exitTimeout, err)
		}
	})

	t.Run("help", func(t *testing.T) {
		code, stdout, stderr := e2e.Run(t, "-h")
		if code != 0 || stderr != "" {
			t.Errorf("-h: exit status %d and stderr %q, want 0 and nothing", code, stderr)
		}
		// Every flag the program defines must be in the usage text.
		for _, name := range programFlags(t) {
			if !strings.Contains(stdout, "\n  -"+name+" ") && !strings.Contains(stdout, "\n  -"+name+"\n") {
				t.Errorf("-h: usage does not list -%s:\n%s", name, stdout)
			}
		}
	})

	t.Run("version", func(t *testing.T) {
		code, stdout, stderr := e2e.Run(t, "-version")
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
	r := bin.Ready(t)

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

	s1, err := h.NewStream(ctx, ai.ID, plainProtocol)
	if err != nil {
		t.Fatalf("client: open a chat stream: %v", err)
	}
	go readLines(s1, 1, lines, done)
	write(t, s1, "hello")
	clientID := h.ID().String()
	j := bin.Wait(t, event.Joined, e2e.Peer(clientID), eventTimeout)
	if j.Direction != "inbound" || j.Protocol != plainProtocol || !j.Plain {
		t.Errorf("bin: joined event %+v, want inbound on %s, plain", j, plainProtocol)
	}
	bin.Wait(t, event.Message, e2e.From(clientID, "hello"), eventTimeout)

	bin.Send(t, "hello, example")
	if l := nextLine(t); l.stream != 1 || l.line != "hello, example\n" {
		t.Errorf("client: read %+v, want \"hello, example\\n\" on stream 1", l)
	}

	// The example opens a stream to every peer it finds, so it may have a
	// second one with us, and splits its lines between them. Lines on either
	// must arrive, and ours must not be duplicated.
	s2, err := h.NewStream(ctx, ai.ID, plainProtocol)
	if err != nil {
		t.Fatalf("client: open a second chat stream: %v", err)
	}
	go readLines(s2, 2, lines, done)
	write(t, s2, "on the second stream")
	bin.Wait(t, event.Message, e2e.From(clientID, "on the second stream"), eventTimeout)
	write(t, s1, "back on the first")
	bin.Wait(t, event.Message, e2e.From(clientID, "back on the first"), eventTimeout)
	bin.Send(t, "after the second stream")
	bin.Send(t, "sentinel")
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
	bin.Wait(t, event.Message, e2e.From(clientID, "still here"), eventTimeout)
	bin.Send(t, "so am I")
	if l := nextLine(t); l.line != "so am I\n" {
		t.Errorf("client: read %+v, want \"so am I\\n\"", l)
	}

	want := []string{"hello", "on the second stream", "back on the first", "still here"}
	if got := messageTexts(bin, clientID); !slices.Equal(got, want) {
		t.Errorf("bin: messages %q, want %q (each once, no empty ones)", got, want)
	}
	if n := len(bin.All(event.Joined, nil)); n != 1 {
		t.Errorf("bin: %d joined events, want 1: a second stream is not a second peer", n)
	}
	if es := bin.All(event.Left, nil); len(es) > 0 {
		t.Errorf("bin: unexpected left events: %+v", es)
	}

	// When the binary's input ends, it closes the stream cleanly: the
	// example's reader sees the end of the stream, not a reset.
	_ = bin.Stdin.Close()
	if code := bin.WaitExit(t, exitTimeout); code != 0 {
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
			addr := bin.Ready(t).Addrs[0]
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
			primary, err := h1.NewStream(ctx, ai.ID, plainProtocol)
			if err != nil {
				t.Fatal(err)
			}
			exampleWrite(t, primary, "on the primary")
			bin.Wait(t, event.Message, e2e.From(clientID, "on the primary"), eventTimeout)
			extra, err := h2.NewStream(ctx, ai.ID, plainProtocol)
			if err != nil {
				t.Fatal(err)
			}
			exampleWrite(t, extra, "on the extra")
			bin.Wait(t, event.Message, e2e.From(clientID, "on the extra"), eventTimeout)
			if n := len(bin.All(event.Joined, nil)); n != 1 {
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
			bin.Wait(t, event.Left, e2e.Peer(clientID), eventTimeout)
			_ = bin.Stdin.Close()
			if code := bin.WaitExit(t, exitTimeout); code != 0 {
				t.Errorf("bin: exit status %d after end of input, want 0", code)
			}
			got, afterLeft, left := 0, 0, false
			for _, e := range bin.Events() {
				switch {
				case e.Kind == event.Left && e.Peer == clientID:
					left = true
				case e.Kind == event.Message && e.Peer == clientID && strings.HasPrefix(e.Text, "last line "):
					got++
					if left {
						afterLeft++
					}
				}
			}
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
	h, ai := newClient(t, bin.Ready(t).Addrs[0])
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
				st, err := h.NewStream(ctx, ai.ID, plainProtocol)
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
			bin.Wait(t, event.Message, e2e.From(clientID, fmt.Sprintf("round %d stream %d", round, i)), eventTimeout)
		}
		// Closing every stream ends the session; the next round makes a new one.
		for _, st := range streams {
			_ = st.Close()
		}
		bin.Wait(t, event.Left, e2e.Peer(clientID), eventTimeout)
	}
	if j, l := len(bin.All(event.Joined, nil)), len(bin.All(event.Left, nil)); j != rounds || l != rounds {
		t.Errorf("bin: %d joined and %d left events, want %d of each: one session per round", j, l, rounds)
	}
}

// chatBothWays checks that a line crosses from a to b and one from b to a.
func chatBothWays(t *testing.T, a, b *e2e.Proc, aID, bID, tag string) {
	t.Helper()
	a.Send(t, tag+": from "+a.Name)
	b.Wait(t, event.Message, e2e.From(aID, tag+": from "+a.Name), eventTimeout)
	b.Send(t, tag+": from "+b.Name)
	a.Wait(t, event.Message, e2e.From(bID, tag+": from "+b.Name), eventTimeout)
}

// leaveByEndOfInput closes a's stdin and checks that a exits with status 0
// and that b sees it leave.
func leaveByEndOfInput(t *testing.T, a, b *e2e.Proc, aID string) {
	t.Helper()
	_ = a.Stdin.Close()
	if code := a.WaitExit(t, exitTimeout); code != 0 {
		t.Errorf("%s: exit status %d after end of input, want 0", a.Name, code)
	}
	b.Wait(t, event.Left, e2e.Peer(aID), eventTimeout)
}
