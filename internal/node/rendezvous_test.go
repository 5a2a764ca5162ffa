package node

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/test"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event/eventtest"
)

// The key the watch polls is the one RoutingDiscovery advertises under.
func TestRendezvousKey(t *testing.T) {
	key, err := rendezvousKey("meet me here")
	if err != nil {
		t.Fatal(err)
	}
	// go-libp2p's discovery/routing: cid.NewCidV1(cid.Raw, sha2-256(ns)).
	c := cid.NewCidV1(cid.Raw, key)
	if string(c.Hash()) != string(key) {
		t.Fatalf("CID hash %x, key %x", c.Hash(), key)
	}
}

func TestRendezvousWatch(t *testing.T) {
	key, _ := rendezvousKey("watch")
	w := newRendezvousWatch(key, 3)
	var mu sync.Mutex
	var stored []peer.ID
	w.setStore(func(p peer.ID) {
		mu.Lock()
		stored = append(stored, p)
		mu.Unlock()
	}, 2)
	var ids []peer.ID
	for range 8 {
		id, err := test.RandPeerID()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		w.answered(id)
		w.answered(id) // twice: once
	}
	want := kb.SortClosestPeers(slices.Clone(ids), kb.ConvertKey(string(key)))[:3]
	if got := w.targets(5); !slices.Equal(got, want) {
		t.Fatalf("targets %v, want the 3 closest %v", got, want)
	}
	if got := w.targets(1); !slices.Equal(got, want[:1]) {
		t.Errorf("targets(1) %v, want %v", got, want[:1])
	}
	// Each of the two closest got our record early, once.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		s := slices.Clone(stored)
		mu.Unlock()
		if slices.Contains(s, want[0]) && slices.Contains(s, want[1]) {
			if len(s) != len(slices.Compact(slices.Sorted(slices.Values(s)))) {
				t.Errorf("a server got the record twice: %v", s)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("early stores %v, want %v among them", s, want[:2])
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.drop(want[0])
	if got := w.targets(3); !slices.Equal(got, want[1:]) {
		t.Errorf("after drop: %v, want %v", got, want[1:])
	}
	w.setStore(nil, 0)
	w.answered(want[0]) // back, closest, but the early store is off
	mu.Lock()
	n := len(stored)
	mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(stored) != n {
		t.Errorf("stored after the store was turned off: %v", stored)
	}
}

// TestNewOnHost: nodes built on hosts the caller made (mocknet here, as in
// bench/dhtsim), a server and two chat peers, meet at a rendezvous through
// the server's DHT: with the default discovery; with walks only (the
// discovery before issue 18); and with polls only: the first peer walks
// once, before the second has advertised, and can find it only by asking
// the server it walked to.
func TestNewOnHost(t *testing.T) {
	for name, disc := range map[string]*Discovery{
		"defaults":   nil,
		"walks only": {FindFirstInterval: 100 * time.Millisecond, FindMaxInterval: findMaxInterval, FindTimeout: findTimeout},
		"polls only": {FindFirstInterval: time.Hour, FindMaxInterval: time.Hour, FindTimeout: findTimeout,
			PollPeers: 1, PollInterval: 100 * time.Millisecond, PollFor: time.Minute},
	} {
		t.Run(name, func(t *testing.T) {
			mn := mocknet.New()
			t.Cleanup(func() { _ = mn.Close() })
			var server peer.AddrInfo
			start := func(cfg Config) (*Node, *eventtest.Recorder, func(peer.ID) bool) {
				h, err := mn.GenPeer()
				if err != nil {
					t.Fatal(err)
				}
				if err := mn.LinkAll(); err != nil {
					t.Fatal(err)
				}
				events := eventtest.New()
				n, err := NewOnHost(cfg, h, events.Emit)
				if err != nil {
					t.Fatal(err)
				}
				if n.Host != h {
					t.Fatal("the node does not use the host it was given")
				}
				t.Cleanup(func() { _ = n.Close() })
				var mu sync.Mutex
				var found []peer.ID
				n.Start(func(ai peer.AddrInfo) {
					mu.Lock()
					found = append(found, ai.ID)
					mu.Unlock()
				})
				return n, events, func(id peer.ID) bool {
					mu.Lock()
					defer mu.Unlock()
					return slices.Contains(found, id)
				}
			}
			srv, _, _ := start(Config{Version: "test", Server: true})
			server = peer.AddrInfo{ID: srv.Host.ID(), Addrs: srv.Host.Addrs()}
			peerCfg := Config{Version: "test", Rendezvous: "on a host", Bootstrap: []peer.AddrInfo{server}, Discovery: disc}
			a, aEvents, aFound := start(peerCfg)
			aEvents.WaitCount(t, 1, 10*time.Second, "first peer advertised", eventtest.Coded(event.Advertising))
			b, bEvents, bFound := start(peerCfg)
			bEvents.WaitCount(t, 1, 10*time.Second, "second peer advertised", eventtest.Coded(event.Advertising))
			deadline := time.Now().Add(20 * time.Second)
			for !aFound(b.Host.ID()) || !bFound(a.Host.ID()) {
				if time.Now().After(deadline) {
					t.Fatalf("not met in 20 s: the first found the second: %v; the second the first: %v",
						aFound(b.Host.ID()), bFound(a.Host.ID()))
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
