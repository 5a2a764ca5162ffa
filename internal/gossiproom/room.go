package gossiproom

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// UniversalConnectivity is the room of libp2p's universal-connectivity
	// demo; in it the Room also relays BrowserDiscoveryTopic.
	UniversalConnectivity = "universal-connectivity"
	// BrowserDiscoveryTopic is where the demo's browser peers publish their
	// addresses for each other (@libp2p/pubsub-peer-discovery, every 10 s).
	BrowserDiscoveryTopic = "universal-connectivity-browser-peer-discovery"
	// PresenceSuffix makes the presence topic's name from the room's.
	PresenceSuffix = "/rendezvous-chat/presence/1"

	// maxRPCBytes is the router's limit on one RPC (several messages and
	// control data), the library's default: universal-connectivity's peers
	// use it too, and a lower one would make us reset their streams when
	// they batch messages.
	maxRPCBytes = pubsub.DefaultMaxMessageSize
	// maxDiscoveryBytes bounds a browser peer-discovery record: a public
	// key and a few addresses take a few hundred bytes.
	maxDiscoveryBytes = 16 << 10
	// announceTimeout bounds the publication of one announcement, and so
	// the time Close spends getting our "bye" into the router.
	announceTimeout = time.Second
	// scoreInspectPeriod is how often the router reports peer scores.
	scoreInspectPeriod = time.Second
	// validateQueueSize is the length of the router's validation queue.
	validateQueueSize = 256
)

var (
	// ErrClosed is returned by Publish and SetNick after Close.
	ErrClosed = errors.New("room closed")
	// ErrTooLarge is returned by Publish for a line over MaxMessageBytes.
	ErrTooLarge = errors.New("line too large")
	// ErrInvalidUTF8 is returned by Publish for a line that is not UTF-8.
	ErrInvalidUTF8 = errors.New("line is not valid UTF-8")
	// ErrOverRate is returned by TryPublish while we are over our own rate.
	ErrOverRate = errors.New("over the room's rate")
)

// PresenceTopic returns the name of a room's presence topic.
func PresenceTopic(room string) string { return room + PresenceSuffix }

// Message is a chat line from another peer.
type Message struct {
	// ID is the message's pubsub ID in printable form (see FormatID): the
	// same on every peer, so it can key receipts and deduplication.
	ID string
	// From is the author: the peer whose key signed the message, checked by
	// the router (StrictSign) before the message reached us.
	From peer.ID
	// Text is the line exactly as published: valid UTF-8, at most
	// MaxMessageBytes, but not sanitized; a view must sanitize it.
	Text string
	// ReceivedFrom is the neighbour that handed it to us: From itself, or
	// any peer that forwarded it.
	ReceivedFrom peer.ID
}

// FormatID renders a message's default pubsub ID (pubsub.DefaultMsgIdFn,
// the author's peer ID bytes followed by the sequence number bytes) as the
// author's peer ID, a slash, and the sequence number in hex, for example
// "12D3KooW…/18a3c1f2d4e5f607". A peer ID's bytes delimit themselves, so the
// rendering is one-to-one: two messages share it only if they share the
// pubsub ID.
func FormatID(m *pb.Message) string {
	return peer.ID(m.GetFrom()).String() + "/" + hex.EncodeToString(m.GetSeqno())
}

// A Room is a chat room on a GossipSub topic named exactly as the room,
// with signed messages (StrictSign) and the default message ID: the
// contract of libp2p's universal-connectivity chat. See the package
// documentation for presence, limits and scoring.
type Room struct {
	h     host.Host
	self  peer.ID
	room  string
	opts  Options
	stats counters

	ctx    context.Context // ends when the room closes; the router runs on it
	cancel context.CancelFunc
	wg     sync.WaitGroup // chatLoop, eventLoop and the side topics' loops

	ps         *pubsub.PubSub
	chat       *pubsub.Topic
	chatSub    *pubsub.Subscription
	chatEvents *pubsub.TopicEventHandler
	disc       *pubsub.Topic // nil unless in UniversalConnectivity
	discRelay  pubsub.RelayCancelFunc
	tracer     *tracer

	// The Room's two other jobs are types of their own, each with its own
	// state: gate decides what the router lets through on the chat and
	// discovery topics, and pres keeps the presence topic and table, with
	// its goroutines, which Close stops after the Room's own.
	gate *gate
	pres *presence

	pacer    *pacer
	messages chan Message

	scoresMu sync.Mutex
	scores   map[peer.ID]float64

	// neighbours are the chat topic's neighbours, from its events
	// (eventLoop), for AnyNeighbour.
	neighboursMu sync.Mutex
	neighbours   map[peer.ID]bool

	// sides are the side topics joined (JoinSide), which stop leaves; the
	// gate keeps their size limits.
	sidesMu sync.Mutex
	sides   []*SideTopic

	closeOnce sync.Once
}

