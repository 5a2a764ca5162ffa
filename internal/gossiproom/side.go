package gossiproom

import (
	"context"
	"errors"
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A SideTopic is a further topic that goes with the room, such as
// universal-connectivity's file topic (room + "-file"). Its messages are
// held to the same rules as chat lines: a size limit, a check of their
// content, and a token bucket per author, with the same blame (a bad
// message is rejected when its sender wrote it, ignored when it only
// forwarded it).
type SideTopic struct {
	r        *Room
	name     string
	maxBytes int
	check    func([]byte) error
	limit    *authorLimiter
	topic    *pubsub.Topic
	sub      *pubsub.Subscription
	messages chan SideMessage
}

// SideMessage is a message on a side topic from another peer.
type SideMessage struct {
	// ID is the message's ID, as FormatID renders it.
	ID string
	// From is the author, whose signature the router checked.
	From peer.ID
	// ReceivedFrom is the neighbour that handed it to us.
	ReceivedFrom peer.ID
	// Data passed the topic's size limit and check.
	Data []byte
}

// JoinSide joins and subscribes to the topic name, whose messages must be at
// most maxBytes, pass check (when not nil), and fit a bucket of burst
// messages refilled at rate a second per author. The topic is left when the
// Room closes; its Messages channel is then closed.
func (r *Room) JoinSide(name string, maxBytes int, rate float64, burst int, check func([]byte) error) (*SideTopic, error) {
	if maxBytes <= 0 || maxBytes > maxRPCBytes/2 || !(rate > 0) || burst < 1 {
		return nil, fmt.Errorf("side topic %q: bad limits", name)
	}
	// Held throughout, so that the check of the name below and the gate's
	// addSide are one step, and two calls cannot both take a name.
	r.sidesMu.Lock()
	defer r.sidesMu.Unlock()
	if r.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if r.gate.sizeLimit(name) != 0 {
		return nil, fmt.Errorf("side topic %q: already one of the room's topics", name)
	}
	t := &SideTopic{
		r:        r,
		name:     name,
		maxBytes: maxBytes,
		check:    check,
		limit:    newAuthorLimiter(rate, burst, 4*r.opts.MaxPresencePeers),
		messages: make(chan SideMessage, r.opts.QueueSize),
	}
	inline := pubsub.WithValidatorInline(true)
	if err := r.ps.RegisterTopicValidator(name, pubsub.ValidatorEx(t.validate), inline); err != nil {
		return nil, fmt.Errorf("side topic %q validator: %w", name, err)
	}
	var err error
	if t.topic, err = r.ps.Join(name); err != nil {
		return nil, fmt.Errorf("joining side topic %q: %w", name, err)
	}
	// Scored as the presence topic is: for invalid messages only, so that
	// a peer that floods the topic with bad ones is graylisted.
	if err := t.topic.SetScoreParams(presenceTopicScore()); err != nil {
		_ = t.topic.Close()
		return nil, fmt.Errorf("side topic %q scoring: %w", name, err)
	}
	if t.sub, err = t.topic.Subscribe(pubsub.WithBufferSize(r.opts.QueueSize)); err != nil {
		_ = t.topic.Close()
		return nil, fmt.Errorf("subscribing to side topic %q: %w", name, err)
	}
	r.gate.addSide(name, maxBytes)
	r.sides = append(r.sides, t)
	r.wg.Add(1)
	go t.loop()
	return t, nil
}

// Name returns the topic's name.
func (t *SideTopic) Name() string { return t.name }

// Messages returns the channel of other peers' messages on the topic. It
// holds QueueSize of them; while it is full, further ones are dropped for
// us (and still forwarded).
func (t *SideTopic) Messages() <-chan SideMessage { return t.messages }

// Publish publishes data on the topic. Our own messages are checked for
// size and content, not rate: the caller paces them.
func (t *SideTopic) Publish(ctx context.Context, data []byte) error {
	if t.r.ctx.Err() != nil {
		return ErrClosed
	}
	if len(data) > t.maxBytes {
		return fmt.Errorf("publishing on %q: %w", t.name, ErrTooLarge)
	}
	if t.check != nil {
		if err := t.check(data); err != nil {
			return fmt.Errorf("publishing on %q: %w", t.name, err)
		}
	}
	sealed, err := t.r.gate.seal(data)
	if err != nil {
		return fmt.Errorf("publishing on %q: %w", t.name, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(t.r.ctx, cancel)
	defer stop()
	if err := t.topic.Publish(ctx, sealed); err != nil {
		if t.r.ctx.Err() != nil || errors.Is(err, pubsub.ErrTopicClosed) {
			return ErrClosed
		}
		return fmt.Errorf("publishing on %q: %w", t.name, err)
	}
	return nil
}

func (t *SideTopic) validate(_ context.Context, src peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	data := msg.GetData()
	if src == t.r.self {
		return pubsub.ValidationAccept
	}
	author := msg.GetFrom()
	if t.r.gate.sealer != nil {
		plain, ok := t.r.gate.open(msg.GetTopic(), author, data)
		if !ok {
			return pubsub.ValidationReject
		}
		data = plain
		msg.ValidatorData = plain // for loop
	}
	switch {
	case len(data) > t.maxBytes:
		return blame(src, author)
	case t.check != nil && t.check(data) != nil:
		return blame(src, author)
	case !t.limit.allow(author, time.Now()):
		return blame(src, author)
	}
	return pubsub.ValidationAccept
}

// loop hands the topic's messages to Messages, without ever waiting on its
// reader, until the Room closes.
func (t *SideTopic) loop() {
	defer t.r.wg.Done()
	defer close(t.messages)
	for {
		m, err := t.sub.Next(t.r.ctx)
		if err != nil {
			return
		}
		if m.GetFrom() == t.r.self {
			continue
		}
		data := m.GetData()
		if plain, ok := m.ValidatorData.([]byte); ok {
			data = plain // a private room's, as the validator opened it
		}
		select {
		case t.messages <- SideMessage{ID: FormatID(m.Message), From: m.GetFrom(), ReceivedFrom: m.ReceivedFrom, Data: data}:
		default:
		}
	}
}

// close leaves the topic; Room.stop calls it before stopping the router.
func (t *SideTopic) close() {
	t.sub.Cancel()
	_ = t.topic.Close()
}
