package room

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/sec"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
	"github.com/rendezvous-chat/rendezvous-chat/internal/privroom"
)

const (
	// dialTimeout bounds one attempt to reach a found peer, so that stale
	// rendezvous records of dead peers cost little.
	dialTimeout = 10 * time.Second
	// dialGrace is how long the peer with the higher ID waits for the other
	// to open its stream when the two are already connected, so that two
	// peers that find each other together usually end up with one stream.
	dialGrace = 150 * time.Millisecond
	// relayDialGrace is the same wait when the peer is reachable only
	// through a relay (see dialer.grace).
	relayDialGrace = 3 * time.Second
	// relayDialHolePunchWait bounds the wait for our hole-punch service
	// before a dial that can only go through a relay.
	relayDialHolePunchWait = 2 * time.Second
	// redialInterval spaces attempts to dial the same peer, which discovery
	// may report many times a second.
	redialInterval = 2 * time.Second
	// maxParallelDials bounds the dials in flight, so a burst of stale records
	// cannot open hundreds of sockets at once.
	maxParallelDials = 16
	// maxDialsStarted bounds the dials started and not ended: those in
	// flight, and those still waiting for their grace, for hole punching,
	// or for one of the maxParallelDials places. Each is a goroutine and an
	// entry in dialer.dialing; without a room topic nothing else bounds
	// them (see wantLocked), and a rendezvous full of stale records or of a
	// hostile peer's identities would start a dial for every one. A peer
	// turned away is offered again by discovery's next search.
	maxDialsStarted = 4 * maxParallelDials
	// A session that broke is redialled after each of these waits, until a
	// session with the peer is back; then the room gives up and leaves the
	// peer to discovery.
	redialFirst    = 500 * time.Millisecond
	redialAttempts = 5
	// refusedBackoff is how long discovery leaves alone a peer that reset
	// our chat stream on a live connection: it refused the chat.
	refusedBackoff = time.Minute
	// maxRoomDials is how many room peers we dial ourselves on the topic;
	// beyond it, DialPolicy decides (it dials again when too few room peers
	// are connected), and the topic carries lines to the rest. Rooms of up
	// to maxRoomDials+1 peers are thus a full mesh of direct streams (fast,
	// ordered, with receipts from everyone), and in bigger ones each peer
	// keeps about twice this many connections to the room, whatever its
	// size. A count of known members would not do: peers started together
	// all find each other before any of them knows how big the room is.
	// Each connection costs both ends a Noise handshake and an identify
	// exchange, most of what a big room spends to meet: with 7 instead of
	// 8, a room of 50 met in 2.5 to 2.7 s instead of 2.7 to 3.0 s on two
	// cores, and rooms of 10 and 30 as fast as before.
	maxRoomDials = 7
	// candidatePause is how long found peers wait to be picked for a dial,
	// and maxCandidates bounds how many wait.
	candidatePause = 15 * time.Millisecond
	maxCandidates  = 1024
	// maxDialMemory bounds the dial times and refusals remembered, and
	// maxDialNotes the peers remembered as met or told about: a rendezvous
	// full of strangers, or a peer that changes identity again and again,
	// cannot grow them without bound.
	maxDialMemory = 1024
	maxDialNotes  = 4096
)

// A dialer decides which peers found at the rendezvous to dial, dials them,
// and reconnects to peers whose session broke. It is the one owner of the
// dial memory: the dials in flight, when each peer was last dialed, which
// peers refused our chat, the candidates waiting to be picked, and the
// notes of peers met and failures told (each bounded; see maxDialsStarted
// and maxDialMemory).
type dialer struct {
	r   *Room
	sem chan struct{} // bounds the dials in flight

	mu         sync.Mutex
	dialing    map[peer.ID]bool
	lastDial   *timedSet // when we last dialed a peer
	refused    *timedSet // when a peer last reset our chat stream
	candidates map[peer.ID]peer.AddrInfo
	picking    bool        // a pick of candidates is scheduled
	met        *boundedSet // peers the room has had a session with
	told       *boundedSet // peers the user was told we could not reach
}

