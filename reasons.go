package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// dialReason turns a libp2p dial error into a few plain words for a person:
// libp2p's own text lists every address tried, with the wrapped errors of
// each layer. addrs are the addresses we had for the peer, and timeout is
// the bound the caller put on the dial, for "no answer in …".
//
// Each address that failed has its own reason, and the one that tells the
// most wins: another peer at the address, a relay that no longer has the
// peer, nothing listening, a limit of ours, no route, no answer. A peer's
// loopback addresses say nothing about it when it has others (dialed from
// here they reach our own machine), so their errors count only when it
// has no other.
func dialReason(err error, addrs []ma.Multiaddr, timeout time.Duration) string {
	if err == nil {
		return "no error"
	}
	var de *swarm.DialError
	if !errors.As(err, &de) || len(de.DialErrors) == 0 {
		// The whole dial failed: no addresses, or its deadline ended it.
		_, reason := classifyDialError(err, timeout)
		return withPrivateHint(reason, addrs)
	}
	notLoopback := func(a ma.Multiaddr) bool { return !manet.IsIPLoopback(a) }
	skipLoopback := slices.ContainsFunc(addrs, notLoopback) &&
		slices.ContainsFunc(de.DialErrors, func(te swarm.TransportError) bool { return notLoopback(te.Address) })
	best, reason := len(dialRanks), ""
	for _, te := range de.DialErrors {
		if skipLoopback && manet.IsIPLoopback(te.Address) {
			continue
		}
		// A single address's timeout is its own, not the dial's bound.
		if rank, r := classifyDialError(te.Cause, 0); rank < best {
			best, reason = rank, r
		}
	}
	// The dial's own cause may say more ("no good addresses": none could
	// be dialed at all); "all dials failed" never does.
	if de.Cause != nil {
		if rank, r := classifyDialError(de.Cause, timeout); rank < best || reason == "" {
			reason = r
		}
	}
	return withPrivateHint(reason, addrs)
}

// The reasons of classifyDialError, the most telling first.
const (
	rankMismatch = iota
	rankNoReservation
	rankRefused
	rankOurLimit
	rankFiltered
	rankRelayFull
	rankNoAddrs
	rankNoRoute
	rankTimeout
	rankBackoff
	rankOther
)

// noGoodAddrs is the reason when the swarm found no address it could dial.
const noGoodAddrs = "none of its addresses can be dialed from here (no transport for them, or filtered)"

var dialRanks = [...]string{
	rankMismatch:      "another peer now answers at its address",
	rankNoReservation: "its relay no longer holds a slot for it",
	rankRefused:       "refused (nothing listening)",
	rankOurLimit:      "our connection limits are reached",
	rankFiltered:      "refused by our -allow/-deny filters",
	rankRelayFull:     "its relay is full",
	rankNoAddrs:       "no address known for it",
	rankNoRoute:       "no route to its addresses",
	rankTimeout:       "no answer (timed out)",
	rankBackoff:       "another dial of ours failed moments ago; not retried yet",
	rankOther:         "",
}

// classifyDialError names the reason of one error, with its rank in
// dialRanks. timeout, when not 0, is the bound of the whole dial.
func classifyDialError(err error, timeout time.Duration) (int, string) {
	var mismatch sec.ErrPeerIDMismatch
	rank := rankOther
	switch {
	case errors.As(err, &mismatch):
		rank = rankMismatch
	case strings.Contains(err.Error(), "NO_RESERVATION"):
		// The relay's answer (circuitv2 client, "error opening relay
		// circuit: NO_RESERVATION"): the peer left the relay.
		rank = rankNoReservation
	case errors.Is(err, syscall.ECONNREFUSED):
		rank = rankRefused
	case errors.Is(err, network.ErrResourceLimitExceeded):
		rank = rankOurLimit
	case errors.Is(err, swarm.ErrGaterDisallowedConnection):
		rank = rankFiltered
	case strings.Contains(err.Error(), "RESOURCE_LIMIT_EXCEEDED"):
		rank = rankRelayFull
	case errors.Is(err, swarm.ErrNoAddresses):
		rank = rankNoAddrs
	case errors.Is(err, swarm.ErrNoGoodAddresses):
		return rankNoAddrs, noGoodAddrs
	case unreachable(err):
		rank = rankNoRoute
	case timedOut(err):
		if timeout > 0 {
			return rankTimeout, fmt.Sprintf("no answer in %v", timeout.Round(time.Second))
		}
		rank = rankTimeout
	case errors.Is(err, swarm.ErrDialBackoff):
		rank = rankBackoff
	case errors.Is(err, context.Canceled):
		return rankOther, "cancelled"
	default:
		return rankOther, innermostLine(err)
	}
	return rank, dialRanks[rank]
}

// withPrivateHint says more when the addresses explain the failure: they
// are all private ones (a peer behind NAT that found no relay advertises
// just those), or DNS names that gave nothing to dial (the public bootstrap
// peers' /dnsaddr, with no DNS server reachable).
func withPrivateHint(reason string, addrs []ma.Multiaddr) string {
	switch {
	case onlyPrivate(addrs) && (reason == dialRanks[rankNoRoute] || strings.HasPrefix(reason, "no answer")):
		return "it lists only private addresses, none reachable from here"
	case reason == noGoodAddrs && len(addrs) > 0 && !slices.ContainsFunc(addrs, func(a ma.Multiaddr) bool { return !isDNS(a) }):
		return "its DNS name gave no address we can dial (no DNS here?)"
	}
	return reason
}

