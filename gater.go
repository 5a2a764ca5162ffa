package main

import (
	"net"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// addrGater decides, before any handshake, which networks we exchange
// connections with. It is go-multiaddr's address Filters (accept and deny
// actions) inside a libp2p ConnectionGater, so one rule applies to the
// dials we make, the dials discovery suggests and the connections others
// open to us.
type addrGater struct {
	filters *ma.Filters
	denied  atomic.Int64
}

// newAddrGater builds the gater: with allow networks, everything outside
// them is refused; deny networks are refused in any case, even inside an
// allowed one (go-multiaddr's Filters let the last matching rule win, and
// deny rules are added last). It returns nil when there is no rule.
func newAddrGater(allow, deny []net.IPNet) *addrGater {
	if len(allow) == 0 && len(deny) == 0 {
		return nil
	}
	f := ma.NewFilters()
	f.DefaultAction = ma.ActionAccept
	if len(allow) > 0 {
		f.DefaultAction = ma.ActionDeny
	}
	for _, n := range allow {
		f.AddFilter(n, ma.ActionAccept)
	}
	for _, n := range deny {
		f.AddFilter(n, ma.ActionDeny)
	}
	return &addrGater{filters: f}
}

// allowed reports whether a is outside every denied network, counting and
// logging the refusals.
func (g *addrGater) allowed(a ma.Multiaddr, direction string) bool {
	if !g.filters.AddrBlocked(a) {
		return true
	}
	n := g.denied.Add(1)
	log.Debugw("connection refused by address filter", "addr", a, "direction", direction, "refused so far", n)
	return false
}

// Denied returns how many connections and dials the filters refused.
func (g *addrGater) Denied() int64 { return g.denied.Load() }

// filterAddrs returns the addresses of a found peer that we may dial, so
// that discovery never dials into a denied network.
func (g *addrGater) filterAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	if g == nil {
		return addrs
	}
	kept := addrs[:0:0]
	for _, a := range addrs {
		if !g.filters.AddrBlocked(a) {
			kept = append(kept, a)
		}
	}
	return kept
}

func (g *addrGater) InterceptPeerDial(peer.ID) bool { return true }

func (g *addrGater) InterceptAddrDial(_ peer.ID, a ma.Multiaddr) bool {
	return g.allowed(a, "outbound")
}

func (g *addrGater) InterceptAccept(cm network.ConnMultiaddrs) bool {
	return g.allowed(cm.RemoteMultiaddr(), "inbound")
}

func (g *addrGater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}

func (g *addrGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
