package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	msmux "github.com/multiformats/go-multistream"

	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

const (
	// maxHeldLines bounds the lines kept while nobody is in the room.
	maxHeldLines = 100
	// dialTimeout bounds one attempt to reach a found peer, so that stale
	// rendezvous records of dead peers cost little.
	dialTimeout = 10 * time.Second
	// dialGrace is how long the peer with the higher ID waits for the other
	// to open its stream when the two are already connected, so that two
	// peers that find each other together usually end up with one stream.
	dialGrace = 150 * time.Millisecond
	// relayDialGrace is the same wait when the peer is reachable only
	// through a relay (see Room.dialGrace).
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
	// connProtectTag marks connections to chat peers for the connection manager.
	connProtectTag = "rendezvous-chat"
	// A session that broke is redialled after each of these waits, until a
	// session with the peer is back; then the room gives up and leaves the
	// peer to discovery.
	redialFirst    = 500 * time.Millisecond
	redialAttempts = 5
	// refusedBackoff is how long discovery leaves alone a peer that reset
	// our chat stream on a live connection: it refused the chat.
	refusedBackoff = time.Minute
	// helloTimeout bounds the exchange of hello frames that opens a stream
	// of our own protocol.
	helloTimeout = 10 * time.Second
)

// chatProtocol is this program's own chat protocol: framed, with message
// IDs, receipts and nicknames (see internal/wire). It is offered first;
// peers that speak only the plain protocol of go-libp2p's example get that.
const chatProtocol = protocol.ID("/rendezvous-chat/1.0.0")

// RoomConfig says which protocols a room speaks.
type RoomConfig struct {
	// Protocols are offered in this order when we open a stream; each must
	// have a wire format in Formats.
	Protocols []protocol.ID
	Formats   map[protocol.ID]wire.Format
	// Nick is the nickname we start with; "" shows us by our short ID.
	Nick string
	// AllowPeers, when not empty, are the only peers we chat with.
	AllowPeers map[peer.ID]bool
	// Gater, when set, removes addresses in denied networks from found
	// peers, so that they are never dialed.
	Gater *addrGater
}

// A Room is everyone met at the rendezvous. It takes found peers from the
// node (Offer) and lines from the user (Send), keeps one session per peer,
// and reports what happens as events.
type Room struct {
	host host.Host
	cfg  RoomConfig
	emit emitFunc

	ctx     context.Context // ends when the room closes; dials use it
	cancel  context.CancelFunc
	wg      sync.WaitGroup // dials and sessions
	dialSem chan struct{}

	closing   chan struct{} // closed when Close starts
	closeOnce sync.Once
	sendMu    sync.Mutex // serialises Send with Close

	mu       sync.Mutex
	sessions map[peer.ID]*session
	dialing  map[peer.ID]bool
	lastDial map[peer.ID]time.Time
	notes    dialNotes             // peers met, failed dials told (reasons.go; own lock)
	refused  map[peer.ID]time.Time // when a peer last reset our chat stream

	notifiee network.Notifiee
	held     []*outgoing // lines sent while nobody was here
	nick     string      // ours

	receipts *receipts
	msgIDs   string        // the prefix of our message IDs, new each run
	msgSeq   atomic.Uint64 // the rest of them
	seenMu   sync.Mutex
	seen     map[peer.ID]*seenIDs
	// names are the names last shown for peers, for notices about peers
	// that have left.
	names map[peer.ID]string

	// gossip is the room's topic (gossip.go); nil when it is off. members
	// are the peers in the room by the topic alone, without a session.
	// candidates are found peers waiting to be picked for a dial, and
	// picking says that a pick is scheduled (gossip.go).
	gossip     *roomGossip
	members    map[peer.ID]*member
	candidates map[peer.ID]peer.AddrInfo
	picking    bool
	// inboundOpening counts inbound streams of our protocol between
	// admitInbound and their session, so that a burst of them cannot pass
	// the bound together.
	inboundOpening int
}

// NewRoom registers the chat protocols on the host and returns the room.
func NewRoom(h host.Host, cfg RoomConfig, emit emitFunc) *Room {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Room{
		host:     h,
		cfg:      cfg,
		emit:     emit,
		ctx:      ctx,
		cancel:   cancel,
		dialSem:  make(chan struct{}, maxParallelDials),
		closing:  make(chan struct{}),
		sessions: make(map[peer.ID]*session),
		dialing:  make(map[peer.ID]bool),
		lastDial: make(map[peer.ID]time.Time),
		refused:  make(map[peer.ID]time.Time),
		nick:     cfg.Nick,
		receipts: newReceipts(),
		msgIDs:   strconv.FormatUint(rand.Uint64(), 36) + "-",
		seen:     make(map[peer.ID]*seenIDs),
		names:    make(map[peer.ID]string),
		members:  make(map[peer.ID]*member),

		candidates: make(map[peer.ID]peer.AddrInfo),
	}
	for _, pid := range cfg.Protocols {
		h.SetStreamHandler(pid, r.handleStream)
	}
	r.notifiee = &network.NotifyBundle{ConnectedF: r.connected}
	h.Network().Notify(r.notifiee)
	r.wg.Add(1)
	go r.expireLoop()
	return r
}

