//go:build linux

package e2e

// End-to-end tests of the richer chat of issue 6, on the real binary:
// our own protocol between our peers, the plain protocol with go-libp2p's
// example in the same room, receipts, resending, nicknames and commands.

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// TestE2EMixedRoom: two of our peers and a peer that speaks only the plain
// /chat/1.1.0 protocol (go-libp2p's example, played by an in-test client)
// chat in one room. Our peers use our protocol between them, with
// nicknames and receipts; the plain peer gets plain lines both ways.
func TestE2EMixedRoom(t *testing.T) {
	_, server := startServer(t)
	a := startPeer(t, "a", server, "mixed room", "-nick", "alice")
	b := startPeer(t, "b", server, "mixed room", "-nick", "bob")
	aReady, bReady := a.Ready(t), b.Ready(t)
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
	toA, err := h.NewStream(ctx, aInfo.ID, plainProtocol)
	if err != nil {
		t.Fatal(err)
	}
	toB, err := h.NewStream(ctx, bInfo.ID, plainProtocol)
	if err != nil {
		t.Fatal(err)
	}
	go readLines(toA, 1, lines, done)
	go readLines(toB, 2, lines, done)
	plainID := h.ID().String()
	exampleWrite(t, toA, "hello from the plain peer")
	exampleWrite(t, toB, "hello from the plain peer")
	for _, p := range []*e2e.Proc{a, b} {
		j := p.Wait(t, event.Joined, e2e.Peer(plainID), eventTimeout)
		if j.Protocol != plainProtocol || !j.Plain || j.Nick != "" || j.MsgID != "" {
			t.Errorf("%s: the plain peer joined with %+v, want %s and no nickname", p.Name, j, plainProtocol)
		}
		m := p.Wait(t, event.Message, e2e.From(plainID, "hello from the plain peer"), eventTimeout)
		if m.MsgID != "" || m.Name != event.ShortIDString(plainID) {
			t.Errorf("%s: the plain peer's line came as %+v, want no ID and its short peer ID as name", p.Name, m)
		}
	}

	// alice to the room: bob gets it with a message ID and her nickname, the
	// plain peer as a plain line; alice hears bob acknowledged it, and that
	// the plain peer cannot.
	a.Send(t, "hello from alice")
	m := b.Wait(t, event.Message, e2e.From(aID, "hello from alice"), eventTimeout)
	if m.MsgID == "" || m.Nick != "alice" {
		t.Errorf("b: alice's line came as %+v, want a message ID and nick alice", m)
	}
	if l := nextStreamLine(t, lines); l.stream != 1 || l.line != "hello from alice\n" {
		t.Errorf("plain peer: read %+v, want alice's line on its stream to her", l)
	}
	d := a.Wait(t, event.Delivered, func(e e2e.Event) bool { return slices.Contains(e.MsgIDs, m.MsgID) }, eventTimeout)
	if !slices.Equal(d.Peers, []string{bID}) || !slices.Equal(d.NoReceipt, []string{plainID}) {
		t.Errorf("a: delivered %+v, want acknowledged by bob, no receipt from the plain peer", d)
	}

	// bob to the room, then a private line from alice to bob only, a line
	// that starts with "/", and a mistyped command that must not be sent.
	b.Send(t, "hello from bob")
	a.Wait(t, event.Message, e2e.From(bID, "hello from bob"), eventTimeout)
	if l := nextStreamLine(t, lines); l.stream != 2 || l.line != "hello from bob\n" {
		t.Errorf("plain peer: read %+v, want bob's line", l)
	}
	a.Send(t, "/msg bob only for you")
	a.Send(t, "/mgs bob typo")
	a.Send(t, "//etc/hosts is a file")
	p := b.Wait(t, event.Message, e2e.From(aID, "only for you"), eventTimeout)
	if !p.Private {
		t.Errorf("b: the /msg line is not marked private: %+v", p)
	}
	a.Wait(t, event.Error, e2e.Code(event.UnknownCommand, func(e e2e.Event) bool { return e.Command == "/mgs" }), eventTimeout)
	b.Wait(t, event.Message, e2e.From(aID, "/etc/hosts is a file"), eventTimeout)
	if l := nextStreamLine(t, lines); l.stream != 1 || l.line != "/etc/hosts is a file\n" {
		t.Errorf("plain peer: read %+v, want the // line and neither the private line nor the typo", l)
	}
	if got := messageTexts(b, aID); !slices.Equal(got, []string{"hello from alice", "only for you", "/etc/hosts is a file"}) {
		t.Errorf("b got %q from alice", got)
	}

	// /peers lists the room with protocols; /nick is announced; /quit leaves.
	a.Send(t, "/peers")
	peers := a.Wait(t, event.Peers, nil, eventTimeout)
	protocols := map[string]string{}
	for _, p := range peers.Room {
		protocols[p.Name] = p.Protocol
	}
	if protocols["bob"] != ourProtocol || protocols[event.ShortIDString(plainID)] != plainProtocol || len(peers.Room) != 2 {
		t.Errorf("/peers: %+v", peers.Room)
	}
	a.Send(t, "/nick alicia")
	b.Wait(t, event.Nick, func(e e2e.Event) bool { return e.Peer == aID && e.Name == "alicia" && e.Was == "alice" }, eventTimeout)
	a.Send(t, "/quit")
	if code := a.WaitExit(t, exitTimeout); code != 0 {
		t.Errorf("a: exit status %d after /quit, want 0", code)
	}
	b.Wait(t, event.Left, e2e.Peer(aID), eventTimeout)
}

