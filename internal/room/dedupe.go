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
	// forgotten first. An ID costs at most 40 bytes (a hash in a ring and
	// in a set at least half empty), so the table stays under about 10 MB.
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

// seenIDs remembers the last maxSeenIDs message IDs (hashed) of one peer:
// a ring of them, oldest overwritten first, and an open-addressing hash set
// over it. Every message a peer sends passes through add, and a set of our
// own costs a fraction of a Go map's inserts and deletes; it grows with the
// peer's messages, so a peer that sends one line costs a few hundred bytes.
type seenIDs struct {
	// slots hold the hashes, 0 for an empty slot (a hash of 0 is stored
	// as 1: a collision, at worst, drops one message in 2^64); len(slots)
	// is a power of two, at least twice the IDs held.
	slots []uint64
	ring  []uint64
	next  int
}

// add records id and reports whether it is new.
func (s *seenIDs) add(id uint64) bool {
	if id == 0 {
		id = 1
	}
	if s.slots == nil {
		s.slots = make([]uint64, 16)
	}
	if s.has(id) {
		return false
	}
	if len(s.ring) < maxSeenIDs {
		if 2*(len(s.ring)+1) > len(s.slots) {
			s.grow()
		}
		s.ring = append(s.ring, id)
	} else {
		s.remove(s.ring[s.next])
		s.ring[s.next] = id
		s.next = (s.next + 1) % maxSeenIDs
	}
	s.insert(id)
	return true
}

func (s *seenIDs) has(id uint64) bool {
	mask := uint64(len(s.slots) - 1)
	for i := id & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case id:
			return true
		case 0:
			return false
		}
	}
}

func (s *seenIDs) insert(id uint64) {
	mask := uint64(len(s.slots) - 1)
	i := id & mask
	for s.slots[i] != 0 {
		i = (i + 1) & mask
	}
	s.slots[i] = id
}

// remove deletes id, moving back the entries after it that would otherwise
// be cut off from their home slot (linear probing has no tombstones).
func (s *seenIDs) remove(id uint64) {
	mask := uint64(len(s.slots) - 1)
	i := id & mask
	for s.slots[i] != id {
		if s.slots[i] == 0 {
			return
		}
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; s.slots[j] != 0; j = (j + 1) & mask {
		home := s.slots[j] & mask
		// Move slots[j] into the hole at i unless its home lies
		// cyclically in (i, j]: then it is still reachable from it.
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = 0
}

// grow doubles the set and puts the IDs back in.
func (s *seenIDs) grow() {
	s.slots = make([]uint64, 2*len(s.slots))
	for _, id := range s.ring {
		s.insert(id)
	}
}
