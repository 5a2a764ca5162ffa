package room

import (
	"errors"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/gossiproom"
	"github.com/rendezvous-chat/rendezvous-chat/internal/ucdm"
	"github.com/rendezvous-chat/rendezvous-chat/internal/ucfile"
)

const (
	// maxRecentPublished bounds the lines published in the last
	// streamGrace that a new session starts with (see recentPublished).
	maxRecentPublished = 64
	// sessionGrace is how long a member that presence reports, and that we
	// are connected to, has to open a session before it is announced as a
	// member by the topic only; maxPendingJoins bounds the peers waiting.
	// A connection between two room peers is almost always a chat dial, so
	// the session is on its way (it comes in tens of milliseconds on a LAN);
	// one that was refused (see noSessionComing) is announced at once.
	sessionGrace    = time.Second
	maxPendingJoins = 1024
	// streamGrace is how long a topic line from a peer with a framed
	// session waits for its copy on the stream (see received), and
	// maxHeldTopicLines bounds the lines waiting; beyond it they are shown
	// at once.
	streamGrace       = time.Second
	maxHeldTopicLines = 4096
	// overRateNoticeEvery spaces the notices that lines went to the
	// directly connected peers only.
	overRateNoticeEvery = 10 * time.Second
	// bigRoomGCPercent is the garbage collector's target in a big room
	// (see tuneGC).
	bigRoomGCPercent = 50
)

// TopicConfig configures the room's topic.
type TopicConfig struct {
	// Topic is the chat topic's name: the rendezvous string.
	Topic string
	// MaxFileBytes bounds a file fetched with /get, and served.
	MaxFileBytes int64
	// PresenceInterval is the mean time between presence announcements
	// (gossiproom's default if 0).
	PresenceInterval time.Duration
}

// topicBridge is the room's part on GossipSub (see doc.go): it publishes
// our lines when someone can be reached only there, shows the topic's
// lines once, and makes members of the peers that presence shows. It owns
// the lines held until their stream copy comes and the members waiting for
// a session (both owned by its loop), and the lines we just published (under
// its lock).
type topicBridge struct {
	r      *Room
	cfg    TopicConfig
	g      *gossiproom.Room
	policy gossiproom.DialPolicy

	// pendingJoins are members reported by presence that we are connected
	// to, waiting sessionGrace for a session; heldTopic are topic lines
	// from peers with a framed session, waiting streamGrace for their
	// stream copy, oldest first. loop owns both.
	pendingJoins map[peer.ID]pendingJoin
	heldTopic    []heldTopicLine
	// gcTuned says that tuneGC set the big room's target; loop owns it.
	gcTuned bool

	mu sync.Mutex
	// recent are the lines we published in the last streamGrace, oldest
	// first.
	recent []*outgoing
	// overRateTold is when we last said that lines went to the direct
	// peers only.
	overRateTold time.Time
}

type heldTopicLine struct {
	m  gossiproom.Message
	at time.Time
}

type pendingJoin struct {
	at   time.Time
	nick string
}

// JoinTopic makes the room a GossipSub topic too: it joins the room's
// topic, its presence and file topics, and serves direct messages and
// shared files. Call it before the node starts handing found peers to
// Offer.
func (r *Room) JoinTopic(cfg TopicConfig) error {
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = ucfile.DefaultMaxBytes
	}
	opts := gossiproom.Options{
		Nick:             truncateNick(r.roster.ourNick()),
		Capabilities:     []string{string(Protocol)},
		PresenceInterval: cfg.PresenceInterval,
	}
	if r.priv != nil {
		opts.Sealer = r.priv
	}
	if len(r.cfg.AllowPeers) > 0 {
		// -allow-peer: the topic is exchanged with the listed peers only,
		// so that no line or announcement of ours reaches anyone else
		// through it (a listed peer may still pass ours on: it is trusted).
		opts.Peers = r.allowed
	}
	g, err := gossiproom.New(r.ctx, r.host, cfg.Topic, opts)
	if err != nil {
		return err
	}
	files, err := newFiles(r, g, cfg)
	if err != nil {
		_ = g.Close()
		return err
	}
	r.topic = &topicBridge{
		r:            r,
		cfg:          cfg,
		g:            g,
		policy:       gossiproom.DefaultDialPolicy(),
		pendingJoins: make(map[peer.ID]pendingJoin),
	}
	r.files = files
	r.direct = newDirects(r)
	r.host.SetStreamHandler(ucdm.ProtocolID, r.onlyAllowed(ucdm.HandlerWithErrors(r.direct.received, r.direct.failed)))
	r.host.SetStreamHandler(ucfile.ProtocolID, r.onlyAllowed(ucfile.HandlerWithErrors(files.store, cfg.MaxFileBytes, files.serveFailed)))
	r.lc.Go(r.topic.loop)
	return nil
}

