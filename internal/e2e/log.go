//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// An Event is one JSON line of a process's stdout, with the time the
// harness read it. The event's own Time is when the program stamped it;
// At is when we saw it (bench/ times lines by it).
type Event struct {
	event.Event
	At time.Time
}

// A Match accepts the events a wait, a count or a check is about; nil
// accepts every event (of the kind asked for).
type Match func(Event) bool

// Peer accepts the events about the peer id.
func Peer(id string) Match {
	return func(e Event) bool { return e.Peer == id }
}

// From accepts the events from (or about) the peer id with exactly text.
func From(id, text string) Match {
	return func(e Event) bool { return e.Peer == id && e.Text == text }
}

// Text accepts the events with exactly text (sent, delivered).
func Text(text string) Match {
	return func(e Event) bool { return e.Text == text }
}

// Code accepts the events with the code c that every one of also accepts.
func Code(c event.Code, also ...Match) Match {
	return func(e Event) bool {
		if e.Code != c {
			return false
		}
		for _, m := range also {
			if m != nil && !m(e) {
				return false
			}
		}
		return true
	}
}

// Has is a condition for WaitFor: some event of the kind that m accepts.
func Has(kind event.Kind, m Match) func([]Event) bool {
	return func(es []Event) bool {
		for _, e := range es {
			if e.Kind == kind && (m == nil || m(e)) {
				return true
			}
		}
		return false
	}
}

// A Sink takes a process's message events, while it is set, instead of the
// event list, so that a million lines cost no memory and little time. peer
// and text are valid only during the call; viaTopic says the line came by
// the room's topic ("via":"topic"); at is when the line was read. While a
// sink is set, the sent and delivered events (a sender's two receipts for
// each of its lines) are dropped too. A sink is called on the reading
// goroutine only, one line at a time.
type Sink func(peer, text []byte, viaTopic bool, at time.Time)

// ErrTimeout is what WaitFor's error wraps when its deadline passed.
var ErrTimeout = errors.New("timed out")

// A Log is what a process printed on stdout: its JSON events in order, each
// read when it was printed. Events are kept, not consumed from a queue, so
// that a test may wait for them in any order and count them afterwards;
// Wait takes an event so that two waits do not return the same one.
type Log struct {
	name string
	sink atomic.Pointer[Sink]

	mu        sync.Mutex
	events    []Event
	taken     []bool        // events already returned by Wait
	lines     []string      // stdout as printed (not the lines a sink took)
	malformed []string      // stdout lines that are not JSON events (the first few)
	bad       int           // how many there were
	changed   chan struct{} // closed and replaced whenever the above change
	ended     bool
	endNote   string // why no more events will come
}

const maxMalformed = 20

// NewLog returns an empty log for the process name.
func NewLog(name string) *Log {
	return &Log{name: name, changed: make(chan struct{})}
}

var (
	messagePrefix   = []byte(`{"event":"message",`)
	sentPrefix      = []byte(`{"event":"sent",`)
	deliveredPrefix = []byte(`{"event":"delivered",`)
	peerKey         = []byte(`,"peer":"`)
	textKey         = []byte(`,"text":"`)
	viaTopicField   = []byte(`,"via":"topic"`)
)

// ReadEvents reads r line by line until it ends, timing each line as it is
// read, and then marks the log ended. It returns the error that ended the
// reading, nil at the end of the input.
func (l *Log) ReadEvents(r io.Reader) error {
	err := l.read(r)
	l.end("the end of its stdout")
	return err
}

