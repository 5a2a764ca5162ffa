package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

const (
	// bootstrapTimeout bounds the parallel dials to the bootstrap peers.
	bootstrapTimeout = 10 * time.Second
	// routingTableTimeout bounds the wait for the DHT to know a peer.
	routingTableTimeout = 10 * time.Second
	// findTimeout bounds one search of the rendezvous.
	findTimeout = 30 * time.Second
	// The rendezvous is searched quickly at first, then less often.
	findFirstInterval = 100 * time.Millisecond
	findMaxInterval   = 20 * time.Second
	// advertiseRetryMax caps the wait between failed advertisements.
	advertiseRetryMax = 30 * time.Second
)

// userAgentName starts our identify agent version, by which our peers know
// each other (see Room.runsOurProgram).
const userAgentName = "rendezvous-chat"

// chatRelayLimit replaces the circuit relay's default per-connection limit
// (2 minutes, 128 KiB), which a chat that stays on a relay exceeds quickly.
var chatRelayLimit = &relay.RelayLimit{Duration: time.Hour, Data: 64 << 20}

// NodeConfig says how to build a node.
type NodeConfig struct {
	Key        crypto.PrivKey
	Listen     []ma.Multiaddr
	Bootstrap  []peer.AddrInfo
	Rendezvous string
	MDNS       bool
	Server     bool
	// ChatProtocols are the chat protocol IDs, which get their own
	// resource limits.
	ChatProtocols []protocol.ID
	// PSK, when set, makes the node part of a private network (TCP only).
	PSK pnet.PSK
	// Gater, when set, filters connections by address.
	Gater *addrGater
	// Relays are the circuit relays a peer behind NAT reserves a slot with.
	Relays []peer.AddrInfo
	// NAT turns on UPnP/NAT-PMP port mapping.
	NAT bool
	// BootstrapAreServers is true when the bootstrap peers are our own
	// -server nodes (given with -peer), which are relays too.
	BootstrapAreServers bool
	// Reachability, when public or private, replaces AutoNAT's guess
	// (-reachability); ReachabilityUnknown lets AutoNAT find out.
	Reachability network.Reachability
}

// A Node is this program's part of the libp2p network: the host, the DHT,
// rendezvous discovery and mDNS. It hands the peers it finds to a callback
// and knows nothing of chat or terminals.
type Node struct {
	Host host.Host
	DHT  *dht.IpfsDHT
	cfg  NodeConfig
	emit emitFunc

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mdns   mdns.Service
	// readvertise asks the advertise loop to advertise now, after the node
	// (re)connected to the DHT, whose nodes may have lost our record.
	readvertise chan struct{}
	// addrsSettled is closed when our addresses are worth advertising at
	// the rendezvous (see watchNAT).
	addrsSettled chan struct{}
}