// isDNS reports whether a starts with a DNS name rather than an IP address.
func isDNS(a ma.Multiaddr) bool {
	if len(a) == 0 {
		return false
	}
	switch a[0].Protocol().Code {
	case ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_DNSADDR:
		return true
	}
	return false
}

// unreachable reports whether err says there is no route to the address.
func unreachable(err error) bool {
	return errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH)
}

// timedOut reports whether err is a timeout: the dial's deadline, or one
// address's own (libp2p gives each TCP dial a few seconds).
func timedOut(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || os.IsTimeout(err)
}

// onlyPrivate reports whether addrs, leaving out loopback ones, are all
// direct addresses in private ranges.
func onlyPrivate(addrs []ma.Multiaddr) bool {
	n := 0
	for _, a := range addrs {
		switch {
		case isRelayed(a) || manet.IsPublicAddr(a):
			return false
		case manet.IsIPLoopback(a):
		default:
			n++
		}
	}
	return n > 0
}

// innermostLine is the last resort: the cause for the first address tried,
// without the "failed to dial …" wrappers, on one line.
func innermostLine(err error) string {
	var de *swarm.DialError
	if errors.As(err, &de) {
		if len(de.DialErrors) > 0 && de.DialErrors[0].Cause != nil {
			err = de.DialErrors[0].Cause
		} else if de.Cause != nil {
			err = de.Cause
		}
	}
	s := firstLine(err)
	for {
		rest, ok := strings.CutPrefix(s, "failed to dial: ")
		if !ok {
			break
		}
		s = rest
	}
	return s
}

// peerAt names a peer for a person: its short ID and the address that
// matters (the one we reached it at, or the first we know), with a count
// of the others.
func peerAt(id peer.ID, addrs []ma.Multiaddr) string {
	switch len(addrs) {
	case 0:
		return shortID(id)
	case 1:
		return fmt.Sprintf("%s (%s)", shortID(id), addrs[0])
	}
	return fmt.Sprintf("%s (%s +%d)", shortID(id), addrs[0], len(addrs)-1)
}

// A bootstrapResult is how the dial of one bootstrap peer went.
type bootstrapResult struct {
	ai   peer.AddrInfo
	addr ma.Multiaddr // the remote address of the connection, when reached
	err  error
}

// describeBootstrap says which bootstrap peers answered and which did not,
// and why, in one line: "1 of 2 bootstrap peers: A (addr); not reached:
// B (addr): refused (nothing listening)". Peers that failed the same way
// share their reason.
func describeBootstrap(results []bootstrapResult, timeout time.Duration) (reached int, answered, failed string) {
	var ok []string
	type group struct {
		reason string
		peers  []string
	}
	var groups []*group
	for _, r := range results {
		if r.err == nil {
			reached++
			addrs := r.ai.Addrs
			if r.addr != nil {
				addrs = []ma.Multiaddr{r.addr}
			}
			ok = append(ok, peerAt(r.ai.ID, addrs))
			continue
		}
		reason := dialReason(r.err, r.ai.Addrs, timeout)
		var g *group
		for _, x := range groups {
			if x.reason == reason {
				g = x
			}
		}
		if g == nil {
			g = &group{reason: reason}
			groups = append(groups, g)
		}
		g.peers = append(g.peers, peerAt(r.ai.ID, r.ai.Addrs))
	}
	var bad []string
	for _, g := range groups {
		bad = append(bad, strings.Join(g.peers, ", ")+": "+g.reason)
	}
	return reached, strings.Join(ok, ", "), strings.Join(bad, "; ")
}

// staleRecordText is what the user reads when a peer found at the
// rendezvous cannot be reached: most often its record outlived it.
func staleRecordText(id peer.ID, reason string) string {
	return fmt.Sprintf("found %s at the rendezvous but could not reach it "+
		"(its record may be stale, or it is offline or behind NAT without a relay): %s", shortID(id), reason)
}

// dialNotes remembers, for a room, the peers it has had a session with and
// those it has told the user it could not reach, so that a failed dial is
// reported at most once per peer per run, and never for a peer that was in
// the chat (its leaving was reported already). The zero value is ready.
type dialNotes struct {
	mu   sync.Mutex
	met  map[peer.ID]bool
	told map[peer.ID]bool
}

// joined records that the room has had a session with p.
func (d *dialNotes) joined(p peer.ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.met == nil {
		d.met = make(map[peer.ID]bool)
	}
	d.met[p] = true
}

// tell reports whether the user should hear that p could not be reached,
// and if so remembers that they did.
func (d *dialNotes) tell(p peer.ID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.met[p] || d.told[p] {
		return false
	}
	if d.told == nil {
		d.told = make(map[peer.ID]bool)
	}
	d.told[p] = true
	return true
}

// reportUnreachable tells the user, in plain words and once per peer, that a
// peer found at the rendezvous could not be reached. Most such peers are
// gone and their records stale; a few are behind NAT with no relay address.
// Nothing is said when the failure does not mean that: the room is
// closing, or the peer is connected or in the chat after all (both sides
// dialed at once).
func (r *Room) reportUnreachable(ai peer.AddrInfo, err error) {
	if r.ctx.Err() != nil || r.hasSession(ai.ID) || r.host.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	if !r.notes.tell(ai.ID) {
		return
	}
	r.emit(Event{Kind: EventInfo, Peer: ai.ID.String(), Text: staleRecordText(ai.ID, dialReason(err, ai.Addrs, dialTimeout))})
}
