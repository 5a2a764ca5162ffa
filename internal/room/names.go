package room

import (
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

// nameSuffixLen is how many characters of the peer ID tell apart two peers
// that use one nickname: "alice~x7Qp".
const nameSuffixLen = 4

// How names are worked out: a peer is shown by its nickname; by the
// nickname and the end of its peer ID when another peer, or we, use the
// same one; by its short peer ID when it has none (the plain protocol has
// no nicknames). So a change of one peer's nickname (or ours) can change
// only the names of the peers that hold the old or the new nickname: the
// roster keeps the holders of each nickname (nameBook.holders) and renames
// just those, so that a peer joining a room of thousands costs no walk over
// all of them.

// A nameBook is the roster's record of names: who holds each nickname in
// the room (so that a change renames only the peers it concerns), and the
// last names of peers that left, for notices about their lines, at most
// maxGoneNames, the oldest forgotten first. The roster's lock guards it.
type nameBook struct {
	holders map[string]map[peer.ID]struct{}
	gone    map[peer.ID]string
	goneSeq []peer.ID
}

func newNameBook() nameBook {
	return nameBook{holders: make(map[string]map[peer.ID]struct{}), gone: make(map[peer.ID]string)}
}

// hold records that p, in the room, holds nick; release that it no longer
// does.
func (b *nameBook) hold(p peer.ID, nick string) {
	if nick == "" {
		return
	}
	h := b.holders[nick]
	if h == nil {
		h = make(map[peer.ID]struct{})
		b.holders[nick] = h
	}
	h[p] = struct{}{}
}

func (b *nameBook) release(p peer.ID, nick string) {
	if h := b.holders[nick]; h != nil {
		delete(h, p)
		if len(h) == 0 {
			delete(b.holders, nick)
		}
	}
}

// left keeps the last name of a peer that left; the oldest is forgotten
// first.
func (b *nameBook) left(p peer.ID, name string) {
	if _, ok := b.gone[p]; !ok {
		if len(b.goneSeq) >= maxGoneNames {
			delete(b.gone, b.goneSeq[0])
			b.goneSeq = b.goneSeq[1:]
		}
		b.goneSeq = append(b.goneSeq, p)
	}
	b.gone[p] = name
}

// setPeerNickLocked takes the nickname a peer with a session announced in a
// hello or nick frame, and returns the nicknames whose holders may need a
// new name (see renameLocked).
func (ro *roster) setPeerNickLocked(s *session, f *wire.Frame) []string {
	if f == nil {
		return nil
	}
	old := s.names.Load()
	nick := CleanNick(f.Nick)
	if nick == old.nick {
		return nil
	}
	ro.book.release(s.peer, old.nick)
	s.names.Store(&peerNames{nick: nick, name: old.name})
	ro.book.hold(s.peer, nick)
	return []string{old.nick, nick}
}

// peerNick takes the nickname a peer announced on its session, and returns
// the events of the names that change.
func (ro *roster) peerNick(s *session, f *wire.Frame) []event.Event {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return ro.renameLocked("", ro.setPeerNickLocked(s, f)...)
}

// renameLocked works out again the names of the holders of nicks and
// returns a nick event for each that changed, except for skip, whose name
// is about to be announced (it joins).
func (ro *roster) renameLocked(skip peer.ID, nicks ...string) []event.Event {
	var events []event.Event
	for i, nick := range nicks {
		if nick == "" || slices.Contains(nicks[:i], nick) {
			continue
		}
		shared := len(ro.book.holders[nick]) > 1 || (len(ro.book.holders[nick]) == 1 && ro.nick == nick)
		for p := range ro.book.holders[nick] {
			if e, changed := ro.nameLocked(p, nick, shared); changed && p != skip {
				events = append(events, e)
			}
		}
	}
	return events
}

// nameLocked gives the peer p, a holder of nick, the name it is shown by,
// and returns the event that says so when the name changed.
func (ro *roster) nameLocked(p peer.ID, nick string, shared bool) (event.Event, bool) {
	s, m := ro.sessions[p], ro.members[p]
	name := nick
	if shared {
		// The ID as text, as its session or member keeps it.
		var id string
		switch {
		case s != nil:
			id = s.peerID
		case m != nil:
			id = m.id
		default:
			return event.Event{}, false
		}
		name += "~" + id[len(id)-nameSuffixLen:]
	}
	if s != nil {
		old := s.names.Load()
		if old.name == name {
			return event.Event{}, false
		}
		s.names.Store(&peerNames{nick: old.nick, name: name})
		return event.Event{Kind: event.Nick, Peer: s.peerID, Nick: old.nick, Name: name, Was: old.name}, true
	}
	if m == nil || m.name == name {
		return event.Event{}, false
	}
	e := event.Event{Kind: event.Nick, Peer: m.id, Nick: m.nick, Name: name, Was: m.name, Via: event.ViaTopic}
	m.name = name
	return e, true
}

// setNick makes nick ours. It returns the nickname we had, the sessions on
// our protocol, to tell, and the events of the names that change; changed
// is false when nick is ours already.
func (ro *roster) setNick(nick string) (old string, framed []*session, renamed []event.Event, changed bool) {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	old = ro.nick
	if nick == old {
		return old, nil, nil, false
	}
	ro.nick = nick
	for _, s := range ro.sessions {
		if s.framed() {
			framed = append(framed, s)
		}
	}
	return old, framed, ro.renameLocked("", old, nick), true
}

// ourNick returns our nickname.
func (ro *roster) ourNick() string {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return ro.nick
}

// nameOf returns the name p is shown by: in the room, or the last one it
// had (it left), or its short ID.
func (ro *roster) nameOf(p peer.ID) string {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	return ro.nameOfLocked(p)
}

func (ro *roster) nameOfLocked(p peer.ID) string {
	if s := ro.sessions[p]; s != nil {
		return s.name()
	}
	if m := ro.members[p]; m != nil {
		return m.name
	}
	if name, ok := ro.book.gone[p]; ok {
		return name
	}
	return event.ShortID(p)
}

// nameList returns the names peers are shown by.
func (ro *roster) nameList(peers []peer.ID) []string {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	names := make([]string, len(peers))
	for i, p := range peers {
		names[i] = ro.nameOfLocked(p)
	}
	return names
}

// names returns the names everyone in the room is shown by, sorted.
func (ro *roster) names() []string {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	names := make([]string, 0, len(ro.sessions)+len(ro.members))
	for _, s := range ro.sessions {
		names = append(names, s.name())
	}
	for _, m := range ro.members {
		names = append(names, m.name)
	}
	slices.Sort(names)
	return names
}

// SetNick changes our nickname and announces it to the room: on the
// sessions of our protocol, and on the topic's presence.
func (r *Room) SetNick(nick string) error {
	if err := CheckNick(nick); err != nil {
		return err
	}
	old, framed, renamed, changed := r.roster.setNick(nick)
	if !changed {
		return nil
	}
	for _, s := range framed {
		if _, err := s.enqueue(r.lc.closing, &wire.Frame{Type: wire.TypeNick, Nick: nick}); err != nil {
			log.Debugw("nickname not announced", "peer", s.peer, "err", err)
		}
	}
	if r.topic != nil {
		r.topic.setNick(nick)
	}
	r.emit(event.Event{Kind: event.Nick, Nick: nick, Name: nick, Was: old})
	r.emitAll(renamed)
	return nil
}

// Nick returns our nickname.
func (r *Room) Nick() string { return r.roster.ourNick() }

// Names returns the names the room's peers are shown by, sorted: for Tab
// completion.
func (r *Room) Names() []string { return r.roster.names() }