// onlyAllowed wraps a stream handler so that a peer outside -allow-peer,
// or, in a private room, one without an admitted session, is refused
// before it is read or served.
func (r *Room) onlyAllowed(h network.StreamHandler) network.StreamHandler {
	return func(st network.Stream) {
		if !r.admitted(st.Conn().RemotePeer()) {
			_ = st.Reset()
			return
		}
		h(st)
	}
}

// truncateNick fits a nickname into a presence announcement.
func truncateNick(nick string) string {
	for len(nick) > gossiproom.MaxNickBytes {
		runes := []rune(nick)
		nick = string(runes[:len(runes)-1])
	}
	return nick
}

// closeTopic stops serving and leaves the topics ("bye" included). Close
// calls it once the sessions are done.
func (r *Room) closeTopic() {
	if r.topic == nil {
		return
	}
	r.host.RemoveStreamHandler(ucdm.ProtocolID)
	r.host.RemoveStreamHandler(ucfile.ProtocolID)
	_ = r.topic.g.Close()
}

// loop takes what the topics bring: lines, presence and file offers.
func (t *topicBridge) loop() {
	msgs, pres, offers := t.g.Messages(), t.g.Presence(), t.r.files.side.Messages()
	tick := time.NewTicker(streamGrace / 8)
	defer tick.Stop()
	for {
		select {
		case <-t.r.ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			t.received(m)
		case ev, ok := <-pres:
			if !ok {
				return
			}
			t.presenceChanged(ev)
		case f, ok := <-offers:
			if !ok {
				return
			}
			t.r.files.offered(f)
		case now := <-tick.C:
			t.admitPendingJoins(now)
			t.releaseHeld(now)
			t.r.files.releaseWaiting(now)
			t.publishHeld()
			t.tuneGC()
		}
	}
}

// received shows a line from the topic, unless it came already, on a
// session or the topic.
//
// A peer with a framed session sends us every line on it, in order; the
// topic may bring copies sooner, and shuffled (a relay that validates on
// several workers reorders them). So a topic line from such a peer waits
// up to streamGrace for its stream copy, and is shown only if that does
// not come: when it was published before the session opened.
func (t *topicBridge) received(m gossiproom.Message) {
	if !t.r.allowed(m.From) {
		return
	}
	if t.r.roster.framedWith(m.From) && len(t.heldTopic) < maxHeldTopicLines {
		t.heldTopic = append(t.heldTopic, heldTopicLine{m: m, at: time.Now()})
		return
	}
	t.show(m)
}

// show shows a line from the topic, unless it came already.
func (t *topicBridge) show(m gossiproom.Message) {
	if !t.r.seen.firstSight(m.From, m.ID) {
		return
	}
	nick, name := t.authorNames(m.From)
	t.r.emit(event.Event{Kind: event.Message, Peer: m.From.String(), Nick: nick, Name: name,
		MsgID: m.ID, Text: m.Text, Via: event.ViaTopic})
}

