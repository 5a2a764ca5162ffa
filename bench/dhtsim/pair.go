package main

// pair.go: two chat peers, built with internal/node on the simulated
// network, join one rendezvous, the second some seconds after the first.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
)

// peerStats is what one chat peer sent to the DHT, as the servers saw it
// (kad-dht's OnRequestHook on every server), and the dials it made.
type peerStats struct {
	start    atomic.Int64 // UnixNano of the peer's start; 0 before
	byType   [numTypes]atomic.Int64
	firstAdd atomic.Int64 // ns after start of the first ADD_PROVIDER a server got; 0 none
	// FIND_NODE requests by purpose: for the rendezvous key (our
	// advertisement's walk), for the server's own ID (kad-dht's check of a
	// new routing-table peer), for any other key (routing-table refresh).
	findKey, findCheck, findOther atomic.Int64
	key                           string       // the rendezvous key (multihash bytes)
	dials                         atomic.Int64 // dials to live nodes (new connections)
	goneDials                     atomic.Int64 // dials to gone nodes
}

// The message types counted, in pb.Message_MessageType's order (PUT_VALUE,
// GET_VALUE, ADD_PROVIDER, GET_PROVIDERS, FIND_NODE, PING), then the others.
const numTypes = 7

func (st *peerStats) count(t pb.Message_MessageType) {
	i := int(t)
	if i < 0 || i >= numTypes-1 {
		i = numTypes - 1
	}
	st.byType[i].Add(1)
	if t == pb.Message_ADD_PROVIDER {
		if s := st.start.Load(); s != 0 {
			st.firstAdd.CompareAndSwap(0, time.Now().UnixNano()-s)
		}
	}
}

// A msgCount is a snapshot of a peer's counters.
type msgCount struct {
	byType                        [numTypes]int64
	findKey, findCheck, findOther int64
	dials                         int64
	goneDials                     int64
}

func (st *peerStats) snapshot() msgCount {
	var c msgCount
	for i := range c.byType {
		c.byType[i] = st.byType[i].Load()
	}
	c.dials, c.goneDials = st.dials.Load(), st.goneDials.Load()
	c.findKey, c.findCheck, c.findOther = st.findKey.Load(), st.findCheck.Load(), st.findOther.Load()
	return c
}

func (c msgCount) total() int64 {
	var n int64
	for _, v := range c.byType {
		n += v
	}
	return n
}

// A variant is one way to configure the chat peers' node.
type variant struct {
	name      string
	about     string
	configure func(*node.Config) // nil: the node's defaults
}

// A chatPeer is one side of a pair.
type chatPeer struct {
	p       *simPeer
	node    *node.Node
	started time.Time
	found   atomic.Int64 // ns after the B start at which it found the other; 0 not yet
	advert  atomic.Int64 // ns after its own start at which Advertise first returned
	at60    msgCount     // its counters 60 s after its start
	atMet   msgCount     // its counters when the pair met
}

// A pairResult is what one pair measured.
type pairResult struct {
	variant string
	index   int
	offset  time.Duration // B's start after A's
	met     bool
	meet    time.Duration    // from B's start until both had found the other
	aFound  time.Duration    // A found B, after B's start (-1: never)
	bFound  time.Duration    // B found A, after B's start (-1: never)
	advert  [2]time.Duration // Advertise returned, after each one's start (-1: never)
	stored  [2]time.Duration // the first ADD_PROVIDER reached a server (-1: never)
	at60    [2]msgCount
	atMet   [2]msgCount
	// span is from A's start to the end of B's window, for the lag.
	from, to time.Time
	err      error
}

func (s *sim) newChatPeer() (*chatPeer, error) {
	p, err := s.addNode(false)
	if err != nil {
		return nil, err
	}
	p.stats = &peerStats{}
	return &chatPeer{p: p}, nil
}

// start builds the peer's node on its host and starts it, bootstrapping
// from boot and joining rendezvous; found records when other turns up.
func (s *sim) start(c *chatPeer, v variant, rendezvous string, boot *simPeer, other peer.ID, bStart *atomic.Int64) error {
	cfg := node.Config{
		Version:    "dhtsim",
		Bootstrap:  []peer.AddrInfo{{ID: boot.id, Addrs: boot.host.Addrs()}},
		Rendezvous: rendezvous,
	}
	if v.configure != nil {
		v.configure(&cfg)
	}
	key, err := mh.Sum([]byte(rendezvous), mh.SHA2_256, -1)
	if err != nil {
		return err
	}
	c.p.stats.key = string(key)
	c.started = time.Now()
	c.p.stats.start.Store(c.started.UnixNano())
	emit := func(e event.Event) {
		if e.Code == event.Advertising {
			c.advert.CompareAndSwap(0, int64(time.Since(c.started)))
		}
	}
	n, err := node.NewOnHost(cfg, s.wrap(c.p), emit)
	if err != nil {
		return err
	}
	c.node = n
	n.Start(func(ai peer.AddrInfo) {
		if ai.ID != other {
			return
		}
		b := bStart.Load()
		if b == 0 {
			// Found before B started: cannot be, B has advertised nothing.
			return
		}
		c.found.CompareAndSwap(0, max(time.Now().UnixNano()-b, 1))
	})
	return nil
}

