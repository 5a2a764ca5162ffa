package room

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

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
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	defer func(d time.Duration) { relayedNotice = d }(relayedNotice)
	relayedNotice = time.Second
	a, b, _ := startRelayedPair(t, "relay")
	a.room.Send("through the relay")
	b.events.waitCount(t, 1, 5*time.Second, "relayed message", isMessage(a.id(), "through the relay"))
	b.room.Send("and back")
	a.events.waitCount(t, 1, 5*time.Second, "relayed reply", isMessage(b.id(), "and back"))

	// No direct path can be made here (the filters deny it): both sides are
	// told the chat stays on the relay.
	stays := func(e Event) bool { return e.Kind == EventInfo && strings.Contains(e.Text, "stays on the relay") }
	a.events.waitCount(t, 1, relayedNotice+5*time.Second, "a told it stays relayed", stays)
	b.events.waitCount(t, 1, relayedNotice+5*time.Second, "b told it stays relayed", stays)

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

// TestCommandsConnsAndPing: /conns describes each connection, /ping measures
// the round trip, and neither is sent as a message.
func TestCommandsConnsAndPing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	a, b := startRoomPair(t, "commands")
	if a.room.runCommand("/conns") != commandDone {
		t.Fatal("/conns not taken as a command")
	}
	a.events.waitCount(t, 1, time.Second, "conns event", isKind(EventConns, ""))
	var conns []ConnInfo
	for _, e := range a.events.snapshot() {
		if e.Kind == EventConns {
			conns = e.Conns
		}
	}
	if len(conns) == 0 {
		t.Fatal("no connection listed")
	}
	c := conns[0]
	if c.Peer != b.id().String() || c.Relayed || c.Transport != "tcp" || c.Security == "" || c.Muxer == "" || c.Direction == "" || c.AgeMS < 0 {
		t.Errorf("connection %+v", c)
	}

	if a.room.runCommand("/ping "+shortID(b.id())) != commandDone {
		t.Fatal("/ping not taken as a command")
	}
	a.events.waitCount(t, 1, 6*time.Second, "ping answer", func(e Event) bool {
		return e.Kind == EventPing && e.Peer == b.id().String() && e.RTTMS > 0
	})
	a.room.runCommand("/ping nobody-has-this-id")
	a.events.waitCount(t, 1, time.Second, "ping error", isKind(EventError, ""))
	// An unknown command is not sent: the user gets a hint.
	if a.room.runCommand("/unknown thing") != commandDone {
		t.Error("an unknown command was taken for a message")
	}
	a.events.waitCount(t, 1, time.Second, "unknown-command hint", func(e Event) bool {
		return e.Kind == EventError && strings.Contains(e.Error, "unknown command /unknown") && strings.Contains(e.Error, "/help")
	})
	time.Sleep(200 * time.Millisecond)
	if n := b.events.count(isKind(EventMessage, "")); n != 0 {
		t.Errorf("b got %d messages: commands must not be sent", n)
	}
}

// TestRelayedChatMovesToDirect: when a direct connection appears (as hole
// punching gives one), a chat that runs through a relay moves to it, with no
// line lost, repeated or reordered, even while lines flow both ways.
func TestRelayedChatMovesToDirect(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
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
		g.filters.RemoveLiteral(mustCIDR(t, "127.0.0.2/32"))
		g.filters.RemoveLiteral(mustCIDR(t, "127.0.0.3/32"))
	}
	if err := a.node.Host.Connect(network.WithForceDirectDial(ctx, "hole punch"), addrInfo(b)); err != nil {
		t.Fatalf("direct connection: %v", err)
	}
	wg.Wait()

	moved := func(e Event) bool {
		return e.Kind == EventInfo && strings.Contains(e.Text, "moved to a direct connection")
	}
	a.events.waitCount(t, 1, 10*time.Second, "a moved", moved)
	b.events.waitCount(t, 1, 10*time.Second, "b moved", moved)
	a.events.waitCount(t, n, 10*time.Second, "b's lines", isKind(EventMessage, b.id()))
	b.events.waitCount(t, n, 10*time.Second, "a's lines", isKind(EventMessage, a.id()))
	for _, pair := range []struct {
		to     *roomPeer
		prefix string
	}{{a, "from b"}, {b, "from a"}} {
		i := 0
		for _, e := range pair.to.events.snapshot() {
			if e.Kind != EventMessage {
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
		if n := p.events.count(isKind(EventLeft, "")) + p.events.count(isKind(EventError, "")); n != 0 {
			t.Errorf("%d left or error events: %+v", n, p.events.snapshot())
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
	b.events.waitCount(t, 1, 5*time.Second, "line on the direct path", isMessage(a.id(), "direct now"))
}

// startRelayedPair starts a server and two peers that cannot reach each
// other directly (each denies the other's address), and has a reach b
// through the server's relay. It returns once both joined, with the
// address gaters by listen IP, so that a test can lift the filters.
func startRelayedPair(t *testing.T, name string) (a, b *roomPeer, gaters map[string]*addrGater) {
	t.Helper()
	server := startRoomServer(t)
	gaters = map[string]*addrGater{}
	behind := func(own, other string) func(*NodeConfig, *RoomConfig) {
		return func(n *NodeConfig, r *RoomConfig) {
			n.Listen = []ma.Multiaddr{ma.StringCast("/ip4/" + own + "/tcp/0")}
			g := newAddrGater(nil, []net.IPNet{mustCIDR(t, other+"/32")})
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
	a.events.waitCount(t, 1, relayDialGrace+10*time.Second, "a joined b over the relay", isKind(EventJoined, b.id()))
	b.events.waitCount(t, 1, 5*time.Second, "b joined a over the relay", isKind(EventJoined, a.id()))
	return a, b, gaters
}
