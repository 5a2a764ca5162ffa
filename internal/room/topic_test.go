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

// TestNoGhostOfAPeerThatVanished: a room peer that announced itself and
// then vanished before its session came (killed with SIGKILL just after it
// joined, in the test that found this) is not shown joining a second later
// on presence's old word, and a line typed after it went is held for the
// next peer rather than published to a neighbour that is no longer there.
func TestNoGhostOfAPeerThatVanished(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	const rendezvous = "vanished"
	server := startRoomServer(t)
	a := startTopicPeer(t, rendezvous, server, nil)

	// The vanishing peer speaks our chat protocol but never says hello, so
	// that a waits for its session, as it does for a peer that is on the
	// way to opening one.
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
	if a.room.roster.hasSession(h.ID()) {
		t.Fatal("a has a session with a peer that never said hello")
	}

	// It vanishes without a word: no bye, only its connections closed.
	_ = h.Network().Close()
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
	if n := a.events.Count(eventtest.Is(event.Joined, h.ID())); n != 0 {
		t.Errorf("a showed the vanished peer joining %d times, want 0", n)
	}
	if n := a.events.Count(func(e event.Event) bool { return e.Kind == event.Sent }); n != 0 {
		t.Errorf("a reported its line sent %d times with nobody there, want 0", n)
	}
	_ = g.Close()
}
