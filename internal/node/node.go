package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	libp2pwebrtc "github.com/libp2p/go-libp2p/p2p/transport/webrtc"
	webtransport "github.com/libp2p/go-libp2p/p2p/transport/webtransport"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

const (
	// bootstrapTimeout bounds the parallel dials to the bootstrap peers.
	bootstrapTimeout = 10 * time.Second
	// routingTableTimeout bounds the wait for the DHT to know a peer.
	routingTableTimeout = 10 * time.Second
	// findTimeout bounds one search of the rendezvous.
	findTimeout = 30 * time.Second
	// The rendezvous is searched (a walk through the DHT) quickly at
	// first, then less often. The first pause was 100 ms before issue 18;
	// with the polls of the closest servers in between, walks that close
	// together only cost messages (see DefaultDiscovery).
	findFirstInterval = 2 * time.Second
	findMaxInterval   = 20 * time.Second
	// advertiseRetryMax caps the wait between failed advertisements.
	advertiseRetryMax = 30 * time.Second
	// libp2pCloseTimeout bounds the wait for the DHT and the host to close
	// (see Close).
	libp2pCloseTimeout = 5 * time.Second
)

// UserAgentName starts our identify agent version ("rendezvous-chat/1.2.3"),
// by which our peers know each other: the room moves a relayed chat to a
// direct connection only with peers that run this program.
const UserAgentName = "rendezvous-chat"

// chatRelayLimit replaces the circuit relay's default per-connection limit
// (2 minutes, 128 KiB), which a chat that stays on a relay exceeds quickly.
var chatRelayLimit = &relay.RelayLimit{Duration: time.Hour, Data: 64 << 20}

// Config says how to build a node.
type Config struct {
	Key crypto.PrivKey
	// Version is this program's version, for the identify agent version
	// (UserAgentName/Version).
	Version    string
	Listen     []ma.Multiaddr
	Bootstrap  []peer.AddrInfo
	Rendezvous string
	MDNS       bool
	// MDNSService, when set, is the mDNS service name to use rather than
	// one made from Rendezvous (a private room's, which strangers cannot
	// compute).
	MDNSService string
	Server      bool
	// ChatProtocols are the chat protocol IDs, which get their own
	// resource limits.
	ChatProtocols []protocol.ID
	// BrowserListen, when set, are the WebTransport and WebRTC-direct
	// addresses to listen on for browsers (-web); not with a PSK.
	BrowserListen []ma.Multiaddr
	// PSK, when set, makes the node part of a private network (TCP only).
	PSK pnet.PSK
	// Gater, when set, filters connections by address.
	Gater *Gater
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
	// Discovery, when set, replaces DefaultDiscovery (bench/dhtsim
	// compares settings with it).
	Discovery *Discovery
}

// Discovery is how the node uses the DHT to meet at the rendezvous.
type Discovery struct {
	// Concurrency and Resiliency are kad-dht's alpha (requests in flight
	// in one walk) and beta (how many of the closest peers must have
	// answered before a walk ends); 0 keeps kad-dht's (10 and 3).
	Concurrency, Resiliency int
	// OptimisticProvide turns on kad-dht's optimistic provide: records are
	// stored during the walk, with the peers that are likely among the
	// closest by the network size estimate, instead of after it.
	OptimisticProvide bool
	// DialTimeout bounds every dial of an advertisement or a search (a
	// dial to a node that is gone otherwise lasts until the transport
	// gives up: 5 s for QUIC, 15 s for TCP); 0 keeps libp2p's.
	DialTimeout time.Duration
	// The rendezvous is searched every FindFirstInterval at first, then
	// less often, up to every FindMaxInterval; one search lasts at most
	// FindTimeout.
	FindFirstInterval, FindMaxInterval, FindTimeout time.Duration
	// PollPeers, when not 0, is how many of the servers closest to the
	// rendezvous key that answered our walks the find loop asks between
	// walks for the records they hold: first after PollFirstInterval, then
	// twice as long each time up to every PollInterval while we have found
	// no one, for PollFor after the start, then less and less often.
	PollPeers                                int
	PollFirstInterval, PollInterval, PollFor time.Duration
	// EarlyStore stores our record with the servers closest to the key
	// as our walks reach them, until the advertisement is complete.
	EarlyStore bool
}

