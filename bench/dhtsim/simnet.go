package main

// simnet.go: the simulated public DHT. Servers and chat peers are hosts on
// go-libp2p's mocknet (in-memory connections, no socket); every link has a
// one-way delay of half the round trip drawn for that pair of nodes; a
// dial costs one round trip (a QUIC handshake) before the connection
// exists; and a dial to a node that is gone fails only when a real one
// would: after its timeout, or at once when the host refuses.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// A region is where a node is, for the round trips between nodes.
type region struct {
	name  string
	share float64 // of the servers, and of the chat peers
}

// regions and rtts: where Amino's DHT servers are, roughly, and the round
// trips between those places, in ms (typical figures of public latency
// tables; a link's own is this times a factor drawn per pair, see rtt).
var regions = []region{
	{"North America", 0.35},
	{"Europe", 0.40},
	{"East Asia", 0.17},
	{"Oceania and South America", 0.08},
}

var rtts = [4][4]float64{
	// NA   EU   AS   OC/SA
	{45, 100, 160, 150}, // North America
	{100, 30, 220, 240}, // Europe
	{160, 220, 55, 130}, // East Asia
	{150, 240, 130, 60}, // Oceania and South America
}

const (
	minRTT = 20 * time.Millisecond
	maxRTT = 300 * time.Millisecond
)

// How a dial to a gone node ends. A host that is still there refuses (a
// TCP reset, or an ICMP error) within a round trip; a vanished one is a
// black hole, and the dial ends with the transport's timeout: QUIC's
// handshake timeout (5 s) when the node advertised QUIC only, the swarm's
// dial timeout (15 s) when it also advertised TCP, whose dial waits for it.
type goneKind int

const (
	goneRefused goneKind = iota
	goneQUIC
	goneTCP
)

var goneKinds = []struct {
	kind  goneKind
	share float64
	after time.Duration // 0: one round trip
	name  string
}{
	{goneRefused, 1.0 / 3, 0, "refused within one round trip"},
	{goneQUIC, 1.0 / 3, 5 * time.Second, "times out after 5 s (QUIC handshake timeout)"},
	{goneTCP, 1.0 / 3, 15 * time.Second, "times out after 15 s (the swarm's dial timeout, TCP)"},
}

// A simPeer is what the simulation knows of one node.
type simPeer struct {
	id     peer.ID
	region int
	gone   atomic.Bool
	kind   goneKind      // how a dial fails once gone
	after  time.Duration // when it fails (0: one round trip)
	server bool
	host   host.Host // the mocknet host (unwrapped)
	dht    *dht.IpfsDHT
	stats  *peerStats // chat peers only: what it sent
}

// A sim is the whole simulated network.
type sim struct {
	mn   mocknet.Mocknet
	seed uint64
	// window is how long after the second start a pair has to meet, and
	// the span over which each peer's messages are counted (from its
	// own start).
	window time.Duration

	mu    sync.Mutex
	peers map[peer.ID]*simPeer
	links map[[2]peer.ID]bool

	servers []*simPeer
	live    []*simPeer // servers not gone

	rnd   *rand.Rand // for the build only (one goroutine)
	rndMu sync.Mutex
}

func newSim(seed uint64) *sim {
	return &sim{
		mn:    mocknet.New(),
		seed:  seed,
		peers: map[peer.ID]*simPeer{},
		links: map[[2]peer.ID]bool{},
		rnd:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
}

func (s *sim) peer(id peer.ID) *simPeer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peers[id]
}

// randRegion draws a region by the shares.
func (s *sim) randRegion() int {
	s.rndMu.Lock()
	x := s.rnd.Float64()
	s.rndMu.Unlock()
	for i, r := range regions {
		if x < r.share {
			return i
		}
		x -= r.share
	}
	return len(regions) - 1
}

func (s *sim) intn(n int) int {
	s.rndMu.Lock()
	defer s.rndMu.Unlock()
	return s.rnd.IntN(n)
}

// rtt is the round trip between a and b: their regions' figure times a
// factor from 0.8 to 1.3 drawn for the pair (the same both ways, and in
// every run with the same seed), within minRTT..maxRTT.
func (s *sim) rtt(a, b *simPeer) time.Duration {
	x, y := string(a.id), string(b.id)
	if x > y {
		x, y = y, x
	}
	h := fnv.New64a()
	var sb [8]byte
	binary.LittleEndian.PutUint64(sb[:], s.seed)
	h.Write(sb[:])
	h.Write([]byte(x))
	h.Write([]byte(y))
	f := 0.8 + 0.5*float64(h.Sum64()%10000)/10000
	d := time.Duration(rtts[a.region][b.region] * f * float64(time.Millisecond))
	return min(max(d, minRTT), maxRTT)
}

