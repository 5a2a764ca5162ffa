package gossiproom

import (
	"hash/maphash"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
)

// dupFilterSize bounds the messages the duplicate filter remembers; past
// it the oldest are forgotten first, which costs nothing but a signature
// check for a late copy.
const dupFilterSize = 1 << 15

// dupFilter drops the exact copies of a message that arrive while the first
// copy is still on its way through the router. The router marks a message
// seen only once its signature is checked, so every copy that mesh
// neighbours forward before then is checked too: when a room of fifty
// starts at once and everyone announces itself, each announcement arrives
// about five times, and those signature checks were most of the CPU the
// room spent meeting, on a machine that had none to spare.
//
// It filters presence announcements only, not chat lines. The inspector
// that consults it runs before the router decides whether to take the RPC
// at all: a relay the router has graylisted or throttles gets its RPC
// dropped after we recorded its copy as the first, and the genuine copy
// from an honest neighbour would then be dropped here. Nothing tells us
// of that drop, so a line could be lost without a word (a flood test lost
// one now and then). An announcement lost that way costs only freshness:
// the next one, or a neighbour's sync, brings it.
//
// Only exact copies are dropped (same author, sequence number and
// signature), so a forged message with a genuine message's ID cannot
// suppress the genuine one: its signature differs. A copy the router
// dropped without judging it (its validation queue was full) is forgotten
// (see forget), so that a later copy still gets through. Copies count as
// seen for the router's own time (pubsub.TimeCacheDuration).
type dupFilter struct {
	seed maphash.Seed

	mu    sync.Mutex
	seen  map[uint64]time.Time
	order []uint64 // insertion order, a ring once full
	next  int
}

func newDupFilter() *dupFilter {
	return &dupFilter{seed: maphash.MakeSeed(), seen: make(map[uint64]time.Time)}
}

// digest identifies a message by everything its signature covers.
func (f *dupFilter) digest(m *pb.Message) uint64 {
	var h maphash.Hash
	h.SetSeed(f.seed)
	for _, b := range [][]byte{m.GetFrom(), m.GetSeqno(), m.GetSignature(), []byte(m.GetTopic())} {
		_, _ = h.Write(b)
		_ = h.WriteByte(0)
	}
	if len(m.GetSignature()) == 0 {
		_, _ = h.Write(m.GetData())
	}
	return h.Sum64()
}

// first reports whether m is the first copy of its message seen within
// pubsub.TimeCacheDuration, and remembers it.
func (f *dupFilter) first(m *pb.Message, now time.Time) bool {
	d := f.digest(m)
	f.mu.Lock()
	defer f.mu.Unlock()
	if at, ok := f.seen[d]; ok {
		if now.Sub(at) < pubsub.TimeCacheDuration {
			return false
		}
		f.seen[d] = now // seen again after the router forgot it: new to it
		return true
	}
	if len(f.order) < dupFilterSize {
		f.order = append(f.order, d)
	} else {
		delete(f.seen, f.order[f.next])
		f.order[f.next] = d
		f.next = (f.next + 1) % dupFilterSize
	}
	f.seen[d] = now
	return true
}

// forget lets the next copy of m through: the router dropped this one
// without judging it.
func (f *dupFilter) forget(m *pb.Message) {
	d := f.digest(m)
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.seen, d)
}
