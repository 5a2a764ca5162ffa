//go:build linux

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

// TestE2EPrivateRoom: two peers with the same -passphrase-file and
// -rendezvous meet and chat both ways, each line once. A peer with the
// same -rendezvous and no passphrase, and one with another passphrase,
// meet neither member, either way. A peer that dials a member directly and
// speaks the plain protocol, or our framed hello and a message, is never
// shown. A member that restarts with the same passphrase rejoins, whether
// with a new peer ID or, after a crash, with the same -identity; each line
// once again.
func TestE2EPrivateRoom(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	dir := t.TempDir()
	pass, otherPass := filepath.Join(dir, "room.pass"), filepath.Join(dir, "other.pass")
	for _, f := range []string{pass, otherPass} {
		code, stdout, stderr := e2e.Run(t, "-passphrase-gen", f)
		if code != 0 || !strings.Contains(stdout, f) {
			t.Fatalf("-passphrase-gen %s: status %d, stdout %q, stderr %q", f, code, stdout, stderr)
		}
	}
	const rendezvous = "private e2e"
	a := startPeer(t, "a", server, rendezvous, "-passphrase-file", pass, "-nick", "alice")
	bKey := filepath.Join(dir, "b.key")
	b := startPeer(t, "b", server, rendezvous, "-passphrase-file", pass, "-nick", "bob", "-identity", bKey)
	ra, rb := a.Ready(t), b.Ready(t)
	if !ra.Private || !rb.Private {
		t.Errorf("the ready events do not say the room is private")
	}
	aID, bID := ra.ID, rb.ID
	meet(t, a, b, aID, bID)
	chatBothWaysOnce(t, a, b, aID, bID, "private")

	open := startPeer(t, "open", server, rendezvous)
	other := startPeer(t, "other", server, rendezvous, "-passphrase-file", otherPass)
	openID, otherID := open.Ready(t).ID, other.Ready(t).ID

	// A stranger who learned a member's address dials it directly.
	h, ai := newClient(t, ra.Addrs[0])
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	if st, err := h.NewStream(ctx, ai.ID, protocol.ID(plainProtocol)); err == nil {
		exampleWrite(t, st, "plain, let me in")
	}
	if st, err := h.NewStream(ctx, ai.ID, protocol.ID(ourProtocol)); err == nil {
		_ = st.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := wire.ExchangeHello(st, "intruder"); err == nil {
			w := wire.Framed{}.NewWriter(st)
			_ = w.Write(wire.Frame{Type: wire.TypeMsg, ID: "intruder-1", Text: "framed, let me in"})
			_ = w.Flush()
		}
	}

	// Ten seconds for the strangers to find and try the members.
	time.Sleep(10 * time.Second)
	strangers := []string{openID, otherID, h.ID().String()}
	for _, member := range []*e2e.Proc{a, b} {
		for _, s := range strangers {
			member.NoEvent(t, 0, event.Joined, e2e.Peer(s), "a stranger without the passphrase joined")
			member.NoEvent(t, 0, event.Message, e2e.Peer(s), "a stranger's line was shown")
		}
	}
	for _, s := range []*e2e.Proc{open, other} {
		for _, m := range []string{aID, bID} {
			s.NoEvent(t, 0, event.Joined, e2e.Peer(m), "a stranger joined a member")
		}
	}
	if _, ok := a.First(event.Info, e2e.Code(event.NotMember)); !ok {
		t.Errorf("a did not say that a stranger was refused")
	}

	// a leaves and comes back with the same passphrase: b sees it rejoin.
	if err := a.Stdin.Close(); err != nil {
		t.Fatal(err)
	}
	a.WaitExit(t, exitTimeout)
	b.Wait(t, event.Left, e2e.Peer(aID), eventTimeout)
	a2 := startPeer(t, "a2", server, rendezvous, "-passphrase-file", pass, "-nick", "alice")
	a2ID := a2.Ready(t).ID
	meet(t, a2, b, a2ID, bID)
	chatBothWaysOnce(t, a2, b, a2ID, bID, "again")

	// b crashes and comes back with the same identity and passphrase: the
	// same peer ID, whose sealed payloads a2 last saw under the numbers of
	// b's first run, must be taken back without a2 restarting.
	b.Signal(t, syscall.SIGKILL)
	b.WaitExit(t, exitTimeout)
	a2.Wait(t, event.Left, e2e.Peer(bID), eventTimeout)
	b2 := startPeer(t, "b2", server, rendezvous, "-passphrase-file", pass, "-nick", "bob", "-identity", bKey)
	if id := b2.Ready(t).ID; id != bID {
		t.Fatalf("b2: peer ID %s, want %s from the same identity file", id, bID)
	}
	// b's first life joined a2 once already: wait for the second.
	rejoined := func(es []e2e.Event) bool {
		n := 0
		for _, e := range es {
			if e.Kind == event.Joined && e.Peer == bID {
				n++
			}
		}
		return n >= 2
	}
	if err := a2.WaitFor(t.Context(), time.Now().Add(meetTimeout), "a2 joined the restarted b", rejoined); err != nil {
		t.Fatal(err)
	}
	b2.Wait(t, event.Joined, e2e.Peer(a2ID), meetTimeout)
	chatBothWaysOnce(t, a2, b2, a2ID, bID, "same identity")
}