// connected is told of every new connection. A direct one to a peer whose
// chat runs through a relay (hole punching worked) lets the chat move.
func (r *Room) connected(_ network.Network, c network.Conn) {
	if c.Stat().Limited {
		return
	}
	p := c.RemotePeer()
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sessions[p]
	if s == nil || r.isClosing() {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.waitIdentify(c)
		r.migrateToDirect(s)
	}()
}

// waitIdentify waits (bounded) until identify has run on c, which tells us
// what program the peer runs: a direct connection may come up moments
// after the relayed one, before identify has said anything.
func (r *Room) waitIdentify(c network.Conn) {
	ids, ok := r.host.(interface{ IDService() identify.IDService })
	if !ok {
		return
	}
	t := time.NewTimer(dialTimeout)
	defer t.Stop()
	select {
	case <-ids.IDService().IdentifyWait(c):
	case <-t.C:
	case <-r.ctx.Done():
	}
}

// migrateToDirect moves a relayed chat to a direct connection. Only the
// peer with the lower ID opens the new stream, and only with peers that run
// this program: go-libp2p's chat example would take the new stream for a
// second chat and panic when the old one ends.
func (r *Room) migrateToDirect(s *session) {
	if !s.onLimitedConn() || r.host.ID() > s.peer || !r.runsOurProgram(s.peer) || !s.expectMigration() {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, dialTimeout)
	defer cancel()
	// Without WithAllowLimitedConn the host uses a direct connection only.
	st, err := r.host.Network().NewStream(ctx, s.peer)
	if err == nil && st.Conn().Stat().Limited {
		err = errors.New("no direct connection")
	}
	var hello *wire.Frame
	if err == nil {
		_ = st.SetDeadline(time.Now().Add(helloTimeout))
		hello, err = r.negotiate(st, []protocol.ID{s.currentStream().Protocol()})
	}
	if err != nil {
		if st != nil {
			_ = st.Reset()
		}
		log.Debugw("moving the chat to a direct connection failed", "peer", s.peer, "err", err)
		s.cancelMigration()
		return
	}
	r.mu.Lock()
	r.setPeerNickLocked(s, hello)
	renamed := r.renameLocked(nil)
	r.mu.Unlock()
	r.emitAll(renamed)
	if !s.migrate(st, true) {
		s.cancelMigration()
		_ = st.Reset()
	}
}

// runsOurProgram reports whether identify says the peer runs this program.
func (r *Room) runsOurProgram(p peer.ID) bool {
	agent, err := r.host.Peerstore().Get(p, "AgentVersion")
	name, _ := agent.(string)
	return err == nil && strings.HasPrefix(name, userAgentName+"/")
}

// sessionCount returns how many sessions the room has.
func (r *Room) sessionCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// Peers returns the peers the room has a session with.
func (r *Room) Peers() []peer.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]peer.ID, 0, len(r.sessions))
	for id := range r.sessions {
		ids = append(ids, id)
	}
	return ids
}

