package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"

	"github.com/rendezvous-chat/rendezvous-chat/internal/gossiproom"
	"github.com/rendezvous-chat/rendezvous-chat/internal/ucdm"
	"github.com/rendezvous-chat/rendezvous-chat/internal/ucfile"
)

// The room on GossipSub.
//
// A room is a GossipSub topic named exactly as the rendezvous string
// (internal/gossiproom), and, beside it, the sessions of chat.go: framed
// streams to the few peers of ours we are connected to, and plain streams
// to peers that speak only /chat/1.1.0. A line we type goes
//
//   - on every session, as before: to our own peers with its ID, receipts
//     and resend; to plain peers as a line;
//   - on the topic as well, raw, when someone in the room can be reached
//     only that way: a topic neighbour we have no framed session with (a
//     universal-connectivity peer), or a member known from presence only
//     (a peer of a big room we are not connected to). In a small room of
//     our own peers, all connected, nothing is published: the streams
//     carry everything, in order, as fast as they can.
//
// A line published on the topic keeps its topic message ID on the
// sessions too, so a peer that gets it both ways shows it once (Room.seen,
// keyed by author and ID), and in order: the stream carries every line of
// its peer in order, so a topic line from a peer we have a framed session
// with waits for its stream copy (streamGrace at most). A session that
// opens while our line is on the way starts with the lines we published in
// the last streamGrace, so that its peer does not wait for nothing.
//
// In a big room we dial only a few room peers (maxRoomDials, picked at
// random among those found), so each peer keeps about twice that many
// connections to the room, whatever its size.
//
// Who is in the room: every peer with a session, and every peer the
// presence table of the topic knows (gossiproom's presence). A peer we are
// connected to gets a moment to open its session before presence alone
// makes it a member, so that one peer is announced once, with the
// session's details when it has one.

const (
	// maxRoomDials is how many room peers we dial ourselves; beyond it,
	// DialPolicy decides (it dials again when too few room peers are
	// connected), and the topic carries lines to the rest. Rooms of up to
	// maxRoomDials+1 peers are thus a full mesh of direct streams (fast,
	// ordered, with receipts from everyone), and in bigger ones each peer
	// keeps about twice this many connections to the room, whatever its
	// size. A count of known members would not do: peers started together
	// all find each other before any of them knows how big the room is.
	maxRoomDials = 8
	// maxRoomInbound is how many room peers on our protocol may dial us:
	// beyond it, in a big room, we refuse their chat streams, so that the
	// oldest peers of a room, which every newcomer finds first, do not
	// collect connections from the whole room. On average a peer is dialed
	// as often as it dials (maxRoomDials); the margin above that lets
	// newcomers find room without many refusals.
	maxRoomInbound = 12
	// maxRecentPublished bounds the lines published in the last
	// streamGrace that a new session starts with (see recentPublished).
	maxRecentPublished = 64
	// candidatePause is how long found peers wait to be picked for a dial,
	// and maxCandidates bounds how many wait.
	candidatePause = 15 * time.Millisecond
	maxCandidates  = 1024
	// sessionGrace is how long a member that presence reports, and that we
	// are connected to, has to open a session before it is announced as a
	// member by gossip only.
	sessionGrace = 2 * time.Second
	// streamGrace is how long a topic line from a peer with a framed
	// session waits for its copy on the stream (see gossipReceived), and
	// maxHeldTopicLines bounds the lines waiting; beyond it they are shown
	// at once.
	streamGrace       = time.Second
	maxHeldTopicLines = 4096
	// maxFileOffers bounds the file IDs remembered from the file topic.
	maxFileOffers = 1024
	// fileTopicRate and fileTopicBurst bound each author's announcements
	// on the file topic.
	fileTopicRate  = 1.0
	fileTopicBurst = 5
	// maxDirectPerPeer and directRate bound the direct messages a peer may
	// send us (a bucket), beyond which they are refused with an error
	// status.
	maxDirectPerPeer = 10
	directRate       = 2.0
	// overRateNoticeEvery spaces the notices that lines went to the
	// directly connected peers only.
	overRateNoticeEvery = 10 * time.Second
	// transferProgressEvery spaces the progress events of a fetch.
	transferProgressEvery = 200 * time.Millisecond
)

