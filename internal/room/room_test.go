package room

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event/eventtest"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestRoomMeetsAtRendezvous: a server and three peers on loopback. Two meet,
// a third started later is found without restarting anything, every pair
// ends up with exactly one session, and messages cross every way.
func TestRoomMeetsAtRendezvous(t *testing.T) {
	needHosts(t)
	server := startRoomServer(t)
	a, b := startMeetingPair(t, "room test", server)

	// The late peer: a and b have finished their first, quick searches.
	time.Sleep(time.Second)
	c := startRoomPeer(t, "room test", server)
	peers := []*roomPeer{a, b, c}
	for _, p := range peers {
		for _, q := range peers {
			if p != q {
				p.events.WaitCount(t, 1, 15*time.Second, fmt.Sprintf("%s joined %s", event.ShortID(p.id()), event.ShortID(q.id())), eventtest.Is(event.Joined, q.id()))
			}
		}
	}
	// Give any duplicate dial time to show up before counting.
	time.Sleep(2 * dialGrace)
	for _, p := range peers {
		if got := len(p.room.Peers()); got != 2 {
			t.Errorf("%s has %d sessions, want 2", event.ShortID(p.id()), got)
		}
		for _, q := range peers {
			if p != q {
				if n := p.events.Count(eventtest.Is(event.Joined, q.id())); n != 1 {
					t.Errorf("%s joined %s %d times, want once", event.ShortID(p.id()), event.ShortID(q.id()), n)
				}
			}
		}
	}

	for _, from := range peers {
		text := "hello from " + event.ShortID(from.id())
		from.room.Send(text)
		for _, to := range peers {
			if to != from {
				to.events.WaitCount(t, 1, 5*time.Second, text, eventtest.Message(from.id(), text))
			}
		}
	}
	// Nobody receives their own line, and nobody receives a line twice.
	for _, p := range peers {
		if n := p.events.Count(eventtest.Is(event.Message, "")); n != 2 {
			t.Errorf("%s got %d messages, want 2", event.ShortID(p.id()), n)
		}
	}

	// A peer that leaves is announced, and the rest chat on.
	c.close()
	a.events.WaitCount(t, 1, 5*time.Second, "a sees c leave", eventtest.Is(event.Left, c.id()))
	b.events.WaitCount(t, 1, 5*time.Second, "b sees c leave", eventtest.Is(event.Left, c.id()))
	a.room.Send("still here")
	b.events.WaitCount(t, 1, 5*time.Second, "message after a leave", eventtest.Message(a.id(), "still here"))
}

// TestRoomHoldsLinesUntilSomeoneJoins: lines typed in an empty room are held
// and sent, in order, to the first peer who joins.
func TestRoomHoldsLinesUntilSomeoneJoins(t *testing.T) {
	needHosts(t)
	server := startRoomServer(t)
	a := startRoomPeer(t, "held lines", server)
	a.room.Send("first")
	a.room.Send("second")
	a.events.WaitCount(t, 2, time.Second, "holding notices", eventtest.Coded(event.Held))

	b := startRoomPeer(t, "held lines", server)
	b.events.WaitCount(t, 1, 15*time.Second, "second held line", eventtest.Message(a.id(), "second"))
	var got []string
	for _, e := range b.events.Snapshot() {
		if e.Kind == event.Message {
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
	needHosts(t)
	a, b := startRoomPair(t, "queued lines")

	const n = 3000
	for i := range n {
		a.room.Send(fmt.Sprintf("line %d", i))
	}
	a.close()
	b.events.WaitCount(t, 1, 10*time.Second, "a left", eventtest.Is(event.Left, a.id()))
	i := 0
	for _, e := range b.events.Snapshot() {
		if e.Kind != event.Message {
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
	if errs := a.events.Count(eventtest.Is(event.Error, "")); errs != 0 {
		t.Errorf("a reported %d errors: %+v", errs, a.events.Snapshot())
	}
}

// TestRoomAdoptsSecondStream: when the peer opens a second chat stream (as
// go-libp2p's example does when both sides dial), what it sends there is
// still shown, and no second session starts.
func TestRoomAdoptsSecondStream(t *testing.T) {
	needHosts(t)
	a, b := startRoomPair(t, "second stream")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := b.node.Host.NewStream(ctx, a.id(), plainProtocol)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("via the second stream\n\n")); err != nil {
		t.Fatal(err)
	}
	a.events.WaitCount(t, 1, 5*time.Second, "line on the second stream", eventtest.Message(b.id(), "via the second stream"))
	b.room.Send("via the first stream")
	a.events.WaitCount(t, 1, 5*time.Second, "line on the first stream", eventtest.Message(b.id(), "via the first stream"))
	if n := a.events.Count(eventtest.Is(event.Joined, b.id())); n != 1 {
		t.Errorf("a joined b %d times, want once", n)
	}
	_ = st.Close()
	// The end of the extra stream does not end the session.
	b.room.Send("after the second stream closed")
	a.events.WaitCount(t, 1, 5*time.Second, "line after the extra stream ended", eventtest.Message(b.id(), "after the second stream closed"))
	if n := a.events.Count(eventtest.Is(event.Left, b.id())); n != 0 {
		t.Errorf("a saw b leave %d times", n)
	}
}

// TestRoomStaleRecordsDoNotDelay: the rendezvous still holds the records of
// peers that are gone; dialing them must not hold up meeting the live ones.
func TestRoomStaleRecordsDoNotDelay(t *testing.T) {
	needHosts(t)
	server := startRoomServer(t)
	var gone []peer.ID
	for range 3 {
		p := startRoomPeer(t, "stale records", server)
		p.events.WaitCount(t, 1, 15*time.Second, "advertised", func(e event.Event) bool {
			return e.Kind == event.Info && e.Code == event.Advertising && e.Rendezvous == "stale records"
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
		if n := a.events.Count(eventtest.Is(event.Joined, id)) + b.events.Count(eventtest.Is(event.Joined, id)); n != 0 {
			t.Errorf("joined a peer that is gone")
		}
	}
}
