package main

// End-to-end tests of the richer chat of issue 6, on the real binary:
// our own protocol between our peers, the plain protocol with go-libp2p's
// example in the same room, receipts, resending, nicknames and commands.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestE2EMixedRoom: two of our peers and a peer that speaks only the plain
// /chat/1.1.0 protocol (go-libp2p's example, played by an in-test client)
// chat in one room. Our peers use our protocol between them, with
// nicknames and receipts; the plain peer gets plain lines both ways.
func TestE2EMixedRoom(t *testing.T) {
	_, server := startServer(t)
	a := startPeer(t, "a", server, "mixed room", "-nick", "alice")
	b := startPeer(t, "b", server, "mixed room", "-nick", "bob")
	aReady, bReady := a.ready(t), b.ready(t)
	aID, bID := aReady.ID, bReady.ID
	ja, jb := meet(t, a, b, aID, bID)
	if ja.Nick != "bob" || ja.Name != "bob" || jb.Nick != "alice" || jb.Name != "alice" {
		t.Errorf("joined events name %q/%q and %q/%q, want bob and alice", ja.Nick, ja.Name, jb.Nick, jb.Name)
	}

	// The plain peer opens a /chat/1.1.0 stream to each, as the example does
	// to every peer it finds, and writes each line to all of its streams.
	h, aInfo := newClient(t, aReady.Addrs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	bInfo, err := peer.AddrInfoFromString(bReady.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, *bInfo); err != nil {
		t.Fatal(err)
	}
	lines := make(chan streamLine, 64)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	toA, err := h.NewStream(ctx, aInfo.ID, defaultProtocol)
	if err != nil {
		t.Fatal(err)
	}
	toB, err := h.NewStream(ctx, bInfo.ID, defaultProtocol)
	if err != nil {
		t.Fatal(err)
	}
	go readLines(toA, 1, lines, done)
	go readLines(toB, 2, lines, done)
	plainID := h.ID().String()
	exampleWrite(t, toA, "hello from the plain peer")
	exampleWrite(t, toB, "hello from the plain peer")
	for _, p := range []*proc{a, b} {
		j := p.waitEvent(t, EventJoined, byPeer(plainID), eventTimeout)
		if j.Protocol != defaultProtocol || j.Nick != "" || j.MsgID != "" {
			t.Errorf("%s: the plain peer joined with %+v, want %s and no nickname", p.name, j, defaultProtocol)
		}
		m := p.waitEvent(t, EventMessage, msgFrom(plainID, "hello from the plain peer"), eventTimeout)
		if m.MsgID != "" || m.Name != shortIDString(plainID) {
			t.Errorf("%s: the plain peer's line came as %+v, want no ID and its short peer ID as name", p.name, m)
		}
	}

	// alice to the room: bob gets it with a message ID and her nickname, the
	// plain peer as a plain line; alice hears bob acknowledged it, and that
	// the plain peer cannot.
	a.send(t, "hello from alice")
	m := b.waitEvent(t, EventMessage, msgFrom(aID, "hello from alice"), eventTimeout)
	if m.MsgID == "" || m.Nick != "alice" {
		t.Errorf("b: alice's line came as %+v, want a message ID and nick alice", m)
	}
	if l := nextStreamLine(t, lines); l.stream != 1 || l.line != "hello from alice\n" {
		t.Errorf("plain peer: read %+v, want alice's line on its stream to her", l)
	}
	d := a.waitEvent(t, EventDelivered, func(e Event) bool { return slices.Contains(e.MsgIDs, m.MsgID) }, eventTimeout)
	if !slices.Equal(d.Peers, []string{bID}) || !slices.Equal(d.NoReceipt, []string{plainID}) {
		t.Errorf("a: delivered %+v, want acknowledged by bob, no receipt from the plain peer", d)
	}

	// bob to the room, then a private line from alice to bob only, a line
	// that starts with "/", and a mistyped command that must not be sent.
	b.send(t, "hello from bob")
	a.waitEvent(t, EventMessage, msgFrom(bID, "hello from bob"), eventTimeout)
	if l := nextStreamLine(t, lines); l.stream != 2 || l.line != "hello from bob\n" {
		t.Errorf("plain peer: read %+v, want bob's line", l)
	}
	a.send(t, "/msg bob only for you")
	a.send(t, "/mgs bob typo")
	a.send(t, "//etc/hosts is a file")
	p := b.waitEvent(t, EventMessage, msgFrom(aID, "only for you"), eventTimeout)
	if !p.Private {
		t.Errorf("b: the /msg line is not marked private: %+v", p)
	}
	a.waitEvent(t, EventError, errorContains("unknown command /mgs"), eventTimeout)
	b.waitEvent(t, EventMessage, msgFrom(aID, "/etc/hosts is a file"), eventTimeout)
	if l := nextStreamLine(t, lines); l.stream != 1 || l.line != "/etc/hosts is a file\n" {
		t.Errorf("plain peer: read %+v, want the // line and neither the private line nor the typo", l)
	}
	if got := messageTexts(b, aID); !slices.Equal(got, []string{"hello from alice", "only for you", "/etc/hosts is a file"}) {
		t.Errorf("b got %q from alice", got)
	}

	// /peers lists the room with protocols; /nick is announced; /quit leaves.
	a.send(t, "/peers")
	peers := a.waitEvent(t, EventPeers, nil, eventTimeout)
	protocols := map[string]string{}
	for _, p := range peers.Room {
		protocols[p.Name] = p.Protocol
	}
	if protocols["bob"] != string(chatProtocol) || protocols[shortIDString(plainID)] != defaultProtocol || len(peers.Room) != 2 {
		t.Errorf("/peers: %+v", peers.Room)
	}
	a.send(t, "/nick alicia")
	b.waitEvent(t, EventNick, func(e Event) bool { return e.Peer == aID && e.Name == "alicia" && e.Was == "alice" }, eventTimeout)
	a.send(t, "/quit")
	if code := a.waitExit(t, exitTimeout); code != 0 {
		t.Errorf("a: exit status %d after /quit, want 0", code)
	}
	b.waitEvent(t, EventLeft, byPeer(aID), eventTimeout)
}

// TestE2EResendAfterBriefDisconnect: a line sent while the receiver is
// briefly gone (frozen with SIGSTOP, like a cut network) arrives exactly
// once after it comes back, and the sender hears that it was delivered.
func TestE2EResendAfterBriefDisconnect(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	a := startPeer(t, "a", server, "resend", "-nick", "alice")
	b := startPeer(t, "b", server, "resend", "-nick", "bob")
	t.Cleanup(func() { _ = b.cmd.Process.Signal(syscall.SIGCONT) })
	aID, bID := a.ready(t).ID, b.ready(t).ID
	meet(t, a, b, aID, bID)
	chatBothWays(t, a, b, aID, bID, "before")

	b.signal(t, syscall.SIGSTOP)
	// kill returns before the process has stopped: a line sent at once may
	// still be read and acknowledged.
	waitStopped(t, b.cmd.Process.Pid)
	a.send(t, "sent while you were away")
	sent := a.waitEvent(t, EventSent, func(e Event) bool { return e.Text == "sent while you were away" }, eventTimeout)
	left := a.waitEvent(t, EventLeft, byPeer(bID), 15*time.Second)
	a.waitEvent(t, EventInfo, func(e Event) bool { return strings.Contains(e.Text, "sent again if bob is back") }, eventTimeout)
	b.signal(t, syscall.SIGCONT)

	a.waitEvent(t, EventJoined, func(e Event) bool { return e.Peer == bID && e.Time.After(left.Time) }, 30*time.Second)
	d := a.waitEvent(t, EventDelivered, func(e Event) bool { return slices.Contains(e.MsgIDs, sent.MsgIDs[0]) }, 30*time.Second)
	if !slices.Equal(d.Peers, []string{bID}) {
		t.Errorf("a: delivered %+v, want bob", d)
	}
	chatBothWays(t, a, b, aID, bID, "after")
	var got []string
	for _, e := range b.all(EventMessage, byPeer(aID)) {
		if e.Text == "sent while you were away" {
			got = append(got, e.MsgID)
		}
	}
	if len(got) != 1 || got[0] != sent.MsgIDs[0] {
		t.Errorf("b: the line sent while away arrived %d times (IDs %q), want once as %s", len(got), got, sent.MsgIDs[0])
	}
	noEvents(t, a, EventError, func(e Event) bool { return strings.Contains(e.Error, "not delivered") }, "the line was delivered")
}

// waitStopped waits until the process pid is stopped (state T in
// /proc/pid/stat), after a SIGSTOP.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Skipf("cannot read the process state: %v", err)
		}
		// The state follows the command name in parentheses, which may
		// contain spaces: "pid (comm) S ...".
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && (stat[i+2] == 'T' || stat[i+2] == 't') {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("process %d not stopped 5 s after SIGSTOP", pid)
}

// nextStreamLine returns the next line an in-test plain client read.
func nextStreamLine(t *testing.T, lines <-chan streamLine) streamLine {
	t.Helper()
	select {
	case l := <-lines:
		return l
	case <-time.After(eventTimeout):
		t.Fatalf("plain client: no line from the binary within %v", eventTimeout)
		return streamLine{}
	}
}

// shortIDString is shortID for a peer ID in its text form.
func shortIDString(id string) string {
	if len(id) <= 8 {
		return id
	}
	return id[len(id)-8:]
}
