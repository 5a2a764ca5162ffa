package gossiproom

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// blame decides between rejecting a bad message and ignoring it.
//
// Rejecting counts against the peer that handed the message to us (src),
// and against every peer that delivered a copy while it was validated; the
// router's score turns enough of that into graylisting. That is right when
// src is the author: it made the message. It is wrong when src only
// forwarded it: universal-connectivity's peers forward whatever is signed
// and under the library's 1 MiB limit, since they know neither our size
// limit, nor our rate limit, nor that we require UTF-8, and graylisting an
// honest relay for that would cut us off from the room. So a forwarded bad
// message is ignored: dropped, not forwarded, held against nobody. Its
// author still meets the same verdict wherever it hands its messages to one
// of our peers directly.
func blame(src, author peer.ID) pubsub.ValidationResult {
	if src == author {
		return pubsub.ValidationReject
	}
	return pubsub.ValidationIgnore
}

// gate is the Room's validation side: the checks the router runs on the
// chat and discovery topics before it delivers or forwards a message, the
// RPC inspector in front of them, and the size limits of all our topics.
// The router calls it on its own goroutines, so it owns what those read:
// the authors' token buckets (each with its own lock) and the side topics'
// limits (copied on write, so that readers take no lock). The presence
// topic's validator belongs to the presence side, which decodes the
// announcements it lets through.
type gate struct {
	self     peer.ID
	room     string
	maxBytes int // MaxMessageBytes
	// presTopic is the presence topic's name ("" when disabled), and
	// relayDiscovery says whether we relay BrowserDiscoveryTopic. Both are
	// fixed before the router starts, since its goroutines read them.
	presTopic      string
	relayDiscovery bool
	stats          *counters
	// pres is told of the authors of discovery records, which are signs
	// that they are in the room.
	pres *presence
	// dups drops the copies of a message already on its way (see
	// dupFilter).
	dups *dupFilter

	chatLimit *authorLimiter
	discLimit *authorLimiter // nil unless in UniversalConnectivity

	// sealer opens the payloads of a private room (nil otherwise), and
	// overhead is what it adds to their size.
	sealer   Sealer
	overhead int

	// sideLimits are the size limits of the side topics, which inspectRPC
	// reads on the router's goroutines; sideLimitsMu orders the writers.
	sideLimitsMu sync.Mutex
	sideLimits   atomic.Pointer[map[string]int]
}

// newGate prepares the validation side of the room; the counters are the
// Room's, shared so that Stats reports every drop in one place.
func newGate(self peer.ID, room, presTopic string, opts Options, stats *counters, pres *presence) *gate {
	g := &gate{
		self:      self,
		room:      room,
		maxBytes:  opts.MaxMessageBytes,
		presTopic: presTopic,
		stats:     stats,
		pres:      pres,
		chatLimit: newAuthorLimiter(opts.Rate, opts.Burst, 4*opts.MaxPresencePeers),
		sealer:    opts.Sealer,
	}
	g.overhead = sealOverhead(g.sealer)
	g.sideLimits.Store(&map[string]int{})
	if room == UniversalConnectivity {
		g.relayDiscovery = true
		g.discLimit = newAuthorLimiter(0.5, 5, 4*opts.MaxPresencePeers)
	}
	return g
}

