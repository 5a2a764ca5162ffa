package node

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	ma "github.com/multiformats/go-multiaddr"
)

// textHas accepts the events of a kind whose text or error contains s.
func textHas(kind EventKind, s string) func(Event) bool {
	return func(e Event) bool { return e.Kind == kind && strings.Contains(e.Text+e.Error, s) }
}

// TestPrivateRelayAddrs: a peer told it is behind NAT (-reachability
// private) reserves a slot with its relay at once and advertises an address
// through it, even though the relay's only address is not public (loopback
// here, 100.64/10 in the namespace lab): autorelay alone would give it
// none. A peer searching the rendezvous gets that address.
func TestPrivateRelayAddrs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	server := startRoomServer(t)
	const rendezvous = "private relay addrs"
	p := startRoomPeerWith(t, rendezvous, server, func(n *Config, _ *RoomConfig) {
		n.Reachability = network.ReachabilityPrivate
		n.BootstrapAreServers = true // the server is our relay
	})
	deadline := time.Now().Add(15 * time.Second)
	for relayOfAddrs(p.node.Host.Addrs()) != server.ID {
		if time.Now().After(deadline) {
			t.Fatalf("no address through the relay %s within 15 s: %v", shortID(server.ID), p.node.Host.Addrs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Told once, in the words of a forced reachability.
	p.events.waitCount(t, 1, 5*time.Second, "reachability", textHas(EventInfo, "reachability: behind NAT (as -reachability says)"))
	p.events.waitCount(t, 1, 15*time.Second, "advertised", textHas(EventInfo, "advertising at rendezvous"))
	if n := p.events.count(textHas(EventInfo, "reachability:")); n != 1 {
		t.Errorf("%d reachability lines, want 1", n)
	}

	// The record at the rendezvous carries the relay address.
	finder := startRoomPeer(t, "someone else", server)
	finder.events.waitCount(t, 1, 15*time.Second, "finder bootstrapped", textHas(EventInfo, "connected to 1 of 1 bootstrap peers"))
	rd := drouting.NewRoutingDiscovery(finder.node.DHT)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var found []ma.Multiaddr
		if ch, err := rd.FindPeers(ctx, rendezvous); err == nil {
			for ai := range ch {
				if ai.ID == p.id() {
					found = ai.Addrs
				}
			}
		}
		cancel()
		if slices.ContainsFunc(found, func(a ma.Multiaddr) bool { return relayOf(a) == server.ID }) {
			t.Logf("the record lists %v", found)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the record at the rendezvous lists %v: no address through the relay", found)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := p.events.count(textHas(EventError, "no relay reachable")); n != 0 {
		t.Errorf("told %d times that no relay is reachable, with one", n)
	}
}

// TestNoRelayReachable: behind NAT with no relay slot, a peer says so once,
// relayWait later, in plain words, with what to do; when a relay comes up
// after all and gives it a slot, it says that too. It takes about 30 s
// (autorelay tries a static relay again 30 s after it failed), so it runs
// in parallel with the other slow tests, with the default relayWait.
func TestNoRelayReachable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	t.Parallel()
	server := startRoomServer(t)

	t.Run("no relay known", func(t *testing.T) {
		t.Parallel()
		p := startRoomPeerWith(t, "no relay known", server, func(n *Config, _ *RoomConfig) {
			n.Reachability = network.ReachabilityPrivate // and the server is not used as a relay
		})
		p.events.waitCount(t, 1, relayWait+30*time.Second, "no relay", textHas(EventError, "behind NAT and no relay reachable"))
		time.Sleep(2 * relayCheckInterval)
		for _, e := range p.events.snapshot() {
			if strings.Contains(e.Error, "no relay reachable") {
				if !strings.Contains(e.Error, "give a relay with -relay ADDR or a -peer server") {
					t.Errorf("the error does not say what to do: %q", e.Error)
				}
			}
		}
		if n := p.events.count(textHas(EventError, "no relay reachable")); n != 1 {
			t.Errorf("told %d times, want once", n)
		}
	})

	t.Run("relay comes later", func(t *testing.T) {
		t.Parallel()
		key, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		relayID, err := peer.IDFromPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		addr := closedLoopbackAddr(t)
		p := startRoomPeerWith(t, "relay comes later", server, func(n *Config, _ *RoomConfig) {
			n.Reachability = network.ReachabilityPrivate
			n.Relays = []peer.AddrInfo{{ID: relayID, Addrs: []ma.Multiaddr{addr}}}
		})
		p.events.waitCount(t, 1, relayWait+30*time.Second, "no relay", textHas(EventError, "none of our 1 relay(s) gave us a slot"))

		cfg := loopbackConfig(t, "", nil, true)
		cfg.Key, cfg.Listen = key, []ma.Multiaddr{addr}
		relayNode, err := NewNode(cfg, newRoomEvents().emit)
		if err != nil {
			t.Fatal(err)
		}
		relayNode.Start(nil)
		t.Cleanup(func() { _ = relayNode.Close() })
		p.events.waitCount(t, 1, 90*time.Second, "reservation made",
			textHas(EventInfo, "relay reservation made via "+shortID(relayID)+": peers can reach us through it"))
		if n := p.events.count(textHas(EventError, "no relay reachable")); n != 1 {
			t.Errorf("told %d times that no relay is reachable, want once", n)
		}
	})
}