// chatBothWaysOnce is chatBothWays, and then checks that neither line is
// shown twice: a private room's line goes on a session and, sealed, on the
// topic, and the copy that comes second must be recognized. The wait is
// past the time a topic copy may be held for its session copy.
func chatBothWaysOnce(t *testing.T, a, b *e2e.Proc, aID, bID, tag string) {
	t.Helper()
	chatBothWays(t, a, b, aID, bID, tag)
	time.Sleep(3 * time.Second)
	if n := b.Count(event.Message, e2e.From(aID, tag+": from "+a.Name)); n != 1 {
		t.Errorf("%s showed %s's line %d times, want once", b.Name, a.Name, n)
	}
	if n := a.Count(event.Message, e2e.From(bID, tag+": from "+b.Name)); n != 1 {
		t.Errorf("%s showed %s's line %d times, want once", a.Name, b.Name, n)
	}
}

// TestE2EPrivateTyped: -private asks for the passphrase on the terminal,
// does not echo it, and derives the same room as -passphrase-file with the
// same passphrase: the peer that typed it meets a member that read it from
// a file, and they chat.
func TestE2EPrivateTyped(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	pass := filepath.Join(t.TempDir(), "room.pass")
	if code, _, stderr := e2e.Run(t, "-passphrase-gen", pass); code != 0 {
		t.Fatalf("-passphrase-gen: status %d, stderr %q", code, stderr)
	}
	raw, err := os.ReadFile(pass)
	if err != nil {
		t.Fatal(err)
	}
	phrase, _, _ := strings.Cut(string(raw), "\n")
	const rendezvous = "private typed"
	b := startPeer(t, "b", server, rendezvous, "-passphrase-file", pass, "-nick", "bob")
	b.Ready(t)

	master, slave := e2e.OpenPTY(t)
	alice := e2e.StartWith(t, "alice", e2e.Options{Terminal: slave, Env: []string{"NO_COLOR=1", "TERM=xterm"}},
		"-mdns=false", "-peer", server, "-listen", "/ip4/127.0.0.1/tcp/0", "-rendezvous", rendezvous, "-nick", "alice", "-private")
	screenText := e2e.RecordScreen(master)

	// The prompt goes to stderr, which the harness keeps; the passphrase
	// is typed only once the program waits for it without echo.
	const prompt = "passphrase of the room (not shown): "
	deadline := time.Now().Add(eventTimeout)
	for !strings.Contains(alice.Stderr(), prompt) {
		if time.Now().After(deadline) || alice.Exited() {
			t.Fatalf("no passphrase prompt; stderr %q, screen %q", alice.Stderr(), screenText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := master.Write([]byte(phrase + "\r")); err != nil {
		t.Fatal(err)
	}

	// b sees alice join: the typed passphrase derived b's room.
	j := b.Wait(t, event.Joined, func(e e2e.Event) bool { return e.Nick == "alice" }, meetTimeout)
	deadline = time.Now().Add(eventTimeout)
	for !strings.Contains(screenText(), "bob joined") {
		if time.Now().After(deadline) {
			t.Fatalf("alice's terminal never showed bob joining:\n%q", screenText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Send(t, "typed room")
	deadline = time.Now().Add(eventTimeout)
	for !strings.Contains(screenText(), "bob: typed room") {
		if time.Now().After(deadline) {
			t.Fatalf("alice's terminal never showed bob's line:\n%q", screenText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := master.Write([]byte("from the terminal\r")); err != nil {
		t.Fatal(err)
	}
	b.Wait(t, event.Message, e2e.From(j.Peer, "from the terminal"), eventTimeout)

	// The passphrase was neither echoed to the terminal nor written to
	// stderr. Echo would show what was typed in one piece; a single word
	// is not checked, since a short one of the list may well turn up in
	// a peer ID or the help by chance.
	words := strings.Fields(phrase)
	for i := range len(words) - 1 {
		pair := words[i] + " " + words[i+1]
		if strings.Contains(screenText(), pair) || strings.Contains(alice.Stderr(), pair) {
			t.Errorf("the passphrase was shown (%q):\nscreen %q\nstderr %q", pair, screenText(), alice.Stderr())
			break
		}
	}
	if _, err := master.Write([]byte("\x04")); err != nil {
		t.Fatal(err)
	}
	if code := alice.WaitExit(t, exitTimeout); code != 0 {
		t.Errorf("exit status %d after Ctrl-D, want 0", code)
	}
	b.Wait(t, event.Left, e2e.Peer(j.Peer), eventTimeout)
}
