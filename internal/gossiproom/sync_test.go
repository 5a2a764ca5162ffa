package gossiproom

import (
	"context"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"google.golang.org/protobuf/proto"
)

// TestNewcomerSyncs: C joins a settled room through B alone and learns of
// A, whom it is not connected to, from B's sync, without A announcing
// itself again; A learns of C from C's own announcements. The interval is
// long, so no periodic announcement can stand in for either.
func TestNewcomerSyncs(t *testing.T) {
	const room = "sync room"
	opts := func(nick string) Options {
		return Options{Nick: nick, PresenceInterval: time.Minute}
	}
	ha, hb, hc := newHost(t), newHost(t), newHost(t)
	a := newRoom(t, ha, room, opts("alice"))
	b := newRoom(t, hb, room, opts("bob"))
	c := newRoom(t, hc, room, opts("carol"))
	watchB, watchA, watchC := watchPresence(t, b), watchPresence(t, a), watchPresence(t, c)
	connect(t, ha, hb)
	watchB.await(5*time.Second, "alice's announcement at b", func(ev PresenceEvent) bool {
		return ev.Peer == ha.ID() && ev.Announces
	}, nil)
	watchA.await(5*time.Second, "bob's announcement at a", func(ev PresenceEvent) bool {
		return ev.Peer == hb.ID() && ev.Announces
	}, nil)
	time.Sleep(settledAnnounceDelay + extraAnnounceSpread) // a's own announcements are over
	announcedBefore := a.Stats().Announced

	start := time.Now()
	connect(t, hc, hb)
	ev := watchC.await(5*time.Second, "alice's announcement at c", func(ev PresenceEvent) bool {
		return ev.Peer == ha.ID() && ev.Announces
	}, nil)
	t.Logf("c learned of %s %v after it connected", ev.Nick, time.Since(start).Round(time.Millisecond))
	if ev.Nick != "alice" {
		t.Errorf("c knows a as %q", ev.Nick)
	}
	if s := c.Stats(); s.Synced == 0 {
		t.Errorf("c synced nothing: %+v", s)
	}
	watchA.await(5*time.Second, "carol's announcement at a", func(ev PresenceEvent) bool {
		return ev.Peer == hc.ID() && ev.Announces
	}, nil)
	time.Sleep(extraAnnounceSpread + neighbourAnnounceDelay)
	if n := a.Stats().Announced - announcedBefore; n != 0 {
		t.Errorf("a announced itself %d more times for a newcomer that syncs", n)
	}
}

// TestSyncedAnnouncementsAreChecked: a neighbour can pass on only what a
// member signed: an announcement altered on the way, or put under another
// author, is refused.
func TestSyncedAnnouncementsAreChecked(t *testing.T) {
	const room = "sync check room"
	ha, hb := newHost(t), newHost(t)
	a := newRoom(t, ha, room, Options{Nick: "alice"})
	newRoom(t, hb, room, Options{Nick: "bob"})
	connect(t, ha, hb)
	var own []byte
	eventually(t, 5*time.Second, "a's own signed announcement", func() bool {
		if p := a.pres.ownAnnouncement.Load(); p != nil {
			own = *p
			return true
		}
		return false
	})
	var m pb.Message
	if err := proto.Unmarshal(own, &m); err != nil {
		t.Fatal(err)
	}
	if err := verifySigned(&m, ha.ID()); err != nil {
		t.Fatalf("a's own announcement does not verify: %v", err)
	}
	altered := proto.CloneOf(&m)
	altered.Data = []byte(`{"v":1,"t":"here","nick":"mallory"}`)
	if verifySigned(altered, ha.ID()) == nil {
		t.Error("an altered announcement verified")
	}
	moved := proto.CloneOf(&m)
	moved.From = []byte(hb.ID())
	if verifySigned(moved, hb.ID()) == nil {
		t.Error("an announcement moved to another author verified")
	}
	raw, err := proto.Marshal(altered)
	if err != nil {
		t.Fatal(err)
	}
	fresh := newPresence(context.Background(), newHost(t), a.pres.name, a.pres.opts, &counters{}, a.tracer)
	fresh.topic = a.pres.topic // syncs() needs a topic
	if _, ok := fresh.syncedObservation(raw); ok {
		t.Error("an altered synced announcement was taken")
	}
	if _, ok := fresh.syncedObservation(own); !ok {
		t.Error("a genuine synced announcement was refused")
	}
}
