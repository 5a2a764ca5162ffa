package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// TestHumanViewTransfer follows a /get through the human view: a line when
// it starts, a bar before the prompt while it runs, the bar gone and a line
// when it ends, and a failed one's bar gone too.
func TestHumanViewTransfer(t *testing.T) {
	var out bytes.Buffer
	var status []string
	v := newHumanView(&out, func() error { return nil }, false)
	v.status = func(s string) { status = append(status, s) }
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	render := func(e event.Event) {
		t.Helper()
		e.Time = now
		if err := v.render(&e); err != nil {
			t.Fatal(err)
		}
	}
	render(event.Event{Kind: event.Transfer, FileID: "f1", Path: "a.bin", Name: "bob"})
	render(event.Event{Kind: event.Transfer, FileID: "f1", Path: "a.bin", Name: "bob", Bytes: 1 << 20, Total: 4 << 20})
	if len(status) != 1 || !strings.HasPrefix(status[0], "[#####---------------] 25% 1.0 MiB/4.0 MiB") {
		t.Fatalf("status while fetching = %q", status)
	}
	render(event.Event{Kind: event.Transfer, FileID: "f1", Path: "a.bin", Name: "bob", Bytes: 4 << 20, Total: 4 << 20, Done: true})
	if status[len(status)-1] != "" {
		t.Errorf("status after the end = %q, want none", status[len(status)-1])
	}
	render(event.Event{Kind: event.Transfer, FileID: "f2\x1b[2J", Path: "b", Name: "bob", Bytes: 1, Total: 2})
	render(event.Event{Kind: event.Error, Code: event.FetchFailed, Why: event.WhyUnavailable, FileID: "f2\x1b[2J", Done: true, Name: "bob"})
	if status[len(status)-1] != "" {
		t.Errorf("status after a failure = %q, want none", status[len(status)-1])
	}
	got := out.String()
	for _, want := range []string{"fetching f1 from bob into a.bin", "fetched f1 from bob: 4.0 MiB in a.bin", "! /get: bob did not serve file f2"} {
		if !strings.Contains(got, want) {
			t.Errorf("view output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\x1b") || strings.Contains(strings.Join(status, ""), "\x1b") {
		t.Errorf("an escape from a file ID reached the terminal: %q", got)
	}
}

func TestByteSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 bytes", 1023: "1023 bytes", 1536: "1.5 KiB", 64 << 20: "64.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// bobID is a peer ID for the view tests' other peer.
const bobID = "12D3KooWAMQphAjmJy7hgpJeLhnktZdxgEcakLQWAzvu3ocgxuq4"

// sentLineEvents are the events of issue 14 item 9's case: bob writes, we
// answer, bob acknowledges; then a line of ours that bob does not
// acknowledge, reported as not delivered, and bob leaving with one line
// unacknowledged.
func sentLineEvents() []event.Event {
	return []event.Event{
		{Kind: event.Ready, ID: "12D3KooWKafpWPFoLo7E2TH6X2uNsW8RZVWaaLanoR2WdWDAYmDU", Nick: "alice", Rendezvous: "view"},
		{Kind: event.Message, Peer: bobID, Nick: "bob", Name: "bob", MsgID: "b1", Text: "hello alice"},
		{Kind: event.Sent, MsgIDs: []string{"m1"}, Text: "hi bob", Peers: []string{bobID}},
		{Kind: event.Delivered, MsgIDs: []string{"m1"}, Text: "hi bob", Peers: []string{bobID}, Names: []string{"bob"}},
		{Kind: event.Sent, MsgIDs: []string{"m2"}, Text: "are you there?", Peers: []string{bobID}},
		{Kind: event.Error, Code: event.NotDelivered, MsgID: "m2", Text: "are you there?", Peer: bobID, Name: "bob",
			Why: event.WhyNoReceipt, WaitMS: 30000},
		{Kind: event.Info, Code: event.UnackedOnLeave, Count: 1, Peer: bobID, Name: "bob", WaitMS: 300000},
	}
}

// TestHumanViewSentLines: when stdout is not a terminal, a line we sent is
// shown once, in the form of everyone's lines ("08:00 alice: hi bob"); a
// receipt adds no line (there is no tick to put on it), and only the lines
// left unacknowledged get a notice, of one line each (issue 14 item 9).
func TestHumanViewSentLines(t *testing.T) {
	var out bytes.Buffer
	v := newHumanView(&out, func() error { return nil }, false)
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	for _, e := range sentLineEvents() {
		e.Time = now
		if err := v.render(&e); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	lines = lines[3:] // "You are", "listening on", "Looking for peers"
	want := []string{
		"08:00 bob: hello alice",
		"08:00 alice: hi bob",
		"08:00 alice: are you there?",
		`08:00 ! line "are you there?" not delivered to bob: no receipt within 30s`,
		"08:00 · 1 line(s) to bob not acknowledged yet: they are sent again if bob is back within 5m0s",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("the view showed\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(out.String(), "✓") {
		t.Errorf("a tick where none can be put in place:\n%s", out.String())
	}
}
