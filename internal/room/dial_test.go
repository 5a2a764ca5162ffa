package room

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/sec"
)

func TestSimultaneousOpen(t *testing.T) {
	collided := fmt.Errorf("failed to dial: %w", fmt.Errorf("failed to negotiate security protocol: %w", io.ErrUnexpectedEOF))
	if !simultaneousOpen(collided) {
		t.Errorf("a failed security handshake is not taken for a simultaneous open")
	}
	// Another peer at the address: a stale record, not a collision.
	stale := fmt.Errorf("failed to negotiate security protocol: %w", sec.ErrPeerIDMismatch{Expected: "a", Actual: "b"})
	if simultaneousOpen(stale) {
		t.Errorf("a peer ID mismatch is taken for a simultaneous open")
	}
	if simultaneousOpen(io.EOF) {
		t.Errorf("any error is taken for a simultaneous open")
	}
	// The lower ID dials again first, well before the higher one.
	low, high := simultaneousOpenRetry("a", "b"), simultaneousOpenRetry("b", "a")
	if low >= high || high-low < 100*time.Millisecond {
		t.Errorf("retries after %v (lower ID) and %v (higher ID): want the lower clearly first", low, high)
	}
}