// GossipConfig configures the room's topic.
type GossipConfig struct {
	// Topic is the chat topic's name: the rendezvous string.
	Topic string
	// MaxFileBytes bounds a file fetched with /get, and served.
	MaxFileBytes int64
	// PresenceInterval is the mean time between presence announcements
	// (gossiproom's default if 0).
	PresenceInterval time.Duration
}

// roomGossip is the room's part on GossipSub.
type roomGossip struct {
	cfg    GossipConfig
	g      *gossiproom.Room
	files  *gossiproom.SideTopic
	store  *ucfile.Store
	policy gossiproom.DialPolicy
	// directLimit bounds incoming direct messages per peer.
	directLimit *peerBuckets
	// errorNotes keeps hostile peers from filling the screen with the
	// errors they cause: one a minute per peer.
	errorNotes *peerBuckets

	offersMu sync.Mutex
	offers   map[string]peer.ID // file ID → the peer that announced it
	offerSeq []string           // file IDs, oldest first

	overRateMu   sync.Mutex
	overRateTold time.Time

	// pendingJoins are members reported by presence that we are connected
	// to, waiting sessionGrace for a session; heldTopic are topic lines
	// from peers with a framed session, waiting streamGrace for their
	// stream copy, oldest first. gossipLoop owns both.
	pendingJoins map[peer.ID]pendingJoin
	heldTopic    []heldTopicLine

	// recent are the lines we published in the last streamGrace, oldest
	// first, under Room.mu.
	recent []*outgoing

	// gcTuned says that tuneGC set the big room's target; gossipLoop owns it.
	gcTuned bool
}

type heldTopicLine struct {
	m  gossiproom.Message
	at time.Time
}

type pendingJoin struct {
	at   time.Time
	nick string
}

// A member is a peer in the room that we have no session with: it is
// known from the topic alone.
type member struct {
	nick, name string
}

// StartGossip joins the room's topic, its presence and file topics, and
// serves direct messages and shared files. Call it before the node starts
// handing found peers to Offer.
func (r *Room) StartGossip(cfg GossipConfig) error {
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = ucfile.DefaultMaxBytes
	}
	g, err := gossiproom.New(r.ctx, r.host, cfg.Topic, gossiproom.Options{
		Nick:             truncateNick(r.nick),
		Capabilities:     []string{string(chatProtocol)},
		PresenceInterval: cfg.PresenceInterval,
	})
	if err != nil {
		return err
	}
	files, err := g.JoinSide(ucfile.Topic(cfg.Topic), ucfile.MaxIDBytes, fileTopicRate, fileTopicBurst,
		func(b []byte) error { _, err := ucfile.ParseAnnouncement(b); return err })
	if err != nil {
		_ = g.Close()
		return err
	}
	gr := &roomGossip{
		cfg:          cfg,
		g:            g,
		files:        files,
		store:        ucfile.NewStore(),
		policy:       gossiproom.DefaultDialPolicy(),
		directLimit:  newPeerBuckets(directRate, maxDirectPerPeer),
		errorNotes:   newPeerBuckets(1.0/60, 1),
		offers:       make(map[string]peer.ID),
		pendingJoins: make(map[peer.ID]pendingJoin),
	}
	r.mu.Lock()
	r.gossip = gr
	r.wg.Add(1)
	r.mu.Unlock()
	r.host.SetStreamHandler(ucdm.ProtocolID, ucdm.HandlerWithErrors(r.directReceived, r.directFailed))
	r.host.SetStreamHandler(ucfile.ProtocolID, ucfile.HandlerWithErrors(gr.store, cfg.MaxFileBytes, r.fileServeFailed))
	go r.gossipLoop()
	return nil
}

// truncateNick fits a nickname into a presence announcement.
func truncateNick(nick string) string {
	for len(nick) > gossiproom.MaxNickBytes {
		runes := []rune(nick)
		nick = string(runes[:len(runes)-1])
	}
	return nick
}