// Offer takes a peer found by discovery and dials it in the background,
// unless it is us, has no address, is already in the room or being dialed,
// or was tried moments ago. It never blocks.
func (r *Room) Offer(ai peer.AddrInfo) {
	if ai.ID == r.host.ID() || ai.ID == "" || !r.allowed(ai.ID) {
		return
	}
	ai.Addrs = r.cfg.Gater.filterAddrs(ai.Addrs)
	if len(ai.Addrs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isClosing() || r.sessions[ai.ID] != nil || r.dialing[ai.ID] ||
		time.Since(r.lastDial[ai.ID]) < redialInterval || time.Since(r.refused[ai.ID]) < refusedBackoff ||
		!r.wantDialLocked() {
		return
	}
	if r.gossip != nil && (len(r.dialing) > 0 || r.outboundFramedLocked() > 0) {
		// On the topic we dial only a few room peers: after the first,
		// pick them at random among those found together (see
		// dialCandidates). The first is dialed at once, so that two
		// peers meet without delay; the inbound bound of the peers that
		// everyone finds first keeps them from collecting the room.
		r.addCandidateLocked(ai)
		return
	}
	r.startDialLocked(ai)
}

// startDialLocked dials ai in the background.
func (r *Room) startDialLocked(ai peer.AddrInfo) {
	r.dialing[ai.ID] = true
	r.pruneDialMemoryLocked()
	r.lastDial[ai.ID] = time.Now()
	r.wg.Add(1)
	go r.dial(ai)
}

// dialMemoryPrune is the size of Room.lastDial (or Room.refused) above
// which entries that no longer hold a dial back are dropped, so that a
// rendezvous full of strangers cannot grow them without bound.
const dialMemoryPrune = 1024

// pruneDialMemoryLocked drops the dial times and refusals that have
// expired, once there are many.
func (r *Room) pruneDialMemoryLocked() {
	if len(r.lastDial) > dialMemoryPrune {
		for id, at := range r.lastDial {
			if time.Since(at) >= redialInterval {
				delete(r.lastDial, id)
			}
		}
	}
	if len(r.refused) > dialMemoryPrune {
		for id, at := range r.refused {
			if time.Since(at) >= refusedBackoff {
				delete(r.refused, id)
			}
		}
	}
}

func (r *Room) dial(ai peer.AddrInfo) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.dialing, ai.ID)
		r.mu.Unlock()
	}()
	// The tie-break: the peer with the lower ID dials at once. The other
	// does too, unless a connection between the two is already up, a sign
	// that the lower one is opening its stream right now: then it gives it
	// a moment, and dials only if no session has appeared by then. Should
	// both streams open anyway, the session adopts the second one.
	if grace := r.dialGrace(ai); r.host.ID() > ai.ID && grace > 0 {
		select {
		case <-time.After(grace):
		case <-r.ctx.Done():
			return
		}
		if r.hasSession(ai.ID) {
			return
		}
	}
	// Over a relay, not before our hole punching is ready: a relayed
	// connection opened earlier would never be made direct.
	// It never starts where no server sees a public address of ours (on
	// loopback, say), hence the short bound.
	if viaRelay(ai.Addrs) && r.host.Network().Connectedness(ai.ID) != network.Connected {
		waitHolePunchReady(r.ctx, r.host, relayDialHolePunchWait)
	}
	select {
	case r.dialSem <- struct{}{}:
		defer func() { <-r.dialSem }()
	case <-r.ctx.Done():
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, dialTimeout)
	defer cancel()
	r.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
	st, hello, err := r.openStream(ctx, ai.ID)
	if err != nil && simultaneousOpen(err) {
		if r.hasSession(ai.ID) || !sleep(r.ctx, simultaneousOpenRetry(r.host.ID(), ai.ID)) || r.hasSession(ai.ID) {
			return
		}
		// Past libp2p's dial backoff, which the failed dial just set.
		st, hello, err = r.openStream(network.WithForceDirectDial(ctx, "retry after a simultaneous open"), ai.ID)
	}
	if err != nil {
		if errors.Is(err, network.ErrReset) && r.host.Network().Connectedness(ai.ID) == network.Connected {
			// The peer refused the chat on a live connection (-allow-peer,
			// or a big room's peer that enough others dialed): leave it
			// alone for a while.
			r.mu.Lock()
			r.refused[ai.ID] = time.Now()
			r.mu.Unlock()
			if r.gossip != nil && !r.hasSession(ai.ID) {
				// We connected for the chat; the topic has other
				// neighbours, and the peer enough connections.
				_ = r.host.Network().ClosePeer(ai.ID)
			}
		}
		// Most failures are stale rendezvous records of peers that are gone:
		// logged, and said once per peer in plain words (reasons.go).
		log.Debugw("dial failed", "peer", ai.ID, "err", err)
		r.reportUnreachable(ai, err)
		return
	}
	r.attach(st, "outbound", hello)
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

// dialGrace is how long the peer with the higher ID waits for the other to
// dial first. It waits when a connection is already up (the other is likely
// opening its stream on it), and longer when the peer can be reached only
// through a relay: two relayed connections at once make hole punching
// fail, so there only the lower ID should dial.
func (r *Room) dialGrace(ai peer.AddrInfo) time.Duration {
	if r.host.Network().Connectedness(ai.ID) == network.Connected {
		return dialGrace
	}
	if !onlyRelayed(ai.Addrs) && !viaRelay(ai.Addrs) {
		return 0
	}
	return relayDialGrace
}

// viaRelay reports whether a peer with these addresses can likely be reached
// only through a relay: it has relay addresses and no public direct one. Its
// private addresses (a peer behind NAT advertises them too) lead nowhere
// unless it is on our LAN.
func viaRelay(addrs []ma.Multiaddr) bool {
	relayed := false
	for _, a := range addrs {
		if isRelayed(a) {
			relayed = true
		} else if manet.IsPublicAddr(a) {
			return false
		}
	}
	return relayed
}

// onlyRelayed reports whether every address is a relayed one.
func onlyRelayed(addrs []ma.Multiaddr) bool {
	for _, a := range addrs {
		if !isRelayed(a) {
			return false
		}
	}
	return true
}

