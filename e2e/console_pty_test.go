//go:build linux

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// TestE2ELineEditor: on a terminal, the chat is a line editor. Tab
// completes a command, a message that arrives while the user is typing
// leaves the prompt and the partial line intact below it, the finished line
// is sent, and Ctrl-D on an empty line leaves.
func TestE2ELineEditor(t *testing.T) {
	_, server := startServer(t)
	b := startPeer(t, "b", server, "line editor", "-nick", "bob")
	b.Ready(t)
	master, slave := e2e.OpenPTY(t)

	alice := e2e.StartWith(t, "alice", e2e.Options{Terminal: slave, Env: []string{"NO_COLOR=1", "TERM=xterm"}},
		"-mdns=false", "-peer", server, "-listen", "/ip4/127.0.0.1/tcp/0", "-rendezvous", "line editor", "-nick", "alice")

	screenText := e2e.RecordScreen(master)
	// waitScreen waits until the screen, from offset from on, contains s,
	// and returns where it ends.
	waitScreen := func(from int, s string) int {
		t.Helper()
		deadline := time.Now().Add(eventTimeout)
		for time.Now().Before(deadline) {
			all := screenText()
			if i := strings.Index(all[min(from, len(all)):], s); i >= 0 {
				return from + i + len(s)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("the terminal never showed %q after byte %d; it shows:\n%q", s, from, screenText()[min(from, len(screenText())):])
		return 0
	}
	typeKeys := func(s string) {
		t.Helper()
		if _, err := master.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}

	at := waitScreen(0, "bob joined")
	// Tab completes "/he" to "/help "; Enter runs it.
	typeKeys("/he\t")
	at = waitScreen(at, "/help ")
	typeKeys("\r")
	at = waitScreen(at, "Commands:")

	// A message arrives while "half a" is typed: it is printed, and the
	// prompt comes back below it with the partial line intact.
	typeKeys("half a")
	at = waitScreen(at, "half a")
	b.Send(t, "hello from bob")
	at = waitScreen(at, "bob: hello from bob")
	waitScreen(at, "> half a")
	typeKeys(" line\r")
	b.Wait(t, event.Message, e2e.From(aIDFromScreen(t, screenText()), "half a line"), eventTimeout)
	// The sent line is shown once, as everyone's lines are, and ticked in
	// place when bob acknowledges it: the typed "> half a line" is gone.
	at = waitScreen(at, "alice: half a line")
	waitScreen(at, "✓")
	if n := strings.Count(screenText(), "✓ delivered"); n != 0 {
		t.Errorf("a receipt took %d lines of its own", n)
	}

	// Ctrl-D on an empty line leaves, with status 0.
	typeKeys("\x04")
	if code := alice.WaitExit(t, exitTimeout); code != 0 {
		t.Errorf("exit status %d after Ctrl-D, want 0", code)
	}
	b.Wait(t, event.Left, func(e e2e.Event) bool { return e.Nick == "alice" }, eventTimeout)
}

// aIDFromScreen takes our peer ID from the "You are" line the human view
// prints first.
func aIDFromScreen(t *testing.T, screen string) string {
	t.Helper()
	_, rest, ok := strings.Cut(screen, "You are ")
	if !ok {
		t.Fatalf("no \"You are\" line on the screen:\n%q", screen)
	}
	id, _, _ := strings.Cut(rest, "\r")
	return strings.TrimSpace(strings.Split(id, "\n")[0])
}