// closeGossip stops serving and leaves the topics ("bye" included). Room.Close
// calls it once the sessions are done.
func (r *Room) closeGossip() {
	gr := r.gossip
	if gr == nil {
		return
	}
	r.host.RemoveStreamHandler(ucdm.ProtocolID)
	r.host.RemoveStreamHandler(ucfile.ProtocolID)
	_ = gr.g.Close()
}

// gossipLoop takes what the topics bring: lines, presence and file offers.
func (r *Room) gossipLoop() {
	defer r.wg.Done()
	gr := r.gossip
	msgs, pres, files := gr.g.Messages(), gr.g.Presence(), gr.files.Messages()
	tick := time.NewTicker(streamGrace / 8)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			r.gossipReceived(m)
		case ev, ok := <-pres:
			if !ok {
				return
			}
			r.presenceChanged(ev)
		case f, ok := <-files:
			if !ok {
				return
			}
			r.fileOffered(f)
		case now := <-tick.C:
			r.admitPendingJoins(now)
			r.releaseTopicLines(now)
			r.tuneGC()
		}
	}
}

// gossipReceived shows a line from the topic, unless it came already, on a
// session or the topic.
//
// A peer with a framed session sends us every line on it, in order; the
// topic may bring copies sooner, and shuffled (a relay that validates on
// several workers reorders them). So a topic line from such a peer waits
// up to streamGrace for its stream copy, and is shown only if that does
// not come: when it was published before the session opened.
func (r *Room) gossipReceived(m gossiproom.Message) {
	if !r.allowed(m.From) {
		return
	}
	r.mu.Lock()
	s := r.sessions[m.From]
	r.mu.Unlock()
	gr := r.gossip
	if s != nil && s.framed() && len(gr.heldTopic) < maxHeldTopicLines {
		gr.heldTopic = append(gr.heldTopic, heldTopicLine{m: m, at: time.Now()})
		return
	}
	r.showTopicLine(m)
}

// rememberPublishedLocked keeps lines we just published, for the sessions
// that open in the next moment: a peer that opens its session with us while
// our line is on the way has it from the topic, and holds it until its
// stream copy comes (gossipReceived); the new session brings it.
func (r *Room) rememberPublishedLocked(batch []*outgoing) {
	gr := r.gossip
	for _, o := range batch {
		if o.topic {
			gr.recent = append(gr.recent, o)
		}
	}
	if extra := len(gr.recent) - maxRecentPublished; extra > 0 {
		clear(gr.recent[:extra])
		gr.recent = gr.recent[extra:]
	}
}

// recentPublishedLocked returns the lines published in the last
// streamGrace, for a new session to start with.
func (r *Room) recentPublishedLocked() []*outgoing {
	if r.gossip == nil {
		return nil
	}
	cutoff := time.Now().Add(-streamGrace)
	recent := r.gossip.recent
	for len(recent) > 0 && recent[0].sent.Before(cutoff) {
		recent = recent[1:]
	}
	return recent
}

// showTopicLine shows a line from the topic, unless it came already.
func (r *Room) showTopicLine(m gossiproom.Message) {
	if !r.firstSight(m.From, m.ID) {
		return
	}
	nick, name := r.memberNames(m.From, "")
	r.emit(Event{Kind: EventMessage, Peer: m.From.String(), Nick: nick, Name: name,
		MsgID: m.ID, Text: m.Text, Via: viaTopic})
}

// releaseTopicLines shows the held topic lines whose stream copy did not
// come within streamGrace, and forgets those it did.
func (r *Room) releaseTopicLines(now time.Time) {
	gr := r.gossip
	n := 0
	for n < len(gr.heldTopic) && now.Sub(gr.heldTopic[n].at) >= streamGrace {
		r.showTopicLine(gr.heldTopic[n].m)
		n++
	}
	if n > 0 {
		clear(gr.heldTopic[:n])
		gr.heldTopic = gr.heldTopic[n:]
	}
}

// memberNames returns how a peer that sent us something is called. A peer
// with no session that is not a member yet becomes one (it is in the room:
// it just wrote to it), and its joining is announced.
func (r *Room) memberNames(p peer.ID, nick string) (string, string) {
	r.mu.Lock()
	if s := r.sessions[p]; s != nil {
		r.mu.Unlock()
		return s.nick(), s.name()
	}
	if m := r.members[p]; m != nil {
		r.mu.Unlock()
		return m.nick, m.name
	}
	events := r.addMemberLocked(p, nick)
	m := r.members[p]
	r.mu.Unlock()
	r.emitAll(events)
	return m.nick, m.name
}