// DefaultDiscovery returns the settings a node uses unless Config.Discovery
// says otherwise. They were chosen with bench/dhtsim (`make bench-dht`: 500
// kad-dht servers on mocknet, round trips of 20 to 300 ms, a fifth of the
// servers gone), side by side with the settings before issue 18; the
// figures are in bench/results-dht.md and docs/performance.md ("Meeting
// through the public DHT"). Before, two peers met a median of 20 to 27 s
// after the second started, the slowest after nearly a minute; with these,
// a median of about 2 s, the slowest within 4 s when nothing else loaded
// the machine (7 s when other processes did), and with about two thirds of
// the DHT requests:
//
//   - DialTimeout 2 s: a walk ends only once the closest peers it heard of
//     have answered or failed, and a dial to a node that is gone fails
//     only when the transport gives up (5 s for QUIC, 15 s for TCP): it
//     was most of the 16 s our record took to be stored, and of the length
//     of every search. A live server answers a dial within one to three
//     round trips (under 1 s); 2 s leaves room for a lost packet.
//   - PollPeers 3, every second while alone for the first two minutes,
//     and EarlyStore: the records of everyone at the rendezvous are on the
//     few servers closest to its key. We store ours there as soon as a walk
//     reaches them (kad-dht's own provide stores only after its walk has
//     ended), and ask them between walks, which costs three requests where
//     a walk costs 20 or more. This, not the walks, is what makes the
//     first peer find the second within a second or two of its arrival.
//   - Concurrency 3 and Resiliency 2 instead of kad-dht's 10 and 3: with
//     the polls, the walks' speed hardly matters, and these cost 40 %
//     fewer requests for the same times to meet.
//   - FindFirstInterval 2 s (was 100 ms): walks back to back at the start
//     found nothing the polls did not.
//   - PollFirstInterval 100 ms: the first polls come quickly (100, 200, 400
//     and 800 ms apart), so that two peers started at the same moment,
//     whose first walks both ran before either record was stored, meet
//     within a few hundred milliseconds rather than the second a poll
//     every second takes (bench/: a median of 55 ms, but a tenth of the
//     pairs at 1.05 s); it costs four polls, 12 requests.
//
// kad-dht's optimistic provide (Discovery.OptimisticProvide) stays off: it
// needs a network size estimate, which a node that has just started does
// not have, so our first advertisement, the one that matters, was the
// classic one anyway.
func DefaultDiscovery() Discovery {
	return Discovery{
		Concurrency:       3,
		Resiliency:        2,
		DialTimeout:       2 * time.Second,
		FindFirstInterval: findFirstInterval,
		FindMaxInterval:   findMaxInterval,
		FindTimeout:       findTimeout,
		PollPeers:         3,
		PollFirstInterval: 100 * time.Millisecond,
		PollInterval:      time.Second,
		PollFor:           2 * time.Minute,
		EarlyStore:        true,
	}
}

// dhtOptions are the options of the node's kad-dht.
func (d Discovery) dhtOptions() []dht.Option {
	var opts []dht.Option
	if d.Concurrency > 0 {
		opts = append(opts, dht.Concurrency(d.Concurrency))
	}
	if d.Resiliency > 0 {
		opts = append(opts, dht.Resiliency(d.Resiliency))
	}
	if d.OptimisticProvide {
		opts = append(opts, dht.EnableOptimisticProvide())
	}
	return opts
}

// withDialTimeout bounds the dials made under ctx by DialTimeout.
func (d Discovery) withDialTimeout(ctx context.Context) context.Context {
	if d.DialTimeout <= 0 {
		return ctx
	}
	return network.WithDialPeerTimeout(ctx, d.DialTimeout)
}

