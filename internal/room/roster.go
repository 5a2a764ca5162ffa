package room

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/gossiproom"
	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

const (
	// maxGoneNames bounds the names remembered for peers that left (see
	// roster.gone).
	maxGoneNames = 1024
	// maxMembers bounds the members by topic: as many as the topic's
	// presence table holds (gossiproom.DefaultMaxPresencePeers).
	maxMembers = gossiproom.DefaultMaxPresencePeers
	// brokenMemory is how long the roster remembers that a peer's session
	// broke (see roster.broken): longer than sessionGrace, and than a
	// presence announcement takes to come round the topic.
	brokenMemory = 5 * time.Second
)

// A roster is who is in the room: a session for each peer we chat with over
// a stream, and the members known from the topic alone, with the names each
// is shown by (names.go), and our own nickname. It is the one owner of
// these tables, under one lock:
//
//   - a session is added by place (the streams' attach) and removed by
//     remove, when it has ended;
//   - a member is added by the topic bridge once presence (or a line) has
//     shown it, at most maxMembers, and removed when presence says it left
//     or when it opens a session;
//   - book holds the names (see nameBook): who holds each nickname, and the
//     last names of peers that left, at most maxGoneNames;
//   - broken holds the peers whose session broke in the last brokenMemory,
//     at most maxDialMemory: added by remove, dropped by place.
//
// The lock is also what makes a line's recipients exact: recipients and
// place run under it, so a line sent while a session opens reaches the new
// session exactly once (see Room.send and place).
type roster struct {
	lc *lifecycle

	mu       sync.Mutex
	sessions map[peer.ID]*session
	members  map[peer.ID]*member
	nick     string // ours
	book     nameBook
	// inboundOpening counts inbound streams of our protocol between
	// reserveInbound and their session, so that a burst of them cannot
	// pass the bound together; refusedIn are the peers whose chat it
	// refused lately.
	inboundOpening int
	refusedIn      *timedSet
	// broken are the peers whose session broke lately. Presence may still
	// speak of such a peer (an announcement it made before it went, still
	// on its way round the topic), and that older word must not bring it
	// back as a member: see brokeSince. A peer that closed its chat said
	// bye on the topic too, and what presence says of it afterwards is
	// news: it came back.
	broken *timedSet
}

// A member is a peer in the room that we have no session with: it is
// known from the topic alone.
type member struct {
	nick, name string
	// id is the peer's ID as text, kept because names are worked out again
	// for every holder of a nickname whenever one comes or goes: in a room
	// where everyone kept the default nickname, that is every member at
	// every join, and encoding an ID each time was a fiftieth of the CPU
	// of a room of 50 meeting.
	id string
}

func newRoster(lc *lifecycle, nick string) *roster {
	return &roster{
		lc:        lc,
		sessions:  make(map[peer.ID]*session),
		members:   make(map[peer.ID]*member),
		nick:      nick,
		refusedIn: newTimedSet(refusedBackoff, maxDialMemory),
		broken:    newTimedSet(brokenMemory, maxDialMemory),
		book:      newNameBook(),
	}
}

// session returns the session with p, or nil.
func (ro *roster) session(p peer.ID) *session {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return ro.sessions[p]
}

// count returns how many sessions the room has.
func (ro *roster) count() int {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return len(ro.sessions)
}

// size returns how many peers are in the room: sessions and members.
func (ro *roster) size() int {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return len(ro.sessions) + len(ro.members)
}

// sessionList returns every session.
func (ro *roster) sessionList() []*session {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	list := make([]*session, 0, len(ro.sessions))
	for _, s := range ro.sessions {
		list = append(list, s)
	}
	return list
}

// recipients returns the sessions a line goes to: the one with to, or, with
// to empty, every session. When there is none, ifNone runs under the lock,
// so that a session that opens at that moment either is among the
// recipients or finds what ifNone did (the held lines, see place).
func (ro *roster) recipients(to peer.ID, ifNone func()) []*session {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	var list []*session
	if to != "" {
		if s := ro.sessions[to]; s != nil {
			list = append(list, s)
		}
	} else {
		for _, s := range ro.sessions {
			list = append(list, s)
		}
	}
	if len(list) == 0 && ifNone != nil {
		ifNone()
	}
	return list
}

