package node

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	lpevent "github.com/libp2p/go-libp2p/core/event"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// watchNAT tells the host it is behind NAT as soon as one of our relays says
// so, instead of waiting for AutoNAT. Behind a NAT that drops unsolicited
// packets, AutoNAT's answer comes only when the server's dial-back times out
// (15 s, not configurable), and autorelay reserves a relay slot only once
// AutoNAT has said "private": until then the peer has no address others can
// reach. But the relay's identify tells us at once the address it sees us
// at: a public address that none of our interfaces has means a NAT. We then
// emit "private" on the host's event bus, as AutoNAT would: autorelay
// reserves with the relays at once and the relay addresses are advertised.
// AutoNAT still probes, and its verdict replaces ours (public, when a port
// mapping works, stops autorelay and restores the public addresses).
//
// It closes n.addrsSettled when our addresses are worth advertising: at once
// when a relay sees us at one of our own addresses, once the relay addresses
// are there behind NAT, and after natSettleTimeout in any case. Found with
// only its private addresses, a peer behind NAT costs the finder a dial that
// times out (5 s for QUIC) before it can try again.
//
// With -reachability the user has said it already. Public: there is no
// relay slot to wait for. Private: AutoNAT emitted "private" at start, so
// autorelay reserves at once, and only the wait for the relay addresses is
// left.
func (n *Node) watchNAT(relays []peer.AddrInfo) {
	settled := sync.OnceFunc(func() { close(n.addrsSettled) })
	switch n.cfg.Reachability {
	case network.ReachabilityPublic:
		settled()
		return
	case network.ReachabilityPrivate:
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer settled()
			timeout := time.NewTimer(natSettleTimeout)
			defer timeout.Stop()
			n.waitRelayAddr(timeout.C)
		}()
		return
	}
	sub, err := n.Host.EventBus().Subscribe(new(lpevent.EvtPeerIdentificationCompleted))
	if err != nil {
		log.Debugw("NAT hint: subscribe", "err", err)
		settled()
		return
	}
	em, err := n.Host.EventBus().Emitter(new(lpevent.EvtLocalReachabilityChanged), eventbus.Stateful)
	if err != nil {
		sub.Close()
		log.Debugw("NAT hint: emitter", "err", err)
		settled()
		return
	}
	isRelay := make(map[peer.ID]bool, len(relays))
	for _, r := range relays {
		isRelay[r.ID] = true
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer settled()
		defer sub.Close()
		defer em.Close()
		timeout := time.NewTimer(natSettleTimeout)
		defer timeout.Stop()
		for {
			select {
			case <-n.ctx.Done():
				return
			case <-timeout.C:
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				id := e.(lpevent.EvtPeerIdentificationCompleted)
				if !isRelay[id.Peer] || id.ObservedAddr == nil {
					continue
				}
				if !behindNAT(id.ObservedAddr) {
					return // reachable as we are, or on a LAN with the relay
				}
				// Not before hole punching is ready: a peer that reached us
				// over the relay before then would stay relayed for good.
				WaitHolePunchReady(n.ctx, n.Host, holePunchReadyTimeout)
				log.Debugw("NAT hint: a relay sees us at a public address that is not ours: private", "observed", id.ObservedAddr)
				_ = em.Emit(lpevent.EvtLocalReachabilityChanged{Reachability: network.ReachabilityPrivate})
				n.waitRelayAddr(timeout.C)
				return
			}
		}
	}()
}