// openStream opens a chat stream to p and returns once p has agreed to one
// of our protocols, and, on ours, has said hello. go-libp2p's
// host.NewStream does not wait for that when identify has already listed
// the protocol for p: it negotiates on first use, so a peer that hangs, or
// one behind a connection not yet known to be dead, would seem to join.
func (r *Room) openStream(ctx context.Context, p peer.ID) (network.Stream, *wire.Frame, error) {
	// A relayed (limited) connection is fine for a chat: it opens at once,
	// and hole punching may give a direct one later.
	ctx = network.WithAllowLimitedConn(ctx, "chat")
	if err := r.host.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
		return nil, nil, err
	}
	st, err := r.host.Network().NewStream(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(deadline)
	}
	hello, err := r.negotiate(st, r.cfg.Protocols)
	if err != nil {
		return nil, nil, fmt.Errorf("open chat stream: %w", err)
	}
	r.host.Peerstore().AddProtocols(p, st.Protocol())
	return st, hello, nil
}

// negotiate agrees with the peer on one of protocols for a stream we
// opened and, on our own protocol, exchanges hellos. The caller sets the
// stream's deadline; negotiate clears it. On failure the stream is reset.
func (r *Room) negotiate(st network.Stream, protocols []protocol.ID) (*wire.Frame, error) {
	selected, err := msmux.SelectOneOf(protocols, st)
	if err == nil {
		err = st.SetProtocol(selected) // the resource manager's limits apply here
	}
	var hello *wire.Frame
	if err == nil {
		hello, err = r.exchangeHello(st)
	}
	if err != nil {
		_ = st.Reset()
		return nil, err
	}
	_ = st.SetDeadline(time.Time{})
	return hello, nil
}

// exchangeHello opens a stream of our own protocol with hellos both ways
// and returns the peer's; on the plain protocol it does nothing.
func (r *Room) exchangeHello(st network.Stream) (*wire.Frame, error) {
	format := r.cfg.Formats[st.Protocol()]
	if format == nil || !format.Framed() {
		return nil, nil
	}
	r.mu.Lock()
	nick := r.nick
	r.mu.Unlock()
	hello, err := wire.ExchangeHello(st, nick)
	if err != nil {
		return nil, err
	}
	return &hello, nil
}

// hasRelayedSession reports whether the chat with id runs over a relay.
func (r *Room) hasRelayedSession(id peer.ID) bool {
	r.mu.Lock()
	s := r.sessions[id]
	r.mu.Unlock()
	return s != nil && s.onLimitedConn()
}

// allowed reports whether -allow-peer lets us chat with id.
func (r *Room) allowed(id peer.ID) bool {
	return len(r.cfg.AllowPeers) == 0 || r.cfg.AllowPeers[id]
}

func (r *Room) hasSession(id peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions[id] != nil
}

func (r *Room) handleStream(st network.Stream) {
	p := st.Conn().RemotePeer()
	if !r.allowed(p) {
		log.Debugw("chat refused: peer not in -allow-peer", "peer", p)
		_ = st.Reset()
		return
	}
	if st.Protocol() == chatProtocol {
		if !r.admitInbound(p) {
			// A big room: enough room peers have dialed us. The dialer
			// takes the reset as a refusal and dials others.
			log.Debugw("chat refused: enough room peers dialed us", "peer", p)
			_ = st.Reset()
			return
		}
		defer r.inboundDone()
	}
	_ = st.SetDeadline(time.Now().Add(helloTimeout))
	hello, err := r.exchangeHello(st)
	if err != nil {
		log.Debugw("chat stream without a valid hello", "peer", p, "err", err)
		_ = st.Reset()
		return
	}
	_ = st.SetDeadline(time.Time{})
	r.attach(st, "inbound", hello)
}

