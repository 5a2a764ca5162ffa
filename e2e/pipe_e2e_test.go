//go:build linux

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// Input that is not a terminal is a script's: `echo "build done" |
// rendezvous-chat -rendezvous ops` must get there. These tests pipe lines
// in and close the pipe.

// pipeLines writes lines to p's stdin and closes it: the input ends.
func pipeLines(t *testing.T, p *e2e.Proc, lines ...string) {
	t.Helper()
	for _, l := range lines {
		p.Send(t, l)
	}
	if err := p.Stdin.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestE2EPipeLingers: lines piped in before anyone joined reach a peer
// that joins after the input ended, once and in order, and the sender
// then exits 0 by itself; alone, it exits 3 once -linger has run out, and
// says which lines were not delivered.
func TestE2EPipeLingers(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)

	t.Run("delivered", func(t *testing.T) {
		t.Parallel()
		const rendezvous = "pipe lingers"
		a := startPeer(t, "a", server, rendezvous, "-linger", "20s")
		aID := a.Ready(t).ID
		pipeLines(t, a, "build done", "tests passed")
		a.Wait(t, event.Info, e2e.Code(event.Held), eventTimeout)
		time.Sleep(2 * time.Second)
		b := startPeer(t, "b", server, rendezvous)
		if code := a.WaitExit(t, 20*time.Second); code != 0 {
			t.Errorf("the sender exited with %d once its lines were delivered, want 0", code)
		}
		b.Wait(t, event.Message, e2e.From(aID, "tests passed"), eventTimeout)
		if got := messageTexts(b, aID); strings.Join(got, "|") != "build done|tests passed" {
			t.Errorf("b got %q, want both lines once, in order", got)
		}
		a.NoEvent(t, 0, event.Error, e2e.Code(event.Undelivered), "every line was delivered")
	})

	t.Run("alone", func(t *testing.T) {
		t.Parallel()
		a := startPeer(t, "a", server, "pipe lingers alone", "-linger", "2s")
		a.Ready(t)
		start := time.Now()
		pipeLines(t, a, "anyone?", "hello?")
		code := a.WaitExit(t, 10*time.Second)
		took := time.Since(start)
		if code != 3 || took < 2*time.Second || took > 8*time.Second {
			t.Errorf("exit status %d after %v, want 3 within 2 to 8 s", code, took.Round(time.Millisecond))
		}
		e, ok := a.First(event.Error, e2e.Code(event.Undelivered))
		if !ok || e.Count != 2 || len(e.MsgIDs) != 2 {
			t.Errorf("undelivered event %+v, want the two lines", e)
		}
	})
}

// TestE2EPipeLingersAfterDelivery: a line that reached a peer on our own
// protocol must not cancel out a later line that nobody had. b sends a line
// that c acknowledges; c leaves; b pipes one more line, held since nobody
// is here, and ends its input: it waits out -linger for someone to join,
// says the line was not delivered, and exits 3. (Once the writer's flush of
// a framed line counted as a plain line written, the count of lines in
// flight went below zero, hid the held line, and b exited 0 at once.)
func TestE2EPipeLingersAfterDelivery(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	const rendezvous = "pipe lingers after delivery"
	const linger = 3 * time.Second
	b := startPeer(t, "b", server, rendezvous, "-linger", linger.String())
	c := startPeer(t, "c", server, rendezvous)
	bID, cID := b.Ready(t).ID, c.Ready(t).ID
	meet(t, b, c, bID, cID)
	b.Send(t, "you will get this")
	c.Wait(t, event.Message, e2e.From(bID, "you will get this"), eventTimeout)
	b.Wait(t, event.Delivered, nil, eventTimeout)

	if err := c.Stdin.Close(); err != nil {
		t.Fatal(err)
	}
	if code := c.WaitExit(t, exitTimeout); code != 0 {
		t.Errorf("c: exit status %d after end of input, want 0", code)
	}
	b.Wait(t, event.Left, e2e.Peer(cID), eventTimeout)

	start := time.Now()
	pipeLines(t, b, "nobody hears this")
	code := b.WaitExit(t, linger+10*time.Second)
	took := time.Since(start)
	if code != 3 || took < linger || took > linger+5*time.Second {
		t.Errorf("b: exit status %d after %v, want 3 after lingering %v", code, took.Round(time.Millisecond), linger)
	}
	e, ok := b.First(event.Error, e2e.Code(event.Undelivered))
	if !ok || e.Count != 1 || len(e.MsgIDs) != 1 {
		t.Errorf("b: undelivered event %+v, want the one held line", e)
	}
}

// TestE2EPipeBackpressure: a pipe faster than the room is slowed, never
// cut: more lines than are held while nobody is here all arrive, in order,
// when a peer joins.
func TestE2EPipeBackpressure(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	const rendezvous = "pipe backpressure"
	const n = 300 // three times the held lines
	a := startPeer(t, "a", server, rendezvous, "-linger", "30s")
	aID := a.Ready(t).ID
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("line %03d", i)
	}
	go func() {
		// The writes block while the program holds what it can and waits:
		// that is the backpressure.
		for _, l := range lines {
			if _, err := a.Stdin.Write([]byte(l + "\n")); err != nil {
				return
			}
		}
		_ = a.Stdin.Close()
	}()
	time.Sleep(2 * time.Second)
	b := startPeer(t, "b", server, rendezvous)
	if code := a.WaitExit(t, 40*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	b.Wait(t, event.Message, e2e.From(aID, lines[n-1]), eventTimeout)
	if got := messageTexts(b, aID); strings.Join(got, "\n") != strings.Join(lines, "\n") {
		t.Errorf("b got %d lines, want all %d once, in order", len(got), n)
	}
	a.NoEvent(t, 0, event.Error, e2e.Code(event.HeldFull), "no line is refused on a pipe")
	a.NoEvent(t, 0, event.Error, e2e.Code(event.Stalled), "someone joined")
}

// TestE2EHeldLinesToEveryJoiner: a line typed while the room is empty goes
// to every peer that joins within the resend window, once each.
func TestE2EHeldLinesToEveryJoiner(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	const rendezvous = "held to every joiner"
	a := startPeer(t, "a", server, rendezvous)
	aID := a.Ready(t).ID
	a.Send(t, "anyone here?")
	a.Wait(t, event.Info, e2e.Code(event.Held), eventTimeout)
	b := startPeer(t, "b", server, rendezvous)
	b.Wait(t, event.Message, e2e.From(aID, "anyone here?"), meetTimeout)
	c := startPeer(t, "c", server, rendezvous)
	c.Wait(t, event.Message, e2e.From(aID, "anyone here?"), meetTimeout)
	cID := c.Ready(t).ID
	b.Wait(t, event.Joined, e2e.Peer(cID), meetTimeout)
	time.Sleep(time.Second)
	for _, p := range []*e2e.Proc{b, c} {
		if n := p.Count(event.Message, e2e.From(aID, "anyone here?")); n != 1 {
			t.Errorf("%s got the held line %d times, want once", p.Name, n)
		}
	}
}