// withoutNewSessions runs f while no session can be placed: a new
// session takes the held lines it has not had as it is placed (see
// streams.fill), so f sees them all before that or after. f must not call
// the roster.
func (ro *roster) withoutNewSessions(f func()) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	f()
}

// A placement says what place did with a stream.
type placement int

const (
	// placeRefused: the room is closing; the caller resets the stream.
	placeRefused placement = iota
	// placeJoined: the stream is a new session.
	placeJoined
	// placeExtra: the stream joined the existing session (adopted, or the
	// chat moved to it).
	placeExtra
)

// place makes st the session with its peer, or, if there is one already,
// a stream of that session: the path the chat moves to (a direct one,
// when the chat runs on a relay and the peer runs our program), or an
// extra stream to read (see session.adopt). For a new session, create
// builds it and fills its outbox under the lock, before any line can be
// queued for it, and place counts the session as one of the room's
// goroutines (its wait) and starts it. wasMember says that the new session's
// peer was a member by topic, whose joining was announced already.
func (ro *roster) place(st network.Stream, format wire.Format, hello *wire.Frame, movable bool,
	create func() *session) (s *session, how placement, wasMember bool, renamed []event.Event) {
	p := st.Conn().RemotePeer()
	ro.mu.Lock()
	defer ro.mu.Unlock()
	for {
		if ro.lc.isClosing() {
			return nil, placeRefused, false, nil
		}
		existing := ro.sessions[p]
		if existing == nil {
			break
		}
		if movable && existing.onLimitedConn() && !st.Conn().Stat().Limited && existing.migrate(st, false) {
			// The peer found a direct path and moves the chat to it.
			return existing, placeExtra, false, ro.renameLocked("", ro.setPeerNickLocked(existing, hello)...)
		}
		if existing.adopt(st, format) {
			log.Debugw("another chat stream from the same peer kept for reading", "peer", p)
			return existing, placeExtra, false, ro.renameLocked("", ro.setPeerNickLocked(existing, hello)...)
		}
		// The session with this peer has ended but is still finishing:
		// let it report its last lines and leave before the peer rejoins.
		ro.mu.Unlock()
		<-existing.finished
		ro.mu.Lock()
	}
	// Counted under the lock: once Close has begun, no session is added,
	// and every session added is one Close shuts down and waits for.
	if !ro.lc.add() {
		return nil, placeRefused, false, nil
	}
	s = create()
	s.start()
	ro.sessions[p] = s
	ro.broken.remove(p)
	var nicks []string
	if m := ro.members[p]; m != nil {
		ro.book.release(p, m.nick)
		delete(ro.members, p)
		wasMember = true
		nicks = append(nicks, m.nick)
	}
	nicks = append(nicks, ro.setPeerNickLocked(s, hello)...)
	return s, placeJoined, wasMember, ro.renameLocked(p, nicks...) // the joined event announces s's name
}

// remove takes an ended session out of the room and returns the events of
// the names that change with it. broken says that the session ended without
// a goodbye (its connection broke, or the peer stopped answering): the
// peer's announcements still on their way are older than its going.
func (ro *roster) remove(s *session, broken bool) []event.Event {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if ro.sessions[s.peer] != s {
		return nil
	}
	delete(ro.sessions, s.peer)
	if broken {
		ro.broken.add(s.peer)
	}
	ro.book.release(s.peer, s.nick())
	ro.book.left(s.peer, s.name())
	return ro.renameLocked("", s.nick())
}

// brokeSince reports whether p's session broke after t (and less than
// brokenMemory ago): p was in the room by its session, and went without a
// goodbye.
func (ro *roster) brokeSince(p peer.ID, t time.Time) bool {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return ro.broken.addedAfter(p, t)
}

// reserveInbound reports whether to take p's chat stream on our protocol,
// and counts it as opening until releaseInbound. With a bound (a big room
// on the topic), it refuses when that many room peers have dialed us
// (sessions and streams still opening), unless p has a session (its extra
// or returning stream).
func (ro *roster) reserveInbound(p peer.ID, bound int) bool {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if bound > 0 && ro.sessions[p] == nil {
		inbound := ro.inboundOpening
		for _, s := range ro.sessions {
			if s.framed() && s.direction == "inbound" {
				inbound++
			}
		}
		if inbound >= bound {
			ro.refusedIn.add(p)
			return false
		}
	}
	ro.inboundOpening++
	return true
}

