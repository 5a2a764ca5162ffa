package node

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event/eventtest"
)

// testNode is an in-process node on loopback with its events recorded.
type testNode struct {
	*Node
	events *eventtest.Recorder
}

func loopbackConfig(t *testing.T, rendezvous string, bootstrap []peer.AddrInfo, server bool) Config {
	t.Helper()
	key, err := LoadIdentity("")
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Key:        key,
		Version:    "test",
		Listen:     []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		Bootstrap:  bootstrap,
		Rendezvous: rendezvous,
		Server:     server,
	}
}

// startServer starts a -server node on loopback and returns its address.
func startServer(t *testing.T) peer.AddrInfo {
	t.Helper()
	n, err := New(loopbackConfig(t, "", nil, true), eventtest.New().Emit)
	if err != nil {
		t.Fatal(err)
	}
	n.Start(nil)
	t.Cleanup(func() { _ = n.Close() })
	return peer.AddrInfo{ID: n.Host.ID(), Addrs: n.Host.Addrs()}
}

// startNode starts a chat node that bootstraps from server, whose
// configuration configure may change; the peers it finds are dropped.
func startNode(t *testing.T, rendezvous string, server peer.AddrInfo, configure func(*Config)) *testNode {
	t.Helper()
	events := eventtest.New()
	cfg := loopbackConfig(t, rendezvous, []peer.AddrInfo{server}, false)
	if configure != nil {
		configure(&cfg)
	}
	n, err := New(cfg, events.Emit)
	if err != nil {
		t.Fatal(err)
	}
	n.Start(func(peer.AddrInfo) {})
	t.Cleanup(func() { _ = n.Close() })
	return &testNode{Node: n, events: events}
}

// needHosts skips the calling test under -short: it starts libp2p hosts,
// which -short leaves out.
func needHosts(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
}
