package gossiproom

import (
	"fmt"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// A neighbour's lines are delivered in the order it sent them: the router
// validates one message at a time (WithValidateWorkers(1)), so a pasted
// paragraph is not shuffled by validation workers running in parallel.
func TestLinesOfOneAuthorInOrder(t *testing.T) {
	const room = "order room"
	const n = 40 // within the author's bucket (a burst of 50)
	// The router's queue of RPCs to a neighbour (32 by default) must hold
	// the lines published at once, or the sender drops some.
	raw := newRawPeer(t, room, pubsub.WithPeerOutboundQueueSize(4*n))
	h := newHost(t)
	r := newRoom(t, h, room, Options{DisablePresence: true})
	connect(t, raw.h, h)
	waitTopicPeer(t, r, raw.h.ID())
	raw.waitTopicPeer(t, h.ID())
	raw.meshWith(t, r)
	// Drain late probes.
	for drained := false; !drained; {
		select {
		case <-r.Messages():
		case <-time.After(300 * time.Millisecond):
			drained = true
		}
	}

	for i := range n {
		raw.publish(t, []byte(fmt.Sprintf("line %03d", i)))
	}
	var got []string
	for len(got) < n {
		m := nextMessage(t, r, 5*time.Second)
		if m.Text == "mesh probe" {
			continue
		}
		got = append(got, m.Text)
	}
	for i, text := range got {
		if want := fmt.Sprintf("line %03d", i); text != want {
			t.Fatalf("message %d is %q, want %q; all: %q", i, text, want, got)
		}
	}
}
