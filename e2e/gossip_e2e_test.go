//go:build linux

package e2e

// End-to-end tests of the room on GossipSub (issue 8), on the real binary:
// a peer that speaks only raw GossipSub on the room's topic, as
// libp2p's universal-connectivity peers do, chats with ours both ways;
// direct messages (/msg, /universal-connectivity/dm/1.0.0); files (/send,
// /get, /universal-connectivity-file/1); and a flood on the topic.
//
// The in-test peers are libp2p hosts on 127.0.0.1 that dial only the
// binaries, whose addresses come from their ready events; the binaries
// bootstrap from a loopback server with mDNS off, as in e2e_test.go.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/room"
	"github.com/rendezvous-chat/rendezvous-chat/internal/ucdm"
	"github.com/rendezvous-chat/rendezvous-chat/internal/ucfile"
)

// gossipPeer is an in-test peer that speaks only plain GossipSub, with
// go-libp2p-pubsub's defaults (StrictSign, the default message ID, no flood
// publishing), on the room's topic and its file topic, as
// universal-connectivity's peers do. It can also serve and send direct
// messages (ucdm). Everything it receives is recorded.
type gossipPeer struct {
	h         host.Host
	ps        *pubsub.PubSub
	topic     *pubsub.Topic
	fileTopic *pubsub.Topic

	mu      sync.Mutex
	got     []*pubsub.Message // from others, on the chat topic
	own     map[string][]byte // our own lines, text → sequence number
	changed chan struct{}

	// refuseDMs makes the direct-message handler answer ERROR.
	refuseDMs atomic.Bool
	dms       chan ucdm.Request
}

func newGossipPeer(t *testing.T, room string) *gossipPeer {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = h.Close()
	})
	ps, err := pubsub.NewGossipSub(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	g := &gossipPeer{h: h, ps: ps, own: make(map[string][]byte), changed: make(chan struct{}),
		dms: make(chan ucdm.Request, 16)}
	if g.topic, err = ps.Join(room); err != nil {
		t.Fatal(err)
	}
	sub, err := g.topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	if g.fileTopic, err = ps.Join(ucfile.Topic(room)); err != nil {
		t.Fatal(err)
	}
	fileSub, err := g.fileTopic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { // the file topic is only joined, for its mesh
		for {
			if _, err := fileSub.Next(ctx); err != nil {
				return
			}
		}
	}()
	go g.read(ctx, sub)
	h.SetStreamHandler(ucdm.ProtocolID, ucdm.Handler(func(_ peer.ID, req ucdm.Request) ucdm.Response {
		select {
		case g.dms <- req:
		default:
		}
		if g.refuseDMs.Load() {
			return ucdm.Refuse("test", "the test peer refuses this one")
		}
		return ucdm.OK("test")
	}))
	return g
}

func (g *gossipPeer) read(ctx context.Context, sub *pubsub.Subscription) {
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			return
		}
		g.mu.Lock()
		if m.GetFrom() == g.h.ID() {
			g.own[string(m.Data)] = m.GetSeqno()
		} else {
			g.got = append(g.got, m)
		}
		close(g.changed)
		g.changed = make(chan struct{})
		g.mu.Unlock()
	}
}

func (g *gossipPeer) id() string { return g.h.ID().String() }

// connect connects the peer to a binary, at the address of its ready event.
func (g *gossipPeer) connect(t *testing.T, addr string) peer.ID {
	t.Helper()
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	if err := g.h.Connect(ctx, *ai); err != nil {
		t.Fatalf("gossip peer: connect to %s: %v", addr, err)
	}
	return ai.ID
}

