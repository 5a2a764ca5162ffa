package room

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event/eventtest"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

// A framedClient is an in-test peer that speaks our framed protocol by
// hand, to do what our own room never does: send a message twice, hold
// back receipts, announce a hostile nickname.
type framedClient struct {
	t      *testing.T
	h      host.Host
	st     network.Stream
	w      wire.Writer
	frames chan wire.Frame
}

// dialFramed connects h to p and opens a stream of our protocol, saying
// hello with nick.
func dialFramed(t *testing.T, h host.Host, p *roomPeer, nick string) *framedClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, addrInfo(p)); err != nil {
		t.Fatal(err)
	}
	st, err := h.NewStream(ctx, p.id(), Protocol)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	hello, err := wire.ExchangeHello(st, nick)
	if err != nil {
		t.Fatalf("client: hello: %v", err)
	}
	_ = st.SetDeadline(time.Time{})
	if hello.V != wire.Version {
		t.Errorf("client: hello says version %d, want %d", hello.V, wire.Version)
	}
	c := &framedClient{t: t, h: h, st: st, w: wire.Framed{}.NewWriter(st), frames: make(chan wire.Frame, 256)}
	go func() {
		defer close(c.frames)
		r := wire.Framed{}.NewReader(st)
		for {
			f, err := r.Read()
			if err != nil {
				return
			}
			c.frames <- f
		}
	}()
	return c
}

func (c *framedClient) send(f wire.Frame) {
	c.t.Helper()
	if err := c.w.Write(f); err != nil {
		c.t.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next frame of type typ the room sent, skipping others.
func (c *framedClient) next(typ string) wire.Frame {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("client: the stream ended while waiting for a %s frame", typ)
			}
			if f.Type == typ {
				return f
			}
		case <-timeout:
			c.t.Fatalf("client: no %s frame within 10s", typ)
		}
	}
}

// TestProtocolReceipts: between two of our peers, a line has an ID, is
// acknowledged, and the sender hears it was delivered, with who got it.
func TestProtocolReceipts(t *testing.T) {
	needHosts(t)
	a, b := startRoomPair(t, "receipts")
	a.room.Send("are you there?")
	a.events.WaitCount(t, 1, 5*time.Second, "sent", eventtest.Is(event.Sent, ""))
	var id string
	for _, e := range a.events.Snapshot() {
		if e.Kind == event.Sent {
			id = e.MsgIDs[0]
		}
	}
	if id == "" {
		t.Fatal("the sent event has no message ID")
	}
	b.events.WaitCount(t, 1, 5*time.Second, "message with its ID", func(e event.Event) bool {
		return e.Kind == event.Message && e.MsgID == id && e.Text == "are you there?"
	})
	a.events.WaitCount(t, 1, 5*time.Second, "delivered", func(e event.Event) bool {
		return e.Kind == event.Delivered && slices.Equal(e.MsgIDs, []string{id}) && e.Text == "are you there?" && slices.Equal(e.Peers, []string{b.id().String()}) && len(e.NoReceipt) == 0
	})
	if p := a.room.Pending(); len(p) != 0 {
		t.Errorf("/pending lists %+v after the receipt", p)
	}
}

// TestProtocolHeldAfterReceipt: a line acknowledged on our protocol leaves
// nothing in flight, and does not hide a line held after its peer left:
// the program lingers for that line and says it was not delivered. (The
// writer's flush of a framed line was once counted as a plain line
// written, which took the count of plain lines in flight below zero.)
func TestProtocolHeldAfterReceipt(t *testing.T) {
	needHosts(t)
	a, b := startRoomPair(t, "held after receipt")
	a.room.Send("you will get this")
	a.events.WaitCount(t, 1, 5*time.Second, "delivered", eventtest.Is(event.Delivered, ""))
	b.close()
	a.events.WaitCount(t, 1, 10*time.Second, "b left", eventtest.Is(event.Left, b.id()))
	if n, _ := a.room.ledger.inFlight(0); n != 0 {
		t.Errorf("%d lines in flight once the only one was acknowledged, want 0", n)
	}
	a.room.Send("nobody hears this")
	a.events.WaitCount(t, 1, 5*time.Second, "held", eventtest.Coded(event.Held))
	if n, ids := a.room.ledger.inFlight(10); n != 1 || len(ids) != 1 {
		t.Errorf("%d lines in flight (%q) with one held, want 1", n, ids)
	}
	a.room.Close(shutdownTimeout)
	if n := a.room.ReportUndelivered(); n != 1 {
		t.Errorf("%d lines reported undelivered, want the held one", n)
	}
}