// extraPubSubOptions lets this package's benchmarks and tests add router
// options (a tracer, a longer queue); it is nil otherwise.
var extraPubSubOptions []pubsub.Option

// New starts a GossipSub router on h, joins the topic named room and
// subscribes to it, and starts the presence topic (unless disabled).
//
// The router runs until Close, or until ctx ends, which stops the router
// and the Room's goroutines without a "bye"; Close must still be called to
// release the rest. A host carries at most one Room at a time: the
// router registers the host's GossipSub protocol handlers, and Close
// removes them. Use PubSub to join further topics on the same router.
func New(ctx context.Context, h host.Host, room string, opts Options) (*Room, error) {
	if room == "" {
		return nil, errors.New("gossip room: empty room name")
	}
	if strings.HasSuffix(room, PresenceSuffix) {
		// Its chat topic would be another room's presence topic.
		return nil, fmt.Errorf("gossip room %q: the name may not end in %q", room, PresenceSuffix)
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("gossip room %q: %w", room, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &Room{
		h:      h,
		self:   h.ID(),
		room:   room,
		opts:   opts,
		ctx:    ctx,
		cancel: cancel,
		// We publish at half the rate and burst we accept.
		pacer:    newPacer(opts.Rate/2, max(opts.Burst/2, 1)),
		messages: make(chan Message, opts.QueueSize),
		scores:   make(map[peer.ID]float64),
	}
	r.neighbours = make(map[peer.ID]bool)
	presTopic := ""
	if !opts.DisablePresence {
		presTopic = PresenceTopic(room)
	}
	dups := newDupFilter()
	r.tracer = &tracer{c: &r.stats, topics: map[string]bool{room: true}, dups: dups}
	if presTopic != "" {
		r.tracer.topics[presTopic] = true
	}
	r.pres = newPresence(ctx, h, presTopic, opts, &r.stats, r.tracer)
	r.gate = newGate(r.self, room, presTopic, opts, &r.stats, r.pres)
	r.gate.dups = dups
	if err := r.start(); err != nil {
		r.stop()
		return nil, fmt.Errorf("gossip room %q: %w", room, err)
	}
	return r, nil
}

// start creates the router, joins the topics and starts the goroutines.
func (r *Room) start() error {
	psOpts := []pubsub.Option{
		// StrictSign and the default message ID are the library's
		// defaults; they are spelled out because the universal-connectivity
		// contract depends on them.
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		// Flood publishing is off by default in v0.19.0: a line we
		// publish goes only to our mesh, which is empty until the first
		// heartbeat has grafted someone (100 ms after start, then every
		// second), so a line published right after we met our first
		// neighbour was silently lost. With it on, our own lines go to
		// every topic neighbour whose score is above PublishThreshold,
		// which the DialPolicy keeps to a handful; that is also what the
		// GossipSub v1.1 spec recommends against eclipse attacks.
		// Forwarding others' lines still follows the mesh.
		pubsub.WithFloodPublish(true),
		// The router drops a message when its validation queue is full,
		// before marking it seen and without blaming anyone: during a
		// flood forwarded by an honest relay, that can be an honest
		// peer's line, lost for good. The default queue (32) overflows
		// within one batched RPC; 256 absorbs a burst while the author's
		// bucket drops the flood. Memory stays bounded because inspectRPC
		// keeps oversized messages out of the queue (see the package doc).
		pubsub.WithValidateQueueSize(validateQueueSize),
		// One validation worker, not the library's NumCPU: with several,
		// messages of one author that arrive in order are validated in
		// parallel and delivered out of order, so a pasted paragraph, or
		// a burst of a peer's lines that win the race against its stream,
		// were shown shuffled. Validation (signature check, size, bucket)
		// is cheap enough for one worker.
		pubsub.WithValidateWorkers(1),
		pubsub.WithAppSpecificRpcInspector(r.gate.inspectRPC),
		pubsub.WithPeerScore(scoreParams(r.room, r.pres.name), scoreThresholds()),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(r.storeScores), scoreInspectPeriod),
		pubsub.WithRawTracer(r.tracer),
	}
	psOpts = append(psOpts, extraPubSubOptions...)
	if r.opts.Peers != nil {
		// The router's blacklist is the one check it makes everywhere: no
		// stream with a peer on it, nothing from it, nothing it authored
		// even when a listed peer passes it on.
		psOpts = append(psOpts, pubsub.WithBlacklist(onlyPeers{self: r.h.ID(), allowed: r.opts.Peers}))
	}
	ps, err := pubsub.NewGossipSub(r.ctx, r.h, psOpts...)
	if err != nil {
		return fmt.Errorf("starting gossipsub: %w", err)
	}
	r.ps = ps

	inline := pubsub.WithValidatorInline(true)
	if err := ps.RegisterTopicValidator(r.room, pubsub.ValidatorEx(r.gate.validateChat), inline); err != nil {
		return fmt.Errorf("chat topic validator: %w", err)
	}
	if r.chat, err = ps.Join(r.room); err != nil {
		return fmt.Errorf("joining chat topic: %w", err)
	}
	if r.chatEvents, err = r.chat.EventHandler(); err != nil {
		return fmt.Errorf("chat topic events: %w", err)
	}
	if r.chatSub, err = r.chat.Subscribe(pubsub.WithBufferSize(r.opts.QueueSize)); err != nil {
		return fmt.Errorf("subscribing to chat topic: %w", err)
	}

	if err := r.pres.join(ps); err != nil {
		return err
	}

	if r.gate.relayDiscovery {
		// We relay the browsers' discovery records without reading them:
		// Relay announces the topic and forwards what passes the
		// validator, and delivers nothing to us.
		if err := ps.RegisterTopicValidator(BrowserDiscoveryTopic, pubsub.ValidatorEx(r.gate.validateDiscovery), inline); err != nil {
			return fmt.Errorf("browser discovery validator: %w", err)
		}
		if r.disc, err = ps.Join(BrowserDiscoveryTopic); err != nil {
			return fmt.Errorf("joining browser discovery topic: %w", err)
		}
		if r.discRelay, err = r.disc.Relay(); err != nil {
			return fmt.Errorf("relaying browser discovery topic: %w", err)
		}
	}

	r.wg.Add(2)
	go r.chatLoop()
	go r.eventLoop()
	r.pres.start()
	if r.pres.syncs() {
		r.h.SetStreamHandler(SyncProtocol, r.pres.serveSync)
	}
	return nil
}

// Room returns the room's name, which is the chat topic's.
func (r *Room) Room() string { return r.room }

// PubSub returns the room's router, for joining further topics (such as
// universal-connectivity's file topic). Topics joined through it must be
// closed before Close.
func (r *Room) PubSub() *pubsub.PubSub { return r.ps }

// Messages returns the channel of other peers' chat lines. It holds
// QueueSize lines; while it is full, the router keeps forwarding the room's
// traffic to others but drops lines meant for us (Stats.SlowConsumer). It is
// closed by Close.
func (r *Room) Messages() <-chan Message { return r.messages }

// Presence returns the channel of joins, updates and leaves. It holds
// QueueSize events; past that, the oldest pending events are dropped
// (Stats.PresenceDropped), and Peers tells the current state. It is closed
// by Close.
func (r *Room) Presence() <-chan PresenceEvent { return r.pres.events() }

// Stats returns the counters.
func (r *Room) Stats() Stats { return r.stats.snapshot() }

// TopicPeers returns the peers we are connected to that subscribe to the
// chat topic: our neighbours in the room, not the whole room.
func (r *Room) TopicPeers() []peer.ID { return r.chat.ListPeers() }

// AnyNeighbour reports whether pred holds for one of the peers subscribed
// to the chat topic on a live connection, as the topic's events have told
// them so far. Unlike TopicPeers it does not wait on the router, so a
// caller may ask it for every line it sends.
func (r *Room) AnyNeighbour(pred func(peer.ID) bool) bool {
	r.neighboursMu.Lock()
	defer r.neighboursMu.Unlock()
	for p := range r.neighbours {
		if pred(p) {
			return true
		}
	}
	return false
}

// RoomConns returns how many room peers are connected (TopicPeers) and how
// many of those we dialed, the inputs of DialPolicy.
func (r *Room) RoomConns() (connected, outbound int) {
	for _, p := range r.chat.ListPeers() {
		connected++
		for _, c := range r.h.Network().ConnsToPeer(p) {
			if c.Stat().Direction == network.DirOutbound {
				outbound++
				break
			}
		}
	}
	return connected, outbound
}

// PeerScore returns a neighbour's GossipSub score as of the last second,
// and whether the router scored it.
func (r *Room) PeerScore(p peer.ID) (float64, bool) {
	r.scoresMu.Lock()
	defer r.scoresMu.Unlock()
	s, ok := r.scores[p]
	return s, ok
}

func (r *Room) storeScores(scores map[peer.ID]float64) {
	r.scoresMu.Lock()
	r.scores = scores
	r.scoresMu.Unlock()
}

// publishToken carries the ID of a message we publish out of our own
// validator, which the router runs synchronously inside Topic.Publish.
type publishToken struct{ id string }

// Publish publishes text on the chat topic, raw, and returns its message
// ID (FormatID). It waits while we are over our own rate (half the accepted
// one), until ctx ends. It returns once the router has taken the message:
// that says nothing about who receives it; TopicPeers tells whether anyone
// is connected.
func (r *Room) Publish(ctx context.Context, text string) (string, error) {
	if err := r.checkLine(text); err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.ctx, cancel)
	defer stop()
	if err := r.pacer.wait(ctx); err != nil {
		if r.ctx.Err() != nil {
			return "", ErrClosed
		}
		return "", fmt.Errorf("publishing: waiting for our rate limit: %w", err)
	}
	return r.publish(ctx, text)
}