// validateChat is the chat topic's validator. It runs inline on the
// router's validation workers (it is cheap), after the router has checked
// the signature and dropped duplicates.
//
// A line must be at most MaxMessageBytes and valid UTF-8: invalid UTF-8 is
// dropped, not passed on with a flag, because the topic's contract is text,
// every view would have to replace the bytes anyway, and a peer that sends
// them is broken or probing. Then the author's token bucket must have a
// token. Each failure is a rejection or an ignore, as blame decides.
//
// Our own lines pass here too (src is us) as the router validates them
// inside Publish: they are checked for size and UTF-8 only, since Publish
// paces them itself, and their ID is handed back to Publish.
func (g *gate) validateChat(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	author := msg.GetFrom()
	data := msg.GetData()
	if src == g.self {
		if len(data) > g.maxBytes+g.overhead || (g.sealer == nil && !utf8.Valid(data)) {
			return pubsub.ValidationReject
		}
		if tok, ok := msg.ValidatorData.(*publishToken); ok {
			tok.id = FormatID(msg.Message)
		}
		return pubsub.ValidationAccept
	}
	if g.sealer != nil {
		plain, ok := g.open(msg.GetTopic(), author, data)
		if !ok {
			g.stats.blamed.Add(1)
			return pubsub.ValidationReject
		}
		data = plain
		msg.ValidatorData = plain // the text, for chatLoop
	}
	var verdict pubsub.ValidationResult
	switch {
	case len(data) > g.maxBytes:
		g.stats.tooLarge.Add(1)
		verdict = blame(src, author)
	case !utf8.Valid(data):
		g.stats.invalidUTF8.Add(1)
		verdict = blame(src, author)
	case !g.chatLimit.allow(author, time.Now()):
		g.stats.rateLimited.Add(1)
		verdict = blame(src, author)
	default:
		return pubsub.ValidationAccept
	}
	if verdict == pubsub.ValidationReject {
		g.stats.blamed.Add(1)
	}
	return verdict
}

// validate is the presence topic's validator: an announcement must
// be at most MaxPresenceBytes (sealed, in a private room, and then open with
// the room's Sealer) and well formed (decodePresence), and fit its author's
// bucket (about three per presence interval, a burst of five).
//
// Malformed or oversized announcements are rejected or ignored as blame
// decides. Announcements over the rate are only ignored, whoever hands them
// to us: a peer of a later version may announce more often than we expect,
// and being dropped costs it nothing but freshness; a peer that floods the
// topic costs us one bucket check per message.
//
// The decoded announcement is left in msg.ValidatorData for readLoop.
func (p *presence) validate(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	data := msg.GetData()
	limit := MaxPresenceBytes + sealOverhead(p.opts.Sealer)
	if src == p.self {
		if len(data) > limit {
			return pubsub.ValidationReject
		}
		if c, ok := msg.ValidatorData.(*byeCapture); ok {
			c.done = p.tracer.watchSend(string(msg.GetFrom())+string(msg.GetSeqno()), c.want)
		} else if p.syncs() {
			// Our "here", signed: what our sync answers start with.
			if raw, err := proto.Marshal(msg.Message); err == nil {
				p.ownAnnouncement.Store(&raw)
			}
		}
		return pubsub.ValidationAccept
	}
	author := msg.GetFrom()
	if len(data) > limit {
		p.stats.badPresence.Add(1)
		return blame(src, author)
	}
	if !p.limit.allow(author, time.Now()) {
		p.stats.presenceLimited.Add(1)
		return pubsub.ValidationIgnore
	}
	if p.opts.Sealer != nil {
		// A private room's announcement: a member's, unaltered, not
		// played again (see Options.Sealer).
		plain, err := p.opts.Sealer.Open(msg.GetTopic(), author, data)
		if err != nil {
			p.stats.badPresence.Add(1)
			return blame(src, author)
		}
		data = plain
	}
	ann, err := decodePresence(data)
	if err != nil {
		p.stats.badPresence.Add(1)
		return blame(src, author)
	}
	msg.ValidatorData = ann
	return pubsub.ValidationAccept
}

