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

// setPeerNickLocked takes the nickname a peer announced in a hello or nick
// frame. The caller then calls renameLocked, which announces the change.
func (ro *roster) setPeerNickLocked(s *session, f *wire.Frame) {
	if f == nil {
		return
	}
	old := s.names.Load()
	if nick := CleanNick(f.Nick); nick != old.nick {
		s.names.Store(&peerNames{nick: nick, name: old.name})
	}
}

// peerNick takes the nickname a peer announced on its session, and returns
// the events of the names that change.
func (ro *roster) peerNick(s *session, f *wire.Frame) []event.Event {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	ro.setPeerNickLocked(s, f)
	return ro.renameLocked(nil)
}

// renameLocked works out the name each peer in the room is shown by: its
// nickname; the nickname and the end of its peer ID when another peer, or
// we, use the same one; its short peer ID when it has none (the plain
// protocol has no nicknames). It returns a nick event for each peer whose
// shown name changed, except skip, which is about to be announced.
func (ro *roster) renameLocked(skip *session) []event.Event {
	count := map[string]int{ro.nick: 1}
	for _, s := range ro.sessions {
		if nick := s.nick(); nick != "" {
			count[nick]++
		}
	}
	for p, m := range ro.members {
		if m.nick != "" && ro.sessions[p] == nil {
			count[m.nick]++
		}
	}
	shown := func(nick, id string) string {
		switch {
		case nick == "":
			return event.ShortIDString(id)
		case count[nick] > 1:
			return nick + "~" + id[len(id)-nameSuffixLen:]
		}
		return nick
	}
	var events []event.Event
	for _, s := range ro.sessions {
		old := s.names.Load()
		name := shown(old.nick, s.peerID)
		if name == old.name {
			continue
		}
		s.names.Store(&peerNames{nick: old.nick, name: name})
		if s != skip {
			events = append(events, event.Event{Kind: event.Nick, Peer: s.peerID, Nick: old.nick, Name: name, Was: old.name})
		}
	}
	for p, m := range ro.members {
		name := shown(m.nick, p.String())
		if name == m.name {
			continue
		}
		events = append(events, event.Event{Kind: event.Nick, Peer: p.String(), Nick: m.nick, Name: name, Was: m.name, Via: event.ViaTopic})
		m.name = name
	}
	return events
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
	return old, framed, ro.renameLocked(nil), true
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
	if name, ok := ro.gone[p]; ok {
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
		if err := s.enqueue(&wire.Frame{Type: wire.TypeNick, Nick: nick}, r.lc.closing); err != nil {
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

// Names returns the names the room's peers are shown by, sorted: for Tab
// completion.
func (r *Room) Names() []string { return r.roster.names() }