func newDialer(r *Room) *dialer {
	return &dialer{
		r:          r,
		sem:        make(chan struct{}, maxParallelDials),
		dialing:    make(map[peer.ID]bool),
		lastDial:   newTimedSet(redialInterval, maxDialMemory),
		refused:    newTimedSet(refusedBackoff, maxDialMemory),
		candidates: make(map[peer.ID]peer.AddrInfo),
		met:        newBoundedSet(maxDialNotes),
		told:       newBoundedSet(maxDialNotes),
	}
}

// offer takes a peer found by discovery and dials it in the background,
// unless it is us, has no address, is already in the room or being dialed,
// or was tried moments ago.
func (d *dialer) offer(ai peer.AddrInfo) {
	r := d.r
	if ai.ID == r.host.ID() || ai.ID == "" || !r.allowed(ai.ID) {
		return
	}
	ai.Addrs = r.cfg.Gater.FilterAddrs(ai.Addrs)
	if len(ai.Addrs) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.lc.isClosing() || r.roster.session(ai.ID) != nil || d.dialing[ai.ID] ||
		d.lastDial.holds(ai.ID) || d.refused.holds(ai.ID) || !d.wantLocked() {
		return
	}
	if r.topic != nil && (len(d.dialing) > 0 || d.outboundFramed() > 0) {
		// On the topic we dial only a few room peers: after the first,
		// pick them at random among those found together (see pick). The
		// first is dialed at once, so that two peers meet without delay;
		// the inbound bound of the peers that everyone finds first keeps
		// them from collecting the room.
		d.addCandidateLocked(ai)
		return
	}
	d.startLocked(ai)
}

// outboundFramed counts the sessions on our protocol that we dialed.
func (d *dialer) outboundFramed() int {
	_, out := d.r.roster.dialCounts()
	return out
}

// startLocked dials ai in the background.
func (d *dialer) startLocked(ai peer.AddrInfo) {
	if !d.r.lc.add() {
		return
	}
	d.dialing[ai.ID] = true
	d.lastDial.add(ai.ID)
	go func() {
		defer d.r.lc.done()
		d.dial(ai)
	}()
}

// wantLocked reports whether to dial a peer found at the rendezvous: while
// we have dialed fewer than maxRoomDials room peers (dials in flight
// count), and then only while DialPolicy wants more room peers connected.
// The topic reaches the rest, and peers that speak only the plain protocol
// dial us themselves. Never more than maxDialsStarted dials at once.
func (d *dialer) wantLocked() bool {
	if len(d.dialing) >= maxDialsStarted {
		return false
	}
	t := d.r.topic
	if t == nil {
		return true
	}
	framed, framedOut := d.r.roster.dialCounts()
	framedOut += len(d.dialing)
	if framedOut < maxRoomDials {
		return true
	}
	connected, outbound := t.g.RoomConns()
	return t.policy.Budget(max(connected, framed), max(outbound, framedOut-len(d.dialing)), len(d.dialing)) > 0
}

// addCandidateLocked takes a found peer to dial, and schedules a pick.
//
// Peers that find the same rendezvous get its records in about the same
// order (in a small network, from the same DHT server). Dialing the first
// found would send every newcomer's dials to the oldest peers, which would
// collect connections from the whole room. So found peers wait a moment
// (candidatePause: discovery hands over a whole answer at once), and the
// dials go to peers picked at random among them.
func (d *dialer) addCandidateLocked(ai peer.AddrInfo) {
	if len(d.candidates) >= maxCandidates {
		return
	}
	d.candidates[ai.ID] = ai
	if !d.picking && d.r.lc.add() {
		d.picking = true
		// The room waits for the pick, as for its other goroutines.
		time.AfterFunc(candidatePause, func() {
			defer d.r.lc.done()
			d.pick()
		})
	}
}

