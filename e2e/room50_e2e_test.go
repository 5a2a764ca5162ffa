//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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
// -race (see roomBinary): fifty race-built processes on the two cores of
// CI starve each other so badly that liveness pings fail and the room
// never holds together. The other end-to-end tests look for races.
func TestE2ERoomOf50(t *testing.T) {
	bin := roomBinary(t)
	const (
		meetWithin    = 90 * time.Second
		deliverWithin = 60 * time.Second
	)
	began := time.Now()
	srv := startCmd(t, "server", bin, "-server", "-json", "-listen", "/ip4/127.0.0.1/tcp/0")
	sr := srv.ready(t)
	server := sr.Addrs[0]
	if !sr.Server || !strings.HasPrefix(server, "/ip4/127.0.0.1/tcp/") {
		t.Fatalf("server: unexpected ready event %+v", sr)
	}
	rendezvous := fmt.Sprintf("room of 50 %d", os.Getpid())

	peers := make([]*proc, roomOf50)
	for i := range peers {
		peers[i] = startCmd(t, fmt.Sprintf("peer%02d", i), bin, "-json", "-mdns=false", "-peer", server,
			"-listen", "/ip4/127.0.0.1/tcp/0", "-rendezvous", rendezvous, "-presence-interval", "5s")
	}
	ids := make([]string, roomOf50)
	index := make(map[string]int, roomOf50)
	for i, p := range peers {
		ids[i] = p.ready(t).ID
		index[ids[i]] = i
	}
	started := peers[0].started

	// Every peer joins every other.
	deadline := time.Now().Add(meetWithin)
	for i, p := range peers {
		err := p.waitFor(deadline, func(es []Event) bool {
			return len(distinctPeers(es, EventJoined, index, i)) == roomOf50-1
		})
		if err != nil {
			p.mu.Lock()
			missing := roomOf50 - 1 - len(distinctPeers(p.events, EventJoined, index, i))
			p.mu.Unlock()
			t.Fatalf("%s: %d of the %d others not joined %v after the first start: %v",
				p.name, missing, roomOf50-1, meetWithin, err)
		}
	}
	met := time.Since(started)
	topicJoins := 0
	for _, p := range peers {
		topicJoins += len(p.all(EventJoined, func(e Event) bool { return e.Via == viaTopic }))
	}
	t.Logf("all %d ready and met %v after the first start (%d of the %d joined events via the topic)",
		roomOf50, met.Round(time.Millisecond), topicJoins, roomOf50*(roomOf50-1))

	// Every peer writes one line, all at once.
	text := func(i int) string { return "line from peer " + strconv.Itoa(i) }
	sent := time.Now()
	for i, p := range peers {
		p.send(t, text(i))
	}
	isOurs := func(e Event) bool {
		j, ok := index[e.Peer]
		return ok && e.Text == text(j)
	}
	deadline = time.Now().Add(deliverWithin)
	for i, p := range peers {
		err := p.waitFor(deadline, func(es []Event) bool {
			n := 0
			for _, e := range es {
				if e.Kind == EventMessage && isOurs(e) {
					n++
				}
			}
			return n >= roomOf50-1
		})
		if err != nil {
			got := distinctPeers(p.all(EventMessage, isOurs), EventMessage, index, i)
			t.Errorf("%s: printed the lines of %d of the %d others within %v: %v", p.name, len(got), roomOf50-1, deliverWithin, err)
		}
	}
	delivered := time.Since(sent)
	// A moment for duplicates still on their way (a line may come by a
	// session and by the topic).
	time.Sleep(time.Second)

	viaTopicLines := 0
	for i, p := range peers {
		count := make(map[string]int)
		for _, e := range p.all(EventMessage, nil) {
			j, known := index[e.Peer]
			switch {
			case !known || e.Text != text(j):
				t.Errorf("%s: unexpected message %q from %s", p.name, e.Text, e.Peer)
			case j == i:
				t.Errorf("%s: printed its own line as a message", p.name)
			default:
				count[e.Peer]++
				if e.Via == viaTopic {
					viaTopicLines++
				}
			}
		}
		for j, id := range ids {
			if j != i && count[id] != 1 {
				t.Errorf("%s: printed the line of %s %d times, want once", p.name, peers[j].name, count[id])
			}
		}
	}
	lefts := 0
	for _, p := range peers {
		lefts += len(p.all(EventLeft, nil))
	}

	var rss, hwm int64
	for _, p := range peers {
		r, h := childMemKB(p.cmd.Process.Pid)
		rss, hwm = rss+r, hwm+h
	}
	t.Logf("every line printed by the %d others %v after the writes (%d of %d deliveries via the topic, %d left events); "+
		"the peers' RSS now %.0f MB in all (peaks %.0f MB in all, %.1f MB per peer); test %v in all",
		roomOf50-1, delivered.Round(time.Millisecond), viaTopicLines, roomOf50*(roomOf50-1), lefts,
		float64(rss)/1024, float64(hwm)/1024, float64(hwm)/1024/roomOf50, time.Since(began).Round(time.Second))
}

// The binary without the race detector, built at most once per test run
// (when the tests run without -race, it is e2eBinary's).
var (
	noRaceOnce sync.Once
	noRacePath string
	noRaceErr  error
)

// roomBinary returns the program built without the race detector. It
// skips the test under -short.
func roomBinary(t *testing.T) string {
	t.Helper()
	path := e2eBinary(t) // skips under -short; TestMain removes its directory
	if !raceEnabled() {
		return path
	}
	noRaceOnce.Do(func() {
		noRacePath = filepath.Join(filepath.Dir(path), "rendezvous-chat-norace")
		out, err := exec.Command("go", "build", "-o", noRacePath, ".").CombinedOutput()
		if err != nil {
			noRaceErr = fmt.Errorf("go build -o %s .: %v\n%s", noRacePath, err, out)
		}
	})
	if noRaceErr != nil {
		t.Fatalf("build the binary without -race: %v", noRaceErr)
	}
	return noRacePath
}

// distinctPeers returns the peers of index, other than index's peer self,
// that have an event of the kind in es.
func distinctPeers(es []Event, kind EventKind, index map[string]int, self int) map[string]bool {
	seen := make(map[string]bool)
	for _, e := range es {
		if j, ok := index[e.Peer]; ok && e.Kind == kind && j != self {
			seen[e.Peer] = true
		}
	}
	return seen
}

// waitFor waits until cond holds for the events so far, the process exits
// or the deadline passes.
func (p *proc) waitFor(deadline time.Time, cond func([]Event) bool) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		p.mu.Lock()
		ok := cond(p.events)
		changed, exited := p.changed, p.exited
		p.mu.Unlock()
		if ok {
			return nil
		}
		if exited {
			return fmt.Errorf("exited (%v)", p.cmd.ProcessState)
		}
		select {
		case <-changed:
		case <-timer.C:
			return fmt.Errorf("timed out")
		}
	}
}

// childMemKB returns a process's VmRSS and VmHWM in KiB (0 if unknown).
func childMemKB(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm
}
