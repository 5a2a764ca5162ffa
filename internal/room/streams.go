package room

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	msmux "github.com/multiformats/go-multistream"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

const (
	// helloTimeout bounds the exchange of hello frames that opens a stream
	// of our own protocol.
	helloTimeout = 10 * time.Second
	// maxRoomInbound is how many room peers on our protocol may dial us on
	// the topic: beyond it, in a big room, we refuse their chat streams, so
	// that the oldest peers of a room, which every newcomer finds first, do
	// not collect connections from the whole room. On average a peer is
	// dialed as often as it dials (maxRoomDials); the margin above that
	// lets newcomers find room without many refusals.
	maxRoomInbound = 12
)

// relayedNotice is how long a chat runs through a relay before the user is
// told that no direct path was found (a var so that tests can shorten it).
var relayedNotice = 20 * time.Second

// streams sets up the chat streams: it opens them (for the dialer),
// accepts them (the protocol handlers), makes each the session with its
// peer or a stream of that session (attach), and moves a relayed chat to a
// direct connection when hole punching finds one. Its state is the
// connection notifiee; the sessions themselves belong to the roster.
type streams struct {
	r        *Room
	notifiee network.Notifiee
}

func newStreams(r *Room) *streams {
	st := &streams{r: r}
	st.notifiee = &network.NotifyBundle{ConnectedF: st.connected}
	r.host.Network().Notify(st.notifiee)
	return st
}

// stop stops hearing of new connections; the room is closing.
func (sm *streams) stop() { sm.r.host.Network().StopNotify(sm.notifiee) }

// connected is told of every new connection. A direct one to a peer whose
// chat runs through a relay (hole punching worked) lets the chat move.
func (sm *streams) connected(_ network.Network, c network.Conn) {
	if c.Stat().Limited {
		return
	}
	s := sm.r.roster.session(c.RemotePeer())
	if s == nil {
		return
	}
	sm.r.lc.Go(func() {
		sm.waitIdentify(c)
		sm.migrateToDirect(s)
	})
}

// waitIdentify waits (bounded) until identify has run on c, which tells us
// what program the peer runs: a direct connection may come up moments
// after the relayed one, before identify has said anything.
func (sm *streams) waitIdentify(c network.Conn) {
	ids, ok := sm.r.host.(interface{ IDService() identify.IDService })
	if !ok {
		return
	}
	t := time.NewTimer(dialTimeout)
	defer t.Stop()
	select {
	case <-ids.IDService().IdentifyWait(c):
	case <-t.C:
	case <-sm.r.ctx.Done():
	}
}

// migrateToDirect moves a relayed chat to a direct connection. Only the
// peer with the lower ID opens the new stream, and only with peers that run
// this program: go-libp2p's chat example would take the new stream for a
// second chat and panic when the old one ends.
func (sm *streams) migrateToDirect(s *session) {
	r := sm.r
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
		hello, err = sm.negotiate(st, []protocol.ID{s.currentStream().Protocol()})
	}
	if err != nil {
		if st != nil {
			_ = st.Reset()
		}
		log.Debugw("moving the chat to a direct connection failed", "peer", s.peer, "err", err)
		s.cancelMigration()
		return
	}
	r.emitAll(r.roster.peerNick(s, hello))
	if !s.migrate(st, true) {
		s.cancelMigration()
		_ = st.Reset()
	}
}

// open opens a chat stream to p and returns once p has agreed to one of
// our protocols, and, on ours, has said hello. go-libp2p's host.NewStream
// does not wait for that when identify has already listed the protocol for
// p: it negotiates on first use, so a peer that hangs, or one behind a
// connection not yet known to be dead, would seem to join.
func (sm *streams) open(ctx context.Context, p peer.ID) (network.Stream, *wire.Frame, error) {
	h := sm.r.host
	// A relayed (limited) connection is fine for a chat: it opens at once,
	// and hole punching may give a direct one later.
	ctx = network.WithAllowLimitedConn(ctx, "chat")
	if err := h.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
		return nil, nil, err
	}
	st, err := h.Network().NewStream(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(deadline)
	}
	hello, err := sm.negotiate(st, sm.r.cfg.Protocols)
	if err != nil {
		return nil, nil, fmt.Errorf("open chat stream: %w", err)
	}
	h.Peerstore().AddProtocols(p, st.Protocol())
	return st, hello, nil
}

