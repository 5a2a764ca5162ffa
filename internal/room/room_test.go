package room

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// roomEvents records the events of one in-process peer and lets a test wait
// for one that matches.
type roomEvents struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{}
}

func newRoomEvents() *roomEvents { return &roomEvents{changed: make(chan struct{})} }

func (l *roomEvents) emit(e Event) {
	e.Time = time.Now()
	l.mu.Lock()
	l.events = append(l.events, e)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// count returns how many events match.
func (l *roomEvents) count(match func(Event) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if match(e) {
			n++
		}
	}
	return n
}

// waitCount waits until at least n events match, and fails the test after
// timeout.
func (l *roomEvents) waitCount(t *testing.T, n int, timeout time.Duration, what string, match func(Event) bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		got := 0
		for _, e := range l.events {
			if match(e) {
				got++
			}
		}
		changed := l.changed
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s (%d of %d); events: %+v", timeout, what, got, n, l.snapshot())
		}
	}
}

func (l *roomEvents) snapshot() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// isKind and isMessage encode the peer ID once: waitCount runs them over
// every event each time one arrives.
func isKind(kind EventKind, p peer.ID) func(Event) bool {
	id := ""
	if p != "" {
		id = p.String()
	}
	return func(e Event) bool { return e.Kind == kind && (id == "" || e.Peer == id) }
}

func isMessage(from peer.ID, text string) func(Event) bool {
	id := from.String()
	return func(e Event) bool { return e.Kind == EventMessage && e.Peer == id && e.Text == text }
}

// roomPeer is an in-process chat peer: a real node and room on loopback.
type roomPeer struct {
	node   *Node
	room   *Room
	events *roomEvents
	closed bool
}

func (p *roomPeer) id() peer.ID { return p.node.Host.ID() }

// close leaves the room and closes the node, as the program does on exit.
func (p *roomPeer) close() {
	if p.closed {
		return
	}
	p.closed = true
	p.room.Close(shutdownTimeout)
	_ = p.node.Close()
}

func loopbackNodeConfig(t *testing.T, rendezvous string, bootstrap []peer.AddrInfo, server bool) NodeConfig {
	t.Helper()
	key, err := loadIdentity("")
	if err != nil {
		t.Fatal(err)
	}
	return NodeConfig{
		Key:        key,
		Listen:     []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		Bootstrap:  bootstrap,
		Rendezvous: rendezvous,
		Server:     server,
	}
}

// startRoomServer starts a -server node on loopback and returns its address.
func startRoomServer(t *testing.T) peer.AddrInfo {
	t.Helper()
	events := newRoomEvents()
	n, err := NewNode(loopbackNodeConfig(t, "", nil, true), events.emit)
	if err != nil {
		t.Fatal(err)
	}
	n.Start(nil)
	t.Cleanup(func() { _ = n.Close() })
	return peer.AddrInfo{ID: n.Host.ID(), Addrs: n.Host.Addrs()}
}

func startRoomPeer(t *testing.T, rendezvous string, server peer.AddrInfo) *roomPeer {
	t.Helper()
	return startRoomPeerWith(t, rendezvous, server, nil)
}

// startRoomPeerWith starts a peer whose configuration configure may change.
func startRoomPeerWith(t *testing.T, rendezvous string, server peer.AddrInfo, configure func(*NodeConfig, *RoomConfig)) *roomPeer {
	t.Helper()
	events := newRoomEvents()
	nodeCfg := loopbackNodeConfig(t, rendezvous, []peer.AddrInfo{server}, false)
	nodeCfg.ChatProtocols = chatProtocols(defaultProtocol)
	roomCfg := RoomConfig{
		Protocols: chatProtocols(defaultProtocol),
		Formats:   chatFormats(defaultProtocol),
	}
	if configure != nil {
		configure(&nodeCfg, &roomCfg)
	}
	n, err := NewNode(nodeCfg, events.emit)
	if err != nil {
		t.Fatal(err)
	}
	room := NewRoom(n.Host, roomCfg, events.emit)
	n.Start(room.Offer)
	p := &roomPeer{node: n, room: room, events: events}
	t.Cleanup(p.close)
	return p
}

// startRoomPair starts a server and two peers, and waits until they met.
func startRoomPair(t *testing.T, rendezvous string) (a, b *roomPeer) {
	t.Helper()
	return startMeetingPair(t, rendezvous, startRoomServer(t))
}

// startMeetingPair starts two peers, and waits until they met.
func startMeetingPair(t *testing.T, rendezvous string, server peer.AddrInfo) (a, b *roomPeer) {
	t.Helper()
	a = startRoomPeer(t, rendezvous, server)
	b = startRoomPeer(t, rendezvous, server)
	a.events.waitCount(t, 1, 15*time.Second, "a joined b", isKind(EventJoined, b.id()))
	b.events.waitCount(t, 1, 15*time.Second, "b joined a", isKind(EventJoined, a.id()))
	return a, b
}