// releaseHeld shows the held topic lines whose stream copy did not come
// within streamGrace, and forgets those it did.
func (t *topicBridge) releaseHeld(now time.Time) {
	n := 0
	for n < len(t.heldTopic) && now.Sub(t.heldTopic[n].at) >= streamGrace {
		t.show(t.heldTopic[n].m)
		n++
	}
	if n > 0 {
		clear(t.heldTopic[:n])
		t.heldTopic = t.heldTopic[n:]
	}
}

// authorNames returns how the author of something on the topic is called.
// An author with no session that is not a member yet becomes one when the
// presence table holds it (it took the author in when it saw the line),
// and its joining is announced; an author the table had no room for is
// shown by its short ID, and never grows the room's tables.
func (t *topicBridge) authorNames(p peer.ID) (string, string) {
	if nick, name, ok := t.r.roster.knows(p); ok {
		return nick, name
	}
	pp, present := t.g.Present(p)
	if !present {
		return "", event.ShortID(p)
	}
	delete(t.pendingJoins, p) // it wrote: it is in the room
	return t.memberNames(p, pp.Nick)
}

// publishHeld puts on the topic the held lines that nobody has had yet,
// once someone can be reached there: a room that is reached by the topic
// alone (a big room, universal-connectivity's) gets them too. Lines that
// go over the topic's rate wait for the next tick.
//
// No session opens meanwhile: one that did would take a line between its
// publishing and its new ID (see ledger.republish), and its peer would have
// it twice, under the two IDs. So a new session has each held line either
// before it goes on the topic (it then stays off the topic) or after, with
// the topic's ID, which the peer shows once.
func (t *topicBridge) publishHeld() {
	if !t.r.ledger.hasUnsent() || !t.audience() {
		return
	}
	var sent []*outgoing
	t.r.roster.withoutNewSessions(func() {
		for _, o := range t.r.ledger.unpublishedHeld() {
			id, err := t.g.TryPublish(t.r.ctx, o.msg.Text)
			if err != nil {
				if !errors.Is(err, gossiproom.ErrOverRate) {
					log.Debugw("held line not published", "err", err)
				}
				return
			}
			if n, ok := t.r.ledger.republish(o, id); ok {
				sent = append(sent, n)
			}
		}
	})
	if len(sent) > 0 {
		t.remember(sent)
		e := event.Event{Kind: event.Sent, MsgIDs: msgIDs(sent), Topic: t.cfg.Topic}
		if len(sent) == 1 {
			e.Text = sent[0].msg.Text
		}
		t.r.emit(e)
	}
}

// memberNames returns how a peer that presence shows is called. A peer
// with no session that is not a member yet becomes one, and its joining is
// announced.
func (t *topicBridge) memberNames(p peer.ID, nick string) (string, string) {
	nick, name, events := t.r.roster.join(p, nick, t.cfg.Topic)
	t.r.emitAll(events)
	return nick, name
}

// presenceChanged follows the topic's presence table.
func (t *topicBridge) presenceChanged(ev gossiproom.PresenceEvent) {
	p := ev.Peer
	if !t.r.allowed(p) {
		return
	}
	switch ev.Kind {
	case gossiproom.Joined, gossiproom.Updated:
		if t.r.roster.session(p) != nil {
			return
		}
		if events, member := t.r.roster.memberNick(p, ev.Nick, ev.Announces); member {
			t.r.emitAll(events)
			return
		}
		if t.r.priv != nil && ev.Via != gossiproom.ViaPresence && ev.Via != gossiproom.ViaChat {
			// A private room's topic names reach every peer that connects
			// to a member (GossipSub tells each connected peer what we
			// subscribe to), so a subscription proves nothing: a stranger
			// can subscribe without the passphrase. Only a payload that
			// opened (a sealed announcement or line) or an admitted
			// session shows a member; a member first seen by its
			// subscription is shown when its announcement opens.
			return
		}
		if !t.r.connected(p) && t.r.roster.brokeSince(p, time.Time{}) {
			// Its session broke a moment ago, with its connection: this is
			// an announcement it made before it went, still on its way.
			return
		}
		if t.r.connected(p) && !t.noSessionComing(p) && len(t.pendingJoins) < maxPendingJoins {
			// It may be about to open a session, or we to it.
			t.pendingJoins[p] = pendingJoin{at: time.Now(), nick: ev.Nick}
			return
		}
		t.memberNames(p, ev.Nick)
	case gossiproom.Left:
		delete(t.pendingJoins, p)
		m, renamed := t.r.roster.leave(p)
		if m == nil {
			return
		}
		t.r.emit(event.Event{Kind: event.Left, Code: presenceLeftCode(ev.Reason), Peer: p.String(),
			Nick: m.nick, Name: m.name, Via: event.ViaTopic})
		t.r.emitAll(renamed)
	}
}