// pick dials found peers picked at random while wantLocked says so, and
// forgets the rest: discovery offers them again.
func (d *dialer) pick() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.picking = false
	ids := make([]peer.ID, 0, len(d.candidates))
	for id := range d.candidates {
		ids = append(ids, id)
	}
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for _, id := range ids {
		ai := d.candidates[id]
		if d.r.lc.isClosing() || !d.wantLocked() {
			break
		}
		if d.r.roster.session(id) != nil || d.dialing[id] {
			continue
		}
		d.startLocked(ai)
	}
	clear(d.candidates)
}

func (d *dialer) dial(ai peer.AddrInfo) {
	r := d.r
	defer func() {
		d.mu.Lock()
		delete(d.dialing, ai.ID)
		d.mu.Unlock()
	}()
	// The tie-break: the peer with the lower ID dials at once. The other
	// does too, unless a connection between the two is already up, a sign
	// that the lower one is opening its stream right now: then it gives it
	// a moment, and dials only if no session has appeared by then. Should
	// both streams open anyway, the session adopts the second one.
	if grace := d.grace(ai); r.host.ID() > ai.ID && grace > 0 {
		if !node.Sleep(r.ctx, grace) || r.roster.session(ai.ID) != nil {
			return
		}
	}
	// Over a relay, not before our hole punching is ready: a relayed
	// connection opened earlier would never be made direct.
	// It never starts where no server sees a public address of ours (on
	// loopback, say), hence the short bound.
	if node.ViaRelay(ai.Addrs) && !r.connected(ai.ID) {
		node.WaitHolePunchReady(r.ctx, r.host, relayDialHolePunchWait)
	}
	select {
	case d.sem <- struct{}{}:
		defer func() { <-d.sem }()
	case <-r.ctx.Done():
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, dialTimeout)
	defer cancel()
	r.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
	st, hello, err := r.streams.open(ctx, ai.ID)
	if err != nil && simultaneousOpen(err) {
		if r.roster.session(ai.ID) != nil || !node.Sleep(r.ctx, simultaneousOpenRetry(r.host.ID(), ai.ID)) || r.roster.session(ai.ID) != nil {
			return
		}
		// Past libp2p's dial backoff, which the failed dial just set.
		st, hello, err = r.streams.open(network.WithForceDirectDial(ctx, "retry after a simultaneous open"), ai.ID)
	}
	if err != nil && errors.Is(err, privroom.ErrNotMember) {
		// Not a member of our private room (private.admit said so once):
		// leave it alone.
		d.mu.Lock()
		d.refused.add(ai.ID)
		d.mu.Unlock()
		return
	}
	if err != nil {
		if errors.Is(err, network.ErrReset) && r.connected(ai.ID) {
			// The peer refused the chat on a live connection (-allow-peer,
			// or a big room's peer that enough others dialed): leave it
			// alone for a while.
			d.mu.Lock()
			d.refused.add(ai.ID)
			d.mu.Unlock()
			if r.topic != nil && r.roster.session(ai.ID) == nil {
				// We connected for the chat; the topic has other
				// neighbours, and the peer enough connections.
				_ = r.host.Network().ClosePeer(ai.ID)
			}
		}
		// Most failures are stale rendezvous records of peers that are gone:
		// logged, and said once per peer (see reportUnreachable).
		log.Debugw("dial failed", "peer", ai.ID, "err", err)
		d.reportUnreachable(ai, err)
		return
	}
	r.streams.attach(st, "outbound", hello)
}

// simultaneousOpen reports whether a dial failed in the security handshake,
// which is what happens when two peers dial each other at the same instant:
// with TCP's simultaneous open (likely on loopback and on a LAN, where both
// dial from the port they listen on), both ends of the one connection
// believe they started it, and the Noise or TLS handshake fails on both.
// Discovery would try again only seconds later.
func simultaneousOpen(err error) bool {
	var mismatch sec.ErrPeerIDMismatch
	return strings.Contains(err.Error(), "failed to negotiate security protocol") && !errors.As(err, &mismatch)
}