// attach makes a stream the session with its peer, or, if there is one
// already, an extra stream of that session (see session.adopt). hello is
// what the peer said opening a stream of our own protocol.
func (r *Room) attach(st network.Stream, direction string, hello *wire.Frame) {
	p := st.Conn().RemotePeer()
	format := r.cfg.Formats[st.Protocol()]
	if format == nil || !r.allowed(p) {
		_ = st.Reset()
		return
	}

	if !st.Conn().Stat().Limited && r.hasRelayedSession(p) {
		// Maybe the peer moves our chat to a direct connection; whether it
		// runs our program, identify on that connection will say.
		r.waitIdentify(st.Conn())
	}
	r.mu.Lock()
	for {
		if r.isClosing() {
			r.mu.Unlock()
			_ = st.Reset()
			return
		}
		existing := r.sessions[p]
		if existing == nil {
			break
		}
		if existing.onLimitedConn() && !st.Conn().Stat().Limited && r.runsOurProgram(p) &&
			existing.migrate(st, false) {
			// The peer found a direct path and moves the chat to it.
			r.setPeerNickLocked(existing, hello)
			events := r.renameLocked(nil)
			r.mu.Unlock()
			r.emitAll(events)
			return
		}
		if existing.adopt(st, format) {
			r.setPeerNickLocked(existing, hello)
			events := r.renameLocked(nil)
			r.mu.Unlock()
			r.emitAll(events)
			log.Debugw("another chat stream from the same peer kept for reading", "peer", p, "direction", direction)
			return
		}
		// The session with this peer has ended but is still finishing:
		// let it report its last lines and leave before the peer rejoins.
		r.mu.Unlock()
		<-existing.finished
		r.mu.Lock()
	}
	s := newSession(st, format, direction, r.emit, r.ping, r.received, r.sessionEnded)
	s.sessions = r.sessionCount
	// Lines it has not acknowledged (it is back), then held lines go into
	// the new outbox before anything else can, so they keep their order;
	// the outbox holds more than maxUnackedPerPeer + maxHeldLines.
	var resend []*outgoing
	if format.Framed() {
		resend = r.receipts.waitingFor(p)
	}
	for _, o := range resend {
		s.outbox <- o.frame()
	}
	held := r.held
	r.held = nil
	for _, o := range held {
		r.addRecipient(o, s)
		s.outbox <- o.frame()
	}
	if format.Framed() {
		// Lines just published on the topic, which the peer may have
		// taken from there while its session was opening: it shows them
		// once their stream copy comes (see gossipReceived), so send them.
		// (One that is also among the unacknowledged lines sent again above is
		// dropped by the peer as a duplicate.)
		for _, o := range r.recentPublishedLocked() {
			s.outbox <- o.frame()
		}
	}
	s.start()
	r.sessions[p] = s
	wasMember := r.sessionStartedLocked(p)
	r.wg.Add(1)
	r.setPeerNickLocked(s, hello)
	renamed := r.renameLocked(s) // the joined event announces s's name
	r.mu.Unlock()

	r.host.ConnManager().Protect(p, connProtectTag)
	r.notes.joined(p)
	if wasMember {
		// Its joining was announced when the topic showed it.
		r.emit(Event{Kind: EventInfo, Peer: p.String(), Name: s.name(),
			Text: fmt.Sprintf("now connected directly to %s (%s, %s)", s.name(), st.Protocol(), direction)})
	} else {
		r.emit(Event{
			Kind:      EventJoined,
			Peer:      p.String(),
			Nick:      s.nick(),
			Name:      s.name(),
			Protocol:  string(st.Protocol()),
			Direction: direction,
			Addr:      st.Conn().RemoteMultiaddr().String(),
		})
	}
	r.emitAll(renamed)
	if len(resend) > 0 {
		r.emit(Event{Kind: EventInfo, Peer: p.String(), Name: s.name(),
			Text: fmt.Sprintf("sending again %d line(s) that %s had not acknowledged", len(resend), s.name())})
	}
	if len(held) > 0 {
		r.emit(Event{Kind: EventInfo, Peer: p.String(), Name: s.name(),
			Text: fmt.Sprintf("sending %d held line(s) to %s", len(held), s.name())})
		sent := Event{Kind: EventSent, MsgIDs: msgIDs(held), Peers: []string{s.peerID}}
		if len(held) == 1 {
			sent.Text = held[0].text
		}
		r.emit(sent)
	}
	s.announced()
	go func() {
		defer r.wg.Done()
		s.wait()
	}()
	if st.Conn().Stat().Limited {
		r.mu.Lock()
		if !r.isClosing() {
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.reportStillRelayed(s)
			}()
		}
		r.mu.Unlock()
	}
}

// relayedNotice is how long a chat runs through a relay before the user is
// told that no direct path was found (a var so that tests can shorten it).
var relayedNotice = 20 * time.Second

// reportStillRelayed says so when a chat that opened over a relay is still
// there after relayedNotice: hole punching found no direct path (yet).
func (r *Room) reportStillRelayed(s *session) {
	t := time.NewTimer(relayedNotice)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.done:
		return
	case <-r.ctx.Done():
		return
	}
	if s.onLimitedConn() {
		r.emit(Event{Kind: EventInfo, Peer: s.peerID, Name: s.name(),
			Text: fmt.Sprintf("the chat with %s stays on the relay: no direct path found so far", s.name())})
	}
}

// sessionEnded is called once by each session when it ends.
func (r *Room) sessionEnded(s *session, kind endKind, reason string) {
	r.mu.Lock()
	if r.sessions[s.peer] == s {
		delete(r.sessions, s.peer)
	}
	// A peer that left may come back at once; let discovery dial it again.
	delete(r.lastDial, s.peer)
	closing := r.isClosing()
	if kind == endRefused {
		// The peer reset the chat on a live connection: it does not want
		// it (-allow-peer, limits). Leave it alone for a while.
		r.refused[s.peer] = time.Now()
	}
	redial := kind == endBroken && !closing
	if redial {
		r.wg.Add(1)
	}
	renamed := r.renameLocked(nil)
	r.mu.Unlock()

	r.host.ConnManager().Unprotect(s.peer, connProtectTag)
	if closing {
		return
	}
	r.emit(Event{Kind: EventLeft, Peer: s.peerID, Nick: s.nick(), Name: s.name(), Reason: reason})
	r.emitAll(renamed)
	if n := r.receipts.unackedCounts()[s.peer]; n > 0 {
		r.emit(Event{Kind: EventInfo, Peer: s.peerID, Name: s.name(),
			Text: fmt.Sprintf("%d line(s) to %s not acknowledged yet: they are sent again if %s is back within %v",
				n, s.name(), s.name(), resendWindow)})
	}
	if redial {
		go func() {
			defer r.wg.Done()
			r.redial(s.peer)
		}()
	}
}