// waitRelayAddr returns once the host has an address through a relay, when
// the node closes, or when timeout fires.
func (n *Node) waitRelayAddr(timeout <-chan time.Time) {
	for !slices.ContainsFunc(n.Host.Addrs(), IsRelayed) {
		select {
		case <-n.ctx.Done():
			return
		case <-timeout:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sayReachability tells the user, in plain words, what the host learned
// about its own reachability (from AutoNAT, from watchNAT, or from
// -reachability): whether others can dial it, or must come through a relay.
func (n *Node) sayReachability(r network.Reachability) {
	// A forced reachability is announced once, at start, and nothing else
	// emits one: watchNAT stays quiet then.
	forced := n.cfg.Reachability != network.ReachabilityUnknown
	switch r {
	case network.ReachabilityPublic:
		n.emit(event.Event{Kind: event.Info, Code: event.ReachabilityPublic, Forced: forced})
	case network.ReachabilityPrivate:
		n.emit(event.Event{Kind: event.Info, Code: event.ReachabilityPrivate, Forced: forced})
	}
}

// relayWait is how long we may be behind NAT without a relay reservation
// before the user is told that peers outside cannot reach us. autorelay
// reserves within a second when a relay answers.
const relayWait = 10 * time.Second

// relayCheckInterval spaces the looks at our addresses while we are behind
// NAT: the relay addresses that autorelay adds are announced on the event
// bus, but those privateRelayAddrs adds are not.
const relayCheckInterval = time.Second

// watchReachability says what the host learns about its reachability (see
// sayReachability), and tells the user when we are behind NAT (AutoNAT,
// watchNAT or -reachability private) and, relayWait later, still have no
// address through a relay: then only peers that can dial us, on our own
// network, can join. It says so once, and once more, in other words, when
// a reservation is made after all; should the reservation be lost for
// relayWait, it warns again.
func (n *Node) watchReachability() {
	sub, err := n.Host.EventBus().Subscribe(new(lpevent.EvtLocalReachabilityChanged))
	if err != nil {
		log.Debugw("reachability: subscribe", "err", err)
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer sub.Close()
		tick := time.NewTicker(relayCheckInterval)
		defer tick.Stop()
		var (
			last     = network.ReachabilityUnknown
			private  bool
			lastSeen time.Time // when we last had a relay address, or became private
			warned   bool
		)
		check := func() {
			if !private {
				return
			}
			if relay := relayOfAddrs(n.Host.Addrs()); relay != "" {
				if warned {
					n.emit(event.Event{Kind: event.Info, Code: event.RelayReserved, Peer: relay.String()})
					warned = false
				}
				lastSeen = time.Now()
				return
			}
			if !warned && time.Since(lastSeen) >= relayWait {
				n.emit(event.Event{Kind: event.Error, Code: event.NoRelay, Count: len(relayCandidates(n.cfg))})
				warned = true
			}
		}
		wait := time.NewTimer(relayWait)
		defer wait.Stop()
		for {
			select {
			case <-n.ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				r := e.(lpevent.EvtLocalReachabilityChanged).Reachability
				if r == last {
					continue
				}
				last = r
				n.sayReachability(r)
				wasPrivate := private
				private = r == network.ReachabilityPrivate
				if private && !wasPrivate {
					lastSeen = time.Now()
					wait.Reset(relayWait)
				}
				if !private {
					warned = false
				}
			case <-wait.C:
				check()
			case <-tick.C:
				check()
			}
		}
	}()
}

// relayOfAddrs returns the relay of the first relay address among addrs, or "".
func relayOfAddrs(addrs []ma.Multiaddr) peer.ID {
	for _, a := range addrs {
		if id := relayOf(a); id != "" {
			return id
		}
	}
	return ""
}

// natSettleTimeout bounds the wait for our addresses to settle before the
// first advertisement.
const natSettleTimeout = 5 * time.Second

// holePunchReadyTimeout bounds the wait for the hole-punch service, which
// starts within a second or so of the first connection to a server.
const holePunchReadyTimeout = 5 * time.Second

// holePunchReady reports whether the host's hole-punch service (DCUtR) has
// started. It starts only once a server has told us our public address, and
// ignores the relayed connections opened before: they are never upgraded.
// It registers its protocol when it starts, which is what this looks for.
func holePunchReady(h host.Host) bool {
	return slices.Contains(h.Mux().Protocols(), holepunch.Protocol)
}

// WaitHolePunchReady waits until the host's hole-punch service has started
// (see holePunchReady), at most max, and reports whether it has.
func WaitHolePunchReady(ctx context.Context, h host.Host, max time.Duration) bool {
	deadline := time.Now().Add(max)
	for !holePunchReady(h) {
		if time.Now().After(deadline) || !Sleep(ctx, 20*time.Millisecond) {
			return false
		}
	}
	return true
}

// behindNAT reports whether observed, our address as a peer sees it, is a
// public address that none of our interfaces has.
func behindNAT(observed ma.Multiaddr) bool {
	if !manet.IsPublicAddr(observed) {
		return false
	}
	ip, err := manet.ToIP(observed)
	if err != nil {
		return false
	}
	ifaces, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return false
	}
	for _, a := range ifaces {
		if own, err := manet.ToIP(a); err == nil && own.Equal(ip) {
			return false
		}
	}
	return true
}

// relayCandidates are the relays a peer uses: those given with -relay, and
// the -peer servers, which run a relay service. The public bootstrap peers
// do not, so they are not among them.
func relayCandidates(cfg Config) []peer.AddrInfo {
	relays := append([]peer.AddrInfo(nil), cfg.Relays...)
	if cfg.BootstrapAreServers {
		for _, ai := range cfg.Bootstrap {
			relays = MergeAddrInfo(relays, ai)
		}
	}
	return relays
}

// autorelayTag is the tag with which go-libp2p's autorelay protects the
// connection to a relay that holds a reservation for us
// (p2p/host/autorelay/relay_finder.go, autorelayTag); TestPrivateRelayAddrs
// notices if a new version renames it.
const autorelayTag = "autorelay"

// privateRelayAddrs adds the relay addresses that autorelay leaves out.
// autorelay builds our addresses through a relay from the relay's public
// addresses only (p2p/host/autorelay/addrsplosion.go, cleanupAddressSet), so
// a reservation with a relay that has only private ones (behind
// carrier-grade NAT, on a LAN, in a lab built from private ranges) gives us
// no address through it, and nobody can use the slot. As the host's address
// factory, it adds <relay address>/p2p/<relay>/p2p-circuit for every
// address we know the relay by, while we are private and hold a
// reservation with it (autorelay then protects the connection) but have no
// relay address through it.
type privateRelayAddrs struct {
	relays []peer.AddrInfo
	// host is set once libp2p.New returns; the factory runs before that.
	host atomic.Pointer[host.Host]
}

func (p *privateRelayAddrs) addrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	hp := p.host.Load()
	if hp == nil {
		return addrs
	}
	h := *hp
	// BasicHost reports the reachability last announced on the event bus,
	// whether by AutoNAT, -reachability or watchNAT.
	rh, ok := h.(interface{ Reachability() network.Reachability })
	if !ok || rh.Reachability() != network.ReachabilityPrivate {
		return addrs
	}
	for _, r := range p.relays {
		if slices.ContainsFunc(addrs, func(a ma.Multiaddr) bool { return relayOf(a) == r.ID }) ||
			h.Network().Connectedness(r.ID) != network.Connected ||
			!h.ConnManager().IsProtected(r.ID, autorelayTag) {
			continue
		}
		circuit := ma.StringCast("/p2p/" + r.ID.String() + "/p2p-circuit")
		for _, a := range r.Addrs {
			addrs = append(addrs, a.Encapsulate(circuit))
		}
	}
	return addrs
}

// relayOf returns the relay's peer ID in a relay address
// (…/p2p/<relay>/p2p-circuit…), or "" for any other address.
func relayOf(a ma.Multiaddr) peer.ID {
	var last peer.ID
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_P2P:
			if id, err := peer.IDFromBytes(c.RawValue()); err == nil {
				last = id
			}
		case ma.P_CIRCUIT:
			return last
		}
	}
	return ""
}