// refusedInbound reports whether reserveInbound refused p's chat lately.
func (ro *roster) refusedInbound(p peer.ID) bool {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return ro.refusedIn.holds(p)
}

// releaseInbound ends what reserveInbound counted: the stream is a session
// now, or failed.
func (ro *roster) releaseInbound() {
	ro.mu.Lock()
	ro.inboundOpening--
	ro.mu.Unlock()
}

// dialCounts returns the sessions on our protocol, and those of them we
// dialed, for the dial policy.
func (ro *roster) dialCounts() (framed, framedOut int) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	for _, s := range ro.sessions {
		if s.framed() {
			framed++
			if s.direction == "outbound" {
				framedOut++
			}
		}
	}
	return framed, framedOut
}

// hasMembers reports whether someone is in the room by the topic alone.
func (ro *roster) hasMembers() bool {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return len(ro.members) > 0
}

// framedWith reports whether p has a session on our protocol.
func (ro *roster) framedWith(p peer.ID) bool {
	s := ro.session(p)
	return s != nil && s.framed()
}

// knows returns how p is called when it is in the room (a session or a
// member), and whether it is.
func (ro *roster) knows(p peer.ID) (nick, name string, ok bool) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if s := ro.sessions[p]; s != nil {
		return s.nick(), s.name(), true
	}
	if m := ro.members[p]; m != nil {
		return m.nick, m.name, true
	}
	return "", "", false
}

// join makes p a member known by the topic alone, unless it is in the room
// already, and returns how it is called and the events that announce it
// (none when it was there, or the room is closing). topic names the topic
// in the joined event.
func (ro *roster) join(p peer.ID, nick, topic string) (string, string, []event.Event) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if s := ro.sessions[p]; s != nil {
		return s.nick(), s.name(), nil
	}
	if m := ro.members[p]; m != nil {
		return m.nick, m.name, nil
	}
	if len(ro.members) >= maxMembers {
		// A room this big is shown by the lines of its peers, not by a
		// member list that would grow with every identity that writes.
		return CleanNick(nick), event.ShortID(p), nil
	}
	m := &member{nick: CleanNick(nick), name: event.ShortID(p), id: p.String()}
	ro.members[p] = m
	ro.book.hold(p, m.nick)
	renamed := ro.renameLocked(p, m.nick) // the joined event announces p's name
	if ro.lc.isClosing() {
		return m.nick, m.name, nil
	}
	joined := event.Event{Kind: event.Joined, Peer: p.String(), Nick: m.nick, Name: m.name,
		Protocol: topic, Via: event.ViaTopic}
	return m.nick, m.name, append([]event.Event{joined}, renamed...)
}

// memberNick takes the nickname presence reports for a member, when the
// report announces it, and returns the events of the names that change; ok
// is false when p is not a member.
func (ro *roster) memberNick(p peer.ID, nick string, announces bool) (events []event.Event, ok bool) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	m := ro.members[p]
	if m == nil || ro.sessions[p] != nil {
		return nil, false
	}
	if nick := CleanNick(nick); nick != m.nick && announces {
		old := m.nick
		ro.book.release(p, old)
		m.nick = nick
		ro.book.hold(p, nick)
		events = ro.renameLocked("", old, nick)
	}
	return events, true
}

// leave removes the member p (presence says it left) and returns it with
// the events of the names that change, or nil when p is not a member.
func (ro *roster) leave(p peer.ID) (*member, []event.Event) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	m := ro.members[p]
	if m == nil || ro.sessions[p] != nil {
		return nil, nil
	}
	delete(ro.members, p)
	ro.book.release(p, m.nick)
	ro.book.left(p, m.name)
	return m, ro.renameLocked("", m.nick)
}

// A known peer is one in the room, as /peers, /msg and /ping see it.
type known struct {
	id               peer.ID
	idText, nick, nm string
	s                *session // nil for a member by topic
}

// everyone returns every peer in the room.
func (ro *roster) everyone() []known {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	list := make([]known, 0, len(ro.sessions)+len(ro.members))
	for _, s := range ro.sessions {
		list = append(list, known{s.peer, s.peerID, s.nick(), s.name(), s})
	}
	for p, m := range ro.members {
		list = append(list, known{p, p.String(), m.nick, m.name, nil})
	}
	return list
}
