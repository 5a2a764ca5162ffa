package node

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// bootstrap dials the bootstrap peers, says which answered and why the
// others did not, and waits until the DHT's routing table holds a peer. It
// reports whether any bootstrap peer answered.
func (n *Node) bootstrap() bool {
	results := n.dialBootstrap()
	if n.ctx.Err() != nil {
		return false
	}
	report := bootstrapReport(results, bootstrapTimeout)
	if report.Count == 0 {
		report.Kind, report.Code, report.Why = event.Error, event.BootstrapUnreachable, event.WhyMDNSOnly
		if !n.cfg.MDNS || n.cfg.Server {
			report.Why = event.WhyInboundOnly
		}
		n.emit(report)
		return false
	}
	n.emit(report)
	if err := n.waitRoutingTable(); err != nil {
		log.Debugw("routing table still empty", "err", err)
	}
	_ = n.DHT.Bootstrap(n.ctx)
	return true
}

// keepBootstrapped watches the node's hold on the DHT: when no peer of the
// routing table is connected any more (every bootstrap node went away), it
// dials the bootstrap peers again, with backoff, until one answers, and
// then advertises again, since a restarted bootstrap node lost our record.
func (n *Node) keepBootstrapped(connected bool) {
	const healthyCheck = 5 * time.Second
	wait := healthyCheck
	if !connected {
		wait = 2 * time.Second
	}
	for Sleep(n.ctx, wait) {
		if n.connectedToDHT() {
			connected, wait = true, healthyCheck
			continue
		}
		if connected {
			n.emit(event.Event{Kind: event.Error, Code: event.DHTLost})
			connected = false
		}
		results := n.dialBootstrap()
		if report := bootstrapReport(results, bootstrapTimeout); report.Count > 0 {
			n.emit(report)
			_ = n.waitRoutingTable()
			_ = n.DHT.Bootstrap(n.ctx)
			select {
			case n.readvertise <- struct{}{}:
			default:
			}
			connected, wait = true, healthyCheck
			continue
		}
		wait = min(2*wait, time.Minute)
	}
}

// connectedToDHT reports whether any peer of the routing table is
// connected: the routing table keeps peers for a while after they are gone.
func (n *Node) connectedToDHT() bool {
	for _, p := range n.DHT.RoutingTable().ListPeers() {
		if n.Host.Network().Connectedness(p) == network.Connected {
			return true
		}
	}
	return false
}

// dialBootstrap dials every bootstrap peer in parallel, each bounded by
// bootstrapTimeout, and returns how each dial went, in the order given.
func (n *Node) dialBootstrap() []bootstrapResult {
	ctx, cancel := context.WithTimeout(n.ctx, bootstrapTimeout)
	defer cancel()
	// kad-dht dials the bootstrap peers itself as it starts. Should its
	// dial fail first, the swarm's dial backoff would answer ours with
	// "dial backoff", which says nothing of why: a forced direct dial skips
	// the backoff (a connection already up is still used as it is). Our
	// own retries are spaced by keepBootstrapped.
	ctx = network.WithForceDirectDial(ctx, "bootstrap: dial, to learn why it fails")
	results := make([]bootstrapResult, len(n.cfg.Bootstrap))
	var wg sync.WaitGroup
	for i, ai := range n.cfg.Bootstrap {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bootstrapResult{ai: ai, err: n.Host.Connect(ctx, ai)}
			if r.err != nil {
				log.Debugw("bootstrap dial failed", "peer", ai.ID, "err", r.err)
			} else if conns := n.Host.Network().ConnsToPeer(ai.ID); len(conns) > 0 {
				r.addr = conns[0].RemoteMultiaddr()
			}
			results[i] = r
		}()
	}
	wg.Wait()
	return results
}

// waitRoutingTable returns once the DHT knows at least one peer, which is
// when advertising and searching can work, instead of sleeping a fixed time.
func (n *Node) waitRoutingTable() error {
	ctx, cancel := context.WithTimeout(n.ctx, routingTableTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for n.DHT.RoutingTable().Size() == 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// A bootstrapResult is how the dial of one bootstrap peer went.
type bootstrapResult struct {
	ai   peer.AddrInfo
	addr ma.Multiaddr // the remote address of the connection, when reached
	err  error
}

// bootstrapReport is the event that says how the dials of the bootstrap
// peers went: an info event (bootstrap_connected) with Count the peers
// that answered, of Total; the caller makes it an error when none did.
// Each peer comes with the address that matters (the one we reached it at,
// or the first we know) and, when not reached, the reason.
func bootstrapReport(results []bootstrapResult, timeout time.Duration) event.Event {
	e := event.Event{Kind: event.Info, Code: event.BootstrapConnected, Total: int64(len(results))}
	for _, r := range results {
		bp := event.BootstrapPeer{Peer: r.ai.ID.String()}
		addrs := r.ai.Addrs
		if r.err == nil {
			e.Count++
			bp.Reached = true
			if r.addr != nil {
				addrs = []ma.Multiaddr{r.addr}
			}
		} else {
			f := ExplainDial(r.err, r.ai.Addrs, timeout)
			bp.Why, bp.Cause, bp.WaitMS = f.Why, f.Cause, event.Millis(f.Wait)
		}
		if len(addrs) > 0 {
			bp.Addr, bp.More = addrs[0].String(), len(addrs)-1
		}
		e.Bootstrap = append(e.Bootstrap, bp)
	}
	return e
}
