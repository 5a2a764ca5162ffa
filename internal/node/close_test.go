package node

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	lpevent "github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event/eventtest"
)

// TestCloseDoesNotHangOnAStuckEventBus: go-libp2p's host can hang in Close
// when a subscriber to identify's events stops reading without
// unsubscribing (its observed-address manager does, as the host closes):
// the next identify event blocks the event bus with its lock held. Here a
// subscription that is never read stands in for it, and peers keep
// identifying with the node until the bus is stuck; Close must still
// return.
func TestCloseDoesNotHangOnAStuckEventBus(t *testing.T) {
	n, err := New(loopbackConfig(t, "", nil, true), eventtest.New().Emit)
	if err != nil {
		t.Fatal(err)
	}
	n.Start(nil)
	stuck, err := n.Host.EventBus().Subscribe(new(lpevent.EvtPeerIdentificationCompleted))
	if err != nil {
		t.Fatal(err)
	}
	_ = stuck // never read, never closed: the bus's buffer for it fills up
	target := peer.AddrInfo{ID: n.Host.ID(), Addrs: n.Host.Addrs()}
	// More identifications than the subscription's buffer holds.
	for range 24 {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = h.Connect(ctx, target)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		_ = n.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(libp2pCloseTimeout + 10*time.Second):
		t.Fatal("Close hung on the stuck event bus")
	}
}
