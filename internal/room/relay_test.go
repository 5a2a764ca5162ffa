package room

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event/eventtest"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// TestRelayedChatOpensAtOnce: two peers that cannot reach each other
// directly (each denies the other's address) chat through a -server's
// circuit relay: the session opens over the relayed (limited) connection
// at once, and /conns says it is relayed.
func TestRelayedChatOpensAtOnce(t *testing.T) {
	needHosts(t)
	defer func(d time.Duration) { relayedNotice = d }(relayedNotice)
	relayedNotice = time.Second
	a, b, _ := startRelayedPair(t, "relay")
	a.room.Send("through the relay")
	b.events.WaitCount(t, 1, 5*time.Second, "relayed message", eventtest.Message(a.id(), "through the relay"))
	b.room.Send("and back")
	a.events.WaitCount(t, 1, 5*time.Second, "relayed reply", eventtest.Message(b.id(), "and back"))

	// No direct path can be made here (the filters deny it): both sides are
	// told the chat stays on the relay.
	stays := func(e event.Event) bool { return e.Kind == event.Info && e.Code == event.StillRelayed }
	a.events.WaitCount(t, 1, relayedNotice+5*time.Second, "a told it stays relayed", stays)
	b.events.WaitCount(t, 1, relayedNotice+5*time.Second, "b told it stays relayed", stays)

	conns := a.room.Conns()
	if len(conns) == 0 {
		t.Fatal("/conns lists no connection")
	}
	for _, c := range conns {
		if !c.Relayed || c.Peer != b.id().String() {
			t.Errorf("connection %+v: want a relayed connection to b", c)
		}
	}
}

// TestConnsAndPing: Conns describes each connection, Ping measures the
// round trip, and neither sends anything to the room.
func TestConnsAndPing(t *testing.T) {
	needHosts(t)
	a, b := startRoomPair(t, "commands")
	conns := a.room.Conns()
	if len(conns) == 0 {
		t.Fatal("no connection listed")
	}
	c := conns[0]
	if c.Peer != b.id().String() || c.Relayed || c.Transport != "tcp" || c.Security == "" || c.Muxer == "" || c.Direction == "" || c.AgeMS < 0 {
		t.Errorf("connection %+v", c)
	}

	p, err := a.room.FindPeer(event.ShortID(b.id()))
	if err != nil || p != b.id() {
		t.Fatalf("FindPeer(short ID) = %v, %v; want b", p, err)
	}
	a.room.Ping(p)
	a.events.WaitCount(t, 1, 6*time.Second, "ping answer", func(e event.Event) bool {
		return e.Kind == event.Ping && e.Peer == b.id().String() && e.RTTMS > 0
	})
	var fe *FindError
	if _, err := a.room.FindPeer("nobody-has-this-id"); !errors.As(err, &fe) || fe.Code != event.NoSuchPeer {
		t.Errorf("FindPeer(nobody) = %v, want a %s FindError", err, event.NoSuchPeer)
	}
	time.Sleep(200 * time.Millisecond)
	if n := b.events.Count(eventtest.Is(event.Message, "")); n != 0 {
		t.Errorf("b got %d messages: commands must not be sent", n)
	}
}

