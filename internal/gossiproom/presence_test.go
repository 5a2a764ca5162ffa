package gossiproom

import (
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// presenceLog collects a room's presence events.
type presenceLog struct {
	t   *testing.T
	evs chan PresenceEvent
}

func watchPresence(t *testing.T, r *Room) *presenceLog {
	l := &presenceLog{t: t, evs: make(chan PresenceEvent, 1024)}
	go func() {
		for ev := range r.Presence() {
			l.evs <- ev
		}
	}()
	return l
}

// await returns the first event that matches, failing after d; events
// that do not match are skipped (failing if one matches reject).
func (l *presenceLog) await(d time.Duration, what string, match, reject func(PresenceEvent) bool) PresenceEvent {
	l.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev := <-l.evs:
			if reject != nil && reject(ev) {
				l.t.Fatalf("unexpected presence event %+v while waiting for %s", ev, what)
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			l.t.Fatalf("no presence event for %s within %v", what, d)
		}
	}
}

func is(kind PresenceKind, p peer.ID) func(PresenceEvent) bool {
	return func(ev PresenceEvent) bool { return ev.Kind == kind && ev.Peer == p }
}

// (e) Presence in a ring of four rooms, where A is not connected to C: A
// learns of everyone, including C, through the presence topic; a nick
// change arrives as an update; C leaves with a bye; D is killed (its host
// closes, its room never says bye) and times out after three intervals; B,
// still there, never leaves. A silent universal-connectivity peer is seen
// on the topic and leaves after the silent TTL.
func TestPresenceJoinsAndLeaves(t *testing.T) {
	const room = "presence room"
	const interval = 200 * time.Millisecond
	opts := func(nick string) Options {
		return Options{Nick: nick, Capabilities: []string{"/rendezvous-chat/1.0.0"}, PresenceInterval: interval,
			SilentTTL: 600 * time.Millisecond}
	}
	hosts := make([]host.Host, 4)
	rooms := make([]*Room, 4)
	for i, nick := range []string{"alice", "bob", "carol", "dave"} {
		hosts[i] = newHost(t)
		rooms[i] = newRoom(t, hosts[i], room, opts(nick))
	}
	a := watchPresence(t, rooms[0])
	for i := range 4 {
		connect(t, hosts[i], hosts[(i+1)%4])
	}
	ids := make([]peer.ID, 4)
	for i, h := range hosts {
		ids[i] = h.ID()
	}
	left := func(ev PresenceEvent) bool { return ev.Kind == Left && ev.Peer == ids[1] }

	nicks := map[peer.ID]string{ids[1]: "bob", ids[2]: "carol", ids[3]: "dave"}
	announced := map[peer.ID]bool{}
	a.await(5*time.Second, "everyone's announcement", func(ev PresenceEvent) bool {
		if ev.Announces && ev.Nick == nicks[ev.Peer] {
			if len(ev.Capabilities) != 1 || ev.Capabilities[0] != "/rendezvous-chat/1.0.0" {
				t.Errorf("%s's capabilities: %q", ev.Nick, ev.Capabilities)
			}
			announced[ev.Peer] = true
		}
		return len(announced) == 3
	}, left)
	for _, p := range rooms[0].Peers() {
		if p.Peer == ids[2] && p.Neighbour {
			t.Error("C counts as a neighbour of A")
		}
	}
	if c := rooms[0].Counts(); c.Total != 3 || c.Announcing != 3 {
		t.Errorf("A counts %+v", c)
	}

	// A nick change.
	if err := rooms[3].SetNick("david"); err != nil {
		t.Fatal(err)
	}
	a.await(5*time.Second, "dave's new nick", func(ev PresenceEvent) bool {
		return ev.Kind == Updated && ev.Peer == ids[3] && ev.Nick == "david"
	}, left)

	// C says bye.
	start := time.Now()
	if err := rooms[2].Close(); err != nil {
		t.Fatal(err)
	}
	ev := a.await(5*time.Second, "carol's bye", is(Left, ids[2]), left)
	if ev.Reason != ReasonBye || ev.Nick != "carol" {
		t.Errorf("carol left %+v", ev)
	}
	t.Logf("carol's bye arrived %v after Close began", time.Since(start).Round(time.Millisecond))

	// D is killed: its host goes away without a word.
	start = time.Now()
	if err := hosts[3].Close(); err != nil {
		t.Fatal(err)
	}
	ev = a.await(5*time.Second, "dave's timeout", is(Left, ids[3]), left)
	took := time.Since(start)
	if ev.Reason != ReasonTimeout {
		t.Errorf("dave left %+v", ev)
	}
	if took < 3*interval || took > 3*interval*10/8*2 {
		t.Errorf("dave timed out after %v; want about 3 intervals (%v)", took, 3*interval)
	}
	t.Logf("dave timed out %v after his host closed", took.Round(time.Millisecond))

	// A silent peer (plain GossipSub) connected to A.
	silent := newRawPeer(t, room)
	connect(t, silent.h, hosts[0])
	ev = a.await(5*time.Second, "the silent peer", is(Joined, silent.h.ID()), left)
	if ev.Announces || ev.Via != ViaTopic {
		t.Errorf("silent peer joined %+v", ev)
	}
	if c := rooms[0].Counts(); c.Total != 2 || c.Silent != 1 {
		t.Errorf("A counts %+v", c)
	}
	start = time.Now()
	if err := silent.h.Close(); err != nil {
		t.Fatal(err)
	}
	ev = a.await(5*time.Second, "the silent peer to go", is(Left, silent.h.ID()), left)
	if ev.Reason != ReasonSilent {
		t.Errorf("silent peer left %+v", ev)
	}
	t.Logf("the silent peer left %v after its host closed", time.Since(start).Round(time.Millisecond))

	// B is still there.
	if p := rooms[0].Peers(); len(p) != 1 || p[0].Peer != ids[1] || p[0].Nick != "bob" {
		t.Errorf("A's table: %+v", p)
	}
	if s := rooms[0].Stats(); s.BadPresence != 0 || s.PresenceLimited != 0 || s.PresenceDropped != 0 {
		t.Errorf("A's stats %+v", s)
	}
}

