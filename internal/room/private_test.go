package room

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event/eventtest"
	"github.com/rendezvous-chat/rendezvous-chat/internal/gossiproom"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
	"github.com/rendezvous-chat/rendezvous-chat/internal/privroom"
	"github.com/rendezvous-chat/rendezvous-chat/internal/ucfile"
	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

// The keys of two private rooms with one rendezvous string: derived once,
// since each derivation costs about a second on purpose.
const privateRendezvous = "private room test"

var privateKeys = sync.OnceValues(func() ([2]*privroom.Room, error) {
	var keys [2]*privroom.Room
	for i, pass := range []string{"correct horse battery staple", "another passphrase entirely"} {
		k, err := privroom.Derive(pass, privateRendezvous)
		if err != nil {
			return keys, err
		}
		keys[i] = k
	}
	return keys, nil
})

// startPrivatePeer starts a peer of the private room with key k (nil: an
// open room of the same rendezvous string), with the room's topic on.
func startPrivatePeer(t *testing.T, server peer.AddrInfo, k *privroom.Room) *roomPeer {
	t.Helper()
	events := eventtest.New()
	rendezvous, topic := privateRendezvous, privateRendezvous
	nodeCfg := loopbackNodeConfig(t, rendezvous, []peer.AddrInfo{server}, false)
	roomCfg := Config{Protocols: testProtocols(), Formats: testFormats(), Version: "test"}
	if k != nil {
		nodeCfg.Rendezvous, topic = k.Rendezvous(), k.Topic()
		roomCfg.Protocols, roomCfg.Private = testProtocols()[:1], k
	}
	nodeCfg.ChatProtocols = roomCfg.Protocols
	n, err := node.New(nodeCfg, events.Emit)
	if err != nil {
		t.Fatal(err)
	}
	r := New(n.Host, roomCfg, events.Emit)
	if err := r.JoinTopic(TopicConfig{Topic: topic}); err != nil {
		t.Fatal(err)
	}
	n.Start(r.Offer)
	p := &roomPeer{node: n, room: r, events: events}
	t.Cleanup(p.close)
	return p
}

// TestPrivateRoom: members meet and chat; a stranger with the same
// rendezvous string and no passphrase, or another passphrase, never does,
// even when it dials a member directly; and a raw subscriber of the room's
// topic, which a stranger cannot even name, sees only ciphertext.
func TestPrivateRoom(t *testing.T) {
	needHosts(t)
	keys, err := privateKeys()
	if err != nil {
		t.Fatal(err)
	}
	server := startRoomServer(t)
	a := startPrivatePeer(t, server, keys[0])
	b := startPrivatePeer(t, server, keys[0])
	a.events.WaitCount(t, 1, 15*time.Second, "a joined b", eventtest.Is(event.Joined, b.id()))
	b.events.WaitCount(t, 1, 15*time.Second, "b joined a", eventtest.Is(event.Joined, a.id()))

	// A raw subscriber on the room's topic: what members publish there is
	// ciphertext to it.
	raw := newRawTopicPeer(t, keys[0].Topic())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := raw.h.Connect(ctx, addrInfo(a)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the raw peer is a topic neighbour: a publishes
	a.room.Send("for members only")
	b.events.WaitCount(t, 1, 5*time.Second, "b got a's line", eventtest.Message(a.id(), "for members only"))
	m := raw.next(t, keys[0].Topic(), a.id(), 5*time.Second)
	if bytes.Contains(m.GetData(), []byte("members")) {
		t.Errorf("the topic carries the line in the clear: %q", m.GetData())
	}

	// Strangers: the same rendezvous string without a passphrase, and
	// another passphrase. They may find each other; never a member.
	open := startPrivatePeer(t, server, nil)
	other := startPrivatePeer(t, server, keys[1])
	for _, s := range []*roomPeer{open, other} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.node.Host.Connect(ctx, addrInfo(a))
		cancel()
		s.room.Offer(addrInfo(a)) // dial a member directly
	}
	// An intruder speaks our framed protocol straight to a member, twice:
	// it is refused both times, and said once.
	c := newHostileHost(t)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := c.Connect(ctx2, addrInfo(a)); err == nil {
		for range 2 {
			st, err := c.NewStream(ctx2, a.id(), Protocol)
			if err != nil {
				continue
			}
			_ = st.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := wire.ExchangeHello(st, "intruder"); err == nil {
				w := wire.Framed{}.NewWriter(st)
				_ = w.Write(wire.Frame{Type: wire.TypeMsg, ID: "x1", Text: "let me in"})
				_ = w.Flush()
			}
			// Its reset, once a has refused it, ends the attempt.
			_, _ = st.Read(make([]byte, 1))
		}
		if st, err := c.NewStream(ctx2, a.id(), plainProtocol); err == nil {
			_, _ = st.Write([]byte("plain hello\n"))
		}
	}
	a.events.WaitCount(t, 1, 10*time.Second, "a refused a stranger", eventtest.Coded(event.NotMember))
	// The raw subscriber has been a's topic neighbour since before the
	// line; a subscription alone once made it a member once its pending
	// join (sessionGrace) ran out, a few seconds after it connected. Wait
	// well past that, counted from now, so that a member would have shown
	// it by the check.
	time.Sleep(3*time.Second + 2*sessionGrace)
	for _, member := range []*roomPeer{a, b} {
		for _, s := range []peer.ID{open.id(), other.id(), c.ID(), raw.h.ID()} {
			if n := member.events.Count(eventtest.Is(event.Joined, s)) + member.events.Count(eventtest.Is(event.Message, s)); n != 0 {
				t.Errorf("a member showed a stranger (%s): %d joined or message events", event.ShortID(s), n)
			}
		}
	}
	if n := a.events.Count(refusedNote(c.ID())); n != 1 {
		t.Errorf("the intruder that tried twice was said %d times, want once", n)
	}
	for _, s := range []*roomPeer{open, other} {
		for _, member := range []peer.ID{a.id(), b.id()} {
			if n := s.events.Count(eventtest.Is(event.Joined, member)); n != 0 {
				t.Errorf("a stranger joined a member (%s)", event.ShortID(member))
			}
		}
	}
	// The members still chat.
	b.room.Send("still just us")
	a.events.WaitCount(t, 1, 5*time.Second, "a got b's line", eventtest.Message(b.id(), "still just us"))
}

