package node

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// A DialFailure says why a dial failed, in the fields of an event: Why is
// one of the event.Why… dial reasons, Cause the underlying error when no
// reason fits (event.WhyOther), and Wait the bound that ran out
// (event.WhyTimeout, when the dial's own bound did).
type DialFailure struct {
	Why   string
	Cause string
	Wait  time.Duration
}

// ExplainDial turns a libp2p dial error into one reason: libp2p's own text
// lists every address tried, with the wrapped errors of each layer, which
// tells a person little. addrs are the addresses we had for the peer, and
// timeout is the bound the caller put on the dial.
//
// Each address that failed has its own reason, and the one that tells the
// most wins: another peer at the address, a relay that no longer has the
// peer, nothing listening, a limit of ours, no route, no answer. A peer's
// loopback addresses say nothing about it when it has others (dialed from
// here they reach our own machine), so their errors count only when it
// has no other.
func ExplainDial(err error, addrs []ma.Multiaddr, timeout time.Duration) DialFailure {
	if err == nil {
		return DialFailure{Why: event.WhyOther, Cause: "no error"}
	}
	var de *swarm.DialError
	if !errors.As(err, &de) || len(de.DialErrors) == 0 {
		// The whole dial failed: no addresses, or its deadline ended it.
		return withPrivateHint(classifyDialError(err, timeout), addrs)
	}
	notLoopback := func(a ma.Multiaddr) bool { return !manet.IsIPLoopback(a) }
	skipLoopback := slices.ContainsFunc(addrs, notLoopback) &&
		slices.ContainsFunc(de.DialErrors, func(te swarm.TransportError) bool { return notLoopback(te.Address) })
	best, found := DialFailure{}, false
	for _, te := range de.DialErrors {
		if skipLoopback && manet.IsIPLoopback(te.Address) {
			continue
		}
		// A single address's timeout is its own, not the dial's bound.
		if f := classifyDialError(te.Cause, 0); !found || rank(f.Why) < rank(best.Why) {
			best, found = f, true
		}
	}
	// The dial's own cause may say more ("no good addresses": none could
	// be dialed at all); "all dials failed" never does.
	if de.Cause != nil {
		if f := classifyDialError(de.Cause, timeout); !found || rank(f.Why) < rank(best.Why) {
			best, found = f, true
		}
	}
	return withPrivateHint(best, addrs)
}

// dialRanks orders the dial reasons, the most telling first.
var dialRanks = []string{
	event.WhyMismatch,
	event.WhyNoReservation,
	event.WhyRefused,
	event.WhyOurLimit,
	event.WhyFiltered,
	event.WhyRelayFull,
	event.WhyNoAddrs,
	event.WhyNoGoodAddrs,
	event.WhyNoRoute,
	event.WhyTimeout,
	event.WhyBackoff,
	event.WhyCancelled,
	event.WhyOther,
}

// rank is why's place in dialRanks.
func rank(why string) int {
	if i := slices.Index(dialRanks, why); i >= 0 {
		return i
	}
	return len(dialRanks)
}

// classifyDialError names the reason of one error. timeout, when not 0, is
// the bound of the whole dial.
func classifyDialError(err error, timeout time.Duration) DialFailure {
	var mismatch sec.ErrPeerIDMismatch
	why := ""
	switch {
	case errors.As(err, &mismatch):
		why = event.WhyMismatch
	case strings.Contains(err.Error(), "NO_RESERVATION"):
		// The relay's answer (circuitv2 client, "error opening relay
		// circuit: NO_RESERVATION"): the peer left the relay.
		why = event.WhyNoReservation
	case errors.Is(err, syscall.ECONNREFUSED):
		why = event.WhyRefused
	case errors.Is(err, network.ErrResourceLimitExceeded):
		why = event.WhyOurLimit
	case errors.Is(err, swarm.ErrGaterDisallowedConnection):
		why = event.WhyFiltered
	case strings.Contains(err.Error(), "RESOURCE_LIMIT_EXCEEDED"):
		why = event.WhyRelayFull
	case errors.Is(err, swarm.ErrNoAddresses):
		why = event.WhyNoAddrs
	case errors.Is(err, swarm.ErrNoGoodAddresses):
		why = event.WhyNoGoodAddrs
	case unreachable(err):
		why = event.WhyNoRoute
	case timedOut(err):
		return DialFailure{Why: event.WhyTimeout, Wait: timeout}
	case errors.Is(err, swarm.ErrDialBackoff):
		why = event.WhyBackoff
	case errors.Is(err, context.Canceled):
		why = event.WhyCancelled
	default:
		return DialFailure{Why: event.WhyOther, Cause: innermostLine(err)}
	}
	return DialFailure{Why: why}
}

// withPrivateHint says more when the addresses explain the failure: they
// are all private ones (a peer behind NAT that found no relay advertises
// just those), or DNS names that gave nothing to dial (the public bootstrap
// peers' /dnsaddr, with no DNS server reachable).
func withPrivateHint(f DialFailure, addrs []ma.Multiaddr) DialFailure {
	switch {
	case onlyPrivate(addrs) && (f.Why == event.WhyNoRoute || f.Why == event.WhyTimeout):
		return DialFailure{Why: event.WhyOnlyPrivate}
	case f.Why == event.WhyNoGoodAddrs && len(addrs) > 0 && !slices.ContainsFunc(addrs, func(a ma.Multiaddr) bool { return !isDNS(a) }):
		return DialFailure{Why: event.WhyNoDNS}
	}
	return f
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
	s := FirstLine(err)
	for {
		rest, ok := strings.CutPrefix(s, "failed to dial: ")
		if !ok {
			break
		}
		s = rest
	}
	return s
}