// TestRelayedChatMovesToDirect: when a direct connection appears (as hole
// punching gives one), a chat that runs through a relay moves to it, with no
// line lost, repeated or reordered, even while lines flow both ways.
func TestRelayedChatMovesToDirect(t *testing.T) {
	needHosts(t)
	a, b, gaters := startRelayedPair(t, "move")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Lines flow both ways while the direct path opens.
	const n = 300
	var wg sync.WaitGroup
	send := func(p *roomPeer, prefix string) {
		defer wg.Done()
		for i := range n {
			p.room.Send(fmt.Sprintf("%s %03d", prefix, i))
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	wg.Add(2)
	go send(a, "from a")
	go send(b, "from b")
	// Hole punching, played by the test: the filters go, a direct
	// connection comes.
	for _, g := range gaters {
		g.Remove(mustCIDR(t, "127.0.0.2/32"))
		g.Remove(mustCIDR(t, "127.0.0.3/32"))
	}
	if err := a.node.Host.Connect(network.WithForceDirectDial(ctx, "hole punch"), addrInfo(b)); err != nil {
		t.Fatalf("direct connection: %v", err)
	}
	wg.Wait()

	moved := func(e event.Event) bool { return e.Kind == event.Info && e.Code == event.PathMoved && !e.Relayed }
	a.events.WaitCount(t, 1, 10*time.Second, "a moved", moved)
	b.events.WaitCount(t, 1, 10*time.Second, "b moved", moved)
	a.events.WaitCount(t, n, 10*time.Second, "b's lines", eventtest.Is(event.Message, b.id()))
	b.events.WaitCount(t, n, 10*time.Second, "a's lines", eventtest.Is(event.Message, a.id()))
	for _, pair := range []struct {
		to     *roomPeer
		prefix string
	}{{a, "from b"}, {b, "from a"}} {
		i := 0
		for _, e := range pair.to.events.Snapshot() {
			if e.Kind != event.Message {
				continue
			}
			if want := fmt.Sprintf("%s %03d", pair.prefix, i); e.Text != want {
				t.Fatalf("line %d is %q, want %q", i, e.Text, want)
			}
			i++
		}
		if i != n {
			t.Errorf("%d lines, want %d", i, n)
		}
	}
	for _, p := range []*roomPeer{a, b} {
		if n := p.events.Count(eventtest.Is(event.Left, "")) + p.events.Count(eventtest.Is(event.Error, "")); n != 0 {
			t.Errorf("%d left or error events: %+v", n, p.events.Snapshot())
		}
		for _, c := range p.room.Conns() {
			if c.Relayed {
				continue
			}
			return
		}
	}
	// After the move, a new line goes over the direct path.
	a.room.Send("direct now")
	b.events.WaitCount(t, 1, 5*time.Second, "line on the direct path", eventtest.Message(a.id(), "direct now"))
}

// startRelayedPair starts a server and two peers that cannot reach each
// other directly (each denies the other's address), and has a reach b
// through the server's relay. It returns once both joined, with the
// address gaters by listen IP, so that a test can lift the filters.
func startRelayedPair(t *testing.T, name string) (a, b *roomPeer, gaters map[string]*node.Gater) {
	t.Helper()
	server := startRoomServer(t)
	gaters = map[string]*node.Gater{}
	behind := func(own, other string) func(*node.Config, *Config) {
		return func(n *node.Config, r *Config) {
			n.Listen = []ma.Multiaddr{ma.StringCast("/ip4/" + own + "/tcp/0")}
			g := node.NewGater(nil, []net.IPNet{mustCIDR(t, other+"/32")})
			gaters[own] = g
			n.Gater, r.Gater = g, g
		}
	}
	// Different rendezvous strings: they must not find each other's direct
	// addresses; the test hands a the relayed address of b.
	a = startRoomPeerWith(t, name+" a", server, behind("127.0.0.2", "127.0.0.3"))
	b = startRoomPeerWith(t, name+" b", server, behind("127.0.0.3", "127.0.0.2"))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.node.Host.Connect(ctx, server); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, b.node.Host, server); err != nil {
		t.Fatalf("b's relay reservation: %v", err)
	}
	circuit := server.Addrs[0].Encapsulate(ma.StringCast("/p2p/" + server.ID.String() + "/p2p-circuit"))
	a.room.Offer(peer.AddrInfo{ID: b.id(), Addrs: []ma.Multiaddr{circuit}})

	// a's ID may be the higher one, which waits relayDialGrace first.
	a.events.WaitCount(t, 1, relayDialGrace+10*time.Second, "a joined b over the relay", eventtest.Is(event.Joined, b.id()))
	b.events.WaitCount(t, 1, 5*time.Second, "b joined a over the relay", eventtest.Is(event.Joined, a.id()))
	return a, b, gaters
}
