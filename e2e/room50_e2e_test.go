//go:build linux

package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// roomOf50 is the size of TestE2ERoomOf50's room: issue 8's "a 50-peer
// room of real processes delivers everything".
const roomOf50 = 50

// TestE2ERoomOf50: fifty processes of the binary, started together at one
// rendezvous with the room on GossipSub (the default), all meet: each has
// a joined event for each of the 49 others, by a session or by the topic.
// Then each writes one line, all at once, and every line is printed by
// each of the 49 others exactly once, attributed to its author.
//
// The presence interval is 5 s instead of the default 30 s, so that a peer
// known only from the topic is met within seconds; the test is about
// delivery, and bench/ measures the default.
//
// The processes run a binary built without the race detector, even under
// -race (e2e.BinaryNoRace): fifty race-built processes on the two cores of
// CI starve each other so badly that liveness pings fail and the room
// never holds together. The other end-to-end tests look for races.
func TestE2ERoomOf50(t *testing.T) {
	bin := e2e.BinaryNoRace(t) // skips under -short
	const (
		meetWithin    = 90 * time.Second
		deliverWithin = 60 * time.Second
	)
	began := time.Now()
	srv := e2e.StartCmd(t, "server", bin, "-server", "-json", "-listen", "/ip4/127.0.0.1/tcp/0")
	sr := srv.Ready(t)
	server := sr.Addrs[0]
	if !sr.Server || !strings.HasPrefix(server, "/ip4/127.0.0.1/tcp/") {
		t.Fatalf("server: unexpected ready event %+v", sr)
	}
	rendezvous := fmt.Sprintf("room of 50 %d", os.Getpid())

	peers := make([]*e2e.Proc, roomOf50)
	for i := range peers {
		peers[i] = e2e.StartCmd(t, fmt.Sprintf("peer%02d", i), bin, "-json", "-mdns=false", "-peer", server,
			"-listen", "/ip4/127.0.0.1/tcp/0", "-rendezvous", rendezvous, "-presence-interval", "5s")
	}
	ids := make([]string, roomOf50)
	index := make(map[string]int, roomOf50)
	for i, p := range peers {
		ids[i] = p.Ready(t).ID
		index[ids[i]] = i
	}
	started := peers[0].Started

	// Every peer joins every other.
	deadline := time.Now().Add(meetWithin)
	for i, p := range peers {
		err := p.WaitFor(t.Context(), deadline, "every other joined", func(es []e2e.Event) bool {
			return len(distinctPeers(es, event.Joined, index, i)) == roomOf50-1
		})
		if err != nil {
			missing := roomOf50 - 1 - len(distinctPeers(p.Events(), event.Joined, index, i))
			t.Fatalf("%s: %d of the %d others not joined %v after the first start: %v",
				p.Name, missing, roomOf50-1, meetWithin, err)
		}
	}
	met := time.Since(started)
	topicJoins := 0
	for _, p := range peers {
		topicJoins += len(p.All(event.Joined, func(e e2e.Event) bool { return e.Via == event.ViaTopic }))
	}
	t.Logf("all %d ready and met %v after the first start (%d of the %d joined events via the topic)",
		roomOf50, met.Round(time.Millisecond), topicJoins, roomOf50*(roomOf50-1))

	// Every peer writes one line, all at once.
	text := func(i int) string { return "line from peer " + strconv.Itoa(i) }
	sent := time.Now()
	for i, p := range peers {
		p.Send(t, text(i))
	}
	isOurs := func(e e2e.Event) bool {
		j, ok := index[e.Peer]
		return ok && e.Text == text(j)
	}
	deadline = time.Now().Add(deliverWithin)
	for i, p := range peers {
		err := p.WaitFor(t.Context(), deadline, "every other's line", func(es []e2e.Event) bool {
			n := 0
			for _, e := range es {
				if e.Kind == event.Message && isOurs(e) {
					n++
				}
			}
			return n >= roomOf50-1
		})
		if err != nil {
			got := distinctPeers(p.All(event.Message, isOurs), event.Message, index, i)
			t.Errorf("%s: printed the lines of %d of the %d others within %v: %v", p.Name, len(got), roomOf50-1, deliverWithin, err)
		}
	}
	delivered := time.Since(sent)
	// A moment for duplicates still on their way (a line may come by a
	// session and by the topic).
	time.Sleep(time.Second)

	viaTopicLines := 0
	for i, p := range peers {
		count := make(map[string]int)
		for _, e := range p.All(event.Message, nil) {
			j, known := index[e.Peer]
			switch {
			case !known || e.Text != text(j):
				t.Errorf("%s: unexpected message %q from %s", p.Name, e.Text, e.Peer)
			case j == i:
				t.Errorf("%s: printed its own line as a message", p.Name)
			default:
				count[e.Peer]++
				if e.Via == event.ViaTopic {
					viaTopicLines++
				}
			}
		}
		for j, id := range ids {
			if j != i && count[id] != 1 {
				t.Errorf("%s: printed the line of %s %d times, want once", p.Name, peers[j].Name, count[id])
			}
		}
	}
	lefts := 0
	for _, p := range peers {
		lefts += len(p.All(event.Left, nil))
	}

	var rss, hwm int64
	for _, p := range peers {
		m, _ := e2e.ReadMem(p.Pid()) // zero if unknown
		rss, hwm = rss+m.RSS, hwm+m.HWM
	}
	t.Logf("every line printed by the %d others %v after the writes (%d of %d deliveries via the topic, %d left events); "+
		"the peers' RSS now %.0f MB in all (peaks %.0f MB in all, %.1f MB per peer); test %v in all",
		roomOf50-1, delivered.Round(time.Millisecond), viaTopicLines, roomOf50*(roomOf50-1), lefts,
		float64(rss)/1024, float64(hwm)/1024, float64(hwm)/1024/roomOf50, time.Since(began).Round(time.Second))
}

// distinctPeers returns the peers of index, other than index's peer self,
// that have an event of the kind in es.
func distinctPeers(es []e2e.Event, kind event.Kind, index map[string]int, self int) map[string]bool {
	seen := make(map[string]bool)
	for _, e := range es {
		if j, ok := index[e.Peer]; ok && e.Kind == kind && j != self {
			seen[e.Peer] = true
		}
	}
	return seen
}
