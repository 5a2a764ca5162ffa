package room

import (
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event/eventtest"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

const (
	// plainProtocol is the plain chat protocol of go-libp2p's example, which
	// the program offers after its own (-pid's default).
	plainProtocol = protocol.ID("/chat/1.1.0")
	// shutdownTimeout bounds Close, as the program's does.
	shutdownTimeout = 3 * time.Second
)

// testProtocols and testFormats are what the program offers by default.
func testProtocols() []protocol.ID { return []protocol.ID{Protocol, plainProtocol} }

func testFormats() map[protocol.ID]wire.Format {
	return map[protocol.ID]wire.Format{plainProtocol: wire.Line{}, Protocol: wire.Framed{}}
}

// roomPeer is an in-process chat peer: a real node and room on loopback.
type roomPeer struct {
	node   *node.Node
	room   *Room
	events *eventtest.Recorder
	closed bool
}

func (p *roomPeer) id() peer.ID { return p.node.Host.ID() }

// close leaves the room and closes the node, as the program does on exit.
func (p *roomPeer) close() {
	if p.closed {
		return
	}
	p.closed = true
	p.room.Close(shutdownTimeout)
	_ = p.node.Close()
}

func loopbackNodeConfig(t *testing.T, rendezvous string, bootstrap []peer.AddrInfo, server bool) node.Config {
	t.Helper()
	key, err := node.LoadIdentity("")
	if err != nil {
		t.Fatal(err)
	}
	return node.Config{
		Key:        key,
		Version:    "test",
		Listen:     []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		Bootstrap:  bootstrap,
		Rendezvous: rendezvous,
		Server:     server,
	}
}

// startRoomServer starts a -server node on loopback and returns its address.
func startRoomServer(t *testing.T) peer.AddrInfo {
	t.Helper()
	n, err := node.New(loopbackNodeConfig(t, "", nil, true), eventtest.New().Emit)
	if err != nil {
		t.Fatal(err)
	}
	n.Start(nil)
	t.Cleanup(func() { _ = n.Close() })
	return peer.AddrInfo{ID: n.Host.ID(), Addrs: n.Host.Addrs()}
}

func startRoomPeer(t *testing.T, rendezvous string, server peer.AddrInfo) *roomPeer {
	t.Helper()
	return startRoomPeerWith(t, rendezvous, server, nil)
}

// startRoomPeerWith starts a peer whose configuration configure may change.
func startRoomPeerWith(t *testing.T, rendezvous string, server peer.AddrInfo, configure func(*node.Config, *Config)) *roomPeer {
	t.Helper()
	events := eventtest.New()
	nodeCfg := loopbackNodeConfig(t, rendezvous, []peer.AddrInfo{server}, false)
	nodeCfg.ChatProtocols = testProtocols()
	roomCfg := Config{Protocols: testProtocols(), Formats: testFormats(), Version: "test"}
	if configure != nil {
		configure(&nodeCfg, &roomCfg)
	}
	n, err := node.New(nodeCfg, events.Emit)
	if err != nil {
		t.Fatal(err)
	}
	r := New(n.Host, roomCfg, events.Emit)
	n.Start(r.Offer)
	p := &roomPeer{node: n, room: r, events: events}
	t.Cleanup(p.close)
	return p
}

// startRoomPair starts a server and two peers, and waits until they met.
func startRoomPair(t *testing.T, rendezvous string) (a, b *roomPeer) {
	t.Helper()
	return startMeetingPair(t, rendezvous, startRoomServer(t))
}

// startMeetingPair starts two peers, and waits until they met.
func startMeetingPair(t *testing.T, rendezvous string, server peer.AddrInfo) (a, b *roomPeer) {
	t.Helper()
	a = startRoomPeer(t, rendezvous, server)
	b = startRoomPeer(t, rendezvous, server)
	a.events.WaitCount(t, 1, 15*time.Second, "a joined b", eventtest.Is(event.Joined, b.id()))
	b.events.WaitCount(t, 1, 15*time.Second, "b joined a", eventtest.Is(event.Joined, a.id()))
	return a, b
}

func mustCIDR(t *testing.T, s string) net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return *n
}