// viaTopic marks events about peers and lines that came by the topic.
const viaTopic = "topic"

// addMemberLocked makes p a member known by the topic alone and returns
// the events that announce it.
func (r *Room) addMemberLocked(p peer.ID, nick string) []Event {
	r.members[p] = &member{nick: cleanNick(nick), name: shortID(p)}
	if r.isClosing() {
		return nil
	}
	renamed := r.renameLocked(nil)
	m := r.members[p]
	joined := Event{Kind: EventJoined, Peer: p.String(), Nick: m.nick, Name: m.name,
		Protocol: r.gossip.cfg.Topic, Via: viaTopic}
	// The joined event announces p's name; drop the rename it caused.
	out := []Event{joined}
	for _, e := range renamed {
		if e.Peer != joined.Peer {
			out = append(out, e)
		}
	}
	return out
}

// presenceChanged follows the topic's presence table.
func (r *Room) presenceChanged(ev gossiproom.PresenceEvent) {
	p := ev.Peer
	if !r.allowed(p) {
		return
	}
	gr := r.gossip
	switch ev.Kind {
	case gossiproom.Joined, gossiproom.Updated:
		r.mu.Lock()
		if r.sessions[p] != nil {
			r.mu.Unlock()
			return
		}
		if m := r.members[p]; m != nil {
			var events []Event
			if nick := cleanNick(ev.Nick); nick != m.nick && ev.Announces {
				m.nick = nick
				events = r.renameLocked(nil)
			}
			r.mu.Unlock()
			r.emitAll(events)
			return
		}
		connected := r.host.Network().Connectedness(p) == network.Connected
		r.mu.Unlock()
		if connected {
			// It may be about to open a session, or we to it.
			gr.pendingJoins[p] = pendingJoin{at: time.Now(), nick: ev.Nick}
			return
		}
		r.memberNames(p, ev.Nick)
	case gossiproom.Left:
		delete(gr.pendingJoins, p)
		r.mu.Lock()
		m := r.members[p]
		if m == nil || r.sessions[p] != nil {
			r.mu.Unlock()
			return
		}
		delete(r.members, p)
		renamed := r.renameLocked(nil)
		r.mu.Unlock()
		r.emit(Event{Kind: EventLeft, Peer: p.String(), Nick: m.nick, Name: m.name,
			Reason: presenceLeftReason(ev.Reason), Via: viaTopic})
		r.emitAll(renamed)
	}
}

// presenceLeftReason says in words why presence lost a peer.
func presenceLeftReason(reason string) string {
	switch reason {
	case gossiproom.ReasonBye:
		return "left the room"
	case gossiproom.ReasonTimeout:
		return "no presence announcement for three of its intervals"
	case gossiproom.ReasonSilent:
		return "no sign on the topic for a while"
	}
	return reason
}

// admitPendingJoins makes members of the peers whose session did not come.
func (r *Room) admitPendingJoins(now time.Time) {
	gr := r.gossip
	for p, pj := range gr.pendingJoins {
		if now.Sub(pj.at) < sessionGrace {
			continue
		}
		delete(gr.pendingJoins, p)
		if !r.hasSession(p) {
			r.memberNames(p, pj.nick)
		}
	}
}

// sessionStartedLocked is told that p now has a session: a member by
// topic becomes a peer with a session. It reports whether p was a member
// already, whose joining was announced.
func (r *Room) sessionStartedLocked(p peer.ID) bool {
	if r.members[p] == nil {
		return false
	}
	delete(r.members, p)
	return true
}

// gossipAudienceLocked reports whether a line must go on the topic too:
// whether someone in the room can be reached no other way.
func (r *Room) gossipAudienceLocked() bool {
	if r.gossip == nil {
		return false
	}
	if len(r.members) > 0 {
		return true
	}
	return r.gossip.g.AnyNeighbour(func(p peer.ID) bool {
		s := r.sessions[p]
		return s == nil || !s.framed()
	})
}