// NewNode builds the host and the DHT and starts listening. It does not
// reach out to the network until Start.
func NewNode(cfg NodeConfig, emit emitFunc) (*Node, error) {
	if err := checkPortsFree(cfg.Listen); err != nil {
		return nil, fmt.Errorf("start host: %w", err)
	}
	cm, err := connmgr.NewConnManager(64, 192, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	rm, err := newResourceManager(cfg.ChatProtocols)
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrs(cfg.Listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.UserAgent(userAgentName + "/" + version),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		// Nobody scrapes Prometheus metrics from a chat; collecting them costs
		// CPU on every stream and memory in every process.
		libp2p.DisableMetrics(),
	}
	if cfg.PSK != nil {
		// QUIC brings its own encryption and cannot carry a swarm key, so
		// a private network is TCP only.
		opts = append(opts, libp2p.PrivateNetwork(cfg.PSK))
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	if cfg.Gater != nil {
		opts = append(opts, libp2p.ConnectionGater(cfg.Gater))
	}
	// NAT traversal. A peer behind NAT reserves a slot with the relays, so
	// that others can reach it through them at once, and hole punching
	// (DCUtR) then tries to turn a relayed connection into a direct one.
	opts = append(opts, libp2p.EnableHolePunching())
	var privateRelays *privateRelayAddrs
	if relays := relayCandidates(cfg); len(relays) > 0 && !cfg.Server {
		privateRelays = &privateRelayAddrs{relays: relays}
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(relays),
			libp2p.AddrsFactory(privateRelays.addrs))
	}
	if !cfg.Server {
		// -reachability: what the user knows beats AutoNAT's guess. Forced
		// private starts autorelay at once; forced public never reserves.
		switch cfg.Reachability {
		case network.ReachabilityPublic:
			opts = append(opts, libp2p.ForceReachabilityPublic())
		case network.ReachabilityPrivate:
			opts = append(opts, libp2p.ForceReachabilityPrivate())
		}
	}
	if cfg.NAT && !loopbackOnly(cfg.Listen) {
		// Port mapping talks to the router (UPnP multicast, NAT-PMP), which
		// is pointless when we listen on loopback only.
		opts = append(opts, libp2p.NATPortMap())
	}
	mode := dht.ModeAuto
	if cfg.Server {
		// A server is run where others can reach it: say so, rather than
		// wait for AutoNAT, so that the relay service starts at once.
		opts = append(opts,
			libp2p.EnableRelayService(relay.WithLimit(chatRelayLimit)),
			libp2p.EnableNATService(), // tells peers whether they are reachable
			libp2p.ForceReachabilityPublic())
		// In auto mode kad-dht is a client on loopback and private
		// addresses, and a bootstrap node must serve the DHT to others.
		mode = dht.ModeServer
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("start host: %w", err)
	}
	if privateRelays != nil {
		privateRelays.host.Store(&h)
	}
	d, err := dht.New(h, dht.Mode(mode), dht.BootstrapPeers(cfg.Bootstrap...))
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("start DHT: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Node{Host: h, DHT: d, cfg: cfg, emit: emit, ctx: ctx, cancel: cancel,
		readvertise: make(chan struct{}, 1), addrsSettled: make(chan struct{})}, nil
}

// Addrs returns the node's full multiaddrs, the form others pass to -peer.
func (n *Node) Addrs() []string {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.Host.ID(), Addrs: n.Host.Addrs()})
	if err != nil {
		return nil
	}
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return s
}

// Start connects to the bootstrap peers and, unless this is a server, starts
// mDNS and advertises at and searches the rendezvous, handing every peer
// found to found. It returns at once; Close stops it all.
func (n *Node) Start(found func(peer.AddrInfo)) {
	if !n.cfg.Server && n.cfg.MDNS {
		n.mdns = mdns.NewMdnsService(n.Host, mdnsServiceName(n.cfg.Rendezvous), mdnsNotifee(found))
		if err := n.mdns.Start(); err != nil {
			n.emit(Event{Kind: EventError, Error: fmt.Sprintf("mDNS: %v", err)})
		}
	}
	if !n.cfg.Server {
		n.watchReachability()
	}
	if relays := relayCandidates(n.cfg); len(relays) > 0 && !n.cfg.Server {
		n.watchNAT(relays)
	} else {
		close(n.addrsSettled)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if len(n.cfg.Bootstrap) > 0 {
			connected := n.bootstrap()
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.keepBootstrapped(connected)
			}()
		}
		if n.cfg.Server {
			return
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.advertiseLoop()
		}()
		n.findLoop(found)
	}()
}

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
	sub, err := n.Host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		log.Debugw("NAT hint: subscribe", "err", err)
		settled()
		return
	}
	em, err := n.Host.EventBus().Emitter(new(event.EvtLocalReachabilityChanged), eventbus.Stateful)
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
				id := e.(event.EvtPeerIdentificationCompleted)
				if !isRelay[id.Peer] || id.ObservedAddr == nil {
					continue
				}
				if !behindNAT(id.ObservedAddr) {
					return // reachable as we are, or on a LAN with the relay
				}
				// Not before hole punching is ready: a peer that reached us
				// over the relay before then would stay relayed for good.
				waitHolePunchReady(n.ctx, n.Host, holePunchReadyTimeout)
				log.Debugw("NAT hint: a relay sees us at a public address that is not ours: private", "observed", id.ObservedAddr)
				_ = em.Emit(event.EvtLocalReachabilityChanged{Reachability: network.ReachabilityPrivate})
				n.waitRelayAddr(timeout.C)
				return
			}
		}
	}()
}