func (l *Log) read(r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, line...)
			continue
		}
		if long != nil {
			line = append(long, line...)
			long = nil
		}
		if len(line) > 0 {
			l.handle(line, time.Now())
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// handle records one line. Message events take a fast path to the sink
// (no json.Unmarshal) when their text needs no unescaping, which is the
// case for every line bench/ sends; the rest are decoded in full.
func (l *Log) handle(line []byte, at time.Time) {
	line = bytes.TrimRight(line, "\r\n")
	sink := l.sink.Load()
	if sink != nil {
		switch {
		case bytes.HasPrefix(line, messagePrefix):
			if peer, text, ok := fastMessage(line); ok {
				(*sink)(peer, text, bytes.Contains(line, viaTopicField), at)
				return
			}
		case bytes.HasPrefix(line, sentPrefix), bytes.HasPrefix(line, deliveredPrefix):
			return
		}
	}
	var e Event
	if err := json.Unmarshal(line, &e.Event); err != nil || e.Kind == "" {
		l.addMalformed(string(line))
		return
	}
	e.At = at
	if sink != nil && e.Kind == event.Message {
		(*sink)([]byte(e.Peer), []byte(e.Text), e.Via == event.ViaTopic, at)
		return
	}
	l.mu.Lock()
	l.events = append(l.events, e)
	l.taken = append(l.taken, false)
	l.lines = append(l.lines, string(line))
	l.notifyLocked()
	l.mu.Unlock()
}

// fastMessage takes the peer and text out of a message event as the chat's
// encoder writes it: {"event":"message","time":"…","peer":"…","text":"…",…}
// (the fields after text, such as the nickname and message ID, are
// skipped). It reports false when the text has escapes or the line another
// shape.
func fastMessage(line []byte) (peer, text []byte, ok bool) {
	i := bytes.Index(line, peerKey)
	if i < 0 {
		return nil, nil, false
	}
	rest := line[i+len(peerKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, nil, false
	}
	peer, rest = rest[:j], rest[j+1:]
	if !bytes.HasPrefix(rest, textKey) {
		return nil, nil, false
	}
	rest = rest[len(textKey):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil, nil, false
	}
	text, rest = rest[:end], rest[end+1:]
	if bytes.IndexByte(text, '\\') >= 0 || (len(rest) > 0 && rest[0] != ',' && rest[0] != '}') {
		return nil, nil, false
	}
	return peer, text, true
}

func (l *Log) addMalformed(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bad++
	if len(l.malformed) < maxMalformed {
		l.malformed = append(l.malformed, s)
	}
	l.lines = append(l.lines, s)
	l.notifyLocked()
}

// end marks the log ended: no event will come any more, for the reason
// note.
func (l *Log) end(note string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.ended {
		l.ended, l.endNote = true, note
		l.notifyLocked()
	}
}

func (l *Log) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// SetSink routes the message events to sink; nil routes them back to the
// event list.
func (l *Log) SetSink(sink Sink) {
	if sink == nil {
		l.sink.Store(nil)
		return
	}
	l.sink.Store(&sink)
}

// WaitFor waits until cond, called with every event so far, holds. It
// fails when the deadline passes (with ErrTimeout), when ctx ends, or when
// no more events can come (the process has ended); what names the awaited
// condition in the error.
func (l *Log) WaitFor(ctx context.Context, deadline time.Time, what string, cond func([]Event) bool) error {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		l.mu.Lock()
		ok := cond(l.events)
		changed, ended, note := l.changed, l.ended, l.endNote
		l.mu.Unlock()
		if ok {
			return nil
		}
		if ended {
			return fmt.Errorf("%s: %s before %s", l.name, note, what)
		}
		select {
		case <-changed:
		case <-timer.C:
			return fmt.Errorf("%s: %s: %w", l.name, what, ErrTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Await returns the first event of the kind that m accepts and that no
// earlier Wait or Await returned, and takes it. It fails when none comes
// within timeout or no more events can come.
func (l *Log) Await(kind event.Kind, m Match, timeout time.Duration) (Event, error) {
	var got Event
	take := func(es []Event) bool {
		for i, e := range es {
			if !l.taken[i] && e.Kind == kind && (m == nil || m(e)) {
				l.taken[i] = true // under l.mu: WaitFor calls cond with it held
				got = e
				return true
			}
		}
		return false
	}
	err := l.WaitFor(context.Background(), time.Now().Add(timeout), fmt.Sprintf("the awaited %q event", kind), take)
	if errors.Is(err, ErrTimeout) {
		err = fmt.Errorf("%s: no awaited %q event within %v", l.name, kind, timeout)
	}
	return got, err
}

// Wait is Await that fails the test instead of returning an error.
func (l *Log) Wait(t testing.TB, kind event.Kind, m Match, timeout time.Duration) Event {
	t.Helper()
	e, err := l.Await(kind, m, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// NoEvent fails the test if the process has reported an event of the kind
// that m accepts, or reports one within window (0: only those so far); why
// says what the test expects instead. The wait ends early when no more
// events can come.
func (l *Log) NoEvent(t testing.TB, window time.Duration, kind event.Kind, m Match, why string) {
	t.Helper()
	err := l.WaitFor(context.Background(), time.Now().Add(window), "", Has(kind, m))
	if err == nil {
		es := l.All(kind, m)
		t.Errorf("%s: %s: %d %q event(s), e.g. %+v", l.name, why, len(es), kind, es[0])
	}
}

// All returns every event of the kind so far that m accepts, in order.
func (l *Log) All(kind event.Kind, m Match) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var es []Event
	for _, e := range l.events {
		if e.Kind == kind && (m == nil || m(e)) {
			es = append(es, e)
		}
	}
	return es
}

// Count returns how many events of the kind so far m accepts.
func (l *Log) Count(kind event.Kind, m Match) int {
	return len(l.All(kind, m))
}

// First returns the first event of the kind that m accepts, taken or not.
func (l *Log) First(kind event.Kind, m Match) (Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Kind == kind && (m == nil || m(e)) {
			return e, true
		}
	}
	return Event{}, false
}

// Events returns every event so far, in order.
func (l *Log) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// Lines returns stdout as printed so far, one string a line, without the
// lines a sink took.
func (l *Log) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// Malformed returns the first stdout lines that are not JSON events, and
// how many there were.
func (l *Log) Malformed() ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.malformed), l.bad
}
