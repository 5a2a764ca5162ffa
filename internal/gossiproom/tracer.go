package gossiproom

import (
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Stats counts what happened to messages on the room's topics. Every field
// counts since New.
type Stats struct {
	// Published counts our own chat lines; Delivered the lines of others
	// handed to Messages.
	Published, Delivered uint64
	// TooLarge, InvalidUTF8 and RateLimited count chat lines our validator
	// dropped, for each reason. Blamed counts those of them that were
	// rejected (held against the peer that sent them, because it was their
	// author) rather than ignored (forwarded by someone else).
	TooLarge, InvalidUTF8, RateLimited, Blamed uint64
	// BadPresence counts presence announcements dropped as malformed or
	// too large; PresenceLimited those over their author's rate.
	BadPresence, PresenceLimited uint64
	// Unsigned and BadSignature count messages the router dropped before
	// our validators: without a signature, or with a wrong one.
	Unsigned, BadSignature uint64
	// QueueFull counts messages the router dropped because its validation
	// queue was full (a flood arriving faster than validation).
	QueueFull uint64
	// Announced counts our own presence announcements, and Synced the
	// announcements of others we took from our neighbours' syncs (see
	// SyncProtocol).
	Announced, Synced uint64
	// Duplicates counts the copies of a presence announcement dropped as
	// they arrived, while its first copy was on its way through the router
	// (see dupFilter).
	Duplicates uint64
	// SlowConsumer counts messages the router could not hand to our reader
	// because its buffer was full: the reader waits on a consumer of
	// Messages that does not keep up.
	SlowConsumer uint64
	// PresenceDropped counts presence events dropped because nobody read
	// Presence; PresenceFull counts signs of peers left out of a full
	// presence table (a peer may be counted more than once).
	PresenceDropped, PresenceFull uint64
}

// counters are the live Stats.
type counters struct {
	published, delivered                        atomic.Uint64
	tooLarge, invalidUTF8, rateLimited          atomic.Uint64
	blamed, badPresence, presenceLimited        atomic.Uint64
	unsigned, badSignature, queueFull           atomic.Uint64
	slowConsumer, presenceDropped, presenceFull atomic.Uint64
	duplicates, announced, synced               atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Published:       c.published.Load(),
		Delivered:       c.delivered.Load(),
		TooLarge:        c.tooLarge.Load(),
		InvalidUTF8:     c.invalidUTF8.Load(),
		RateLimited:     c.rateLimited.Load(),
		Blamed:          c.blamed.Load(),
		BadPresence:     c.badPresence.Load(),
		PresenceLimited: c.presenceLimited.Load(),
		Unsigned:        c.unsigned.Load(),
		BadSignature:    c.badSignature.Load(),
		QueueFull:       c.queueFull.Load(),
		Duplicates:      c.duplicates.Load(),
		Announced:       c.announced.Load(),
		Synced:          c.synced.Load(),
		SlowConsumer:    c.slowConsumer.Load(),
		PresenceDropped: c.presenceDropped.Load(),
		PresenceFull:    c.presenceFull.Load(),
	}
}

// tracer is the pubsub.RawTracer through which the router tells us what it
// dropped before our validators, and when a message was written to a peer
// (which Close uses to know that our "bye" has left).
type tracer struct {
	c      *counters
	topics map[string]bool // ours; fixed before the router starts
	dups   *dupFilter      // told of the copies the router dropped unjudged

	mu    sync.Mutex
	watch *sendWatch
}

// sendWatch waits for one message to be written to a number of peers.
type sendWatch struct {
	rawID string
	want  int
	peers map[peer.ID]bool
	done  chan struct{}
}

var _ pubsub.RawTracer = (*tracer)(nil)

// watchSend starts watching for the message with the raw ID rawID (as
// pubsub.DefaultMsgIdFn forms it) to be written to want peers; the channel
// is closed when it has.
func (t *tracer) watchSend(rawID string, want int) <-chan struct{} {
	w := &sendWatch{rawID: rawID, want: want, peers: make(map[peer.ID]bool), done: make(chan struct{})}
	if want <= 0 {
		close(w.done)
		return w.done
	}
	t.mu.Lock()
	t.watch = w
	t.mu.Unlock()
	return w.done
}

func (t *tracer) RejectMessage(msg *pubsub.Message, reason string) {
	if reason == pubsub.RejectValidationQueueFull || reason == pubsub.RejectValidationThrottled {
		t.dups.forget(msg.Message)
	}
	if !t.topics[msg.GetTopic()] {
		return
	}
	switch reason {
	case pubsub.RejectMissingSignature:
		t.c.unsigned.Add(1)
	case pubsub.RejectInvalidSignature:
		t.c.badSignature.Add(1)
	case pubsub.RejectValidationQueueFull:
		t.c.queueFull.Add(1)
	}
}

func (t *tracer) UndeliverableMessage(msg *pubsub.Message) {
	if t.topics[msg.GetTopic()] {
		t.c.slowConsumer.Add(1)
	}
}

func (t *tracer) SendRPCCompleted(rpc *pubsub.RPC, p peer.ID, _ time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.watch
	if w == nil {
		return
	}
	for _, m := range rpc.GetPublish() {
		if string(m.GetFrom())+string(m.GetSeqno()) != w.rawID {
			continue
		}
		w.peers[p] = true
		if len(w.peers) >= w.want {
			close(w.done)
			t.watch = nil
		}
		return
	}
}

// The rest of pubsub.RawTracer is of no use here.

func (t *tracer) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (t *tracer) OnClosedOutboundStream(peer.ID)           {}
func (t *tracer) Join(string)                              {}
func (t *tracer) Leave(string)                             {}
func (t *tracer) Graft(peer.ID, string)                    {}
func (t *tracer) Prune(peer.ID, string)                    {}
func (t *tracer) ValidateMessage(*pubsub.Message)          {}
func (t *tracer) DeliverMessage(*pubsub.Message)           {}
func (t *tracer) DuplicateMessage(*pubsub.Message)         {}
func (t *tracer) ThrottlePeer(peer.ID)                     {}
func (t *tracer) RecvRPC(*pubsub.RPC)                      {}
func (t *tracer) SendRPC(*pubsub.RPC, peer.ID)             {}
func (t *tracer) DropRPC(*pubsub.RPC, peer.ID)             {}