// TestProtocolDropsDuplicates: a message sent again with the same ID (its
// receipt was lost) is shown once, and acknowledged each time.
func TestProtocolDropsDuplicates(t *testing.T) {
	needHosts(t)
	a := startRoomPeer(t, "duplicates", startRoomServer(t))
	c := dialFramed(t, newHostileHost(t), a, "dup")
	for _, f := range []wire.Frame{
		{Type: wire.TypeMsg, ID: "m1", Text: "once"},
		{Type: wire.TypeMsg, ID: "m1", Text: "once"},
		{Type: wire.TypeMsg, ID: "m2", Text: "twice is fine with two IDs"},
		{Type: wire.TypeMsg, ID: "m1", Text: "once"},
		{Type: "a-future-type", Text: "ignored"},
		{Type: wire.TypeMsg, ID: "m3", Text: "sentinel"},
	} {
		c.send(f)
	}
	a.events.WaitCount(t, 1, 5*time.Second, "sentinel", eventtest.Message(c.h.ID(), "sentinel"))
	var texts []string
	for _, e := range a.events.Snapshot() {
		if e.Kind == event.Message {
			texts = append(texts, e.Text)
		}
	}
	if want := []string{"once", "twice is fine with two IDs", "sentinel"}; !slices.Equal(texts, want) {
		t.Errorf("shown %q, want %q", texts, want)
	}
	acked := map[string]int{}
	for acked["m3"] == 0 {
		for _, id := range c.next(wire.TypeAck).IDs {
			acked[id]++
		}
	}
	if acked["m1"] != 3 || acked["m2"] != 1 {
		t.Errorf("acknowledged %v, want m1 three times and m2 once", acked)
	}
}

// TestProtocolResendsToReturningPeer: a line whose receipt has not come
// when the peer's session drops is sent again, with the same ID, when the
// peer comes back; then it counts as delivered.
func TestProtocolResendsToReturningPeer(t *testing.T) {
	needHosts(t)
	a := startRoomPeer(t, "resend", startRoomServer(t))
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The returning peer keeps its identity: two hosts with one key.
	first := dialFramed(t, newHostileHost(t, libp2p.Identity(key)), a, "away")
	a.events.WaitCount(t, 1, 5*time.Second, "joined", eventtest.Is(event.Joined, first.h.ID()))
	a.room.Send("did you get this?")
	m := first.next(wire.TypeMsg)
	// No receipt: the peer drops off.
	_ = first.h.Close()
	a.events.WaitCount(t, 1, 10*time.Second, "left", eventtest.Is(event.Left, first.h.ID()))
	a.events.WaitCount(t, 1, 5*time.Second, "not acknowledged yet", func(e event.Event) bool {
		return e.Kind == event.Info && e.Code == event.UnackedOnLeave && e.Count == 1
	})
	if p := a.room.Pending(); len(p) != 1 || p[0].MsgID != m.ID {
		t.Fatalf("/pending = %+v, want the one line", p)
	}

	back := dialFramed(t, newHostileHost(t, libp2p.Identity(key)), a, "away")
	again := back.next(wire.TypeMsg)
	if again.ID != m.ID || again.Text != m.Text {
		t.Fatalf("resent %+v, want %+v", again, m)
	}
	back.send(wire.Frame{Type: wire.TypeAck, IDs: []string{again.ID}})
	a.events.WaitCount(t, 1, 5*time.Second, "delivered after the return", func(e event.Event) bool {
		return e.Kind == event.Delivered && slices.Contains(e.MsgIDs, m.ID)
	})
	if n := a.events.Count(eventtest.Is(event.Error, "")); n != 0 {
		t.Errorf("%d error events: %+v", n, a.events.Snapshot())
	}
}

