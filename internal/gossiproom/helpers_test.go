package gossiproom

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Every test host listens on 127.0.0.1 only and dials only other test hosts.

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func connect(t *testing.T, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connecting %s to %s: %v", a.ID(), b.ID(), err)
	}
}

func newRoom(t *testing.T, h host.Host, room string, opts Options) *Room {
	t.Helper()
	r, err := New(context.Background(), h, room, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitTopicPeer waits until r's chat topic shows p as a neighbour.
func waitTopicPeer(t *testing.T, r *Room, p peer.ID) {
	t.Helper()
	eventually(t, 10*time.Second, "topic neighbour "+p.String(), func() bool {
		for _, q := range r.TopicPeers() {
			if q == p {
				return true
			}
		}
		return false
	})
}

// nextMessage returns r's next message, failing after d.
func nextMessage(t *testing.T, r *Room, d time.Duration) Message {
	t.Helper()
	select {
	case m, ok := <-r.Messages():
		if !ok {
			t.Fatal("messages channel closed")
		}
		return m
	case <-time.After(d):
		t.Fatalf("no message within %v", d)
	}
	return Message{}
}

// rawPeer is a peer that speaks only plain GossipSub on a topic, as
// universal-connectivity's peers do.
type rawPeer struct {
	h     host.Host
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	sub   *pubsub.Subscription
}

func newRawPeer(t *testing.T, topic string, opts ...pubsub.Option) *rawPeer {
	t.Helper()
	h := newHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := ps.Join(topic)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := tp.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	return &rawPeer{h: h, ps: ps, topic: tp, sub: sub}
}

func (p *rawPeer) publish(t *testing.T, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.topic.Publish(ctx, data); err != nil {
		t.Fatal(err)
	}
}

// waitRawTopicPeer waits until the raw peer sees p on its topic.
func (p *rawPeer) waitTopicPeer(t *testing.T, q peer.ID) {
	t.Helper()
	eventually(t, 10*time.Second, "raw topic neighbour", func() bool {
		for _, x := range p.topic.ListPeers() {
			if x == q {
				return true
			}
		}
		return false
	})
}

// meshWith waits until the raw peer's lines reach r. A plain GossipSub
// peer (flood publishing is off by default in go-libp2p-pubsub v0.19.0)
// sends its lines only to its mesh, which its first heartbeat after meeting
// r forms; until then its lines are lost. The probes are drained from r.
func (p *rawPeer) meshWith(t *testing.T, r *Room) {
	t.Helper()
	eventually(t, 10*time.Second, "the raw peer's mesh", func() bool {
		p.publish(t, []byte("mesh probe"))
		deadline := time.After(300 * time.Millisecond)
		for {
			select {
			case m := <-r.Messages():
				if m.Text == "mesh probe" && m.From == p.h.ID() {
					return true
				}
			case <-deadline:
				return false
			}
		}
	})
}