// TestE2EResendAfterBriefDisconnect: a line sent while the receiver is
// briefly gone (frozen with SIGSTOP, like a cut network) arrives exactly
// once after it comes back, and the sender hears that it was delivered.
func TestE2EResendAfterBriefDisconnect(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	a := startPeer(t, "a", server, "resend", "-nick", "alice")
	b := startPeer(t, "b", server, "resend", "-nick", "bob")
	t.Cleanup(func() { _ = b.Cmd.Process.Signal(syscall.SIGCONT) })
	aID, bID := a.Ready(t).ID, b.Ready(t).ID
	meet(t, a, b, aID, bID)
	chatBothWays(t, a, b, aID, bID, "before")

	b.Signal(t, syscall.SIGSTOP)
	// kill returns before the process has stopped: a line sent at once may
	// still be read and acknowledged.
	b.WaitStopped(t)
	a.Send(t, "sent while you were away")
	sent := a.Wait(t, event.Sent, e2e.Text("sent while you were away"), eventTimeout)
	left := a.Wait(t, event.Left, e2e.Peer(bID), 15*time.Second)
	a.Wait(t, event.Info, e2e.Code(event.UnackedOnLeave, func(e e2e.Event) bool { return e.Peer == bID && e.Name == "bob" }), eventTimeout)
	b.Signal(t, syscall.SIGCONT)

	a.Wait(t, event.Joined, func(e e2e.Event) bool { return e.Peer == bID && e.Time.After(left.Time) }, 30*time.Second)
	d := a.Wait(t, event.Delivered, func(e e2e.Event) bool { return slices.Contains(e.MsgIDs, sent.MsgIDs[0]) }, 30*time.Second)
	if !slices.Equal(d.Peers, []string{bID}) {
		t.Errorf("a: delivered %+v, want bob", d)
	}
	chatBothWays(t, a, b, aID, bID, "after")
	var got []string
	for _, e := range b.All(event.Message, e2e.Peer(aID)) {
		if e.Text == "sent while you were away" {
			got = append(got, e.MsgID)
		}
	}
	if len(got) != 1 || got[0] != sent.MsgIDs[0] {
		t.Errorf("b: the line sent while away arrived %d times (IDs %q), want once as %s", len(got), got, sent.MsgIDs[0])
	}
	a.NoEvent(t, 0, event.Error, func(e e2e.Event) bool {
		return slices.Contains([]event.Code{event.NotDelivered, event.HeldUndelivered, event.LinesLost, event.DirectFailed}, e.Code)
	}, "the line was delivered")
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