// redial reconnects to a peer whose session broke, with backoff, using the
// addresses libp2p knows for it. Both sides may redial; the session adopts a
// second stream as usual.
func (r *Room) redial(p peer.ID) {
	wait := redialFirst
	for attempt := 1; attempt <= redialAttempts; attempt++ {
		if !sleep(r.ctx, wait) || r.hasSession(p) {
			return
		}
		ctx, cancel := context.WithTimeout(r.ctx, dialTimeout)
		st, hello, err := r.openStream(ctx, p)
		cancel()
		if err == nil {
			r.attach(st, "outbound", hello)
			return
		}
		log.Debugw("redial failed", "peer", p, "attempt", attempt, "err", err)
		wait *= 2
	}
	if !r.hasSession(p) && r.ctx.Err() == nil {
		r.emit(Event{Kind: EventInfo, Peer: p.String(),
			Text: fmt.Sprintf("could not reconnect to %s; discovery keeps looking for it", shortID(p))})
	}
}

// ping checks once, within livenessTimeout, that the peer answers libp2p
// ping.
func (r *Room) ping(ctx context.Context, p peer.ID) error {
	// Only a peer that identify has described, without a ping handler, has
	// none: before identify completes its protocols are simply unknown.
	known, err := r.host.Peerstore().GetProtocols(p)
	if err == nil && len(known) > 0 && !slices.Contains(known, ping.ID) {
		return errNoPing
	}
	ctx, cancel := context.WithTimeout(ctx, livenessTimeout)
	defer cancel()
	res, ok := <-ping.Ping(ctx, r.host, p)
	if !ok {
		return fmt.Errorf("no reply within %v", livenessTimeout)
	}
	return res.Error
}

// Send sends one line to every peer in the room. While the room is empty it
// holds the line (bounded) for the first peer to join. Every line is either
// delivered (acknowledged, on our own protocol) or reported as not
// delivered.
func (r *Room) Send(line string) {
	r.send([]string{line}, "")
}

// SendLines sends lines, in order, as Send does, with one sent event for
// them all: a paste or a pipe delivers many lines at once, and an event
// per line would cost more than sending it.
func (r *Room) SendLines(lines []string) {
	r.send(lines, "")
}