// TryPublish is Publish without the wait: while we are over our own rate
// it returns ErrOverRate at once, and the line is not published. The chat
// uses it so that a paste never stalls the lines that go to its direct
// peers over streams.
func (r *Room) TryPublish(ctx context.Context, text string) (string, error) {
	if err := r.checkLine(text); err != nil {
		return "", err
	}
	if !r.pacer.take(time.Now()) {
		return "", ErrOverRate
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.ctx, cancel)
	defer stop()
	return r.publish(ctx, text)
}

// PublishRate returns the rate (lines a second) and burst at which we
// publish our own lines: half of what receivers accept.
func (r *Room) PublishRate() (rate float64, burst int) {
	return r.pacer.rate, int(r.pacer.burst)
}

// checkLine refuses what Publish must not send.
func (r *Room) checkLine(text string) error {
	if r.ctx.Err() != nil {
		return ErrClosed
	}
	if len(text) > r.opts.MaxMessageBytes {
		return fmt.Errorf("publishing %d bytes: %w (at most %d)", len(text), ErrTooLarge, r.opts.MaxMessageBytes)
	}
	if !utf8.ValidString(text) {
		return fmt.Errorf("publishing: %w", ErrInvalidUTF8)
	}
	return nil
}

// publish hands a line to the router, once its token is taken.
func (r *Room) publish(ctx context.Context, text string) (string, error) {
	tok := &publishToken{}
	data, err := r.gate.seal([]byte(text))
	if err != nil {
		return "", fmt.Errorf("publishing: %w", err)
	}
	if err := r.chat.Publish(ctx, data, pubsub.WithValidatorData(tok)); err != nil {
		if r.ctx.Err() != nil || errors.Is(err, pubsub.ErrTopicClosed) {
			return "", ErrClosed
		}
		return "", fmt.Errorf("publishing: %w", err)
	}
	if tok.id == "" {
		// Our validator always sets it; this would be a change in the
		// library's local validation.
		return "", errors.New("publishing: the router did not validate our message")
	}
	r.stats.published.Add(1)
	return tok.id, nil
}

