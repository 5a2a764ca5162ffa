package main

import (
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

// nameSuffixLen is how many characters of the peer ID tell apart two peers
// that use one nickname: "alice~x7Qp".
const nameSuffixLen = 4

// setPeerNickLocked takes the nickname a peer announced in a hello or nick
// frame. The caller then calls renameLocked, which announces the change.
func (r *Room) setPeerNickLocked(s *session, f *wire.Frame) {
	if f == nil {
		return
	}
	old := s.names.Load()
	if nick := cleanNick(f.Nick); nick != old.nick {
		s.names.Store(&peerNames{nick: nick, name: old.name})
	}
}

// renameLocked works out the name each peer in the room is shown by: its
// nickname; the nickname and the end of its peer ID when another peer, or
// we, use the same one; its short peer ID when it has none (the plain
// protocol has no nicknames). It returns a nick event for each peer whose
// shown name changed, except skip, which is about to be announced.
func (r *Room) renameLocked(skip *session) []Event {
	count := map[string]int{r.nick: 1}
	for _, s := range r.sessions {
		if nick := s.nick(); nick != "" {
			count[nick]++
		}
	}
	for p, m := range r.members {
		if m.nick != "" && r.sessions[p] == nil {
			count[m.nick]++
		}
	}
	var events []Event
	for _, s := range r.sessions {
		old := s.names.Load()
		name := old.nick
		switch {
		case name == "":
			name = shortID(s.peer)
		case count[name] > 1:
			id := s.peerID
			name += "~" + id[len(id)-nameSuffixLen:]
		}
		r.names[s.peer] = name
		if name == old.name {
			continue
		}
		s.names.Store(&peerNames{nick: old.nick, name: name})
		if s != skip {
			events = append(events, Event{Kind: EventNick, Peer: s.peerID, Nick: old.nick, Name: name, Was: old.name})
		}
	}
	for p, m := range r.members {
		name := m.nick
		switch {
		case name == "":
			name = shortID(p)
		case count[name] > 1:
			id := p.String()
			name += "~" + id[len(id)-nameSuffixLen:]
		}
		r.names[p] = name
		if name == m.name {
			continue
		}
		events = append(events, Event{Kind: EventNick, Peer: p.String(), Nick: m.nick, Name: name, Was: m.name, Via: viaTopic})
		m.name = name
	}
	return events
}

// SetNick changes our nickname and announces it to the peers on our
// protocol.
func (r *Room) SetNick(nick string) error {
	if err := checkNick(nick); err != nil {
		return err
	}
	r.mu.Lock()
	old := r.nick
	if nick == old {
		r.mu.Unlock()
		return nil
	}
	r.nick = nick
	var framed []*session
	for _, s := range r.sessions {
		if s.framed() {
			framed = append(framed, s)
		}
	}
	renamed := r.renameLocked(nil)
	r.mu.Unlock()

	for _, s := range framed {
		if err := s.enqueue(&wire.Frame{Type: wire.TypeNick, Nick: nick}, r.closing); err != nil {
			log.Debugw("nickname not announced", "peer", s.peer, "err", err)
		}
	}
	r.setGossipNick(nick)
	r.emit(Event{Kind: EventNick, Nick: nick, Name: nick, Was: old})
	r.emitAll(renamed)
	return nil
}

// namesOf lists peers by the names they are shown by.
func (r *Room) namesOf(peers []peer.ID) string {
	return strings.Join(r.nameList(peers), ", ")
}

// nameList returns the names peers are shown by.
func (r *Room) nameList(peers []peer.ID) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, len(peers))
	for i, p := range peers {
		if names[i] = r.names[p]; names[i] == "" {
			names[i] = shortID(p)
		}
	}
	return names
}

func peerStrings(peers []peer.ID) []string {
	s := make([]string, len(peers))
	for i, p := range peers {
		s[i] = p.String()
	}
	return s
}

// reportUnacknowledged tells, as we leave, which lines some peer has not
// acknowledged: they may or may not have arrived.
func (r *Room) reportUnacknowledged() {
	for p, n := range r.receipts.unackedCounts() {
		r.emit(Event{Kind: EventError, Peer: p.String(), Name: r.namesOf([]peer.ID{p}),
			Error: fmt.Sprintf("%d line(s) not acknowledged by %s before we left: they may not have arrived", n, r.namesOf([]peer.ID{p}))})
	}
}