// A peer that is killed before its room closes: Close still returns
// promptly, though nothing can be sent.
func TestCloseAfterHostClosed(t *testing.T) {
	h := newHost(t)
	r := newRoom(t, h, "gone", Options{PresenceInterval: 100 * time.Millisecond})
	_ = h.Close()
	done := make(chan struct{})
	go func() { _ = r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs after the host closed")
	}
	if _, ok := <-r.Messages(); ok {
		t.Fatal("Messages not closed")
	}
	if _, ok := <-r.Presence(); ok {
		t.Fatal("Presence not closed")
	}
	if _, err := r.Publish(t.Context(), "x"); err != ErrClosed {
		t.Fatalf("Publish after Close: %v", err)
	}
}

func TestDecodePresence(t *testing.T) {
	good := `{"v":1,"t":"here","nick":"alice","caps":["/x/1"],"every_ms":30000,"future":true}`
	a, err := decodePresence([]byte(good))
	if err != nil || a.Nick != "alice" || a.EveryMS != 30000 || len(a.Caps) != 1 {
		t.Fatalf("decode %s: %+v, %v", good, a, err)
	}
	if a, err := decodePresence([]byte(`{"v":2,"t":"bye"}`)); err != nil || a.T != presenceBye {
		t.Fatalf("a later version's bye: %+v, %v", a, err)
	}
	for _, bad := range []string{
		``, `null`, `[]`, `"here"`, `{"v":1}`, `{"v":0,"t":"here"}`, `{"t":"here"}`,
		`{"v":1,"t":"away"}`, `{"v":1,"t":"here","nick":"` + strings.Repeat("n", MaxNickBytes+1) + `"}`,
		`{"v":1,"t":"here","caps":["a","b","c","d","e","f","g","h","i"]}`,
		`{"v":1,"t":"here","caps":[""]}`, `{"v":1,"t":"here","every_ms":-1}`,
		"{\"v\":1,\"t\":\"here\",\"nick\":\"\xff\"}", `{"v":1,"t":"here","nick":5}`,
		`{"v":1e400,"t":"here"}`,
	} {
		if a, err := decodePresence([]byte(bad)); err == nil {
			t.Errorf("decodePresence(%q) = %+v, want an error", bad, a)
		}
	}
	data, err := encodePresence(announcement{V: 1, T: presenceHere, Nick: "<b>&", EveryMS: 5})
	if err != nil || string(data) != `{"v":1,"t":"here","nick":"<b>&","every_ms":5}` {
		t.Fatalf("encode: %s, %v", data, err)
	}
}