// validateDiscovery is the validator of universal-connectivity's browser
// peer-discovery topic, which we only relay. Its records are not ours to
// judge beyond size and rate (a burst of 5, then one every 2 seconds from
// each author, five times the browsers' pace), so a record over either is
// ignored, never rejected. An
// accepted record is a sign that its author is in the room: the demo's
// browser peers publish one every 10 seconds and never announce themselves
// otherwise.
func (g *gate) validateDiscovery(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if len(msg.GetData()) > maxDiscoveryBytes {
		return pubsub.ValidationIgnore
	}
	author := msg.GetFrom()
	if src == g.self || author == g.self {
		return pubsub.ValidationAccept
	}
	if !g.discLimit.allow(author, time.Now()) {
		return pubsub.ValidationIgnore
	}
	g.pres.observeNow(observation{kind: obsDiscovery, peer: author})
	return pubsub.ValidationAccept
}

// inspectRPC runs on every RPC the router reads, before it queues the
// messages in it for validation. It removes the messages on our topics that
// are over their size limit and that the sender did not author: the
// validator would only ignore them (see blame), and keeping them out of the
// queue bounds what the queue holds to our limits rather than the router's
// 1 MiB. Oversized messages from their author go on to the validator, which
// rejects them and so penalizes the author. It also removes the copies of a
// presence announcement whose first copy is already on its way (see
// dupFilter).
//
// The router hands the inspector the RPC it is about to process and reads
// the messages from it afterwards, so filtering them in place is the way to
// drop some and keep the others (returning an error would drop them all).
func (g *gate) inspectRPC(from peer.ID, rpc *pubsub.RPC) error {
	kept := rpc.Publish[:0]
	now := time.Now()
	for _, m := range rpc.Publish {
		if limit := g.sizeLimit(m.GetTopic()); limit > 0 && len(m.GetData()) > limit && peer.ID(m.GetFrom()) != from {
			switch m.GetTopic() {
			case g.room:
				g.stats.tooLarge.Add(1)
			case BrowserDiscoveryTopic:
			default:
				g.stats.badPresence.Add(1)
			}
			continue
		}
		if g.dups != nil && g.presTopic != "" && m.GetTopic() == g.presTopic && !g.dups.first(m, now) {
			g.stats.duplicates.Add(1)
			continue
		}
		kept = append(kept, m)
	}
	clear(rpc.Publish[len(kept):]) // let the dropped messages go
	rpc.Publish = kept
	return nil
}

// sizeLimit returns the size limit of one of our topics, as it travels
// (sealed, in a private room), 0 for others.
func (g *gate) sizeLimit(topic string) int {
	switch {
	case topic == g.room:
		return g.maxBytes + g.overhead
	case g.presTopic != "" && topic == g.presTopic:
		return MaxPresenceBytes + g.overhead
	case g.relayDiscovery && topic == BrowserDiscoveryTopic:
		return maxDiscoveryBytes
	}
	if limit := (*g.sideLimits.Load())[topic]; limit > 0 {
		return limit + g.overhead
	}
	return 0
}

// sealOverhead is what sl adds to a payload; 0 without one.
func sealOverhead(sl Sealer) int {
	if sl == nil {
		return 0
	}
	return sl.Overhead()
}

// open opens a private room's payload, and reports false when it cannot:
// the author is not a member, or the payload was altered or played again.
func (g *gate) open(topic string, author peer.ID, data []byte) ([]byte, bool) {
	plain, err := g.sealer.Open(topic, author, data)
	return plain, err == nil
}

// seal seals a payload of ours, in a private room.
func (g *gate) seal(data []byte) ([]byte, error) {
	if g.sealer == nil {
		return data, nil
	}
	return g.sealer.Seal(data)
}

// addSide sets the size limit of a side topic. It stores a new map rather
// than changing the old one, so that inspectRPC, which reads the limits on
// the router's goroutines, takes no lock; the lock keeps two writers from
// losing each other's topic.
func (g *gate) addSide(name string, maxBytes int) {
	g.sideLimitsMu.Lock()
	defer g.sideLimitsMu.Unlock()
	sides := make(map[string]int, len(*g.sideLimits.Load())+1)
	for k, v := range *g.sideLimits.Load() {
		sides[k] = v
	}
	sides[name] = maxBytes
	g.sideLimits.Store(&sides)
}
