package room

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event/eventtest"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// newHostileHost is a plain libp2p host on loopback that the tests use to
// do what no well-behaved peer does.
func newHostileHost(t *testing.T, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func addrInfo(p *roomPeer) peer.AddrInfo {
	return peer.AddrInfo{ID: p.id(), Addrs: p.node.Host.Addrs()}
}

// TestHostileOversizedLine: a peer that sends a line that never ends gets
// its stream reset after 64 KiB; we say why, and the room chats on.
func TestHostileOversizedLine(t *testing.T) {
	needHosts(t)
	a, b := startRoomPair(t, "oversized")
	evil := newHostileHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := evil.Connect(ctx, addrInfo(a)); err != nil {
		t.Fatal(err)
	}
	st, err := evil.NewStream(ctx, a.id(), plainProtocol)
	if err != nil {
		t.Fatal(err)
	}
	chunk := []byte(strings.Repeat("A", 32<<10))
	sent := 0
	for sent < 1<<30 {
		n, err := st.Write(chunk)
		sent += n
		if err != nil {
			break
		}
	}
	if sent >= 1<<30 {
		t.Fatalf("a took 1 GiB without a newline")
	}
	t.Logf("stream reset after the peer sent %d KiB", sent>>10)
	a.events.WaitCount(t, 1, 5*time.Second, "oversized error", func(e event.Event) bool {
		return e.Kind == event.Error && e.Code == event.ProtocolViolation && e.Plain
	})
	a.events.WaitCount(t, 1, 5*time.Second, "evil left", eventtest.Is(event.Left, evil.ID()))
	b.room.Send("the room goes on")
	a.events.WaitCount(t, 1, 5*time.Second, "message after the attack", eventtest.Message(b.id(), "the room goes on"))
}

// TestHostileStreamFlood: a peer that opens hundreds of chat streams is
// refused past the per-peer limit, and the room chats on.
func TestHostileStreamFlood(t *testing.T) {
	needHosts(t)
	a, b := startRoomPair(t, "stream flood")
	evil := newHostileHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := evil.Connect(ctx, addrInfo(a)); err != nil {
		t.Fatal(err)
	}
	var open []network.Stream
	refused := 0
	for range 300 {
		st, err := evil.NewStream(ctx, a.id(), plainProtocol)
		if err != nil {
			refused++
			continue
		}
		// Writing and reading makes the stream's fate known: a refused
		// stream is reset by a's resource manager, an accepted one is read
		// and stays silent.
		_, werr := st.Write([]byte("flood\n"))
		_ = st.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, rerr := st.Read(make([]byte, 1))
		if werr != nil || (rerr != nil && !isTimeout(rerr)) {
			refused++
			continue
		}
		open = append(open, st)
	}
	t.Logf("%d streams accepted, %d refused", len(open), refused)
	if len(open) > node.MaxChatStreamsPerPeer {
		t.Errorf("%d chat streams from one peer accepted, want at most %d", len(open), node.MaxChatStreamsPerPeer)
	}
	b.room.Send("still chatting")
	a.events.WaitCount(t, 1, 5*time.Second, "message during the flood", eventtest.Message(b.id(), "still chatting"))
	a.room.Send("and back")
	b.events.WaitCount(t, 1, 5*time.Second, "reply during the flood", eventtest.Message(a.id(), "and back"))
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// TestFilterDenyNetwork: -deny refuses inbound connections from a network
// and never dials into it, even when discovery offers such an address.
func TestFilterDenyNetwork(t *testing.T) {
	needHosts(t)
	server := startRoomServer(t)
	g := node.NewGater(nil, []net.IPNet{mustCIDR(t, "127.0.0.2/32")})
	a := startRoomPeerWith(t, "deny", server, func(n *node.Config, r *Config) {
		n.Gater, r.Gater = g, g
	})
	// b listens on 127.0.0.2 only and dials from there.
	b := startRoomPeerWith(t, "deny", server, func(n *node.Config, _ *Config) {
		n.Listen = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.2/tcp/0")}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.node.Host.Connect(ctx, addrInfo(a)); err == nil {
		t.Error("a accepted a connection from a denied network")
	}
	if err := a.node.Host.Connect(ctx, addrInfo(b)); err == nil {
		t.Error("a dialed into a denied network")
	}
	time.Sleep(time.Second)
	if n := a.events.Count(eventtest.Is(event.Joined, b.id())); n != 0 {
		t.Errorf("a chats with a peer in a denied network")
	}
	if g.Denied() == 0 {
		t.Error("no refusal counted")
	}
}

// TestFilterAllowPeer: -allow-peer limits the chat to the listed peers.
func TestFilterAllowPeer(t *testing.T) {
	needHosts(t)
	server := startRoomServer(t)
	b := startRoomPeer(t, "allow peer", server)
	a := startRoomPeerWith(t, "allow peer", server, func(_ *node.Config, r *Config) {
		r.AllowPeers = map[peer.ID]bool{b.id(): true}
	})
	c := startRoomPeer(t, "allow peer", server)
	a.events.WaitCount(t, 1, 15*time.Second, "a joined b", eventtest.Is(event.Joined, b.id()))
	b.events.WaitCount(t, 1, 15*time.Second, "b joined c", eventtest.Is(event.Joined, c.id()))
	time.Sleep(time.Second)
	if n := a.events.Count(eventtest.Is(event.Joined, c.id())); n != 0 {
		t.Error("a chats with a peer not in -allow-peer")
	}
}

// TestPrivateNetwork: peers with the same swarm key meet; a host without
// it cannot even connect.
func TestPrivateNetwork(t *testing.T) {
	needHosts(t)
	psk := pnet.PSK([]byte(strings.Repeat("k", 32)))
	serverCfg := loopbackNodeConfig(t, "", nil, true)
	serverCfg.PSK = psk
	sn, err := node.New(serverCfg, eventtest.New().Emit)
	if err != nil {
		t.Fatal(err)
	}
	sn.Start(nil)
	t.Cleanup(func() { _ = sn.Close() })
	server := peer.AddrInfo{ID: sn.Host.ID(), Addrs: sn.Host.Addrs()}

	private := func(n *node.Config, _ *Config) { n.PSK = psk }
	a := startRoomPeerWith(t, "private", server, private)
	b := startRoomPeerWith(t, "private", server, private)
	a.events.WaitCount(t, 1, 15*time.Second, "a joined b", eventtest.Is(event.Joined, b.id()))
	a.room.Send("private hello")
	b.events.WaitCount(t, 1, 5*time.Second, "private message", eventtest.Message(a.id(), "private hello"))

	outsider := newHostileHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := outsider.Connect(ctx, addrInfo(a)); err == nil {
		t.Error("a host without the swarm key connected to a private peer")
	}
	other := newHostileHost(t, libp2p.PrivateNetwork(pnet.PSK([]byte(strings.Repeat("x", 32)))),
		libp2p.NoTransports, libp2p.Transport(tcp.NewTCPTransport))
	if err := other.Connect(ctx, addrInfo(a)); err == nil {
		t.Error("a host with another swarm key connected to a private peer")
	}
}