// send sends lines to every peer in the room, or only to the peer to
// (/msg), and follows each until every peer on our protocol acknowledged
// it.
func (r *Room) send(lines []string, to peer.ID) {
	batch := make([]*outgoing, 0, len(lines))
	now := time.Now()
	for _, line := range lines {
		if len(line) > wire.MaxTextBytes {
			r.emit(Event{Kind: EventError, Error: fmt.Sprintf("line not sent: it is %d bytes, over the limit of %d KiB", len(line), wire.MaxTextBytes>>10)})
			continue
		}
		batch = append(batch, &outgoing{id: r.msgIDs + strconv.FormatUint(r.msgSeq.Add(1), 36), text: line, private: to != "", sent: now})
	}
	if len(batch) == 0 {
		return
	}
	r.sendMu.Lock()
	defer r.sendMu.Unlock()

	r.mu.Lock()
	if r.isClosing() {
		r.mu.Unlock()
		r.emit(Event{Kind: EventError, Error: fmt.Sprintf("%d line(s) not sent: shutting down", len(batch))})
		return
	}
	var sessions []*session
	if to != "" {
		if s := r.sessions[to]; s != nil {
			sessions = append(sessions, s)
		}
	} else {
		for _, s := range r.sessions {
			sessions = append(sessions, s)
		}
	}
	if len(sessions) == 0 && to != "" {
		r.mu.Unlock()
		r.emit(Event{Kind: EventError, Error: fmt.Sprintf("private line not sent: %s left the room", shortID(to))})
		return
	}
	// Lines go on the topic too when someone can be reached only there;
	// they are published first, so that they carry the topic's message ID
	// on the sessions as well.
	var overRate []*outgoing
	var topicFailures []Event
	published := false
	if to == "" && r.gossipAudienceLocked() {
		r.mu.Unlock()
		overRate, topicFailures = r.publish(batch)
		r.mu.Lock()
		published = len(overRate)+len(topicFailures) < len(batch)
	}
	seal(batch)
	if published {
		r.rememberPublishedLocked(batch)
	}
	if len(sessions) == 0 && to == "" && r.gossip != nil && (published || len(overRate)+len(topicFailures) > 0) {
		r.mu.Unlock()
		var out []*outgoing
		for _, o := range batch {
			if o.topic {
				out = append(out, o)
			}
		}
		if len(out) > 0 {
			sent := Event{Kind: EventSent, MsgIDs: msgIDs(out), Topic: r.gossip.cfg.Topic}
			if len(out) == 1 {
				sent.Text = out[0].text
			}
			r.emit(sent)
		}
		r.emitAll(topicFailures)
		if len(overRate) > 0 {
			r.emit(Event{Kind: EventError, MsgIDs: msgIDs(overRate), Error: r.overRateText(len(overRate), 0)})
		}
		return
	}
	if len(sessions) == 0 {
		room := min(maxHeldLines-len(r.held), len(batch))
		r.held = append(r.held, batch[:room]...)
		n := len(r.held)
		r.mu.Unlock()
		if room > 0 {
			what := "the line"
			if room > 1 {
				what = fmt.Sprintf("%d lines", room)
			}
			r.emit(Event{Kind: EventInfo, MsgIDs: msgIDs(batch[:room]),
				Text: fmt.Sprintf("nobody is here yet: holding %s until someone joins (%d held)", what, n)})
		}
		if rest := len(batch) - room; rest > 0 {
			r.emit(Event{Kind: EventError, MsgIDs: msgIDs(batch[room:]),
				Error: fmt.Sprintf("%d line(s) not sent: nobody is here yet and %d lines are already held", rest, maxHeldLines)})
		}
		return
	}
	r.mu.Unlock()

	// Peers on the plain protocol first: a line's noReceipt must be
	// complete before expect publishes it to the readers that take
	// receipts.
	slices.SortStableFunc(sessions, func(a, b *session) int { return boolCompare(a.framed(), b.framed()) })
	// The sent event goes out before the lines, so that it comes before
	// their delivered events; a peer a line then cannot reach gets an
	// error event after it.
	sent := Event{Kind: EventSent, MsgIDs: msgIDs(batch), Private: to != ""}
	if len(batch) == 1 {
		sent.Text = batch[0].text
	}
	if published {
		sent.Topic = r.gossip.cfg.Topic
	}
	if to != "" {
		sent.To = to.String()
	}
	for _, s := range sessions {
		sent.Peers = append(sent.Peers, s.peerID)
	}
	r.emit(sent)
	r.emitAll(topicFailures)
	if len(overRate) > 0 {
		r.tellOverRate(overRate, len(sessions))
	}
	var failures []Event
	for _, o := range batch {
		for _, s := range sessions {
			if s.framed() {
				if err := r.receipts.waitWindow(s.peer, r.closing, s.done); err != nil {
					failures = append(failures, notDelivered(o, s, err.Error()))
					continue
				}
				r.receipts.expect(o, s.peer)
			}
			if err := s.enqueue(o.frame(), r.closing); err != nil {
				if s.framed() {
					r.receipts.giveUp(o, s.peer)
				}
				failures = append(failures, notDelivered(o, s, err.Error()))
				continue
			}
			if !s.framed() {
				o.noReceipt = append(o.noReceipt, s.peerID)
			}
		}
	}
	r.emitAll(failures)
}

// msgIDs lists the IDs of lines.
func msgIDs(lines []*outgoing) []string {
	ids := make([]string, len(lines))
	for i, o := range lines {
		ids[i] = o.id
	}
	return ids
}

// boolCompare orders false before true.
func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	default:
		return 1
	}
}

// addRecipient records that a held line goes to s, which joined.
func (r *Room) addRecipient(o *outgoing, s *session) {
	if s.framed() {
		// Lines are held only while nobody is here, so s has no
		// unacknowledged lines before these, and they fit in its window.
		r.receipts.expect(o, s.peer)
	} else {
		o.noReceipt = append(o.noReceipt, s.peerID)
	}
}

// frame is the message frame of an outgoing line, made by seal.
func (o *outgoing) frame() *wire.Frame { return o.msg }

// seal makes the message frame of lines whose IDs are final, before any
// session sees them.
func seal(batch []*outgoing) {
	for _, o := range batch {
		o.msg = &wire.Frame{Type: wire.TypeMsg, ID: o.id, Text: o.text, Private: o.private}
	}
}

// notDelivered is the error event for a line that did not reach s.
func notDelivered(o *outgoing, s *session, why string) Event {
	return Event{Kind: EventError, Peer: s.peerID, Name: s.name(), MsgID: o.id,
		Error: fmt.Sprintf("line %s not delivered to %s: %s", preview(o.text), s.name(), why)}
}