// presenceLeftCode is the code of a left event for why presence lost a
// peer.
func presenceLeftCode(reason string) event.Code {
	switch reason {
	case gossiproom.ReasonBye:
		return event.LeftBye
	case gossiproom.ReasonTimeout:
		return event.LeftPresenceTimeout
	}
	return event.LeftPresenceSilent
}

// admitPendingJoins makes members of the peers whose session did not come.
//
// A peer whose session came is in the room through it, and its pending
// join is done; so it is if that session has broken already (a peer killed
// just after it joined, its session gone between two ticks): the peer
// left, and presence's word, older than its leaving, must not bring it
// back. If it is still in the room through others, its next line makes it
// a member (see authorNames).
func (t *topicBridge) admitPendingJoins(now time.Time) {
	for p, pj := range t.pendingJoins {
		if t.r.roster.session(p) != nil || t.r.roster.brokeSince(p, pj.at) {
			delete(t.pendingJoins, p)
			continue
		}
		if now.Sub(pj.at) < sessionGrace && !t.noSessionComing(p) {
			continue
		}
		delete(t.pendingJoins, p)
		t.memberNames(p, pj.nick)
	}
}

// noSessionComing reports whether a connected peer's session was refused,
// by it (our dial) or by us (a big room's bound on inbound chats): it is in
// the room by the topic alone, and waiting for its session would only hold
// up its joining.
func (t *topicBridge) noSessionComing(p peer.ID) bool {
	return t.r.dialer.refusedBy(p) || t.r.roster.refusedInbound(p)
}

// audience reports whether a line must go on the topic too: whether
// someone in the room can be reached no other way. A neighbour counts only
// while we are connected to it: the router learns of a lost connection a
// moment after the swarm does, and a peer whose session just ended with its
// connection would otherwise take a line that then reaches nobody, instead
// of its being held for the next peer.
func (t *topicBridge) audience() bool {
	if t.r.roster.hasMembers() {
		return true
	}
	return t.g.AnyNeighbour(func(p peer.ID) bool { return !t.r.roster.framedWith(p) && t.r.connected(p) })
}

// A topicOutcome is what publishing a batch of lines did: which lines were
// over the topic's rate, and the error events of those that failed.
type topicOutcome struct {
	attempted int
	overRate  []*outgoing
	failures  []event.Event
}

// tried reports whether the topic was tried at all.
func (o topicOutcome) tried() bool { return o.attempted > 0 }

// published reports whether some line went out on the topic.
func (o topicOutcome) published() bool {
	return len(o.overRate)+len(o.failures) < o.attempted
}

// publish puts lines on the topic, giving each the topic's message ID.
func (t *topicBridge) publish(batch []*outgoing) topicOutcome {
	out := topicOutcome{attempted: len(batch)}
	for _, o := range batch {
		id, err := t.g.TryPublish(t.r.ctx, o.msg.Text)
		switch {
		case err == nil:
			o.msg.ID = id
			o.topic = true
		case errors.Is(err, gossiproom.ErrOverRate):
			out.overRate = append(out.overRate, o)
		default:
			out.failures = append(out.failures, event.Event{Kind: event.Error, Code: event.NotPublished,
				MsgID: o.msg.ID, Text: o.msg.Text, Cause: err.Error()})
		}
	}
	return out
}