// publish puts lines on the topic, giving each the topic's message ID. It
// returns the lines that are over our rate and so were not published.
func (r *Room) publish(batch []*outgoing) (overRate []*outgoing, failures []Event) {
	for _, o := range batch {
		id, err := r.gossip.g.TryPublish(r.ctx, o.text)
		switch {
		case err == nil:
			o.id = id
			o.topic = true
		case errors.Is(err, gossiproom.ErrOverRate):
			overRate = append(overRate, o)
		default:
			failures = append(failures, Event{Kind: EventError, MsgID: o.id,
				Error: fmt.Sprintf("line %s not published on the room's topic: %v", preview(o.text), err)})
		}
	}
	return overRate, failures
}

// overRateText explains lines the topic could not take.
func (r *Room) overRateText(n, direct int) string {
	rate, burst := r.gossip.g.PublishRate()
	if direct == 0 {
		return fmt.Sprintf("%d line(s) not sent: over the room's rate (%d at once, then %.0f a second, so that no peer drops them); send them again in a moment", n, burst, rate)
	}
	return fmt.Sprintf("%d line(s) over the room's rate (%d at once, then %.0f a second) went only to the %d peer(s) connected directly", n, burst, rate, direct)
}

// tellOverRate reports lines that went to the direct peers only, at most
// once per overRateNoticeEvery.
func (r *Room) tellOverRate(lines []*outgoing, direct int) {
	gr := r.gossip
	gr.overRateMu.Lock()
	tell := time.Since(gr.overRateTold) >= overRateNoticeEvery
	if tell {
		gr.overRateTold = time.Now()
	}
	gr.overRateMu.Unlock()
	if tell {
		r.emit(Event{Kind: EventInfo, MsgIDs: msgIDs(lines), Text: r.overRateText(len(lines), direct)})
	}
}

// wantDialLocked reports whether to dial a peer found at the rendezvous:
// while we have dialed fewer than maxRoomDials room peers (dials in flight
// count), and then only while DialPolicy wants more room peers connected.
// The topic reaches the rest, and peers that speak only the plain protocol
// dial us themselves.
func (r *Room) wantDialLocked() bool {
	gr := r.gossip
	if gr == nil {
		return true
	}
	framed, framedOut := 0, len(r.dialing)
	for _, s := range r.sessions {
		if s.framed() {
			framed++
			if s.direction == "outbound" {
				framedOut++
			}
		}
	}
	if framedOut < maxRoomDials {
		return true
	}
	connected, outbound := gr.g.RoomConns()
	return gr.policy.Budget(max(connected, framed), max(outbound, framedOut-len(r.dialing)), len(r.dialing)) > 0
}

// bigRoomGCPercent is the garbage collector's target in a big room.
const bigRoomGCPercent = 50

// tuneGC collects garbage sooner while the room is big. A peer of a big
// room holds a dozen or more connections, whose libp2p machinery (pings,
// pubsub RPCs, handshakes) makes garbage steadily over a live heap of a
// few MB: collecting at 50 % growth rather than Go's 100 % keeps a peer of
// a room of 50 under 40 MB of RSS, for little CPU. A small room keeps Go's
// default, which moves lines faster. GOGC, when set, wins. gossipLoop
// calls it.
func (r *Room) tuneGC() {
	if os.Getenv("GOGC") != "" {
		return
	}
	r.mu.Lock()
	big := len(r.sessions)+len(r.members) > maxRoomDials+1
	r.mu.Unlock()
	if big == r.gossip.gcTuned {
		return
	}
	r.gossip.gcTuned = big
	if big {
		debug.SetGCPercent(bigRoomGCPercent)
	} else {
		debug.SetGCPercent(100)
	}
}

// addCandidateLocked takes a found peer to dial, and schedules a pick.
//
// Peers that find the same rendezvous get its records in about the same
// order (in a small network, from the same DHT server). Dialing the first
// found would send every newcomer's dials to the oldest peers, which would
// collect connections from the whole room. So found peers wait a moment
// (candidatePause: discovery hands over a whole answer at once), and the
// dials go to peers picked at random among them.
func (r *Room) addCandidateLocked(ai peer.AddrInfo) {
	if len(r.candidates) >= maxCandidates {
		return
	}
	r.candidates[ai.ID] = ai
	if !r.picking {
		r.picking = true
		// The room waits for the pick, as for its other goroutines;
		// Offer, our only caller, has checked that it is not closing.
		r.wg.Add(1)
		time.AfterFunc(candidatePause, r.dialCandidates)
	}
}

