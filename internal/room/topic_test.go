package room

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event/eventtest"
	"github.com/rendezvous-chat/rendezvous-chat/internal/gossiproom"
)

// TestNoGhostOfAPeerThatVanished: a peer that announced itself, opened its
// session and vanished a moment later (killed with SIGKILL just after it
// joined, in the test that found this) is shown leaving once, and not
// joining again a second later on its announcement, which is older than
// its leaving; a line typed after it went is held for the next peer rather
// than published to a neighbour that is no longer there.
func TestNoGhostOfAPeerThatVanished(t *testing.T) {
	needHosts(t)
	const rendezvous = "vanished"
	server := startRoomServer(t)
	a := startTopicPeer(t, rendezvous, server, nil)

	// The vanishing peer is on the topic and speaks our chat protocol
	// without ever saying hello, so that a waits for its session as for a
	// peer on the way to opening one; then it opens a plain chat session,
	// which a takes at once.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := newHostileHost(t)
	h.SetStreamHandler(Protocol, func(s network.Stream) {
		<-ctx.Done()
		_ = s.Reset()
	})
	g, err := gossiproom.New(ctx, h, rendezvous, gossiproom.Options{Nick: "ghost", Capabilities: []string{string(Protocol)}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = g.Close() }()
	if err := h.Connect(ctx, addrInfo(a)); err != nil {
		t.Fatal(err)
	}
	for {
		if _, ok := a.room.topic.g.Present(h.ID()); ok {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("a never saw the peer's presence")
		case <-time.After(10 * time.Millisecond):
		}
	}
	time.Sleep(100 * time.Millisecond) // for the room to take the presence event
	st, err := h.NewStream(ctx, a.id(), plainProtocol)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	a.events.WaitCount(t, 1, 5*time.Second, "the plain session's line", eventtest.Message(h.ID(), "hello"))
	if n := a.events.Count(eventtest.Is(event.Joined, h.ID())); n != 1 || a.events.Count(func(e event.Event) bool {
		return e.Kind == event.Joined && e.Via == event.ViaTopic
	}) != 0 {
		t.Fatalf("a showed the peer joining %d times before it went, want once by its session", n)
	}

	// It vanishes without a word: no bye, and the connection breaks under
	// the session (broken from a's side, as a killed process's reset
	// breaks it), then the peer is gone for good.
	_ = a.node.Host.Network().ClosePeer(h.ID())
	_ = h.Network().Close()
	a.events.WaitCount(t, 1, 5*time.Second, "the peer leaving", eventtest.Is(event.Left, h.ID()))
	for _, e := range a.events.Snapshot() {
		if e.Kind == event.Left && e.Code == event.LeftClosed {
			t.Fatalf("the session ended with %q, want a broken connection", e.Code)
		}
	}
	for a.room.connected(h.ID()) {
		select {
		case <-ctx.Done():
			t.Fatal("a stayed connected to the vanished peer")
		case <-time.After(10 * time.Millisecond):
		}
	}
	a.room.Send("is anyone there?")
	a.events.WaitCount(t, 1, 5*time.Second, "the line held", eventtest.Coded(event.Held))

	time.Sleep(sessionGrace + time.Second)
	if n := a.events.Count(eventtest.Is(event.Joined, h.ID())); n != 1 {
		t.Errorf("a showed the vanished peer joining %d times, want once (its session)", n)
	}
	if n := a.events.Count(func(e event.Event) bool { return e.Kind == event.Sent }); n != 0 {
		t.Errorf("a reported its line sent %d times with nobody there, want 0", n)
	}
}