// remember keeps lines we just published, for the sessions that open in
// the next moment: a peer that opens its session with us while our line is
// on the way has it from the topic, and holds it until its stream copy
// comes (see received); the new session brings it.
func (t *topicBridge) remember(batch []*outgoing) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, o := range batch {
		if o.topic {
			t.recent = append(t.recent, o)
		}
	}
	if extra := len(t.recent) - maxRecentPublished; extra > 0 {
		clear(t.recent[:extra])
		t.recent = t.recent[extra:]
	}
}

// recentPublished returns the lines published in the last streamGrace,
// for a new session to start with.
func (t *topicBridge) recentPublished() []*outgoing {
	t.mu.Lock()
	defer t.mu.Unlock()
	cutoff := time.Now().Add(-streamGrace)
	recent := t.recent
	for len(recent) > 0 && recent[0].sent.Before(cutoff) {
		recent = recent[1:]
	}
	return recent
}

// reportTopicOnly reports lines that went out on the topic alone: nobody
// has a session with us, yet the topic reaches someone.
func (t *topicBridge) reportTopicOnly(batch []*outgoing, out topicOutcome) {
	dl := t.r.ledger.deliveries
	var sent []*outgoing
	for _, o := range batch {
		if o.topic {
			sent = append(sent, o)
		} else {
			dl.fail(o.msg.ID)
		}
	}
	if len(sent) > 0 {
		e := event.Event{Kind: event.Sent, MsgIDs: msgIDs(sent), Topic: t.cfg.Topic}
		if len(sent) == 1 {
			e.Text = sent[0].msg.Text
		}
		t.r.emit(e)
	}
	t.r.emitAll(out.failures)
	if len(out.overRate) > 0 {
		t.r.emit(t.overRateEvent(event.Error, out.overRate, nil))
	}
}

// overRateEvent describes lines the topic could not take; direct are the
// sessions they went to instead.
func (t *topicBridge) overRateEvent(kind event.Kind, lines []*outgoing, direct []*session) event.Event {
	rate, burst := t.g.PublishRate()
	e := event.Event{Kind: kind, Code: event.OverRate, MsgIDs: msgIDs(lines), Count: len(lines),
		Limit: int64(burst), Rate: rate}
	for _, s := range direct {
		e.Peers = append(e.Peers, s.peerID)
	}
	return e
}

// tellOverRate reports lines that went to the direct peers only, at most
// once per overRateNoticeEvery.
func (t *topicBridge) tellOverRate(lines []*outgoing, direct []*session) {
	t.mu.Lock()
	tell := time.Since(t.overRateTold) >= overRateNoticeEvery
	if tell {
		t.overRateTold = time.Now()
	}
	t.mu.Unlock()
	if tell {
		t.r.emit(t.overRateEvent(event.Info, lines, direct))
	}
}

// tuneGC collects garbage sooner while the room is big. A peer of a big
// room holds a dozen or more connections, whose libp2p machinery (pings,
// pubsub RPCs, handshakes) makes garbage steadily over a live heap of a
// few MB: collecting at 50 % growth rather than Go's 100 % keeps a peer of
// a room of 50 under 40 MB of RSS, for little CPU. A small room keeps Go's
// default, which moves lines faster. GOGC, when set, wins. loop calls it.
func (t *topicBridge) tuneGC() {
	if os.Getenv("GOGC") != "" {
		return
	}
	big := t.r.roster.size() > maxRoomDials+1
	if big == t.gcTuned {
		return
	}
	t.gcTuned = big
	if big {
		debug.SetGCPercent(bigRoomGCPercent)
	} else {
		debug.SetGCPercent(100)
	}
}

// setNick announces a new nickname on the presence topic.
func (t *topicBridge) setNick(nick string) {
	if err := t.g.SetNick(truncateNick(nick)); err != nil {
		log.Debugw("nickname not announced on the topic", "err", err)
	}
}