// TestProtocolNicknames: nicknames are shown instead of short IDs, peers
// that share one are told apart by the end of their peer ID, a change is
// announced, and a hostile nickname is cleaned before anyone sees it.
func TestProtocolNicknames(t *testing.T) {
	needHosts(t)
	server := startRoomServer(t)
	withNick := func(nick string) func(*node.Config, *Config) {
		return func(_ *node.Config, rc *Config) { rc.Nick = nick }
	}
	a := startRoomPeerWith(t, "nicknames", server, withNick("alice"))
	b := startRoomPeerWith(t, "nicknames", server, withNick("sam"))
	c := startRoomPeerWith(t, "nicknames", server, withNick("sam"))
	for _, p := range []*roomPeer{b, c} {
		a.events.WaitCount(t, 1, 15*time.Second, "a joined", eventtest.Is(event.Joined, p.id()))
		p.events.WaitCount(t, 1, 15*time.Second, "joined a", eventtest.Is(event.Joined, a.id()))
	}
	suffix := func(p *roomPeer) string { id := p.id().String(); return id[len(id)-nameSuffixLen:] }
	names := map[string]string{}
	for _, p := range a.room.PeerList() {
		names[p.Peer] = p.Name
	}
	if names[b.id().String()] != "sam~"+suffix(b) || names[c.id().String()] != "sam~"+suffix(c) {
		t.Fatalf("two sams are shown as %v, want each with its ID suffix", names)
	}
	b.room.Send("hi from b")
	a.events.WaitCount(t, 1, 5*time.Second, "b's message under its name", func(e event.Event) bool {
		return e.Kind == event.Message && e.Peer == b.id().String() && e.Nick == "sam" && e.Name == "sam~"+suffix(b)
	})

	// b takes another nickname: the room hears it, and c is plain "sam" again.
	if err := b.room.SetNick("bob"); err != nil {
		t.Fatal(err)
	}
	a.events.WaitCount(t, 1, 5*time.Second, "b is now bob", func(e event.Event) bool {
		return e.Kind == event.Nick && e.Peer == b.id().String() && e.Name == "bob" && e.Was == "sam~"+suffix(b)
	})
	a.events.WaitCount(t, 1, 5*time.Second, "c is plain sam again", func(e event.Event) bool {
		return e.Kind == event.Nick && e.Peer == c.id().String() && e.Name == "sam"
	})
	if err := b.room.SetNick("two words"); err == nil {
		t.Error("a nickname with a space was taken")
	}

	// A peer that takes our own nickname is told apart from us.
	d := dialFramed(t, newHostileHost(t), a, "alice")
	a.events.WaitCount(t, 1, 5*time.Second, "d joined as alice~", func(e event.Event) bool {
		return e.Kind == event.Joined && e.Peer == d.h.ID().String() && e.Name == "alice~"+d.h.ID().String()[len(d.h.ID().String())-nameSuffixLen:]
	})

	// A hostile nickname: terminal escapes, bidirectional overrides, a
	// fake disambiguation, a command, and far too long.
	evilNick := "/\x1b[2J\u202eroot~x7Qp\x07 " + strings.Repeat("A", 200)
	e := dialFramed(t, newHostileHost(t), a, evilNick)
	a.events.WaitCount(t, 1, 5*time.Second, "evil joined", eventtest.Is(event.Joined, e.h.ID()))
	for _, ev := range a.events.Snapshot() {
		if ev.Kind != event.Joined || ev.Peer != e.h.ID().String() {
			continue
		}
		if strings.ContainsAny(ev.Nick, "\x1b\x07\u202e~/ ") || len([]rune(ev.Nick)) > MaxNickRunes || ev.Nick == "" {
			t.Errorf("hostile nickname shown as %q", ev.Nick)
		}
		if !strings.HasPrefix(ev.Nick, "[2Jroot_x7Qp") {
			t.Errorf("hostile nickname cleaned to %q, want what is printable of it kept", ev.Nick)
		}
	}
}

