package room

import (
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/privroom"
)

const (
	// maxSealAuthors bounds the authors whose payloads a private room's
	// replay guards remember (per topic), and sealMaxAge how old a sealed
	// payload may be: older ones are refused as played again. The age is
	// the author's clock against ours, so it is generous: an hour lets a
	// peer whose clock is some minutes off still be heard, while a relay
	// that plays an old line again to a member who never saw it has an
	// hour at most (the guards refuse what a member did see).
	maxSealAuthors = 4096
	sealMaxAge     = time.Hour
	// maxRefusedNotes bounds the peers told about as refused non-members.
	maxRefusedNotes = 4096
)

// private is a private room's part of the room (issue 15): the proof of
// membership on every chat stream (admission), the sealing of the topics'
// payloads, and the bounded memory of the strangers refused, each said once.
// It is nil in an open room.
type private struct {
	r    *Room
	keys *privroom.Room
	seq  privroom.Counter

	mu      sync.Mutex
	guards  map[string]*privroom.ReplayGuard // by topic
	refused *boundedSet                      // strangers the user was told of
}

func newPrivate(r *Room, keys *privroom.Room) *private {
	return &private{r: r, keys: keys, guards: make(map[string]*privroom.ReplayGuard), refused: newBoundedSet(maxRefusedNotes)}
}

// admit proves, on a chat stream, that we hold the room's key, and checks
// that the peer does; nothing else has gone over the stream yet. The
// caller bounds it with the stream's deadline, and resets the stream on an
// error. A peer that fails the proof is said once.
func (pv *private) admit(st network.Stream, initiator bool) error {
	remote := st.Conn().RemotePeer()
	err := pv.keys.Admit(st, st.Conn().LocalPeer(), remote, initiator)
	if errors.Is(err, privroom.ErrNotMember) || errors.Is(err, privroom.ErrMalformed) {
		// A wrong proof, or none at all (a hello of our open protocol, a
		// plain line): a peer without the passphrase.
		pv.refuse(remote)
	}
	return err
}

// refuse tells the user, once per peer, that a peer without the passphrase
// tried to join.
func (pv *private) refuse(p peer.ID) {
	pv.mu.Lock()
	tell := !pv.refused.has(p)
	pv.refused.add(p)
	pv.mu.Unlock()
	if tell && !pv.r.lc.isClosing() {
		pv.r.emit(event.Event{Kind: event.Info, Code: event.NotMember, Peer: p.String()})
	}
}

// Seal seals a payload of ours for the room's topics (gossiproom.Sealer).
func (pv *private) Seal(data []byte) ([]byte, error) {
	return pv.keys.Seal(pv.r.host.ID(), pv.seq.Next(), data)
}

// Open opens a member's payload on a topic, and refuses one played again.
func (pv *private) Open(topic string, author peer.ID, sealed []byte) ([]byte, error) {
	seq, plain, err := pv.keys.Open(author, sealed)
	if err != nil {
		return nil, err
	}
	pv.mu.Lock()
	g := pv.guards[topic]
	if g == nil {
		g = privroom.NewReplayGuard(maxSealAuthors, sealMaxAge)
		pv.guards[topic] = g
	}
	pv.mu.Unlock()
	if err := g.Accept(author, seq); err != nil {
		return nil, err
	}
	return plain, nil
}

// Overhead is what sealing adds to a payload.
func (pv *private) Overhead() int { return privroom.Overhead }
