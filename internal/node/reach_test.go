package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event/eventtest"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	ma "github.com/multiformats/go-multiaddr"
)

// TestPrivateRelayAddrs: a peer told it is behind NAT (-reachability
// private) reserves a slot with its relay at once and advertises an address
// through it, even though the relay's only address is not public (loopback
// here, 100.64/10 in the namespace lab): autorelay alone would give it
// none. A peer searching the rendezvous gets that address.
func TestPrivateRelayAddrs(t *testing.T) {
	needHosts(t)
	server := startServer(t)
	const rendezvous = "private relay addrs"
	p := startNode(t, rendezvous, server, func(n *Config) {
		n.Reachability = network.ReachabilityPrivate
		n.BootstrapAreServers = true // the server is our relay
	})
	deadline := time.Now().Add(15 * time.Second)
	for relayOfAddrs(p.Host.Addrs()) != server.ID {
		if time.Now().After(deadline) {
			t.Fatalf("no address through the relay %s within 15 s: %v", event.ShortID(server.ID), p.Host.Addrs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Told once, as a forced reachability.
	p.events.WaitCount(t, 1, 5*time.Second, "reachability", func(e event.Event) bool {
		return e.Code == event.ReachabilityPrivate && e.Forced
	})
	p.events.WaitCount(t, 1, 15*time.Second, "advertised", eventtest.Coded(event.Advertising))
	if n := p.events.Count(isReachability); n != 1 {
		t.Errorf("%d reachability events, want 1", n)
	}

	// The record at the rendezvous carries the relay address.
	finder := startNode(t, "someone else", server, nil)
	finder.events.WaitCount(t, 1, 15*time.Second, "finder bootstrapped", func(e event.Event) bool {
		return e.Code == event.BootstrapConnected && e.Count == 1 && e.Total == 1
	})
	rd := drouting.NewRoutingDiscovery(finder.DHT)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var found []ma.Multiaddr
		if ch, err := rd.FindPeers(ctx, rendezvous); err == nil {
			for ai := range ch {
				if ai.ID == p.Host.ID() {
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
	if n := p.events.Count(eventtest.Coded(event.NoRelay)); n != 0 {
		t.Errorf("told %d times that no relay is reachable, with one", n)
	}
}

// TestNoRelayReachable: behind NAT with no relay slot, a peer says so once,
// relayWait later, in plain words, with what to do; when a relay comes up
// after all and gives it a slot, it says that too. It takes about 30 s
// (autorelay tries a static relay again 30 s after it failed), so it runs
// in parallel with the other slow tests, with the default relayWait.
func TestNoRelayReachable(t *testing.T) {
	needHosts(t)
	t.Parallel()
	server := startServer(t)

	t.Run("no relay known", func(t *testing.T) {
		t.Parallel()
		p := startNode(t, "no relay known", server, func(n *Config) {
			n.Reachability = network.ReachabilityPrivate // and the server is not used as a relay
		})
		p.events.WaitCount(t, 1, relayWait+30*time.Second, "no relay", eventtest.Coded(event.NoRelay))
		time.Sleep(2 * relayCheckInterval)
		for _, e := range p.events.Snapshot() {
			if e.Code == event.NoRelay && (e.Kind != event.Error || e.Count != 0) {
				t.Errorf("no_relay should be an error with no relay known (count 0): %+v", e)
			}
		}
		if n := p.events.Count(eventtest.Coded(event.NoRelay)); n != 1 {
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
		p := startNode(t, "relay comes later", server, func(n *Config) {
			n.Reachability = network.ReachabilityPrivate
			n.Relays = []peer.AddrInfo{{ID: relayID, Addrs: []ma.Multiaddr{addr}}}
		})
		p.events.WaitCount(t, 1, relayWait+30*time.Second, "no relay", func(e event.Event) bool {
			return e.Code == event.NoRelay && e.Count == 1
		})

		cfg := loopbackConfig(t, "", nil, true)
		cfg.Key, cfg.Listen = key, []ma.Multiaddr{addr}
		relayNode, err := New(cfg, eventtest.New().Emit)
		if err != nil {
			t.Fatal(err)
		}
		relayNode.Start(nil)
		t.Cleanup(func() { _ = relayNode.Close() })
		p.events.WaitCount(t, 1, 90*time.Second, "reservation made", func(e event.Event) bool {
			return e.Code == event.RelayReserved && e.Peer == relayID.String()
		})
		if n := p.events.Count(eventtest.Coded(event.NoRelay)); n != 1 {
			t.Errorf("told %d times that no relay is reachable, want once", n)
		}
	})
}

func isReachability(e event.Event) bool {
	return e.Code == event.ReachabilityPublic || e.Code == event.ReachabilityPrivate
}
