package node

import (
	"net"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// A Gater decides, before any handshake, which networks we exchange
// connections with. It is go-multiaddr's address Filters (accept and deny
// actions) inside a libp2p ConnectionGater, so one rule applies to the
// dials we make, the dials discovery suggests and the connections others
// open to us.
type Gater struct {
	filters *ma.Filters
	denied  atomic.Int64
}

// NewGater builds the gater: with allow networks, everything outside
// them is refused; deny networks are refused in any case, even inside an
// allowed one (go-multiaddr's Filters let the last matching rule win, and
// deny rules are added last). It returns nil when there is no rule.
func NewGater(allow, deny []net.IPNet) *Gater {
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
	return &Gater{filters: f}
}

// allowed reports whether a is outside every denied network, counting and
// logging the refusals.
func (g *Gater) allowed(a ma.Multiaddr, direction string) bool {
	if !g.filters.AddrBlocked(a) {
		return true
	}
	n := g.denied.Add(1)
	log.Debugw("connection refused by address filter", "addr", a, "direction", direction, "refused so far", n)
	return false
}

// Remove drops the rule for the network n, whether it allowed or denied
// it (tests lift a filter with it, as hole punching would open a path).
func (g *Gater) Remove(n net.IPNet) { g.filters.RemoveLiteral(n) }

// Denied returns how many connections and dials the filters refused.
func (g *Gater) Denied() int64 { return g.denied.Load() }

// FilterAddrs returns the addresses of a found peer that we may dial, so
// that discovery never dials into a denied network.
func (g *Gater) FilterAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
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

func (g *Gater) InterceptPeerDial(peer.ID) bool { return true }

func (g *Gater) InterceptAddrDial(_ peer.ID, a ma.Multiaddr) bool {
	return g.allowed(a, "outbound")
}

func (g *Gater) InterceptAccept(cm network.ConnMultiaddrs) bool {
	return g.allowed(cm.RemoteMultiaddr(), "inbound")
}

func (g *Gater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}

func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