// waitTopicPeers waits until the peer sees every one of ids subscribed to
// the chat topic.
func (g *gossipPeer) waitTopicPeers(t *testing.T, ids ...peer.ID) {
	t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for {
		peers := g.topic.ListPeers()
		all := true
		for _, id := range ids {
			all = all && slices.Contains(peers, id)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gossip peer: topic neighbours %v after %v, want %v", peers, eventTimeout, ids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publish publishes data on the chat topic.
func (g *gossipPeer) publish(t *testing.T, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	if err := g.topic.Publish(ctx, data); err != nil {
		t.Fatalf("gossip peer: publish: %v", err)
	}
}

// meshWith publishes probes until each of ps has shown one. A plain
// GossipSub peer sends its lines only to its mesh, which its first
// heartbeat after meeting a peer grafts (go-libp2p-pubsub v0.19.0 has flood
// publishing off by default): until then its lines are lost.
func (g *gossipPeer) meshWith(t *testing.T, ps ...*e2e.Proc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		probe := fmt.Sprintf("mesh probe %d", i)
		g.publish(t, []byte(probe))
		pending := false
		for _, p := range ps {
			if len(p.All(event.Message, func(e e2e.Event) bool {
				return e.Peer == g.id() && strings.HasPrefix(e.Text, "mesh probe ")
			})) == 0 {
				pending = true
			}
		}
		if !pending {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gossip peer: no probe shown by every binary after %d tries", i+1)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// waitMessage waits for a line from author on the chat topic with the data
// text.
func (g *gossipPeer) waitMessage(t *testing.T, author peer.ID, text string) *pubsub.Message {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		g.mu.Lock()
		for _, m := range g.got {
			if m.GetFrom() == author && string(m.Data) == text {
				g.mu.Unlock()
				return m
			}
		}
		changed := g.changed
		g.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("gossip peer: no line %q from %s within %v", text, author, eventTimeout)
		}
	}
}

// count returns how many lines the peer got from author with the data text.
func (g *gossipPeer) count(author peer.ID, text string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, m := range g.got {
		if m.GetFrom() == author && string(m.Data) == text {
			n++
		}
	}
	return n
}

// ownID returns the topic message ID of a line the peer published, as the
// binaries render it: "<peer ID>/<sequence number in hex>".
func (g *gossipPeer) ownID(t *testing.T, text string) string {
	t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for {
		g.mu.Lock()
		seq, ok := g.own[text]
		g.mu.Unlock()
		if ok {
			return g.id() + "/" + hex.EncodeToString(seq)
		}
		if time.Now().After(deadline) {
			t.Fatalf("gossip peer: its own line %q never came back to it", text)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sessionGrace is how long the room waits for a connected peer to open a
// chat session before it takes it for a member by the topic only
// (internal/room's sessionGrace).
const sessionGrace = 2 * time.Second

// viaTopicJoin accepts the joined event of peer id as a member by the topic.
func viaTopicJoin(id string) func(e2e.Event) bool {
	return func(e e2e.Event) bool { return e.Peer == id && e.Via == event.ViaTopic }
}

// TestE2EGossipRawPeer: a universal-connectivity peer (raw GossipSub on
// the topic named as the rendezvous string) and a plain /chat/1.1.0 client
// (go-libp2p's example) share a room with two of our binaries. Lines cross
// between every pair that can hear each other, each shown once.
func TestE2EGossipRawPeer(t *testing.T) {
	const room = "gossip raw peer"
	g := startGossipPair(t, room, []string{"-nick", "alice"}, []string{"-nick", "bob"})
	a, b, aReady, bReady, aID, bID, raw, rawID := g.a, g.b, g.aReady, g.bReady, g.aID, g.bID, g.raw, g.rawID
	connected := time.Now()
	aPeer := raw.connect(t, aReady.Addrs[0])
	bPeer := raw.connect(t, bReady.Addrs[0])
	raw.waitTopicPeers(t, aPeer, bPeer)

	// The raw peer never opens our chat stream: after the grace given to
	// a connected peer to open one, it is a member by the topic.
	ja := a.Wait(t, event.Joined, e2e.Peer(rawID), meetTimeout)
	if ja.Via != event.ViaTopic || ja.Protocol != room || ja.Name != event.ShortIDString(rawID) {
		t.Errorf("a: the raw peer joined as %+v, want via %q on protocol %q", ja, event.ViaTopic, room)
	}
	t.Logf("a announced the raw peer %v after it connected", ja.Time.Sub(connected).Round(time.Millisecond))
	if d := ja.Time.Sub(connected); d < sessionGrace/2 {
		t.Errorf("a: the raw peer joined %v after connecting, before the grace of %v for a session", d, sessionGrace)
	}
	b.Wait(t, event.Joined, viaTopicJoin(rawID), meetTimeout)

	// A line typed in a reaches the raw peer as the raw UTF-8 line, signed
	// by a; b shows it once, though it comes by stream and by topic.
	lineA := `hello from alice: ünïcödé ✓ "quotes" <tags>`
	a.Send(t, lineA)
	m := raw.waitMessage(t, aPeer, lineA)
	if !bytes.Equal(m.Data, []byte(lineA)) || m.GetFrom() != aPeer || len(m.Signature) == 0 {
		t.Errorf("raw peer: a's line came as data %q from %s (signature %d bytes)", m.Data, m.GetFrom(), len(m.Signature))
	}
	sent := a.Wait(t, event.Sent, e2e.Text(lineA), eventTimeout)
	wantID := aID + "/" + hex.EncodeToString(m.GetSeqno())
	if sent.Topic != room || !slices.Equal(sent.MsgIDs, []string{wantID}) {
		t.Errorf("a: sent %+v, want topic %q and the topic message ID %s", sent, room, wantID)
	}
	mb := b.Wait(t, event.Message, e2e.From(aID, lineA), eventTimeout)
	if mb.MsgID != wantID || mb.Nick != "alice" {
		t.Errorf("b: a's line came as %+v, want ID %s from alice", mb, wantID)
	}

	// A burst typed at once reaches b, each line once, though most of its
	// lines come both by topic and by stream.
	//
	// And in order: the topic copies may come shuffled (the raw peer
	// relays a's lines to b too, and a plain go-libp2p-pubsub peer
	// validates on several workers at once, so it forwards them out of
	// order), but b holds topic lines from a, with whom it has a session,
	// until their stream copy comes.
	var burstA []string
	var burst strings.Builder
	// 12 lines: within a's publishing burst (25, then 5 a second), so that
	// all of them, and the lines below, go on the topic too.
	for i := range 12 {
		l := fmt.Sprintf("a's burst %02d", i)
		burstA = append(burstA, l)
		burst.WriteString(l + "\n")
	}
	if _, err := io.WriteString(a.Stdin, burst.String()); err != nil {
		t.Fatal(err)
	}
	b.Wait(t, event.Message, e2e.From(aID, burstA[len(burstA)-1]), eventTimeout)
	got, vias := []string{}, map[string]int{}
	for _, e := range b.All(event.Message, e2e.Peer(aID)) {
		if strings.HasPrefix(e.Text, "a's burst ") {
			got = append(got, e.Text)
			vias[e.Via]++
		}
	}
	t.Logf("b: a's burst of %d lines came %d by the topic first, %d by the stream", len(burstA), vias[event.ViaTopic], vias[""])
	if !slices.Equal(got, burstA) {
		t.Errorf("b: a's burst came as %q, want %q: each once, in order", got, burstA)
	}

	// The raw peer's lines: once its mesh holds both binaries, one line is
	// shown by each, once, via the topic, with the topic's message ID.
	raw.meshWith(t, a, b)
	lineRaw := "hi from a universal-connectivity peer ✓"
	raw.publish(t, []byte(lineRaw))
	rawMsgID := raw.ownID(t, lineRaw)
	for _, p := range []*e2e.Proc{a, b} {
		e := p.Wait(t, event.Message, e2e.From(rawID, lineRaw), eventTimeout)
		if e.Via != event.ViaTopic || e.MsgID != rawMsgID || e.Name != event.ShortIDString(rawID) {
			t.Errorf("%s: the raw peer's line came as %+v, want via %q with ID %s", p.Name, e, event.ViaTopic, rawMsgID)
		}
	}

	// A burst of the raw peer's, in order at both.
	var burstRaw []string
	for i := range 20 {
		l := fmt.Sprintf("raw burst %02d", i)
		burstRaw = append(burstRaw, l)
		raw.publish(t, []byte(l))
	}
	for _, p := range []*e2e.Proc{a, b} {
		p.Wait(t, event.Message, e2e.From(rawID, burstRaw[len(burstRaw)-1]), eventTimeout)
		var got []string
		for _, e := range p.All(event.Message, e2e.Peer(rawID)) {
			if strings.HasPrefix(e.Text, "raw burst ") {
				got = append(got, e.Text)
			}
		}
		if !slices.Equal(got, burstRaw) {
			t.Errorf("%s: the raw peer's burst came as %q, want %q: in order, each once", p.Name, got, burstRaw)
		}
	}

	// The plain client, on /chat/1.1.0 with a only.
	plain, aInfo := newClient(t, aReady.Addrs[0])
	plainID := plain.ID().String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	st, err := plain.NewStream(ctx, aInfo.ID, plainProtocol)
	if err != nil {
		t.Fatalf("plain client: open a chat stream: %v", err)
	}
	lines := make(chan streamLine, 64)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go readLines(st, 1, lines, done)
	exampleWrite(t, st, "hello from the plain client")
	jp := a.Wait(t, event.Joined, e2e.Peer(plainID), eventTimeout)
	if jp.Protocol != plainProtocol || !jp.Plain || jp.Via != "" {
		t.Errorf("a: the plain client joined as %+v, want a session on %s", jp, plainProtocol)
	}
	a.Wait(t, event.Message, e2e.From(plainID, "hello from the plain client"), eventTimeout)

	// Back and forth: every line once at every peer that hears it.
	var fromA, fromB []string
	for i := range 5 {
		la, lb := fmt.Sprintf("a to the room %d", i), fmt.Sprintf("b to the room %d", i)
		fromA, fromB = append(fromA, la), append(fromB, lb)
		a.Send(t, la)
		b.Send(t, lb)
		b.Wait(t, event.Message, e2e.From(aID, la), eventTimeout)
		a.Wait(t, event.Message, e2e.From(bID, lb), eventTimeout)
		raw.waitMessage(t, aPeer, la)
		raw.waitMessage(t, bPeer, lb)
		if l := nextStreamLine(t, lines); l.line != la+"\n" {
			t.Errorf("plain client: read %+v, want %q", l, la)
		}
	}
	lineRaw2 := "raw peer, second line"
	raw.publish(t, []byte(lineRaw2))
	for _, p := range []*e2e.Proc{a, b} {
		p.Wait(t, event.Message, e2e.From(rawID, lineRaw2), eventTimeout)
	}
	exampleWrite(t, st, "plain client, last line")
	a.Wait(t, event.Message, e2e.From(plainID, "plain client, last line"), eventTimeout)
	a.Send(t, "sentinel from a")
	b.Send(t, "sentinel from b")
	b.Wait(t, event.Message, e2e.From(aID, "sentinel from a"), eventTimeout)
	a.Wait(t, event.Message, e2e.From(bID, "sentinel from b"), eventTimeout)
	raw.waitMessage(t, aPeer, "sentinel from a")
	raw.waitMessage(t, bPeer, "sentinel from b")
	if l := nextStreamLine(t, lines); l.line != "sentinel from a\n" {
		t.Errorf("plain client: read %+v, want the sentinel", l)
	}
	time.Sleep(500 * time.Millisecond) // a late duplicate would come by now

	wantA := slices.Concat([]string{lineA}, burstA, fromA, []string{"sentinel from a"})
	wantB := append(slices.Clone(fromB), "sentinel from b")
	if got := messageTexts(b, aID); !slices.Equal(got, wantA) {
		// The burst may be shuffled (the known bug above); the rest not.
		slices.Sort(got[1 : 1+len(burstA)])
		if !slices.Equal(got, wantA) {
			t.Errorf("b: a's lines %q, want %q (each once, in order)", got, wantA)
		}
	}
	if got := messageTexts(a, bID); !slices.Equal(got, wantB) {
		t.Errorf("a: b's lines %q, want %q (each once, in order)", got, wantB)
	}
	for _, p := range []*e2e.Proc{a, b} {
		var lines []string
		for _, e := range p.All(event.Message, e2e.Peer(rawID)) {
			if !strings.HasPrefix(e.Text, "mesh probe ") {
				lines = append(lines, e.Text)
			}
			if e.Via != event.ViaTopic {
				t.Errorf("%s: a line of the raw peer not marked via the topic: %+v", p.Name, e)
			}
		}
		if !slices.Equal(lines, slices.Concat([]string{lineRaw}, burstRaw, []string{lineRaw2})) {
			t.Errorf("%s: the raw peer's lines %q, want each once", p.Name, lines)
		}
		probes := map[string]int{}
		for _, e := range p.All(event.Message, e2e.Peer(rawID)) {
			probes[e.MsgID]++
		}
		for id, n := range probes {
			if n > 1 {
				t.Errorf("%s: the raw peer's message %s shown %d times", p.Name, id, n)
			}
		}
		if n := p.Count(event.Joined, e2e.Peer(rawID)); n != 1 {
			t.Errorf("%s: %d joined events for the raw peer, want 1", p.Name, n)
		}
		p.NoEvent(t, 0, event.Error, nil, "nothing went wrong")
	}
	for _, l := range wantA {
		if n := raw.count(aPeer, l); n != 1 {
			t.Errorf("raw peer: got a's line %q %d times, want once", l, n)
		}
	}
	for _, l := range wantB {
		if n := raw.count(bPeer, l); n != 1 {
			t.Errorf("raw peer: got b's line %q %d times, want once", l, n)
		}
	}
	if got := messageTexts(a, plainID); !slices.Equal(got, []string{"hello from the plain client", "plain client, last line"}) {
		t.Errorf("a: the plain client's lines %q", got)
	}

	// /peers lists the raw peer by the topic, the others by their sessions.
	a.Send(t, "/peers")
	peers := a.Wait(t, event.Peers, nil, eventTimeout)
	paths := map[string]string{}
	for _, p := range peers.Room {
		paths[p.Peer] = p.Path + " " + p.Protocol
	}
	if paths[rawID] != event.ViaTopic+" "+room || !strings.HasSuffix(paths[bID], " "+ourProtocol) ||
		!strings.HasSuffix(paths[plainID], " "+plainProtocol) || len(peers.Room) != 3 {
		t.Errorf("a: /peers %+v", peers.Room)
	}
}

// TestE2EDirectMessage: direct messages on
// /universal-connectivity/dm/1.0.0 between a binary and an in-test peer
// that is a member of its room by the topic only.
func TestE2EDirectMessage(t *testing.T) {
	const room = "gossip direct messages"
	g := startGossipPair(t, room, nil, nil)
	a, b, aReady, aID, bID, raw, rawID := g.a, g.b, g.aReady, g.aID, g.bID, g.raw, g.rawID
	aPeer := raw.connect(t, aReady.Addrs[0])
	a.Wait(t, event.Joined, viaTopicJoin(rawID), meetTimeout)

	// (a) The test peer to a: OK, and a shows it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	resp, err := ucdm.Send(ctx, raw.h, aPeer, "psst, alice ✓", "test")
	if err != nil || resp.Status != ucdm.StatusOK || resp.Metadata == nil {
		t.Fatalf("raw peer: direct message to a: %+v, %v; want status OK with metadata", resp, err)
	}
	d := a.Wait(t, event.Direct, e2e.Peer(rawID), eventTimeout)
	if d.Text != "psst, alice ✓" || !d.Private || d.Name != event.ShortIDString(rawID) {
		t.Errorf("a: direct event %+v", d)
	}

	// (b) /msg to a peer without a session goes by direct message.
	name := event.ShortIDString(rawID)
	a.Send(t, "/msg "+name+" hello over dm")
	select {
	case req := <-raw.dms:
		if req.Content != "hello over dm" || req.Type != ucdm.MIMETextPlain || req.Metadata == nil {
			t.Errorf("raw peer: direct message %+v", req)
		}
	case <-time.After(eventTimeout):
		t.Fatal("raw peer: no direct message from a's /msg")
	}
	s := a.Wait(t, event.Sent, e2e.Text("hello over dm"), eventTimeout)
	if s.Via != "dm" || s.To != rawID || !s.Private {
		t.Errorf("a: sent %+v, want via dm to the raw peer", s)
	}
	del := a.Wait(t, event.Delivered, e2e.Text("hello over dm"), eventTimeout)
	if del.Via != "dm" || del.Status != "OK" || !slices.Equal(del.Peers, []string{rawID}) {
		t.Errorf("a: delivered %+v, want via dm with status OK", del)
	}
	// /msg to b, who has a session, stays on the session.
	a.Send(t, "/msg "+bID+" hello on the session")
	pm := b.Wait(t, event.Message, e2e.From(aID, "hello on the session"), eventTimeout)
	if !pm.Private || pm.Via != "" {
		t.Errorf("b: private line %+v, want private on the session", pm)
	}

	// (c) A refusal (status ERROR) is an error that names the status.
	raw.refuseDMs.Store(true)
	a.Send(t, "/msg "+name+" this one is refused")
	<-raw.dms
	e := a.Wait(t, event.Error, e2e.Code(event.DirectFailed, e2e.Text("this one is refused")), eventTimeout)
	if e.Why != event.WhyStatus || e.Status != "ERROR" || e.Cause != "the test peer refuses this one" || e.Peer != rawID {
		t.Errorf("a: error %+v, want one naming status ERROR and the peer's reason", e)
	}
	a.NoEvent(t, 0, event.Delivered, e2e.Text("this one is refused"), "the line was refused")
	raw.refuseDMs.Store(false)

	// (d) A peer that does not speak the protocol (universal-connectivity's
	// Go and Rust peers): an error, and no delivered event.
	raw.h.RemoveStreamHandler(ucdm.ProtocolID)
	a.Send(t, "/msg "+name+" nobody listens")
	e = a.Wait(t, event.Error, e2e.Code(event.DirectFailed, e2e.Text("nobody listens")), eventTimeout)
	// The peer listed the protocol a moment ago, so libp2p may open the
	// stream without negotiating, and the refusal then comes as a reset
	// (libp2p's words in Cause).
	if e.Why != event.WhyNotSupported && (e.Why != event.WhyOther || !strings.Contains(e.Cause, "reset")) {
		t.Errorf("a: /msg to a peer without direct messages: %+v, want it to say why", e)
	}
	t.Logf("a: /msg to a peer without direct messages: %s", e.Error)
	a.NoEvent(t, 0, event.Delivered, e2e.Text("nobody listens"), "nobody got the line")
	raw.h.SetStreamHandler(ucdm.ProtocolID, ucdm.Handler(func(_ peer.ID, req ucdm.Request) ucdm.Response { return ucdm.OK("test") }))

	// Malformed direct messages from another peer: at most one error
	// event, no crash, and the chat goes on.
	bad, _ := newClient(t, aReady.Addrs[0])
	badID := bad.ID().String()
	garbage := [][]byte{
		{0x03, 0xff, 0xff, 0xff},             // a tag whose varint never ends
		{0xff, 0xff, 0xff, 0xff, 0xff, 0x0f}, // a frame of 512 GiB
		[]byte("\x05hello"),                  // not a protobuf request
		{0x02, 0x12},                         // content field cut short
	}
	for _, g := range garbage {
		st, err := bad.NewStream(ctx, aPeer, ucdm.ProtocolID)
		if err != nil {
			t.Fatalf("bad peer: open a direct-message stream: %v", err)
		}
		_, _ = st.Write(g)
		_ = st.CloseWrite()
		// a resets the stream; reading tells when it has.
		_ = st.SetReadDeadline(time.Now().Add(eventTimeout))
		n, err := st.Read(make([]byte, 1))
		if n > 0 || err == nil {
			t.Errorf("bad peer: a answered %x (%d bytes, %v), want the stream reset", g, n, err)
		}
		_ = st.Reset()
	}
	a.Wait(t, event.Error, e2e.Peer(badID), eventTimeout)
	chatBothWays(t, a, b, aID, bID, "after the garbage")
	resp, err = ucdm.Send(ctx, raw.h, aPeer, "still there?", "test")
	if err != nil || resp.Status != ucdm.StatusOK {
		t.Errorf("raw peer: direct message after the garbage: %+v, %v", resp, err)
	}
	a.Wait(t, event.Direct, e2e.From(rawID, "still there?"), eventTimeout)
	if n := a.Count(event.Error, e2e.Peer(badID)); n != 1 {
		t.Errorf("a: %d error events for %d malformed direct messages, want exactly 1", n, len(garbage))
	}
	for _, e := range a.All(event.Error, e2e.Peer(badID)) {
		t.Logf("a reported the malformed direct messages as: %s", e.Error)
	}
	a.NoEvent(t, 0, event.Direct, e2e.Peer(badID), "the garbage is not a message")
	if n := a.Count(event.Error, nil); n != 3 {
		t.Errorf("a: %d error events, want 3 (the refusal, the peer without the protocol and the garbage): %+v", n, a.All(event.Error, nil))
	}
}

// TestE2EGossipHeldToRawPeer: a line typed while nobody is here is held;
// when a topic-only audience appears (a raw GossipSub peer, which never
// opens our chat stream), the line goes on the topic, and the raw peer gets
// it once: not again when it becomes a member by the topic, nor when the
// held line's resend window is checked.
func TestE2EGossipHeldToRawPeer(t *testing.T) {
	const room = "gossip held to raw peer"
	_, server := startServer(t)
	a := startPeer(t, "a", server, room, "-nick", "alice")
	aReady := a.Ready(t)
	aID := aReady.ID

	const line = "anyone on the topic?"
	a.Send(t, line)
	held := a.Wait(t, event.Info, e2e.Code(event.Held), eventTimeout)
	if held.Count != 1 || len(held.MsgIDs) != 1 {
		t.Errorf("a: held %+v, want the one line", held)
	}
	// Nobody was there: the line went nowhere, on the topic neither.
	a.NoEvent(t, 0, event.Sent, nil, "nobody is here: the line is held")

	raw := newGossipPeer(t, room)
	rawID := raw.id()
	aPeer := raw.connect(t, aReady.Addrs[0])
	raw.waitTopicPeers(t, aPeer)
	m := raw.waitMessage(t, aPeer, line)
	if m.GetFrom() != aPeer || len(m.Signature) == 0 {
		t.Errorf("raw peer: the held line came from %s (signature %d bytes), want signed by a", m.GetFrom(), len(m.Signature))
	}
	// a says it sent the line on the topic, under the topic's message ID.
	sent := a.Wait(t, event.Sent, func(e e2e.Event) bool { return e.Topic == room }, eventTimeout)
	wantID := aID + "/" + hex.EncodeToString(m.GetSeqno())
	if sent.Text != line || !slices.Equal(sent.MsgIDs, []string{wantID}) {
		t.Errorf("a: sent %+v, want %q with the topic message ID %s", sent, line, wantID)
	}

	// The raw peer becomes a member by the topic; a line a sends after
	// that, received, says that anything a would still send has had time.
	a.Wait(t, event.Joined, viaTopicJoin(rawID), meetTimeout)
	a.Send(t, "after the held line")
	raw.waitMessage(t, aPeer, "after the held line")
	time.Sleep(2 * time.Second) // past the next ticks of the topic's loop
	if n := raw.count(aPeer, line); n != 1 {
		t.Errorf("raw peer: got the held line %d times, want once", n)
	}
	if n := a.Count(event.Sent, e2e.Text(line)); n != 1 {
		t.Errorf("a: %d sent events for the held line, want one", n)
	}
	a.NoEvent(t, 0, event.Error, e2e.Code(event.HeldUndelivered), "the held line went on the topic")
}

// TestE2EFileShare: /send and /get between binaries, on the file topic and
// /universal-connectivity-file/1, and how a fetch fails.
func TestE2EFileShare(t *testing.T) {
	const room = "gossip files"
	_, server := startServer(t)
	a := startPeer(t, "a", server, room, "-nick", "alice")
	b := startPeer(t, "b", server, room, "-nick", "bob")
	c := startPeer(t, "c", server, room, "-nick", "carol", "-max-file", "1KiB")
	aReady, bReady, cReady := a.Ready(t), b.Ready(t), c.Ready(t)
	aID, bID, cID := aReady.ID, bReady.ID, cReady.ID
	meet(t, a, b, aID, bID)
	meet(t, a, c, aID, cID)
	meet(t, b, c, bID, cID)

	dir := t.TempDir()
	src := filepath.Join(dir, "random.bin")
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	bDir, cDir := t.TempDir(), t.TempDir()

	// share sends path from a and waits until b and c have been told.
	share := func(path string) string {
		t.Helper()
		a.Send(t, "/send "+path)
		sh := a.Wait(t, event.Shared, func(e e2e.Event) bool { return e.Path == path }, eventTimeout)
		if sh.FileID == "" || sh.Topic != ucfile.Topic(room) {
			t.Fatalf("a: shared %+v, want a file ID on %q", sh, ucfile.Topic(room))
		}
		// Our own peers hear the file's name and size from a (a file frame
		// on the session), not just its ID.
		for _, p := range []*e2e.Proc{b, c} {
			f := p.Wait(t, event.File, func(e e2e.Event) bool { return e.FileID == sh.FileID }, eventTimeout)
			if f.Peer != aID || f.Nick != "alice" {
				t.Errorf("%s: file event %+v, want from alice", p.Name, f)
			}
			if f.Path != filepath.Base(path) || f.Total != sh.Bytes {
				t.Errorf("%s: file event %+v, want the name %q and the size %d", p.Name, f, filepath.Base(path), sh.Bytes)
			}
		}
		return sh.FileID
	}
	// fetchDone waits for the end of a /get of id at p: its last transfer
	// event, or its error.
	fetchDone := func(p *e2e.Proc, id string, timeout time.Duration) e2e.Event {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			if es := p.All(event.Transfer, func(e e2e.Event) bool { return e.FileID == id && e.Done }); len(es) > 0 {
				return es[0]
			}
			if es := p.All(event.Error, func(e e2e.Event) bool { return e.FileID == id }); len(es) > 0 {
				return es[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /get %s: no end within %v", p.Name, id, timeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// 1 MiB from a to b, byte for byte.
	id := share(src)
	if sh := a.All(event.Shared, nil)[0]; sh.Bytes != int64(len(data)) {
		t.Errorf("a: shared %+v, want %d bytes", sh, len(data))
	}
	dst := filepath.Join(bDir, "copy.bin")
	start := time.Now()
	b.Send(t, "/get "+id+" "+dst)
	end := fetchDone(b, id, 30*time.Second)
	if end.Kind != event.Transfer || end.Bytes != int64(len(data)) || end.Total != int64(len(data)) || end.Peer != aID {
		t.Fatalf("b: /get ended with %+v, want done with %d bytes from a", end, len(data))
	}
	t.Logf("b fetched %d bytes in %v, in %d transfer events", len(data), end.Time.Sub(start).Round(time.Millisecond),
		b.Count(event.Transfer, func(e e2e.Event) bool { return e.FileID == id }))
	if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, data) {
		t.Errorf("b: the fetched file differs from the shared one (%d bytes read, %v)", len(got), err)
	}
	for _, e := range b.All(event.Transfer, func(e e2e.Event) bool { return e.FileID == id }) {
		if e.Path != dst || e.Bytes > int64(len(data)) || (e.Total != 0 && e.Total != int64(len(data))) {
			t.Errorf("b: transfer event %+v", e)
		}
	}

	// (c) A destination that exists: an error, and the file is untouched.
	existing := filepath.Join(bDir, "existing.txt")
	if err := os.WriteFile(existing, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.Send(t, "/get "+id+" "+existing)
	e := b.Wait(t, event.Error, func(e e2e.Event) bool { return e.FileID == id && e.Path == existing }, eventTimeout)
	if e.Code != event.FetchFailed || e.Why != event.WhyExists {
		t.Errorf("b: /get to an existing file: %+v, want it to say it exists", e)
	}
	if got, _ := os.ReadFile(existing); string(got) != "keep me" {
		t.Errorf("b: the existing file now holds %q", got)
	}

	// (b) Over -max-file: c refuses a 4 KiB file and writes nothing.
	small := filepath.Join(dir, "four-kib.bin")
	if err := os.WriteFile(small, data[:4<<10], 0o644); err != nil {
		t.Fatal(err)
	}
	id2 := share(small)
	c.Send(t, "/get "+id2+" "+filepath.Join(cDir, "four-kib.bin"))
	end = fetchDone(c, id2, eventTimeout)
	if end.Kind != event.Error || end.Code != event.FetchFailed || end.Why != event.WhyTooLarge || end.Limit != 1<<10 {
		t.Errorf("c: /get of a file over -max-file ended with %+v, want an error that names -max-file (1024 bytes)", end)
	} else {
		t.Logf("c: %s", end.Error)
	}
	if n := c.Count(event.Transfer, func(e e2e.Event) bool { return e.FileID == id2 && e.Done }); n != 0 {
		t.Errorf("c: a transfer of the file over -max-file was done")
	}

	// (a) An ID that nobody serves: a gossip peer announces it on the file
	// topic; b's /get fails cleanly, and nothing is left behind.
	raw := newGossipPeer(t, room)
	rawID := raw.id()
	raw.connect(t, aReady.Addrs[0])
	raw.connect(t, bReady.Addrs[0])
	// announce publishes a file ID from the gossip peer until b has it
	// from the gossip peer (another peer may have announced it before).
	announce := func(id string) {
		t.Helper()
		fromRaw := func(e e2e.Event) bool { return e.FileID == id && e.Peer == rawID }
		deadline := time.Now().Add(20 * time.Second)
		for b.Count(event.File, fromRaw) == 0 {
			// Until a heartbeat grafts the mesh, the announcement is lost.
			pctx, pcancel := context.WithTimeout(context.Background(), eventTimeout)
			err := raw.fileTopic.Publish(pctx, ucfile.Announcement(id))
			pcancel()
			if err != nil {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatal("b: the gossip peer's file announcement never came")
			}
			time.Sleep(500 * time.Millisecond)
		}
		if f := b.Wait(t, event.File, fromRaw, eventTimeout); f.Path != "" || f.Total != 0 {
			t.Errorf("b: file event %+v, want no name or size: a gossip peer does not tell them", f)
		}
	}
	ghostDir := t.TempDir()
	// First from a peer that does not speak the file protocol, then from
	// one that does but holds no such file.
	for i, serves := range []bool{false, true} {
		if serves {
			raw.h.SetStreamHandler(ucfile.ProtocolID, ucfile.Handler(ucfile.NewStore(), 0))
		}
		ghost := ucfile.NewID()
		announce(ghost)
		b.Send(t, "/get "+ghost+" "+filepath.Join(ghostDir, fmt.Sprintf("ghost%d", i)))
		end = fetchDone(b, ghost, 20*time.Second)
		if end.Kind != event.Error || !end.Done || end.Peer != rawID {
			t.Errorf("b: /get of a file nobody serves ended with %+v, want an error", end)
		} else {
			t.Logf("b: %s", end.Error)
		}
		if !serves && (end.Code != event.FetchFailed || end.Why != event.WhyNotSupported) {
			t.Errorf("b: /get from a peer without the file protocol: %+v, want it to say so", end)
		}
		if serves && (end.Code != event.FetchFailed || end.Why != event.WhyUnavailable) {
			t.Errorf("b: /get of a file its peer does not hold: %+v, want it to say the peer did not serve it", end)
		}
	}

	// (d) A second announcer of a's file ID takes nothing over. The gossip
	// peer announces the ID a shared first; b keeps both offers, so /get
	// of the bare ID or its handle is ambiguous and fetches nothing, and
	// /get ID@alice fetches a's bytes and says they are a's.
	announce(id)
	for _, arg := range []string{id, fileHandle(id)} {
		b.Send(t, "/get "+arg+" "+filepath.Join(bDir, "ambiguous.bin"))
		e := b.Wait(t, event.Error, func(e e2e.Event) bool { return e.Code == event.AmbiguousFile && e.FileID == arg }, eventTimeout)
		if e.Count != 2 || e.Command != "/get" {
			t.Errorf("b: /get %s of an ID two peers announced: %+v, want ambiguous between 2", arg, e)
		}
	}
	// fetchInto waits for the end of a /get into path at p: a transfer
	// event that is done, or an error about the path.
	fetchInto := func(p *e2e.Proc, path string) e2e.Event {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if es := p.All(event.Transfer, func(e e2e.Event) bool { return e.Path == path && e.Done }); len(es) > 0 {
				return es[0]
			}
			if es := p.All(event.Error, func(e e2e.Event) bool { return e.Path == path }); len(es) > 0 {
				return es[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /get into %s: no end within 30s", p.Name, path)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	named := filepath.Join(bDir, "named.bin")
	b.Send(t, "/get "+id+"@alice "+named)
	end = fetchInto(b, named)
	if end.Kind != event.Transfer || end.FileID != id || end.Peer != aID || end.Name != "alice" || end.Bytes != int64(len(data)) {
		t.Errorf("b: /get %s@alice ended with %+v, want a's %d bytes", id, end, len(data))
	} else if got, err := os.ReadFile(named); err != nil || !bytes.Equal(got, data) {
		t.Errorf("b: /get %s@alice fetched other bytes than a's (%d bytes read, %v)", id, len(got), err)
	}
	// A handle alone names a file only one peer offers: a's small file.
	byHandle := filepath.Join(bDir, "by-handle.bin")
	b.Send(t, "/get "+fileHandle(id2)+" "+byHandle)
	end = fetchInto(b, byHandle)
	if end.Kind != event.Transfer || end.FileID != id2 || end.Peer != aID {
		t.Errorf("b: /get %s (a handle) ended with %+v, want a's file %s", fileHandle(id2), end, id2)
	} else if got, err := os.ReadFile(byHandle); err != nil || !bytes.Equal(got, data[:4<<10]) {
		t.Errorf("b: /get by handle fetched other bytes (%d bytes read, %v)", len(got), err)
	}
	// The gossip peer's own copy of the ID is its, named by its peer ID:
	// it serves no such file, and b says so, about the gossip peer.
	b.Send(t, "/get "+id+"@"+rawID+" "+filepath.Join(ghostDir, "impostor"))
	end = fetchInto(b, filepath.Join(ghostDir, "impostor"))
	if end.Kind != event.Error || end.Code != event.FetchFailed || end.Peer != rawID {
		t.Errorf("b: /get %s@<gossip peer> ended with %+v, want the gossip peer's failure", id, end)
	}

	// Nothing left in the destinations but what was asked for.
	for _, d := range []struct {
		dir  string
		want []string
	}{{bDir, []string{"by-handle.bin", "copy.bin", "existing.txt", "named.bin"}}, {cDir, nil}, {ghostDir, nil}} {
		entries, err := os.ReadDir(d.dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, d.want) {
			t.Errorf("%s holds %q, want %q (no temporary file left)", d.dir, names, d.want)
		}
	}

	chatBothWays(t, a, b, aID, bID, "after the files")
	chatBothWays(t, b, c, bID, cID, "after the files")
}

// TestE2EGossipFlood: a raw GossipSub peer floods the topic as fast as it
// can, with lines of 1 KiB and some over the 64 KiB limit, while a and b
// chat. Their lines still arrive, each once; their memory stays bounded;
// and few of the flooder's lines are shown.
func TestE2EGossipFlood(t *testing.T) {
	const room = "gossip flood"
	g := startGossipPair(t, room, nil, nil)
	a, b, aReady, bReady, aID, bID, raw, rawID := g.a, g.b, g.aReady, g.bReady, g.aID, g.bID, g.raw, g.rawID
	aPeer := raw.connect(t, aReady.Addrs[0])
	bPeer := raw.connect(t, bReady.Addrs[0])
	raw.waitTopicPeers(t, aPeer, bPeer)
	raw.meshWith(t, a, b)
	chatBothWays(t, a, b, aID, bID, "before the flood")

	rssBefore := [2]int64{a.Mem(t).RSS, b.Mem(t).RSS}
	peakResetOK := e2e.ResetPeak(a.Pid()) == nil && e2e.ResetPeak(b.Pid()) == nil

	// The flood, in the background.
	const floodLines, bigLines = 20000, 20
	var published, bigPublished atomic.Int64
	floodDone := make(chan time.Duration)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		start := time.Now()
		pad := strings.Repeat("x", 1<<10)
		big := strings.Repeat("y", 70<<10)
		// Several publishers at once: signing is what takes the time.
		const publishers = 8
		var wg sync.WaitGroup
		for w := range publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < floodLines; i += publishers {
					data := fmt.Sprintf("flood %06d %s", i, pad)[:1<<10]
					if raw.topic.Publish(ctx, []byte(data)) == nil {
						published.Add(1)
					}
					if i%(floodLines/bigLines) == 0 {
						if raw.topic.Publish(ctx, []byte(fmt.Sprintf("big %d %s", i, big))) == nil {
							bigPublished.Add(1)
						}
					}
				}
			}()
		}
		wg.Wait()
		floodDone <- time.Since(start)
	}()

	// Meanwhile a and b chat, and the peak memory is sampled.
	var peak [2]int64
	sample := func() {
		for i, p := range []*e2e.Proc{a, b} {
			peak[i] = max(peak[i], p.Mem(t).RSS)
		}
	}
	var fromA, fromB []string
	var floodTime time.Duration
	flooding := true
	for i := 0; flooding || i < 20; i++ {
		la, lb := fmt.Sprintf("a during the flood %d", i), fmt.Sprintf("b during the flood %d", i)
		fromA, fromB = append(fromA, la), append(fromB, lb)
		a.Send(t, la)
		b.Send(t, lb)
		b.Wait(t, event.Message, e2e.From(aID, la), eventTimeout)
		a.Wait(t, event.Message, e2e.From(bID, lb), eventTimeout)
		sample()
		select {
		case floodTime = <-floodDone:
			flooding = false
		case <-time.After(100 * time.Millisecond):
		}
	}
	sample()
	memAfter := [2]e2e.Mem{a.Mem(t), b.Mem(t)}
	rssAfter := [2]int64{memAfter[0].RSS, memAfter[1].RSS}
	hwm := [2]int64{memAfter[0].HWM, memAfter[1].HWM}
	t.Logf("flood: %d lines of 1 KiB and %d of 70 KiB published in %v", published.Load(), bigPublished.Load(), floodTime.Round(time.Millisecond))
	for i, p := range []*e2e.Proc{a, b} {
		peakNote := ""
		if peakResetOK {
			peakNote = fmt.Sprintf(", VmHWM since the flood began %d MiB", hwm[i]>>10)
		}
		t.Logf("%s: VmRSS %d MiB before, %d MiB peak sampled, %d MiB after%s",
			p.Name, rssBefore[i]>>10, peak[i]>>10, rssAfter[i]>>10, peakNote)
		const limitKiB = 150 << 10
		if peak[i] > limitKiB || rssAfter[i] > limitKiB || (peakResetOK && hwm[i] > limitKiB) {
			t.Errorf("%s: memory over %d MiB during the flood", p.Name, limitKiB>>10)
		}
	}

	// The chat went on: every line once, in order.
	chatBothWays(t, a, b, aID, bID, "after the flood")
	fromA, fromB = append(fromA, "after the flood: from a"), append(fromB, "after the flood: from b")
	if got := messageTexts(b, aID); !slices.Equal(got[1:], fromA) {
		t.Errorf("b: a's lines %d, want %d, each once in order", len(got)-1, len(fromA))
	}
	if got := messageTexts(a, bID); !slices.Equal(got[1:], fromB) {
		t.Errorf("a: b's lines %d, want %d, each once in order", len(got)-1, len(fromB))
	}

	// Few of the flood's lines were shown: a burst of 50, then 10 a
	// second, then none once the router gave up on the flooder.
	limit := 50 + int(10*floodTime.Seconds()) + 10
	for _, p := range []*e2e.Proc{a, b} {
		shown, big, ids := 0, 0, map[string]bool{}
		for _, e := range p.All(event.Message, e2e.Peer(rawID)) {
			switch {
			case strings.HasPrefix(e.Text, "flood "):
				shown++
			case strings.HasPrefix(e.Text, "big "):
				big++
			}
			if ids[e.MsgID] {
				t.Errorf("%s: the flooder's message %s shown twice", p.Name, e.MsgID)
			}
			ids[e.MsgID] = true
		}
		t.Logf("%s: showed %d of the flood's %d lines (at most %d expected), %d over 64 KiB",
			p.Name, shown, published.Load(), limit, big)
		if shown > limit || big > 0 {
			t.Errorf("%s: %d of the flood's lines shown (want at most %d) and %d over 64 KiB (want none)", p.Name, shown, limit, big)
		}
	}

	// Optional: the flooder is penalized. Once its bucket has refilled, a
	// line of its own is still not shown.
	time.Sleep(2 * time.Second)
	raw.publish(t, []byte("after the flood, from the flooder"))
	time.Sleep(2 * time.Second)
	for _, p := range []*e2e.Proc{a, b} {
		if n := p.Count(event.Message, e2e.From(rawID, "after the flood, from the flooder")); n > 0 {
			t.Logf("%s: still shows the flooder's lines after the flood", p.Name)
		} else {
			t.Logf("%s: ignores the flooder after the flood (penalized or out of its mesh)", p.Name)
		}
	}
}

// fileHandle is the short form of a file ID that /get takes. (The tests
// name their room "room", which hides the package inside them.)
func fileHandle(id string) string { return room.FileHandle(id) }

// gossipPair is two of our binaries that have met in room, bootstrapped
// from one local server, and a raw GossipSub peer on the room's topic.
type gossipPair struct {
	a, b           *e2e.Proc
	aReady, bReady e2e.Event
	aID, bID       string
	raw            *gossipPeer
	rawID          string
}

// startGossipPair starts a and b (with extra flags each), waits until they
// have met, and starts the raw peer, not yet connected.
func startGossipPair(t *testing.T, room string, aArgs, bArgs []string) *gossipPair {
	t.Helper()
	_, server := startServer(t)
	g := &gossipPair{}
	g.a = startPeer(t, "a", server, room, aArgs...)
	g.b = startPeer(t, "b", server, room, bArgs...)
	g.aReady, g.bReady = g.a.Ready(t), g.b.Ready(t)
	g.aID, g.bID = g.aReady.ID, g.bReady.ID
	meet(t, g.a, g.b, g.aID, g.bID)
	g.raw = newGossipPeer(t, room)
	g.rawID = g.raw.id()
	return g
}
