package room

import (
	"container/list"
	"hash/maphash"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// maxSeenIDs is how many message IDs of each peer the room remembers
	// to drop a message it sends again. A peer sends again only lines it
	// has no receipt for, which are among the last maxUnackedPerPeer it
	// sent, so remembering more than that drops every duplicate.
	maxSeenIDs = 2 * maxUnackedPerPeer
	// maxSeenTotal bounds the IDs remembered for all peers together: a
	// peer can take a new identity as often as it likes, and each would
	// otherwise keep its IDs. Beyond it the peers used least recently are
	// forgotten first. An ID costs about 40 bytes (a hash in a map and a
	// ring), so the table stays under about 10 MB.
	maxSeenTotal = 1 << 18
)

// seenTable remembers, per author, the IDs of the messages shown, so that
// a message that comes twice (sent again after a lost receipt, or by the
// topic and a stream) is shown once. It is the one owner of that memory: it
// creates an author's set on its first message, forgets it resendWindow
// after the author left (it can no longer send those lines again), and
// keeps the whole within maxSeenTotal, forgetting the authors used least
// recently first.
//
// IDs are kept as 64-bit hashes with a seed of this run, which a peer
// cannot predict, so a long ID costs no more than a short one.
type seenTable struct {
	seed maphash.Seed

	mu    sync.Mutex
	peers map[peer.ID]*seenPeer
	lru   *list.List // of peer.ID, the most recently used first
	total int
}

// seenPeer is one author's IDs.
type seenPeer struct {
	ids    seenIDs
	elem   *list.Element
	leftAt time.Time // zero while it is in the room
}

func newSeenTable() *seenTable {
	return &seenTable{seed: maphash.MakeSeed(), peers: make(map[peer.ID]*seenPeer), lru: list.New()}
}

// firstSight records a message ID of p and reports whether it is new.
func (t *seenTable) firstSight(p peer.ID, id string) bool {
	h := maphash.String(t.seed, id)
	t.mu.Lock()
	defer t.mu.Unlock()
	sp := t.peers[p]
	if sp == nil {
		sp = &seenPeer{elem: t.lru.PushFront(p)}
		t.peers[p] = sp
	} else {
		t.lru.MoveToFront(sp.elem)
		sp.leftAt = time.Time{}
	}
	before := len(sp.ids.ring)
	if !sp.ids.add(h) {
		return false
	}
	t.total += len(sp.ids.ring) - before
	for t.total > maxSeenTotal && t.lru.Len() > 1 {
		t.forgetLocked(t.lru.Back().Value.(peer.ID))
	}
	return true
}

// left records that p left the room: its IDs are kept for resendWindow,
// while it may still send those lines again.
func (t *seenTable) left(p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sp := t.peers[p]; sp != nil {
		sp.leftAt = time.Now()
	}
}

// prune forgets the authors that left before cutoff.
func (t *seenTable) prune(cutoff time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for p, sp := range t.peers {
		if !sp.leftAt.IsZero() && sp.leftAt.Before(cutoff) {
			t.forgetLocked(p)
		}
	}
}

// size returns how many authors and IDs are remembered.
func (t *seenTable) size() (authors, ids int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.peers), t.total
}

func (t *seenTable) forgetLocked(p peer.ID) {
	sp := t.peers[p]
	if sp == nil {
		return
	}
	t.total -= len(sp.ids.ring)
	t.lru.Remove(sp.elem)
	delete(t.peers, p)
}

// seenIDs remembers the last maxSeenIDs message IDs (hashed) of one peer.
type seenIDs struct {
	set  map[uint64]struct{}
	ring []uint64
	next int
}

// add records id and reports whether it is new.
func (s *seenIDs) add(id uint64) bool {
	if s.set == nil {
		s.set = make(map[uint64]struct{})
	}
	if _, ok := s.set[id]; ok {
		return false
	}
	if len(s.ring) < maxSeenIDs {
		s.ring = append(s.ring, id)
	} else {
		delete(s.set, s.ring[s.next])
		s.ring[s.next] = id
		s.next = (s.next + 1) % maxSeenIDs
	}
	s.set[id] = struct{}{}
	return true
}