// SetNick changes the nickname we announce; the announcement goes out
// within half a presence interval.
func (r *Room) SetNick(nick string) error { return r.pres.setNick(nick) }

// chatLoop hands other peers' lines from the subscription to Messages.
func (r *Room) chatLoop() {
	defer r.wg.Done()
	for {
		m, err := r.chatSub.Next(r.ctx)
		if err != nil {
			return
		}
		from := m.GetFrom()
		if from == r.self {
			// The router delivers our own lines to our subscription.
			continue
		}
		// A line is a sign of life; for universal-connectivity peers,
		// which do not announce themselves, often the only one. The
		// table's loop must never hold up the chat, so the sign is
		// dropped if the loop is busy: the next one will do.
		r.pres.observeNow(observation{kind: obsChat, peer: from})
		text := m.Data
		if plain, ok := m.ValidatorData.([]byte); ok {
			text = plain // a private room's line, as the validator opened it
		}
		msg := Message{ID: FormatID(m.Message), From: from, Text: string(text), ReceivedFrom: m.ReceivedFrom}
		select {
		case r.messages <- msg:
			r.stats.delivered.Add(1)
		case <-r.ctx.Done():
			return
		}
	}
}

// eventLoop turns the chat topic's subscription changes among our
// neighbours into presence observations.
func (r *Room) eventLoop() {
	defer r.wg.Done()
	for {
		ev, err := r.chatEvents.NextPeerEvent(r.ctx)
		if err != nil {
			return
		}
		o := observation{kind: obsTopicJoin, peer: ev.Peer}
		r.neighboursMu.Lock()
		if ev.Type == pubsub.PeerLeave {
			o.kind = obsTopicLeave
			delete(r.neighbours, ev.Peer)
		} else {
			r.neighbours[ev.Peer] = true
		}
		r.neighboursMu.Unlock()
		if !r.pres.observe(o) {
			return
		}
	}
}

