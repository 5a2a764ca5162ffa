package room

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	ma "github.com/multiformats/go-multiaddr"
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

// TestDialsBounded: without a room topic, which otherwise limits the room
// peers we dial, a rendezvous full of peers that never answer starts at
// most maxDialsStarted dials; the rest wait for discovery's next search.
func TestDialsBounded(t *testing.T) {
	needHosts(t)
	// A listener that takes connections and never says a word: each dial
	// to it lasts until dialTimeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	silent := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", l.Addr().(*net.TCPAddr).Port))

	a := startRoomPeer(t, "dials bounded", startRoomServer(t))
	for range 3 * maxDialsStarted {
		_, pub, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		a.room.Offer(peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{silent}})
	}
	d := a.room.dialer
	d.mu.Lock()
	n := len(d.dialing)
	d.mu.Unlock()
	if n == 0 || n > maxDialsStarted {
		t.Errorf("%d dials started for %d silent peers, want some and at most %d", n, 3*maxDialsStarted, maxDialsStarted)
	}
}