// negotiate agrees with the peer on one of protocols for a stream we
// opened and, on our own protocol, exchanges hellos. The caller sets the
// stream's deadline; negotiate clears it. On failure the stream is reset.
func (sm *streams) negotiate(st network.Stream, protocols []protocol.ID) (*wire.Frame, error) {
	selected, err := msmux.SelectOneOf(protocols, st)
	if err == nil {
		err = st.SetProtocol(selected) // the resource manager's limits apply here
	}
	if err == nil && sm.r.priv != nil {
		// A private room: prove membership both ways before anything else.
		err = sm.r.priv.admit(st, true)
	}
	var hello *wire.Frame
	if err == nil {
		hello, err = sm.exchangeHello(st)
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
func (sm *streams) exchangeHello(st network.Stream) (*wire.Frame, error) {
	format := sm.r.cfg.Formats[st.Protocol()]
	if format == nil || !format.Framed() {
		return nil, nil
	}
	hello, err := wire.ExchangeHello(st, sm.r.roster.ourNick())
	if err != nil {
		return nil, err
	}
	return &hello, nil
}

// handle takes a chat stream a peer opened (the protocol handler).
func (sm *streams) handle(st network.Stream) {
	r := sm.r
	p := st.Conn().RemotePeer()
	if !r.allowed(p) {
		log.Debugw("chat refused: peer not in -allow-peer", "peer", p)
		_ = st.Reset()
		return
	}
	if st.Protocol() == Protocol {
		bound := 0
		if r.topic != nil {
			bound = maxRoomInbound
		}
		if !r.roster.reserveInbound(p, bound) {
			// A big room: enough room peers have dialed us. The dialer
			// takes the reset as a refusal and dials others.
			log.Debugw("chat refused: enough room peers dialed us", "peer", p)
			_ = st.Reset()
			return
		}
		defer r.roster.releaseInbound()
	}
	_ = st.SetDeadline(time.Now().Add(helloTimeout))
	if r.priv != nil {
		// A private room: the dialer must prove membership before it is
		// read, and learns nothing but a refusal if it cannot.
		if err := r.priv.admit(st, false); err != nil {
			log.Debugw("chat refused: no proof of membership", "peer", p, "err", err)
			_ = st.Reset()
			return
		}
	}
	hello, err := sm.exchangeHello(st)
	if err != nil {
		log.Debugw("chat stream without a valid hello", "peer", p, "err", err)
		_ = st.Reset()
		return
	}
	_ = st.SetDeadline(time.Time{})
	sm.attach(st, "inbound", hello)
}

// attach makes a stream the session with its peer, or, if there is one
// already, a stream of that session (see roster.place). hello is what the
// peer said opening a stream of our own protocol.
func (sm *streams) attach(st network.Stream, direction string, hello *wire.Frame) {
	r := sm.r
	p := st.Conn().RemotePeer()
	format := r.cfg.Formats[st.Protocol()]
	if format == nil || !r.allowed(p) {
		_ = st.Reset()
		return
	}
	if !st.Conn().Stat().Limited {
		if s := r.roster.session(p); s != nil && s.onLimitedConn() {
			// Maybe the peer moves our chat to a direct connection;
			// whether it runs our program, identify on that connection
			// will say.
			sm.waitIdentify(st.Conn())
		}
	}
	var resend, held []*outgoing
	s, how, wasMember, renamed := r.roster.place(st, format, hello, r.runsOurProgram(p), func() *session {
		s := newSession(st, format, direction, r.emit, newPinger(r.host).check, r.received, r.sessionEnded)
		s.sessions = r.roster.count
		if !s.framed() {
			// Only lines to plain sessions are counted as queued (see
			// ledger.assign and ledger.queue): a framed line is followed
			// by its receipt. Told of framed lines too, the ledger would
			// count down lines it never counted up.
			s.onWritten, s.onLost = r.ledger.written, r.ledger.lost
		}
		resend, held = sm.fill(s)
		return s
	})
	// fill may have made a queue of receipts for the peer, at the cost of
	// another's (see maxUnackedPeers); said here, outside the roster's lock.
	r.ledger.reportDropped()
	switch how {
	case placeRefused:
		_ = st.Reset()
		return
	case placeExtra:
		r.emitAll(renamed)
		return
	}
	r.host.ConnManager().Protect(p, connProtectTag)
	r.dialer.joined(p)
	if wasMember {
		// Its joining was announced when the topic showed it.
		r.emit(event.Event{Kind: event.Info, Code: event.ConnectedDirectly, Peer: p.String(), Name: s.name(),
			Protocol: string(st.Protocol()), Direction: direction})
	} else {
		r.emit(event.Event{
			Kind:      event.Joined,
			Peer:      p.String(),
			Nick:      s.nick(),
			Name:      s.name(),
			Protocol:  string(st.Protocol()),
			Plain:     !format.Framed(),
			Direction: direction,
			Addr:      st.Conn().RemoteMultiaddr().String(),
		})
	}
	r.emitAll(renamed)
	if len(resend) > 0 {
		r.emit(event.Event{Kind: event.Info, Code: event.Resending, Peer: p.String(), Name: s.name(), Count: len(resend)})
	}
	if len(held) > 0 {
		r.emit(event.Event{Kind: event.Info, Code: event.HeldSent, Peer: p.String(), Name: s.name(), Count: len(held)})
		sent := event.Event{Kind: event.Sent, MsgIDs: msgIDs(held), Peers: []string{s.peerID}}
		if len(held) == 1 {
			sent.Text = held[0].msg.Text
		}
		r.emit(sent)
	}
	s.announced()
	// place counted the session's wait as one of the room's goroutines.
	go func() {
		defer r.lc.done()
		s.wait()
	}()
	if st.Conn().Stat().Limited {
		r.lc.Go(func() { sm.reportStillRelayed(s) })
	}
}

// fill puts into a new session's outbox, before anything else can, the
// lines its peer has not acknowledged (it is back), then the held lines it
// has not had,
// then the lines just published on the topic, so that they keep their
// order; the outbox holds them all (see outboxSize). It runs under the
// roster's lock (see roster.place).
func (sm *streams) fill(s *session) (resend, held []*outgoing) {
	r := sm.r
	if s.framed() {
		resend = r.ledger.receipts.waitingFor(s.peer)
	}
	for _, o := range resend {
		s.outbox.put(o.frame())
	}
	held = r.ledger.heldFor(s.peer)
	for _, o := range held {
		r.ledger.assign(o, s)
		s.outbox.put(o.frame())
	}
	if s.framed() && r.topic != nil {
		// Lines just published on the topic, which the peer may have
		// taken from there while its session was opening: it shows them
		// once their stream copy comes (see topicBridge.received), so send
		// them. (One that is also among the unacknowledged lines sent
		// again above is dropped by the peer as a duplicate.)
		for _, o := range r.topic.recentPublished() {
			s.outbox.put(o.frame())
		}
	}
	return resend, held
}

// reportStillRelayed says so when a chat that opened over a relay is still
// there after relayedNotice: hole punching found no direct path (yet).
func (sm *streams) reportStillRelayed(s *session) {
	t := time.NewTimer(relayedNotice)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.done:
		return
	case <-sm.r.ctx.Done():
		return
	}
	if s.onLimitedConn() {
		sm.r.emit(event.Event{Kind: event.Info, Code: event.StillRelayed, Peer: s.peerID, Name: s.name()})
	}
}

// ping checks once, within livenessTimeout, that the peer answers libp2p
// ping.
func (sm *streams) ping(ctx context.Context, p peer.ID) error {
	h := sm.r.host
	if !answersPing(h, p) {
		return errNoPing
	}
	ctx, cancel := context.WithTimeout(ctx, livenessTimeout)
	defer cancel()
	res, ok := <-ping.Ping(ctx, h, p)
	if !ok {
		return fmt.Errorf("no reply within %v", livenessTimeout)
	}
	return res.Error
}