// runPair runs pair index of variant v: A starts, B offset later, and
// both run until the window (sim.window) after B's start.
func (s *sim) runPair(ctx context.Context, runID string, v variant, index int, offset time.Duration) pairResult {
	res := pairResult{variant: v.name, index: index, offset: offset, aFound: -1, bFound: -1,
		advert: [2]time.Duration{-1, -1}, stored: [2]time.Duration{-1, -1}}
	var peers [2]*chatPeer
	for i := range peers {
		c, err := s.newChatPeer()
		if err != nil {
			res.err = err
			return res
		}
		peers[i] = c
	}
	a, b := peers[0], peers[1]
	defer func() {
		for _, c := range peers {
			if c.node != nil {
				_ = c.node.Close()
			} else {
				_ = c.p.host.Close()
			}
		}
	}()
	// Each bootstraps from a different random live server.
	i := s.intn(len(s.live))
	j := s.intn(len(s.live) - 1)
	if j >= i {
		j++
	}
	rendezvous := fmt.Sprintf("dhtsim %s %s %d", runID, v.name, index)
	var bStart atomic.Int64
	var wg sync.WaitGroup
	snapAt := func(c *chatPeer, into *msgCount) {
		wg.Add(1)
		t := time.AfterFunc(time.Until(c.started.Add(s.window)), func() {
			*into = c.p.stats.snapshot()
			wg.Done()
		})
		go func() {
			<-ctx.Done()
			if t.Stop() {
				wg.Done()
			}
		}()
	}
	if err := s.start(a, v, rendezvous, s.live[i], b.p.id, &bStart); err != nil {
		res.err = err
		return res
	}
	snapAt(a, &a.at60)
	if !node.Sleep(ctx, offset) {
		res.err = ctx.Err()
		return res
	}
	bStart.Store(time.Now().UnixNano())
	if err := s.start(b, v, rendezvous, s.live[j], a.p.id, &bStart); err != nil {
		res.err = err
		return res
	}
	snapAt(b, &b.at60)
	deadline := b.started.Add(s.window)
	for time.Now().Before(deadline) && !res.met {
		if a.found.Load() != 0 && b.found.Load() != 0 {
			res.met = true
			res.meet = time.Duration(time.Now().UnixNano() - bStart.Load())
			a.atMet, b.atMet = a.p.stats.snapshot(), b.p.stats.snapshot()
			break
		}
		if !node.Sleep(ctx, 10*time.Millisecond) {
			break
		}
	}
	if res.met {
		// The found times are more exact than the poll.
		res.meet = time.Duration(max(a.found.Load(), b.found.Load()))
	}
	node.Sleep(ctx, time.Until(deadline))
	wg.Wait()
	if ctx.Err() != nil {
		res.err = ctx.Err()
	}
	res.from, res.to = a.started, deadline
	if f := a.found.Load(); f != 0 {
		res.aFound = time.Duration(f)
	}
	if f := b.found.Load(); f != 0 {
		res.bFound = time.Duration(f)
	}
	for k, c := range peers {
		if v := c.advert.Load(); v != 0 {
			res.advert[k] = time.Duration(v)
		}
		if v := c.p.stats.firstAdd.Load(); v != 0 {
			res.stored[k] = time.Duration(v)
		}
		res.at60[k], res.atMet[k] = c.at60, c.atMet
	}
	return res
}

// countRequests is the servers' OnRequestHook: it counts each request by
// the chat peer that sent it.
func (s *sim) countRequests(_ context.Context, st network.Stream, req *pb.Message) {
	p := s.peer(st.Conn().RemotePeer())
	if p == nil || p.stats == nil {
		return
	}
	p.stats.count(req.GetType())
	if req.GetType() == pb.Message_FIND_NODE {
		switch k := string(req.GetKey()); k {
		case p.stats.key:
			p.stats.findKey.Add(1)
		case string(st.Conn().LocalPeer()):
			p.stats.findCheck.Add(1)
		default:
			p.stats.findOther.Add(1)
		}
	}
}