// received takes what a peer sent, from its session's reader.
func (r *Room) received(s *session, f wire.Frame) {
	switch f.Type {
	case wire.TypeMsg:
		if f.ID == "" {
			// A plain line: from a peer on the plain protocol, or on an
			// extra stream of that protocol.
			r.emit(Event{Kind: EventMessage, Peer: s.peerID, Name: s.name(), Text: f.Text})
			return
		}
		// Acknowledge even a message seen before: our first receipt of it
		// may be what was lost.
		s.queueAck(f.ID)
		if !r.firstSight(s.peer, f.ID) {
			log.Debugw("dropped a message received twice", "peer", s.peer, "id", f.ID)
			return
		}
		r.emit(Event{Kind: EventMessage, Peer: s.peerID, Nick: s.nick(), Name: s.name(),
			MsgID: f.ID, Private: f.Private, Text: f.Text})
	case wire.TypeAck:
		r.emitDelivered(r.receipts.ack(s.peer, s.peerID, f.IDs))
	case wire.TypeHello, wire.TypeNick:
		r.mu.Lock()
		r.setPeerNickLocked(s, &f)
		events := r.renameLocked(nil)
		r.mu.Unlock()
		r.emitAll(events)
	default:
		// A frame type from a newer version of the protocol.
		log.Debugw("ignored a frame of unknown type", "peer", s.peer, "type", f.Type)
	}
}

// emitDelivered reports lines that every peer has acknowledged. A run of
// lines acknowledged by the same peers is one event: a pasted paragraph is
// one "delivered" line, not one per line.
func (r *Room) emitDelivered(done []*outgoing) {
	for i := 0; i < len(done); {
		first := done[i]
		j := i + 1
		for j < len(done) && done[j].private == first.private &&
			slices.Equal(done[j].ackedIDs, first.ackedIDs) && slices.Equal(done[j].noReceipt, first.noReceipt) {
			j++
		}
		e := Event{Kind: EventDelivered, Private: first.private, Peers: first.ackedIDs,
			Names: r.nameList(first.acked), NoReceipt: first.noReceipt, MsgIDs: make([]string, 0, j-i)}
		for _, o := range done[i:j] {
			e.MsgIDs = append(e.MsgIDs, o.id)
		}
		if j-i == 1 {
			e.Text = first.text
		}
		r.emit(e)
		i = j
	}
}

// firstSight records a message ID of p and reports whether it is new.
func (r *Room) firstSight(p peer.ID, id string) bool {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	seen := r.seen[p]
	if seen == nil {
		seen = &seenIDs{}
		r.seen[p] = seen
	}
	return seen.add(id)
}

// expireLoop reports, now and then, the lines that some peer has not
// acknowledged within resendWindow, and stops waiting for them.
func (r *Room) expireLoop() {
	defer r.wg.Done()
	tick := time.NewTicker(resendWindow / 60)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-tick.C:
		}
		for _, e := range r.receipts.expire(time.Now().Add(-resendWindow)) {
			r.emit(Event{Kind: EventError, MsgID: e.o.id, Peers: peerStrings(e.peers),
				Error: fmt.Sprintf("line %s not delivered to %s: no receipt within %v", preview(e.o.text), r.namesOf(e.peers), resendWindow)})
		}
	}
}

// emitAll emits events in order.
func (r *Room) emitAll(events []Event) {
	for _, e := range events {
		r.emit(e)
	}
}

func (r *Room) isClosing() bool {
	select {
	case <-r.closing:
		return true
	default:
		return false
	}
}

// Close delivers what is queued to each peer (bounded by timeout), reports
// what could not be delivered, ends every session and waits for every
// goroutine the room started.
func (r *Room) Close(timeout time.Duration) {
	r.closeOnce.Do(func() {
		// closing is closed under mu, so that Offer and attach, which check
		// it under mu, never add to wg once Close may be waiting on it.
		r.mu.Lock()
		close(r.closing)
		r.mu.Unlock()
		r.cancel()
		r.host.Network().StopNotify(r.notifiee)
		for _, pid := range r.cfg.Protocols {
			r.host.RemoveStreamHandler(pid)
		}
		// Wait for a Send in progress: it sees closing and returns. Later
		// calls wait for Close to finish, then report the line not sent.
		r.sendMu.Lock()
		defer r.sendMu.Unlock()

		r.mu.Lock()
		held := r.held
		r.held = nil
		sessions := make([]*session, 0, len(r.sessions))
		for _, s := range r.sessions {
			sessions = append(sessions, s)
		}
		r.mu.Unlock()

		if len(held) > 0 {
			r.emit(Event{Kind: EventError, Error: fmt.Sprintf("%d held line(s) not delivered: nobody joined", len(held))})
		}
		defer r.reportUnacknowledged()
		deadline := time.Now().Add(timeout)
		var wg sync.WaitGroup
		for _, s := range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.shutdown(deadline)
			}()
		}
		wg.Wait()
		// The topic last: its "bye" tells the room we left, and its loop
		// is one of the room's goroutines.
		r.closeGossip()
		r.wg.Wait()
	})
}
