package gossiproom

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// prefixSealer is a stand-in for a private room's sealer: it marks what it
// seals, and opens only what carries the mark.
type prefixSealer struct{}

var sealMark = []byte("sealed:")

func (prefixSealer) Seal(data []byte) ([]byte, error) {
	return append(bytes.Clone(sealMark), data...), nil
}
func (prefixSealer) Open(_ string, _ peer.ID, sealed []byte) ([]byte, error) {
	if !bytes.HasPrefix(sealed, sealMark) {
		return nil, errors.New("not sealed")
	}
	return sealed[len(sealMark):], nil
}
func (prefixSealer) Overhead() int { return len(sealMark) }

// TestSealedPresence: in a private room the announcements are sealed too,
// and members open them before reading them: A learns of C (whom it is not
// connected to) by C's announcement, nobody counts a bad announcement, and
// nobody is penalized for one.
func TestSealedPresence(t *testing.T) {
	const room = "sealed presence"
	opts := func(nick string) Options {
		return Options{Nick: nick, PresenceInterval: 300 * time.Millisecond, Sealer: prefixSealer{}}
	}
	ha, hb, hc := newHost(t), newHost(t), newHost(t)
	a := newRoom(t, ha, room, opts("alice"))
	b := newRoom(t, hb, room, opts("bob"))
	newRoom(t, hc, room, opts("carol"))
	watch := watchPresence(t, a)
	connect(t, ha, hb)
	connect(t, hb, hc)
	watch.await(5*time.Second, "carol's announcement", func(ev PresenceEvent) bool {
		return ev.Peer == hc.ID() && ev.Announces && ev.Nick == "carol"
	}, nil)
	for name, r := range map[string]*Room{"a": a, "b": b} {
		if s := r.Stats(); s.BadPresence != 0 || s.Blamed != 0 {
			t.Errorf("%s: %d bad announcements, %d blamed", name, s.BadPresence, s.Blamed)
		}
	}
	if sc, _ := a.PeerScore(hb.ID()); sc < 0 {
		t.Errorf("a scores b %v", sc)
	}
}