// TestRoomMeetsAtRendezvous: a server and three peers on loopback. Two meet,
// a third started later is found without restarting anything, every pair
// ends up with exactly one session, and messages cross every way.
func TestRoomMeetsAtRendezvous(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	server := startRoomServer(t)
	a, b := startMeetingPair(t, "room test", server)

	// The late peer: a and b have finished their first, quick searches.
	time.Sleep(time.Second)
	c := startRoomPeer(t, "room test", server)
	peers := []*roomPeer{a, b, c}
	for _, p := range peers {
		for _, q := range peers {
			if p != q {
				p.events.waitCount(t, 1, 15*time.Second, fmt.Sprintf("%s joined %s", shortID(p.id()), shortID(q.id())), isKind(EventJoined, q.id()))
			}
		}
	}
	// Give any duplicate dial time to show up before counting.
	time.Sleep(2 * dialGrace)
	for _, p := range peers {
		if got := len(p.room.Peers()); got != 2 {
			t.Errorf("%s has %d sessions, want 2", shortID(p.id()), got)
		}
		for _, q := range peers {
			if p != q {
				if n := p.events.count(isKind(EventJoined, q.id())); n != 1 {
					t.Errorf("%s joined %s %d times, want once", shortID(p.id()), shortID(q.id()), n)
				}
			}
		}
	}

	for _, from := range peers {
		text := "hello from " + shortID(from.id())
		from.room.Send(text)
		for _, to := range peers {
			if to != from {
				to.events.waitCount(t, 1, 5*time.Second, text, isMessage(from.id(), text))
			}
		}
	}
	// Nobody receives their own line, and nobody receives a line twice.
	for _, p := range peers {
		if n := p.events.count(isKind(EventMessage, "")); n != 2 {
			t.Errorf("%s got %d messages, want 2", shortID(p.id()), n)
		}
	}

	// A peer that leaves is announced, and the rest chat on.
	c.close()
	a.events.waitCount(t, 1, 5*time.Second, "a sees c leave", isKind(EventLeft, c.id()))
	b.events.waitCount(t, 1, 5*time.Second, "b sees c leave", isKind(EventLeft, c.id()))
	a.room.Send("still here")
	b.events.waitCount(t, 1, 5*time.Second, "message after a leave", isMessage(a.id(), "still here"))
}

// TestRoomHoldsLinesUntilSomeoneJoins: lines typed in an empty room are held
// and sent, in order, to the first peer who joins.
func TestRoomHoldsLinesUntilSomeoneJoins(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	server := startRoomServer(t)
	a := startRoomPeer(t, "held lines", server)
	a.room.Send("first")
	a.room.Send("second")
	a.events.waitCount(t, 2, time.Second, "holding notices", isKind(EventInfo, ""))

	b := startRoomPeer(t, "held lines", server)
	b.events.waitCount(t, 1, 15*time.Second, "second held line", isMessage(a.id(), "second"))
	var got []string
	for _, e := range b.events.snapshot() {
		if e.Kind == EventMessage {
			got = append(got, e.Text)
		}
	}
	if len(got) != 2 || got[0] != "first" || got[1] != "second" {
		t.Errorf("b got %q, want [first second]", got)
	}
}

// TestRoomDeliversQueuedLinesOnClose: lines queued when we leave go out
// before the stream closes, all of them and in order.
func TestRoomDeliversQueuedLinesOnClose(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	a, b := startRoomPair(t, "queued lines")

	const n = 3000
	for i := range n {
		a.room.Send(fmt.Sprintf("line %d", i))
	}
	a.close()
	b.events.waitCount(t, 1, 10*time.Second, "a left", isKind(EventLeft, a.id()))
	i := 0
	for _, e := range b.events.snapshot() {
		if e.Kind != EventMessage {
			continue
		}
		if want := fmt.Sprintf("line %d", i); e.Text != want {
			t.Fatalf("message %d is %q, want %q", i, e.Text, want)
		}
		i++
	}
	if i != n {
		t.Errorf("b got %d lines, want %d", i, n)
	}
	if errs := a.events.count(isKind(EventError, "")); errs != 0 {
		t.Errorf("a reported %d errors: %+v", errs, a.events.snapshot())
	}
}

// TestRoomAdoptsSecondStream: when the peer opens a second chat stream (as
// go-libp2p's example does when both sides dial), what it sends there is
// still shown, and no second session starts.
func TestRoomAdoptsSecondStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	a, b := startRoomPair(t, "second stream")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := b.node.Host.NewStream(ctx, a.id(), defaultProtocol)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("via the second stream\n\n")); err != nil {
		t.Fatal(err)
	}
	a.events.waitCount(t, 1, 5*time.Second, "line on the second stream", isMessage(b.id(), "via the second stream"))
	b.room.Send("via the first stream")
	a.events.waitCount(t, 1, 5*time.Second, "line on the first stream", isMessage(b.id(), "via the first stream"))
	if n := a.events.count(isKind(EventJoined, b.id())); n != 1 {
		t.Errorf("a joined b %d times, want once", n)
	}
	_ = st.Close()
	// The end of the extra stream does not end the session.
	b.room.Send("after the second stream closed")
	a.events.waitCount(t, 1, 5*time.Second, "line after the extra stream ended", isMessage(b.id(), "after the second stream closed"))
	if n := a.events.count(isKind(EventLeft, b.id())); n != 0 {
		t.Errorf("a saw b leave %d times", n)
	}
}

// TestRoomStaleRecordsDoNotDelay: the rendezvous still holds the records of
// peers that are gone; dialing them must not hold up meeting the live ones.
func TestRoomStaleRecordsDoNotDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	server := startRoomServer(t)
	var gone []peer.ID
	for range 3 {
		p := startRoomPeer(t, "stale records", server)
		p.events.waitCount(t, 1, 15*time.Second, "advertised", func(e Event) bool {
			return e.Kind == EventInfo && e.Text == `advertising at rendezvous "stale records"`
		})
		gone = append(gone, p.id())
		p.close()
	}
	start := time.Now()
	a, b := startMeetingPair(t, "stale records", server)
	t.Logf("met in %v despite %d stale records", time.Since(start), len(gone))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("meeting took %v with stale records around", d)
	}
	for _, id := range gone {
		if n := a.events.count(isKind(EventJoined, id)) + b.events.count(isKind(EventJoined, id)); n != 0 {
			t.Errorf("joined a peer that is gone")
		}
	}
}
