package node

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	mh "github.com/multiformats/go-multihash"
)

// rendezvousKey is the DHT key of a rendezvous string, as go-libp2p's
// RoutingDiscovery makes it (the multihash inside its CID).
func rendezvousKey(rendezvous string) (mh.Multihash, error) {
	return mh.Sum([]byte(rendezvous), mh.SHA2_256, -1)
}

// A rendezvousWatch keeps the DHT servers closest to the rendezvous key
// among those that answered our walks (the advertisement's and the
// searches'): the servers that hold the records of everyone at the
// rendezvous. Between walks the find loop asks those few directly
// (Discovery.PollPeers), and until our advertisement is complete we store
// our record with them as the walk reaches them (Discovery.EarlyStore),
// so that a peer watching the same servers finds us before the walk ends.
type rendezvousWatch struct {
	key  mh.Multihash
	keep int // how many closest servers are kept

	mu      sync.Mutex
	closest []peer.ID // the closest that answered, closest first
	stored  map[peer.ID]bool
	// store, when set, stores our record with a server (early store); it
	// is cleared once the advertisement is complete.
	store func(peer.ID)
	// storeTop is how many of the closest get an early record.
	storeTop int
}

func newRendezvousWatch(key mh.Multihash, keep int) *rendezvousWatch {
	return &rendezvousWatch{key: key, keep: keep, stored: map[peer.ID]bool{}}
}

// answered records that p answered a walk towards the key, and stores our
// record with it early when it is among the storeTop closest so far.
func (w *rendezvousWatch) answered(p peer.ID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.keep == 0 || slices.Contains(w.closest, p) {
		return
	}
	w.closest = kb.SortClosestPeers(append(w.closest, p), kb.ConvertKey(string(w.key)))
	if len(w.closest) > w.keep {
		w.closest = w.closest[:w.keep]
	}
	if w.store != nil && !w.stored[p] && slices.Index(w.closest, p) >= 0 && slices.Index(w.closest, p) < w.storeTop {
		w.stored[p] = true
		go w.store(p)
	}
}

// drop forgets p, which did not answer.
func (w *rendezvousWatch) drop(p peer.ID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closest = slices.DeleteFunc(w.closest, func(q peer.ID) bool { return q == p })
}

// targets returns the n closest servers known.
func (w *rendezvousWatch) targets(n int) []peer.ID {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.closest[:min(n, len(w.closest))])
}

// setStore turns the early store on (f) or off (nil).
func (w *rendezvousWatch) setStore(f func(peer.ID), top int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.store, w.storeTop = f, top
}

// watchWalk returns a context for a DHT walk whose answering servers feed
// the watch, and the function that ends it.
func (w *rendezvousWatch) watchWalk(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	ctx, events := routing.RegisterForQueryEvents(ctx)
	go func() {
		// kad-dht blocks on a full event channel: read every event until
		// the channel closes, which it does once ctx ends.
		for e := range events {
			if e.Type == routing.PeerResponse {
				w.answered(e.ID)
			}
		}
	}()
	return ctx, cancel
}

// earlyStore turns on the watch's early store once our addresses are worth
// storing (as the advertisement waits for them), until our advertisement
// is complete (advertised is closed then).
func (n *Node) earlyStore(w *rendezvousWatch, pm *pb.ProtocolMessenger, advertised <-chan struct{}) {
	if !n.disc.EarlyStore {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		select {
		case <-n.addrsSettled:
		case <-n.ctx.Done():
			return
		}
		w.setStore(func(p peer.ID) {
			ctx, cancel := context.WithTimeout(n.disc.withDialTimeout(n.ctx), earlyStoreTimeout)
			defer cancel()
			self := peer.AddrInfo{ID: n.Host.ID(), Addrs: n.DHT.FilteredAddrs()}
			if err := pm.PutProviderAddrs(ctx, p, w.key, self); err != nil {
				log.Debugw("early store failed", "peer", p, "err", err)
			}
		}, earlyStoreTop)
		select {
		case <-advertised:
		case <-n.ctx.Done():
		}
		w.setStore(nil, 0)
	}()
}

// earlyStoreTimeout bounds one early store.
const earlyStoreTimeout = 10 * time.Second

// earlyStoreTop is how many of the closest servers known get our record
// early: a peer that polls its closest few then finds it.
const earlyStoreTop = 3

