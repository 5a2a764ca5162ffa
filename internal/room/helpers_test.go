package room

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/libp2p/go-libp2p/core/host"
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

// A miscount of the lines in flight fails the tests where it happens,
// instead of being clamped and logged (see deliveries.plainDone).
func init() { strictCounts = true }

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

// startTopicPeer starts a peer whose room is a GossipSub topic too, as the
// program's is by default (-gossip).
func startTopicPeer(t *testing.T, rendezvous string, server peer.AddrInfo, configure func(*node.Config, *Config)) *roomPeer {
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
	if err := r.JoinTopic(TopicConfig{Topic: rendezvous}); err != nil {
		r.Close(0)
		_ = n.Close()
		t.Fatal(err)
	}
	n.Start(r.Offer)
	p := &roomPeer{node: n, room: r, events: events}
	t.Cleanup(p.close)
	return p
}

// rawTopicPeer is a plain GossipSub peer on loopback, subscribed to topics
// of a room: it sees what anyone publishes there, as a stranger would.
type rawTopicPeer struct {
	h  host.Host
	ps *pubsub.PubSub
	// topics are the topics joined, kept to publish on: pubsub lets a
	// topic be joined once, so a second Join of one fails ("topic already
	// exists") and publishes nothing.
	topics map[string]*pubsub.Topic
	subs   map[string]*pubsub.Subscription
}

func newRawTopicPeer(t *testing.T, topics ...string) *rawTopicPeer {
	t.Helper()
	h := newHostileHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageSignaturePolicy(pubsub.StrictSign), pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	rp := &rawTopicPeer{h: h, ps: ps, topics: map[string]*pubsub.Topic{}, subs: map[string]*pubsub.Subscription{}}
	for _, name := range topics {
		top, err := ps.Join(name)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := top.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		rp.topics[name], rp.subs[name] = top, sub
	}
	return rp
}

// publish publishes data on topic, one of those the peer joined, or fails
// the test.
func (rp *rawTopicPeer) publish(t *testing.T, topic string, data []byte) {
	t.Helper()
	top := rp.topics[topic]
	if top == nil {
		t.Fatalf("the raw peer did not join %q", topic)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := top.Publish(ctx, data); err != nil {
		t.Fatalf("the raw peer could not publish on %q: %v", topic, err)
	}
}

// waitTopicPeer waits until p is subscribed to topic as the raw peer sees
// it, so that what it publishes goes to p: before, it goes nowhere.
func (rp *rawTopicPeer) waitTopicPeer(t *testing.T, topic string, p peer.ID, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !slices.Contains(rp.topics[topic].ListPeers(), p) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never subscribed to %q as the raw peer sees it", event.ShortID(p), topic)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// next returns the next message on topic from p within timeout, or fails.
func (rp *rawTopicPeer) next(t *testing.T, topic string, from peer.ID, timeout time.Duration) *pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		m, err := rp.subs[topic].Next(ctx)
		if err != nil {
			t.Fatalf("no message from %s on %s within %v: %v", event.ShortID(from), topic, timeout, err)
		}
		if m.GetFrom() == from {
			return m
		}
	}
}

// needHosts skips the calling test under -short: it starts libp2p hosts,
// which -short leaves out.
func needHosts(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
}