// simultaneousOpenRetry is how long to wait before dialing again after a
// simultaneous open: the lower ID soon, the higher one later, so that the
// two dials do not meet again, and the higher one usually finds the chat
// already open.
func simultaneousOpenRetry(self, other peer.ID) time.Duration {
	jitter := time.Duration(rand.Int64N(int64(20 * time.Millisecond)))
	if self < other {
		return 10*time.Millisecond + jitter
	}
	return 200*time.Millisecond + jitter
}

// grace is how long the peer with the higher ID waits for the other to
// dial first. It waits when a connection is already up (the other is likely
// opening its stream on it), and longer when the peer can be reached only
// through a relay: two relayed connections at once make hole punching
// fail, so there only the lower ID should dial.
func (d *dialer) grace(ai peer.AddrInfo) time.Duration {
	if d.r.connected(ai.ID) {
		return dialGrace
	}
	if !node.OnlyRelayed(ai.Addrs) && !node.ViaRelay(ai.Addrs) {
		return 0
	}
	return relayDialGrace
}

// redial reconnects to a peer whose session broke, with backoff, using the
// addresses libp2p knows for it. Both sides may redial; the session adopts a
// second stream as usual.
func (d *dialer) redial(p peer.ID) {
	r := d.r
	wait := redialFirst
	for attempt := 1; attempt <= redialAttempts; attempt++ {
		if !node.Sleep(r.ctx, wait) || r.roster.session(p) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(r.ctx, dialTimeout)
		st, hello, err := r.streams.open(ctx, p)
		cancel()
		if err == nil {
			r.streams.attach(st, "outbound", hello)
			return
		}
		log.Debugw("redial failed", "peer", p, "attempt", attempt, "err", err)
		wait *= 2
	}
	if r.roster.session(p) == nil && r.ctx.Err() == nil {
		r.emit(event.Event{Kind: event.Info, Code: event.ReconnectFailed, Peer: p.String(), Name: r.roster.nameOf(p)})
	}
}

// refusedBy reports whether p reset our chat stream lately: it refused the
// chat.
func (d *dialer) refusedBy(p peer.ID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.refused.holds(p)
}

// sessionEnded updates the dial memory when a session ends: a peer that
// left may come back at once, so discovery may dial it again; a peer that
// reset the chat on a live connection does not want it (-allow-peer,
// limits), and is left alone for a while.
func (d *dialer) sessionEnded(p peer.ID, kind endKind) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastDial.remove(p)
	if kind == endRefused {
		d.refused.add(p)
	}
}

// joined records that the room has had a session with p: its failed dials
// are not worth telling the user about (its leaving was).
func (d *dialer) joined(p peer.ID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.met.add(p)
}

// reportUnreachable tells the user, once per peer, that a peer found at the
// rendezvous could not be reached. Most such peers are gone and their
// records stale; a few are behind NAT with no relay address. Nothing is
// said when the failure does not mean that: the room is closing, or the
// peer is connected or in the chat after all (both sides dialed at once),
// or it was in the chat before.
func (d *dialer) reportUnreachable(ai peer.AddrInfo, err error) {
	r := d.r
	if r.ctx.Err() != nil || r.lc.isClosing() || r.roster.session(ai.ID) != nil || r.connected(ai.ID) {
		return
	}
	d.mu.Lock()
	tell := !d.met.has(ai.ID) && !d.told.has(ai.ID)
	if tell {
		d.told.add(ai.ID)
	}
	d.mu.Unlock()
	if !tell {
		return
	}
	f := node.ExplainDial(err, ai.Addrs, dialTimeout)
	r.emit(event.Event{Kind: event.Info, Code: event.PeerUnreachable, Peer: ai.ID.String(),
		Why: f.Why, Cause: f.Cause, WaitMS: event.Millis(f.Wait)})
}