// findLoop searches the rendezvous again and again: a full walk through
// the DHT quickly at first, then with backoff, so that peers started
// together or far apart find each other; and, with Discovery.PollPeers,
// between walks it asks the few servers closest to the key that answered
// (the watch) for the records they hold: often while we have found no one
// (a newcomer's record lands there), then less and less often.
func (n *Node) findLoop(found func(peer.AddrInfo), w *rendezvousWatch, pm *pb.ProtocolMessenger) {
	rd := drouting.NewRoutingDiscovery(n.DHT)
	self := n.Host.ID()
	// foundSomeone is all the polling needs to know of the peers found:
	// whether there was any other than us. (A set of them would grow with
	// every identity that ever advertised at the rendezvous.)
	foundSomeone := false
	hand := func(ai peer.AddrInfo) {
		if ai.ID != self {
			foundSomeone = true
		}
		found(ai)
	}
	interval := n.disc.FindFirstInterval
	walkTimer := time.NewTimer(0)
	defer walkTimer.Stop()
	var (
		walk      <-chan peer.AddrInfo
		endWalk   context.CancelFunc = func() {}
		pollTimer *time.Timer
		pollC     <-chan time.Time
		polled    = make(chan peer.AddrInfo)
		started   = time.Now()
		pollEvery = n.disc.PollInterval
	)
	if n.disc.PollFirstInterval > 0 {
		pollEvery = min(n.disc.PollFirstInterval, pollEvery)
	}
	defer func() { endWalk() }()
	if n.disc.PollPeers > 0 {
		pollTimer = time.NewTimer(pollEvery)
		defer pollTimer.Stop()
		pollC = pollTimer.C
	}
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-walkTimer.C:
			ctx, cancel := context.WithTimeout(n.disc.withDialTimeout(n.ctx), n.disc.FindTimeout)
			ctx, stop := w.watchWalk(ctx)
			endWalk = func() { stop(); cancel() }
			ch, err := rd.FindPeers(ctx, n.cfg.Rendezvous)
			if err != nil {
				log.Debugw("find peers failed", "err", err)
				endWalk()
				ch = nil
				walkTimer.Reset(n.nextWalk(&interval))
			}
			walk = ch
		case ai, ok := <-walk:
			if ok {
				hand(ai)
				continue
			}
			endWalk()
			walk = nil
			walkTimer.Reset(n.nextWalk(&interval))
		case <-pollC:
			for _, p := range w.targets(n.disc.PollPeers) {
				n.wg.Add(1)
				go func() {
					defer n.wg.Done()
					n.poll(pm, w, p, polled)
				}()
			}
			// Often while we are alone and newly started (after a few
			// quick polls, for a peer started at the same moment), then
			// less and less often: a peer that finds us will reach us
			// anyway.
			if foundSomeone || time.Since(started) > n.disc.PollFor {
				pollEvery = min(2*pollEvery, n.disc.FindMaxInterval)
			} else {
				pollEvery = min(2*pollEvery, n.disc.PollInterval)
			}
			pollTimer.Reset(pollEvery)
		case ai := <-polled:
			hand(ai)
		}
	}
}

// nextWalk returns the pause before the next walk, and doubles interval
// (up to FindMaxInterval). Jitter keeps peers started together from
// searching in lockstep.
func (n *Node) nextWalk(interval *time.Duration) time.Duration {
	d := *interval + time.Duration(rand.Int64N(int64(*interval)/4+1))
	*interval = min(*interval*2, n.disc.FindMaxInterval)
	return d
}

// poll asks server p for the records it holds at the rendezvous, and
// sends each to out; a server that does not answer leaves the watch.
func (n *Node) poll(pm *pb.ProtocolMessenger, w *rendezvousWatch, p peer.ID, out chan<- peer.AddrInfo) {
	ctx, cancel := context.WithTimeout(n.disc.withDialTimeout(n.ctx), pollTimeout)
	defer cancel()
	provs, _, err := pm.GetProviders(ctx, p, w.key)
	if err != nil {
		if n.ctx.Err() == nil {
			w.drop(p)
		}
		return
	}
	for _, ai := range provs {
		select {
		case out <- *ai:
		case <-n.ctx.Done():
			return
		}
	}
}

// pollTimeout bounds one question to one server.
const pollTimeout = 5 * time.Second