// link makes sure a mocknet link joins a and b, with a one-way delay of
// half their round trip.
func (s *sim) link(a, b *simPeer) error {
	k := [2]peer.ID{a.id, b.id}
	if a.id > b.id {
		k = [2]peer.ID{b.id, a.id}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.links[k] {
		return nil
	}
	l, err := s.mn.LinkPeers(a.id, b.id)
	if err != nil {
		return err
	}
	l.SetOptions(mocknet.LinkOptions{Latency: s.rtt(a, b) / 2})
	s.links[k] = true
	return nil
}

var errGone = errors.New("dhtsim: dial failed: the node is gone")

// dial is what a dial from a to b costs before mocknet connects them: one
// round trip for the handshake, or, when b is gone, the wait until the
// dial fails. It honours the context and its dial timeout
// (network.WithDialPeerTimeout), as the swarm does.
func (s *sim) dial(ctx context.Context, a *simPeer, b *simPeer) error {
	wait := s.rtt(a, b)
	gone := b.gone.Load()
	if gone && b.after > 0 {
		wait = b.after
	}
	if t := network.GetDialPeerTimeout(ctx); t < wait {
		wait = t
		gone = true // the dial times out before the handshake ends
	}
	if a.stats != nil {
		if b.gone.Load() {
			a.stats.goneDials.Add(1)
		} else {
			a.stats.dials.Add(1)
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	if gone {
		return errGone
	}
	return s.link(a, b)
}

// simHost is a mocknet host whose dials cost what they would on the
// internet (see sim.dial). kad-dht dials through Host.Connect, and
// Host.NewStream dials when not connected: both come here first.
type simHost struct {
	host.Host
	sim  *sim
	self *simPeer
}

func (h *simHost) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if h.Network().Connectedness(ai.ID) == network.Connected {
		return nil
	}
	b := h.sim.peer(ai.ID)
	if b == nil {
		return fmt.Errorf("dhtsim: %s is not in the simulation", ai.ID)
	}
	if err := h.sim.dial(ctx, h.self, b); err != nil {
		return err
	}
	return h.Host.Connect(ctx, ai)
}

func (h *simHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	if h.Network().Connectedness(p) != network.Connected {
		if err := h.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
			return nil, err
		}
	}
	return h.Host.NewStream(ctx, p, pids...)
}

// addNode makes a mocknet host in a random region.
func (s *sim) addNode(server bool) (*simPeer, error) {
	h, err := s.mn.GenPeer()
	if err != nil {
		return nil, err
	}
	p := &simPeer{id: h.ID(), region: s.randRegion(), server: server, host: h}
	s.mu.Lock()
	s.peers[p.id] = p
	s.mu.Unlock()
	return p, nil
}

// wrap returns p's host as its DHT sees it.
func (s *sim) wrap(p *simPeer) host.Host { return &simHost{Host: p.host, sim: s, self: p} }

// buildServers makes n DHT servers (kad-dht in server mode, with its
// defaults) and fills their routing tables as a settled network has them:
// each server offers every other to its routing table in a random order,
// and kad-dht's table keeps the first 20 of each bucket. The servers never
// refresh their tables (no auto-refresh), so the entries of the nodes
// gone later stay, as stale entries do on the real network. onRequest
// sees every request a server gets.
func (s *sim) buildServers(n int, onRequest func(context.Context, network.Stream, *pb.Message)) error {
	for range n {
		p, err := s.addNode(true)
		if err != nil {
			return err
		}
		d, err := dht.New(s.wrap(p), dht.Mode(dht.ModeServer), dht.DisableAutoRefresh(), dht.OnRequestHook(onRequest))
		if err != nil {
			return err
		}
		p.dht = d
		s.servers = append(s.servers, p)
	}
	for _, p := range s.servers {
		order := s.rnd.Perm(len(s.servers))
		ps := p.host.Peerstore()
		for _, i := range order {
			o := s.servers[i]
			if o == p {
				continue
			}
			ps.AddAddrs(o.id, o.host.Addrs(), peerstore.PermanentAddrTTL)
			// A full bucket refuses the peer (kb.ErrPeerRejectedNoCapacity).
			_, _ = p.dht.RoutingTable().TryAddPeer(o.id, true, false)
		}
	}
	return nil
}

// killShare makes a share of the servers gone, after they are in the
// others' routing tables: their DHT and host close, and each gets one of
// goneKinds for the dials that still come.
func (s *sim) killShare(share float64) {
	order := s.rnd.Perm(len(s.servers))
	nGone := int(share*float64(len(s.servers)) + 0.5)
	for j, i := range order {
		p := s.servers[i]
		if j >= nGone {
			s.live = append(s.live, p)
			continue
		}
		x := s.rnd.Float64()
		k := goneKinds[len(goneKinds)-1]
		for _, g := range goneKinds {
			if x < g.share {
				k = g
				break
			}
			x -= g.share
		}
		p.kind, p.after = k.kind, k.after
		p.gone.Store(true)
		_ = p.dht.Close()
		_ = p.host.Close()
	}
}

// routingTableStats says how many entries the live servers' routing
// tables have, and how many of them are gone.
func (s *sim) routingTableStats() (entries, stale int) {
	for _, p := range s.live {
		for _, id := range p.dht.RoutingTable().ListPeers() {
			entries++
			if q := s.peer(id); q != nil && q.gone.Load() {
				stale++
			}
		}
	}
	return entries, stale
}

// rttSample returns the round trips of n random pairs of servers.
func (s *sim) rttSample(n int) []float64 {
	out := make([]float64, 0, n)
	for range n {
		a, b := s.servers[s.intn(len(s.servers))], s.servers[s.intn(len(s.servers))]
		if a == b {
			continue
		}
		out = append(out, float64(s.rtt(a, b))/float64(time.Millisecond))
	}
	return out
}
