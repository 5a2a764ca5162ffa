package room

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A boundedSet is a set of peers that forgets the oldest first once it
// holds max. It is not safe for concurrent use: its owner locks it.
type boundedSet struct {
	max   int
	set   map[peer.ID]struct{}
	order []peer.ID
}

func newBoundedSet(max int) *boundedSet {
	return &boundedSet{max: max, set: make(map[peer.ID]struct{})}
}

func (s *boundedSet) has(p peer.ID) bool {
	_, ok := s.set[p]
	return ok
}

func (s *boundedSet) add(p peer.ID) {
	if s.has(p) {
		return
	}
	for len(s.order) >= s.max {
		delete(s.set, s.order[0])
		s.order = s.order[1:]
	}
	s.set[p] = struct{}{}
	s.order = append(s.order, p)
}

func (s *boundedSet) len() int { return len(s.set) }

// A timedSet remembers when peers were added, for ttl: a peer is held back
// (dialed moments ago, refused our chat) until ttl has passed. It prunes
// what has expired once it holds max, and then, if none has, forgets the
// oldest: a flood of strangers costs a hold-back, never memory. It is not
// safe for concurrent use: its owner locks it.
type timedSet struct {
	ttl time.Duration
	max int
	at  map[peer.ID]time.Time
}

func newTimedSet(ttl time.Duration, max int) *timedSet {
	return &timedSet{ttl: ttl, max: max, at: make(map[peer.ID]time.Time)}
}

// holds reports whether p was added less than ttl ago.
func (s *timedSet) holds(p peer.ID) bool {
	at, ok := s.at[p]
	return ok && time.Since(at) < s.ttl
}

func (s *timedSet) add(p peer.ID) {
	if _, ok := s.at[p]; !ok && len(s.at) >= s.max {
		s.prune()
	}
	s.at[p] = time.Now()
}

func (s *timedSet) remove(p peer.ID) { delete(s.at, p) }

// addedAfter reports whether p was added after t, less than ttl ago.
func (s *timedSet) addedAfter(p peer.ID, t time.Time) bool {
	at, ok := s.at[p]
	return ok && at.After(t) && time.Since(at) < s.ttl
}

func (s *timedSet) len() int { return len(s.at) }

// prune drops what has expired and, if that frees nothing, the oldest
// entry.
func (s *timedSet) prune() {
	var oldest peer.ID
	var oldestAt time.Time
	for p, at := range s.at {
		if time.Since(at) >= s.ttl {
			delete(s.at, p)
			continue
		}
		if oldest == "" || at.Before(oldestAt) {
			oldest, oldestAt = p, at
		}
	}
	if len(s.at) >= s.max && oldest != "" {
		delete(s.at, oldest)
	}
}
