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