// dialCandidates dials found peers picked at random while wantDialLocked
// says so, and forgets the rest: discovery offers them again.
func (r *Room) dialCandidates() {
	defer r.wg.Done()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.picking = false
	ids := make([]peer.ID, 0, len(r.candidates))
	for id := range r.candidates {
		ids = append(ids, id)
	}
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for _, id := range ids {
		ai := r.candidates[id]
		if r.isClosing() || !r.wantDialLocked() {
			break
		}
		if r.sessions[id] != nil || r.dialing[id] {
			continue
		}
		r.startDialLocked(ai)
	}
	clear(r.candidates)
}

// outboundFramedLocked counts the sessions on our protocol that we dialed.
func (r *Room) outboundFramedLocked() int {
	n := 0
	for _, s := range r.sessions {
		if s.framed() && s.direction == "outbound" {
			n++
		}
	}
	return n
}

// admitInbound reports whether to take p's chat stream on our protocol, and
// counts it as opening until inboundDone. It refuses it when enough room
// peers have dialed us (sessions and streams still opening): only on the
// topic, and never for a peer we have a session with (its extra or
// returning stream).
func (r *Room) admitInbound(p peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gossip != nil && r.sessions[p] == nil {
		inbound := r.inboundOpening
		for _, s := range r.sessions {
			if s.framed() && s.direction == "inbound" {
				inbound++
			}
		}
		if inbound >= maxRoomInbound {
			return false
		}
	}
	r.inboundOpening++
	return true
}

// inboundDone ends what admitInbound counted: the stream is a session now,
// or failed.
func (r *Room) inboundDone() {
	r.mu.Lock()
	r.inboundOpening--
	r.mu.Unlock()
}

// setGossipNick announces a new nickname on the presence topic.
func (r *Room) setGossipNick(nick string) {
	if r.gossip != nil {
		if err := r.gossip.g.SetNick(truncateNick(nick)); err != nil {
			log.Debugw("nickname not announced on the topic", "err", err)
		}
	}
}