// refusedNote accepts the not_member notes about p.
func refusedNote(p peer.ID) func(event.Event) bool {
	id := p.String()
	return func(e event.Event) bool { return e.Code == event.NotMember && e.Peer == id }
}

// testSealer seals and opens a private room's payloads for a peer that is
// no room.Room: a member that speaks the topic only.
type testSealer struct {
	keys *privroom.Room
	self peer.ID
	seq  privroom.Counter
}

func (ts *testSealer) Seal(data []byte) ([]byte, error) {
	return ts.keys.Seal(ts.self, ts.seq.Next(), data)
}

func (ts *testSealer) Open(_ string, author peer.ID, sealed []byte) ([]byte, error) {
	_, plain, err := ts.keys.Open(author, sealed)
	return plain, err
}

func (ts *testSealer) Overhead() int { return privroom.Overhead }

// TestPrivateTopicOnlyMember: a member that holds the key but offers no
// chat protocol (it speaks the sealed topics alone) is still shown, from
// its sealed announcement, as the subscription alone no longer shows
// anyone in a private room; and, having no admitted session, it gets no
// direct message and serves no file: /msg and /get to it say not_admitted.
func TestPrivateTopicOnlyMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	keys, err := privateKeys()
	if err != nil {
		t.Fatal(err)
	}
	server := startRoomServer(t)
	a := startPrivatePeer(t, server, keys[0])

	h := newHostileHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, err := gossiproom.New(ctx, h, keys[0].Topic(), gossiproom.Options{Nick: "gossiper", Sealer: &testSealer{keys: keys[0], self: h.ID()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	side, err := g.JoinSide(ucfile.Topic(keys[0].Topic()), ucfile.MaxIDBytes, fileTopicRate, fileTopicBurst, nil)
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	if err := h.Connect(cctx, addrInfo(a)); err != nil {
		t.Fatal(err)
	}
	a.events.WaitCount(t, 1, 15*time.Second, "a showed the topic-only member", eventtest.Is(event.Joined, h.ID()))

	// Its lines are shown; a waits until it has a mesh peer to publish to.
	deadline := time.Now().Add(10 * time.Second)
	for a.events.Count(eventtest.Message(h.ID(), "by the topic")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a never showed the topic-only member's line")
		}
		if _, err := g.Publish(ctx, "by the topic"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}

	a.room.SendTo(h.ID(), "psst")
	a.events.WaitCount(t, 1, 5*time.Second, "/msg refused", func(e event.Event) bool {
		return e.Code == event.NotAdmitted && e.Command == "/msg" && e.Peer == h.ID().String()
	})

	const fileID = "not-admitted-file"
	if err := side.Publish(ctx, ucfile.Announcement(fileID)); err != nil {
		t.Fatal(err)
	}
	a.events.WaitCount(t, 1, 5*time.Second, "a showed the file", func(e event.Event) bool {
		return e.Kind == event.File && e.FileID == fileID
	})
	a.room.Fetch(fileID, "")
	a.events.WaitCount(t, 1, 5*time.Second, "/get refused", func(e event.Event) bool {
		return e.Code == event.NotAdmitted && e.Command == "/get" && e.Peer == h.ID().String()
	})
	if n := a.events.Count(eventtest.Is(event.Transfer, h.ID())); n != 0 {
		t.Errorf("a started %d transfers from a peer it never admitted", n)
	}
}
