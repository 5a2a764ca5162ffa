package room

import (
	"math/rand/v2"
	"testing"
)

// TestSeenIDsRemembersTheLastOnes: the hash set of seenIDs answers as a Go
// map over the same ring would, for IDs that repeat soon, late and never,
// including hashes that crowd into the same slots (small values) and 0.
func TestSeenIDsRemembersTheLastOnes(t *testing.T) {
	var s seenIDs
	want := make(map[uint64]bool) // the IDs of the last maxSeenIDs added
	var ring []uint64
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 6 * maxSeenIDs {
		var id uint64
		switch rng.IntN(4) {
		case 0:
			id = rng.Uint64N(64) // crowded slots, and 0
		case 1:
			id = uint64(rng.IntN(3*maxSeenIDs)) << 20 // repeats, late or never
		default:
			id = rng.Uint64()
		}
		stored := max(id, 1) // add keeps 0 as 1
		if got, wantNew := s.add(id), !want[stored]; got != wantNew {
			t.Fatalf("add %d (#%d): new=%v, want %v", id, i, got, wantNew)
		}
		if !want[stored] {
			want[stored] = true
			ring = append(ring, stored)
			if len(ring) > maxSeenIDs {
				delete(want, ring[0])
				ring = ring[1:]
			}
		}
	}
	for id := range want {
		if !s.has(id) {
			t.Fatalf("%d forgotten while among the last %d", id, maxSeenIDs)
		}
	}
	if len(s.slots) > 4*maxSeenIDs {
		t.Errorf("%d slots for %d IDs", len(s.slots), maxSeenIDs)
	}
}