// Close says "bye" on the presence topic, leaves the topics, stops the
// router and waits for the room's goroutines; then it closes Messages and
// Presence. It does not close the host. It is safe to call more than once.
func (r *Room) Close() error {
	r.closeOnce.Do(func() {
		r.pres.bye()
		r.stop()
	})
	return nil
}

// stop leaves the topics, ends the router and the goroutines, and removes
// the router's stream handlers from the host. It also cleans up after a
// failed start, so the router, the topics and the subscriptions may still
// be nil (the gate and the presence side are made before start).
func (r *Room) stop() {
	r.h.RemoveStreamHandler(SyncProtocol)
	// Cancelling the subscriptions while the router runs tells our
	// neighbours at once that we left the topics.
	if r.chatSub != nil {
		r.chatSub.Cancel()
	}
	r.pres.leaveTopic()
	if r.chatEvents != nil {
		r.chatEvents.Cancel()
	}
	if r.discRelay != nil {
		r.discRelay()
	}
	r.sidesMu.Lock()
	for _, t := range r.sides {
		t.close()
	}
	r.sidesMu.Unlock()
	for _, t := range []*pubsub.Topic{r.chat, r.disc} {
		if t != nil {
			_ = t.Close() // fails only if the router already stopped
		}
	}
	r.cancel()
	r.wg.Wait()
	// The presence goroutines run on a context derived from ours, so they
	// are ending too; close waits for them before it closes Presence.
	r.pres.close()
	if r.ps != nil {
		for _, id := range pubsub.GossipSubDefaultProtocols {
			r.h.RemoveStreamHandler(id)
		}
	}
	close(r.messages)
}

// onlyPeers is a pubsub blacklist that holds everyone but the allowed peers
// (Options.Peers) and ourselves.
type onlyPeers struct {
	self    peer.ID
	allowed func(peer.ID) bool
}

func (o onlyPeers) Add(peer.ID) bool { return false }

func (o onlyPeers) Contains(p peer.ID) bool { return p != o.self && !o.allowed(p) }