// The table on its own, with a clock of our making.
func TestTable(t *testing.T) {
	self, p1, p2 := peer.ID("self"), peer.ID("p1"), peer.ID("p2")
	tb := newTable(self, Options{PresenceInterval: time.Second, SilentTTL: 10 * time.Second, MaxPresencePeers: 2})
	t0 := time.Unix(1000, 0)
	here := func(nick string) *announcement {
		return &announcement{V: 1, T: presenceHere, Nick: nick, EveryMS: 1000}
	}
	bye := &announcement{V: 1, T: presenceBye}

	if ev, _ := tb.apply(observation{kind: obsChat, peer: self, at: t0}); ev != nil {
		t.Fatal("we are in our own table")
	}
	ev, _ := tb.apply(observation{kind: obsChat, peer: p1, at: t0})
	if ev == nil || ev.Kind != Joined || ev.Via != ViaChat || ev.Announces {
		t.Fatalf("first line: %+v", ev)
	}
	ev, _ = tb.apply(observation{kind: obsPresence, peer: p1, at: t0, ann: here("one"), seq: 10})
	if ev == nil || ev.Kind != Updated || !ev.Announces || ev.Nick != "one" {
		t.Fatalf("first announcement: %+v", ev)
	}
	if ev, _ = tb.apply(observation{kind: obsPresence, peer: p1, at: t0, ann: here("one"), seq: 11}); ev != nil {
		t.Fatalf("same announcement again: %+v", ev)
	}
	if ev, _ = tb.apply(observation{kind: obsPresence, peer: p1, at: t0, ann: here("old"), seq: 9}); ev != nil {
		t.Fatalf("an older announcement: %+v", ev)
	}
	// A full table leaves newcomers out.
	tb.apply(observation{kind: obsTopicJoin, peer: p2, at: t0})
	if _, fit := tb.apply(observation{kind: obsChat, peer: "p3", at: t0}); fit {
		t.Fatal("a third peer fit a table of two")
	}
	// p2 is a neighbour: it never times out; p1 does after 3 s.
	if evs := tb.expire(t0.Add(3 * time.Second)); len(evs) != 0 {
		t.Fatalf("expired too early: %+v", evs)
	}
	evs := tb.expire(t0.Add(3*time.Second + time.Millisecond))
	if len(evs) != 1 || evs[0].Peer != p1 || evs[0].Reason != ReasonTimeout {
		t.Fatalf("expire: %+v", evs)
	}
	if evs := tb.expire(t0.Add(time.Hour)); len(evs) != 0 {
		t.Fatalf("a neighbour expired: %+v", evs)
	}
	tb.apply(observation{kind: obsTopicLeave, peer: p2, at: t0.Add(time.Hour)})
	evs = tb.expire(t0.Add(time.Hour + 11*time.Second))
	if len(evs) != 1 || evs[0].Peer != p2 || evs[0].Reason != ReasonSilent {
		t.Fatalf("silent expiry: %+v", evs)
	}

	// A bye, then a line and an older "here" still on the way: p1 stays
	// gone; a newer "here" brings it back.
	t1 := t0.Add(2 * time.Hour)
	tb.apply(observation{kind: obsPresence, peer: p1, at: t1, ann: here("one"), seq: 20})
	ev, _ = tb.apply(observation{kind: obsPresence, peer: p1, at: t1, ann: bye, seq: 21})
	if ev == nil || ev.Kind != Left || ev.Reason != ReasonBye {
		t.Fatalf("bye: %+v", ev)
	}
	for _, o := range []observation{
		{kind: obsChat, peer: p1, at: t1},
		{kind: obsPresence, peer: p1, at: t1, ann: here("one"), seq: 20},
	} {
		if ev, _ := tb.apply(o); ev != nil {
			t.Fatalf("came back after bye: %+v", ev)
		}
	}
	ev, _ = tb.apply(observation{kind: obsPresence, peer: p1, at: t1, ann: here("again"), seq: 30})
	if ev == nil || ev.Kind != Joined || ev.Nick != "again" {
		t.Fatalf("rejoin: %+v", ev)
	}

	// A claimed interval is held between ours and ten of ours.
	if d := tb.announcedTTL(1); d != 3*time.Second {
		t.Errorf("TTL for 1 ms: %v", d)
	}
	if d := tb.announcedTTL(1 << 40); d != 30*time.Second {
		t.Errorf("TTL for a huge interval: %v", d)
	}
}