// A Node is this program's part of the libp2p network: the host, the DHT,
// rendezvous discovery and mDNS. It hands the peers it finds to a callback
// and knows nothing of chat or terminals.
type Node struct {
	Host host.Host
	DHT  *dht.IpfsDHT
	cfg  Config
	disc Discovery
	emit event.Emit

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

// New builds the host and the DHT and starts listening. It does not reach
// out to the network until Start. emit takes what the node has to report.
func New(cfg Config, emit event.Emit) (*Node, error) {
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
		libp2p.UserAgent(UserAgentName + "/" + cfg.Version),
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
		if len(cfg.BrowserListen) > 0 {
			// A browser page (-web) dials us over WebTransport (QUIC
			// underneath, with a certificate the page checks by hash) or
			// WebRTC-direct, the transports a browser has.
			opts = append(opts, libp2p.Transport(webtransport.New), libp2p.Transport(libp2pwebrtc.New),
				libp2p.ListenAddrs(cfg.BrowserListen...))
		}
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
	if cfg.Server {
		// A server is run where others can reach it: say so, rather than
		// wait for AutoNAT, so that the relay service starts at once.
		opts = append(opts,
			libp2p.EnableRelayService(relay.WithLimit(chatRelayLimit)),
			libp2p.EnableNATService(), // tells peers whether they are reachable
			libp2p.ForceReachabilityPublic())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("start host: %w", err)
	}
	if privateRelays != nil {
		privateRelays.host.Store(&h)
	}
	n, err := NewOnHost(cfg, h, emit)
	if err != nil {
		h.Close()
		return nil, err
	}
	return n, nil
}

// NewOnHost builds a node on a host the caller made, with the same DHT,
// rendezvous discovery and mDNS as New; the node owns the host from then
// on (Close closes it). What New gives the host (Listen, PSK, Gater,
// Relays, NAT, ChatProtocols and the server's relay service) is then the
// caller's business. The DHT simulation (bench/dhtsim) runs nodes on
// go-libp2p's mocknet with it.
func NewOnHost(cfg Config, h host.Host, emit event.Emit) (*Node, error) {
	mode := dht.ModeAuto
	if cfg.Server {
		// In auto mode kad-dht is a client on loopback and private
		// addresses, and a bootstrap node must serve the DHT to others.
		mode = dht.ModeServer
	}
	disc := DefaultDiscovery()
	if cfg.Discovery != nil {
		disc = *cfg.Discovery
	}
	opts := append([]dht.Option{dht.Mode(mode), dht.BootstrapPeers(cfg.Bootstrap...)}, disc.dhtOptions()...)
	d, err := dht.New(h, opts...)
	if err != nil {
		return nil, fmt.Errorf("start DHT: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Node{Host: h, DHT: d, cfg: cfg, disc: disc, emit: emit, ctx: ctx, cancel: cancel,
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
		name := n.cfg.MDNSService
		if name == "" {
			name = mdnsServiceName(n.cfg.Rendezvous)
		}
		n.mdns = mdns.NewMdnsService(n.Host, name, mdnsNotifee(found))
		if err := n.mdns.Start(); err != nil {
			n.emit(event.Event{Kind: event.Error, Code: event.MDNSFailed, Cause: FirstLine(err)})
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
		key, err := rendezvousKey(n.cfg.Rendezvous)
		if err != nil {
			log.Errorw("rendezvous key", "err", err)
			return
		}
		pm, err := pb.NewProtocolMessenger(n.DHT.MessageSender())
		if err != nil {
			log.Errorw("DHT messenger", "err", err)
			return
		}
		keep := 0
		if n.disc.PollPeers > 0 || n.disc.EarlyStore {
			keep = max(n.disc.PollPeers, earlyStoreTop)
		}
		w := newRendezvousWatch(key, keep)
		advertised := make(chan struct{})
		n.earlyStore(w, pm, advertised)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.advertiseLoop(w, advertised)
		}()
		n.findLoop(found, w, pm)
	}()
}

// advertiseLoop keeps our record at the rendezvous: it retries with backoff
// while the DHT cannot store it, and renews it before it expires. It
// closes advertised after the first advertisement that worked; the
// servers its walks reach feed w.
func (n *Node) advertiseLoop(w *rendezvousWatch, advertised chan<- struct{}) {
	select {
	case <-n.addrsSettled:
	case <-n.ctx.Done():
		return
	}
	rd := drouting.NewRoutingDiscovery(n.DHT)
	retry := 500 * time.Millisecond
	announced := false
	for {
		ctx := n.disc.withDialTimeout(n.ctx)
		stop := context.CancelFunc(func() {})
		if w.keep > 0 {
			ctx, stop = w.watchWalk(ctx)
		}
		ttl, err := rd.Advertise(ctx, n.cfg.Rendezvous)
		stop()
		wait := retry
		if err != nil {
			log.Debugw("advertise failed", "err", err)
			retry = min(retry*2, advertiseRetryMax)
		} else {
			if !announced {
				n.emit(event.Event{Kind: event.Info, Code: event.Advertising, Rendezvous: n.cfg.Rendezvous})
				announced = true
				close(advertised)
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

// Close stops discovery and closes the DHT and the host, in that order, and
// waits for every goroutine the node started.
//
// The libp2p side can hang in go-libp2p v0.51.0: the host's observed-address
// manager stops reading identify events without unsubscribing, so an
// identify push that arrives during Close blocks the event bus with its
// lock held, and AutoNAT's Close (or the DHT's, waiting for its event
// reader) then waits forever (seen in rooms of 50 whose peers all left at
// once). Closing the connections before the host stops those pushes before
// that manager stops; libp2pCloseTimeout bounds the rest, so that leaving
// never hangs on it.
func (n *Node) Close() error {
	n.cancel()
	if n.mdns != nil {
		n.mdns.Close()
	}
	n.wg.Wait()
	closed := make(chan error, 1)
	go func() {
		closed <- errors.Join(n.DHT.Close(), n.Host.Network().Close(), n.Host.Close())
	}()
	t := time.NewTimer(libp2pCloseTimeout)
	defer t.Stop()
	select {
	case err := <-closed:
		return err
	case <-t.C:
		log.Warnw("libp2p did not finish closing; leaving without it", "waited", libp2pCloseTimeout)
		return nil
	}
}

// mdnsServiceName derives a valid DNS label from the rendezvous string: one
// with spaces, like the default, would never meet when used directly.
func mdnsServiceName(rendezvous string) string {
	sum := sha256.Sum256([]byte(rendezvous))
	return "rendezvous-chat-" + hex.EncodeToString(sum[:8])
}

type mdnsNotifee func(peer.AddrInfo)

func (f mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) { f(ai) }