// waitRelayAddr returns once the host has an address through a relay, when
// the node closes, or when timeout fires.
func (n *Node) waitRelayAddr(timeout <-chan time.Time) {
	for !slices.ContainsFunc(n.Host.Addrs(), isRelayed) {
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
	how := ""
	if n.cfg.Reachability != network.ReachabilityUnknown {
		how = " (as -reachability says)"
	}
	switch r {
	case network.ReachabilityPublic:
		n.emit(Event{Kind: EventInfo, Text: "reachability: public" + how + ", others can dial us directly"})
	case network.ReachabilityPrivate:
		n.emit(Event{Kind: EventInfo, Text: "reachability: behind NAT" + how + ", others reach us through a relay, then hole punching tries a direct path"})
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
	sub, err := n.Host.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
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
					n.emit(Event{Kind: EventInfo, Text: fmt.Sprintf(
						"relay reservation made via %s: peers can reach us through it", shortID(relay))})
					warned = false
				}
				lastSeen = time.Now()
				return
			}
			if !warned && time.Since(lastSeen) >= relayWait {
				n.emit(Event{Kind: EventError, Error: noRelayText(len(relayCandidates(n.cfg)))})
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
				r := e.(event.EvtLocalReachabilityChanged).Reachability
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

// noRelayText says, in plain words, that we are behind NAT with no relay
// slot, and what to do about it; relays is how many relays we know of.
func noRelayText(relays int) string {
	hint := "give a relay with -relay ADDR or a -peer server"
	if relays > 0 {
		hint = fmt.Sprintf("none of our %d relay(s) gave us a slot; check -relay and -peer, or give another relay", relays)
	}
	return "behind NAT and no relay reachable: peers outside this network cannot reach us; " +
		"only peers we can dial will join (" + hint + ")"
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

// waitHolePunchReady waits until holePunchReady, at most max, and reports
// whether it is.
func waitHolePunchReady(ctx context.Context, h host.Host, max time.Duration) bool {
	deadline := time.Now().Add(max)
	for !holePunchReady(h) {
		if time.Now().After(deadline) || !sleep(ctx, 20*time.Millisecond) {
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

// bootstrap dials the bootstrap peers, says which answered and why the
// others did not, and waits until the DHT's routing table holds a peer. It
// reports whether any bootstrap peer answered.
func (n *Node) bootstrap() bool {
	results := n.dialBootstrap()
	if n.ctx.Err() != nil {
		return false
	}
	reached, answered, failed := describeBootstrap(results, bootstrapTimeout)
	if reached == 0 {
		hint := "peers on this LAN can still be found by mDNS"
		if !n.cfg.MDNS || n.cfg.Server {
			hint = "only peers that dial us can join"
		}
		n.emit(Event{Kind: EventError, Error: fmt.Sprintf(
			"no bootstrap peer reachable: %s; %s; retrying in the background", failed, hint)})
		return false
	}
	n.emit(Event{Kind: EventInfo, Text: bootstrapText(reached, len(results), answered, failed)})
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
	for sleep(n.ctx, wait) {
		if n.connectedToDHT() {
			connected, wait = true, healthyCheck
			continue
		}
		if connected {
			n.emit(Event{Kind: EventError, Error: "lost every DHT peer: reconnecting to the bootstrap peers (chats in progress go on)"})
			connected = false
		}
		results := n.dialBootstrap()
		if reached, answered, failed := describeBootstrap(results, bootstrapTimeout); reached > 0 {
			n.emit(Event{Kind: EventInfo, Text: bootstrapText(reached, len(results), answered, failed)})
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

// bootstrapText is the progress line of a bootstrap that reached some of
// the peers: which, and why the others were not reached.
func bootstrapText(reached, total int, answered, failed string) string {
	s := fmt.Sprintf("connected to %d of %d bootstrap peers: %s", reached, total, answered)
	if failed != "" {
		s += "; not reached: " + failed
	}
	return s
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

// advertiseLoop keeps our record at the rendezvous: it retries with backoff
// while the DHT cannot store it, and renews it before it expires.
func (n *Node) advertiseLoop() {
	select {
	case <-n.addrsSettled:
	case <-n.ctx.Done():
		return
	}
	rd := drouting.NewRoutingDiscovery(n.DHT)
	retry := 500 * time.Millisecond
	announced := false
	for {
		ttl, err := rd.Advertise(n.ctx, n.cfg.Rendezvous)
		wait := retry
		if err != nil {
			log.Debugw("advertise failed", "err", err)
			retry = min(retry*2, advertiseRetryMax)
		} else {
			if !announced {
				n.emit(Event{Kind: EventInfo, Text: fmt.Sprintf("advertising at rendezvous %q", n.cfg.Rendezvous)})
				announced = true
			}
			retry = 500 * time.Millisecond
			wait = 7 * ttl / 8
		}
		t := time.NewTimer(wait)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-n.readvertise:
			t.Stop()
		case <-t.C:
		}
	}
}

// findLoop searches the rendezvous again and again: quickly at first, then
// with backoff, so that peers started together or far apart find each other.
func (n *Node) findLoop(found func(peer.AddrInfo)) {
	rd := drouting.NewRoutingDiscovery(n.DHT)
	interval := findFirstInterval
	for {
		ctx, cancel := context.WithTimeout(n.ctx, findTimeout)
		ch, err := rd.FindPeers(ctx, n.cfg.Rendezvous)
		if err != nil {
			log.Debugw("find peers failed", "err", err)
		} else {
			for ai := range ch {
				found(ai)
			}
		}
		cancel()
		// Jitter keeps peers started together from searching in lockstep.
		jitter := time.Duration(rand.Int64N(int64(interval) / 4))
		if !sleep(n.ctx, interval+jitter) {
			return
		}
		interval = min(interval*2, findMaxInterval)
	}
}

// Close stops discovery and closes the DHT and the host, in that order, and
// waits for every goroutine the node started.
func (n *Node) Close() error {
	n.cancel()
	if n.mdns != nil {
		n.mdns.Close()
	}
	n.wg.Wait()
	return errors.Join(n.DHT.Close(), n.Host.Close())
}

// mdnsServiceName derives a valid DNS label from the rendezvous string: one
// with spaces, like the default, would never meet when used directly.
func mdnsServiceName(rendezvous string) string {
	sum := sha256.Sum256([]byte(rendezvous))
	return "rendezvous-chat-" + hex.EncodeToString(sum[:8])
}

type mdnsNotifee func(peer.AddrInfo)

func (f mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) { f(ai) }

// sleep waits for d, and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// firstLine shortens a multi-line error (libp2p's dial errors list every
// address) to its first line.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// checkPortsFree fails when a fixed port we are told to listen on is taken.
// libp2p binds with SO_REUSEPORT (so that it can dial out from its listen
// port, which helps through NATs), and a second instance would otherwise
// share the port silently while the kernel splits connections between them.
func checkPortsFree(addrs []ma.Multiaddr) error {
	for _, a := range addrs {
		ip, err := a.ValueForProtocol(ma.P_IP4)
		if err != nil {
			if ip, err = a.ValueForProtocol(ma.P_IP6); err != nil {
				continue
			}
		}
		if port, err := a.ValueForProtocol(ma.P_TCP); err == nil && port != "0" {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				return fmt.Errorf("listen on %s: %w", a, err)
			}
			l.Close()
		}
		if port, err := a.ValueForProtocol(ma.P_UDP); err == nil && port != "0" {
			c, err := net.ListenPacket("udp", net.JoinHostPort(ip, port))
			if err != nil {
				return fmt.Errorf("listen on %s: %w", a, err)
			}
			c.Close()
		}
	}
	return nil
}

// relayCandidates are the relays a peer uses: those given with -relay, and
// the -peer servers, which run a relay service. The public bootstrap peers
// do not, so they are not among them.
func relayCandidates(cfg NodeConfig) []peer.AddrInfo {
	relays := append([]peer.AddrInfo(nil), cfg.Relays...)
	if cfg.BootstrapAreServers {
		for _, ai := range cfg.Bootstrap {
			relays = mergeAddrInfo(relays, ai)
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

// loopbackOnly reports whether every listen address is a loopback one.
func loopbackOnly(addrs []ma.Multiaddr) bool {
	for _, a := range addrs {
		if !manet.IsIPLoopback(a) {
			return false
		}
	}
	return len(addrs) > 0
}