// peerBuckets is a token bucket per peer, bounded in the peers it
// remembers.
type peerBuckets struct {
	rate, burst float64
	mu          sync.Mutex
	buckets     map[peer.ID]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

// maxPeerBuckets bounds a peerBuckets; past it, full buckets are dropped.
const maxPeerBuckets = 4096

func newPeerBuckets(rate float64, burst int) *peerBuckets {
	return &peerBuckets{rate: rate, burst: float64(burst), buckets: make(map[peer.ID]*tokenBucket)}
}

// allow takes a token from p's bucket, if there is one.
func (b *peerBuckets) allow(p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	t := b.buckets[p]
	if t == nil {
		if len(b.buckets) >= maxPeerBuckets {
			for id, old := range b.buckets {
				if old.tokens+now.Sub(old.last).Seconds()*b.rate >= b.burst {
					delete(b.buckets, id)
				}
			}
			if len(b.buckets) >= maxPeerBuckets {
				return false
			}
		}
		t = &tokenBucket{tokens: b.burst, last: now}
		b.buckets[p] = t
	}
	t.tokens = min(b.burst, t.tokens+now.Sub(t.last).Seconds()*b.rate)
	t.last = now
	if t.tokens < 1 {
		return false
	}
	t.tokens--
	return true
}

// directReceived takes a direct message (/universal-connectivity/dm/1.0.0).
func (r *Room) directReceived(from peer.ID, req ucdm.Request) ucdm.Response {
	if !r.allowed(from) {
		return ucdm.Refuse(version, "not accepted from this peer")
	}
	if !r.gossip.directLimit.allow(from) {
		r.noteHostile(from, fmt.Sprintf("direct messages from %s refused: more than %d at once", shortID(from), maxDirectPerPeer))
		return ucdm.Refuse(version, "too many direct messages")
	}
	if r.isClosing() {
		return ucdm.Refuse(version, "leaving")
	}
	nick, name := r.directNames(from)
	r.emit(Event{Kind: EventDirect, Peer: from.String(), Nick: nick, Name: name, Private: true, Text: req.Content})
	return ucdm.OK(version)
}

// directNames names a peer that sent a direct message, which need not be
// in the room.
func (r *Room) directNames(p peer.ID) (string, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.sessions[p]; s != nil {
		return s.nick(), s.name()
	}
	if m := r.members[p]; m != nil {
		return m.nick, m.name
	}
	return "", shortID(p)
}

// directFailed hears of a direct message that broke the format or a limit.
func (r *Room) directFailed(from peer.ID, err error) {
	r.noteHostile(from, fmt.Sprintf("a direct message from %s was refused: %s", shortID(from), firstLine(err)))
}

// fileServeFailed hears of a file request we did not serve.
func (r *Room) fileServeFailed(from peer.ID, err error) {
	log.Debugw("file request not served", "peer", from, "err", err)
}

// noteHostile reports what a peer did wrong, once a minute per peer.
func (r *Room) noteHostile(p peer.ID, text string) {
	if r.gossip.errorNotes.allow(p) {
		r.emit(Event{Kind: EventError, Peer: p.String(), Error: text})
	}
}

// sendDirect sends text to p as a direct message, in the background.
func (r *Room) sendDirect(p peer.ID, text string) {
	if !r.startBackground() {
		r.emit(Event{Kind: EventError, Error: "private line not sent: shutting down"})
		return
	}
	_, name := r.directNames(p)
	r.emit(Event{Kind: EventSent, Private: true, To: p.String(), Text: text, Via: "dm"})
	go func() {
		defer r.wg.Done()
		resp, err := ucdm.Send(r.ctx, r.host, p, text, version)
		if err != nil {
			why := firstLine(err)
			if notSupported(err) {
				why = "it does not take direct messages (it does not speak " + ucdm.ProtocolID + ")"
			}
			if errors.Is(err, ucdm.ErrStatus) {
				why = "refused with status " + resp.Status.String()
				if resp.StatusText != "" {
					why += ": " + resp.StatusText
				}
			}
			r.emit(Event{Kind: EventError, Peer: p.String(), Name: name, Private: true, Status: resp.Status.String(),
				Error: fmt.Sprintf("private line %s not delivered to %s: %s", preview(text), name, why)})
			return
		}
		r.emit(Event{Kind: EventDelivered, Private: true, Peers: []string{p.String()}, Names: []string{name},
			Text: text, Status: resp.Status.String(), Via: "dm"})
	}()
}

// fileOffered takes a file ID announced on the file topic.
func (r *Room) fileOffered(f gossiproom.SideMessage) {
	if !r.allowed(f.From) {
		return
	}
	id := string(f.Data)
	gr := r.gossip
	gr.offersMu.Lock()
	if _, known := gr.offers[id]; !known {
		if len(gr.offerSeq) >= maxFileOffers {
			delete(gr.offers, gr.offerSeq[0])
			gr.offerSeq = gr.offerSeq[1:]
		}
		gr.offerSeq = append(gr.offerSeq, id)
	}
	gr.offers[id] = f.From
	gr.offersMu.Unlock()
	nick, name := r.memberNames(f.From, "")
	r.emit(Event{Kind: EventFile, Peer: f.From.String(), Nick: nick, Name: name, FileID: id})
}

// shareFile shares the file at path with the room: /send.
func (r *Room) shareFile(path string) {
	gr := r.gossip
	if gr == nil {
		r.emit(Event{Kind: EventError, Error: "/send: files are shared on the room's topic, which -gossip=false turns off"})
		return
	}
	id, err := gr.store.Share(path)
	if err != nil {
		r.emit(Event{Kind: EventError, Error: "/send: " + firstLine(err)})
		return
	}
	f, _ := gr.store.Lookup(id)
	if f.Size > gr.cfg.MaxFileBytes {
		gr.store.Unshare(id)
		r.emit(Event{Kind: EventError, Error: fmt.Sprintf("/send: %s is %d bytes, over -max-file (%d)", sanitize(path), f.Size, gr.cfg.MaxFileBytes)})
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	if err := gr.files.Publish(ctx, ucfile.Announcement(id)); err != nil {
		gr.store.Unshare(id)
		r.emit(Event{Kind: EventError, Error: "/send: " + firstLine(err)})
		return
	}
	r.emit(Event{Kind: EventShared, FileID: id, Path: path, Bytes: f.Size, Topic: gr.files.Name()})
}

// fetchFile fetches a file announced in the room: /get ID [PATH].
func (r *Room) fetchFile(id, path string) {
	gr := r.gossip
	if gr == nil {
		r.emit(Event{Kind: EventError, Error: "/get: files are shared on the room's topic, which -gossip=false turns off"})
		return
	}
	gr.offersMu.Lock()
	from, ok := gr.offers[id]
	gr.offersMu.Unlock()
	if !ok {
		r.emit(Event{Kind: EventError, FileID: id, Error: fmt.Sprintf("/get: nobody has shared a file %q in this room since you joined", sanitize(id))})
		return
	}
	if path == "" {
		path = defaultDownloadName(id)
	}
	if !r.startBackground() {
		return
	}
	_, name := r.directNames(from)
	r.emit(Event{Kind: EventTransfer, FileID: id, Path: path, Peer: from.String(), Name: name})
	go func() {
		defer r.wg.Done()
		var last time.Time
		n, err := ucfile.Fetch(r.ctx, r.host, from, id, gr.cfg.MaxFileBytes, path, false, func(got, total int64) {
			if got < total && time.Since(last) < transferProgressEvery {
				return
			}
			last = time.Now()
			r.emit(Event{Kind: EventTransfer, FileID: id, Path: path, Peer: from.String(), Name: name, Bytes: got, Total: total})
		})
		if err != nil {
			r.emit(Event{Kind: EventError, FileID: id, Path: path, Peer: from.String(), Name: name, Done: true,
				Error: "/get: " + fetchErrorText(err, id, name, path, gr.cfg.MaxFileBytes)})
			return
		}
		r.emit(Event{Kind: EventTransfer, FileID: id, Path: path, Peer: from.String(), Name: name, Bytes: n, Total: n, Done: true})
	}()
}

// fetchErrorText says in words why a fetch failed.
func fetchErrorText(err error, id, name, path string, limit int64) string {
	switch {
	case notSupported(err):
		return fmt.Sprintf("%s does not serve files (it does not speak %s)", name, ucfile.ProtocolID)
	case errors.Is(err, ucfile.ErrExists):
		return fmt.Sprintf("%s exists already: give another path, /get %s PATH", sanitize(path), sanitize(id))
	case errors.Is(err, ucfile.ErrUnavailable):
		return fmt.Sprintf("%s did not serve file %s (it may have left, or no longer share it)", name, sanitize(id))
	case errors.Is(err, ucfile.ErrTooLarge):
		return fmt.Sprintf("file %s from %s is over -max-file (%d bytes): not fetched", sanitize(id), name, limit)
	case errors.Is(err, ucfile.ErrLengthMismatch):
		return fmt.Sprintf("file %s from %s came with the wrong length: discarded", sanitize(id), name)
	}
	return fmt.Sprintf("file %s from %s: %s", sanitize(id), name, firstLine(err))
}

// defaultDownloadName is where /get puts a file when given no path: the
// file's ID, when it is a safe file name (a UUID is), or else a name made
// of the part of it that is.
func defaultDownloadName(id string) string {
	safe := make([]rune, 0, len(id))
	for _, c := range id {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			safe = append(safe, c)
		}
		if len(safe) == 64 {
			break
		}
	}
	if len(safe) == 0 {
		return "download"
	}
	return string(safe)
}

// startBackground counts a goroutine the room is about to start (a /ping,
// a direct message, a fetch), unless the room is closing; Close waits for
// it.
func (r *Room) startBackground() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isClosing() {
		return false
	}
	r.wg.Add(1)
	return true
}

// notSupported reports whether err says that the peer does not speak the
// protocol we asked for.
func notSupported(err error) bool {
	var ns msmux.ErrNotSupported[protocol.ID]
	return errors.As(err, &ns)
}