// TestProtocolPrivateMessage: /msg reaches one peer only, marked private.
func TestProtocolPrivateMessage(t *testing.T) {
	needHosts(t)
	server := startRoomServer(t)
	a := startRoomPeerWith(t, "private", server, func(_ *node.Config, rc *Config) { rc.Nick = "alice" })
	b := startRoomPeerWith(t, "private", server, func(_ *node.Config, rc *Config) { rc.Nick = "bob" })
	c := startRoomPeerWith(t, "private", server, func(_ *node.Config, rc *Config) { rc.Nick = "carol" })
	for _, p := range []*roomPeer{b, c} {
		a.events.WaitCount(t, 1, 15*time.Second, "a joined", eventtest.Is(event.Joined, p.id()))
		p.events.WaitCount(t, 1, 15*time.Second, "joined a", eventtest.Is(event.Joined, a.id()))
	}
	bob, err := a.room.FindPeer("bob")
	if err != nil {
		t.Fatal(err)
	}
	a.room.SendTo(bob, "just between us")
	b.events.WaitCount(t, 1, 5*time.Second, "private message", func(e event.Event) bool {
		return e.Kind == event.Message && e.Private && e.Text == "just between us" && e.Name == "alice"
	})
	a.events.WaitCount(t, 1, 5*time.Second, "delivered to bob", func(e event.Event) bool {
		return e.Kind == event.Delivered && e.Private && slices.Equal(e.Peers, []string{b.id().String()})
	})
	a.room.Send("/slash, not a command")
	c.events.WaitCount(t, 1, 5*time.Second, "literal slash line", eventtest.Message(a.id(), "/slash, not a command"))
	for _, e := range c.events.Snapshot() {
		if e.Kind == event.Message && e.Text == "just between us" {
			t.Error("carol got the private line")
		}
	}
	var fe *FindError
	if _, err := a.room.FindPeer("nobody"); !errors.As(err, &fe) || fe.Code != event.NoSuchPeer || fe.Name != "nobody" {
		t.Errorf("FindPeer(nobody) = %v, want a %s FindError", err, event.NoSuchPeer)
	}
	peers := a.room.PeerList()
	if len(peers) != 2 || peers[0].Name != "bob" || peers[1].Name != "carol" || peers[0].Protocol != string(Protocol) || peers[0].Path != "direct" {
		t.Errorf("/peers = %+v", peers)
	}
}

// TestProtocolRefusesMalformedFrames: a frame that breaks the protocol
// resets the stream with a clear error, and the room goes on.
func TestProtocolRefusesMalformedFrames(t *testing.T) {
	needHosts(t)
	a, b := startRoomPair(t, "malformed")
	for i, bad := range []string{
		"this is not json\n",
		`{"type":"msg","text":"no id"}` + "\n",
		`{"type":"ack","ids":[]}` + "\n",
	} {
		c := dialFramed(t, newHostileHost(t), a, fmt.Sprintf("bad%d", i))
		if _, err := c.st.Write([]byte(bad)); err != nil {
			t.Fatal(err)
		}
		a.events.WaitCount(t, 1, 5*time.Second, "protocol error", func(e event.Event) bool {
			return e.Kind == event.Error && e.Peer == c.h.ID().String() && e.Code == event.ProtocolViolation && !e.Plain
		})
		a.events.WaitCount(t, 1, 5*time.Second, "bad peer left", eventtest.Is(event.Left, c.h.ID()))
	}
	b.room.Send("the room goes on")
	a.events.WaitCount(t, 1, 5*time.Second, "message after the attack", eventtest.Message(b.id(), "the room goes on"))
}

// TestProtocolFallsBackToPlain: a peer that speaks only the plain protocol
// (go-libp2p's example) is offered ours first, refuses it, and gets a
// plain chat; lines cross both ways without IDs or receipts.
func TestProtocolFallsBackToPlain(t *testing.T) {
	needHosts(t)
	a := startRoomPeer(t, "fallback", startRoomServer(t))
	plain := newHostileHost(t)
	lines := make(chan string, 16)
	plain.SetStreamHandler(plainProtocol, func(st network.Stream) {
		r := wire.Line{}.NewReader(st)
		for {
			f, err := r.Read()
			if err != nil {
				return
			}
			lines <- f.Text
		}
	})
	a.room.Offer(peer.AddrInfo{ID: plain.ID(), Addrs: plain.Addrs()})
	a.events.WaitCount(t, 1, 10*time.Second, "plain peer joined", func(e event.Event) bool {
		return e.Kind == event.Joined && e.Peer == plain.ID().String() && e.Protocol == string(plainProtocol) && e.Plain && e.Nick == ""
	})
	a.room.Send("plain and simple")
	select {
	case l := <-lines:
		if l != "plain and simple" {
			t.Errorf("the plain peer read %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the plain peer got no line")
	}
	time.Sleep(200 * time.Millisecond)
	if n := a.events.Count(eventtest.Is(event.Delivered, "")); n != 0 {
		t.Errorf("%d delivered events for a peer that cannot acknowledge", n)
	}
}
