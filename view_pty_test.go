//go:build linux

package main

import (
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rendezvous-chat/rendezvous-chat/internal/console"
	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// TestHumanViewSentLinesOnTerminal: on a terminal the line editor owns, a
// line we typed and sent is shown once, in the form of everyone's lines
// (the typed "> hi bob" is rewritten as "08:00 alice: hi bob"), and gets
// its tick in place when acknowledged; a receipt that comes once other
// lines are below ours changes nothing, and only a line left
// unacknowledged gets a notice (issue 14 item 9). The console is the real
// one, on a pseudo-terminal; what it writes is played on a small terminal
// model (vtScreen) to see what the user sees.
func TestHumanViewSentLinesOnTerminal(t *testing.T) {
	master, slave := e2e.OpenPTY(t)
	con, err := console.Open(slave, slave, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(con.Close) // before the pseudo-terminal closes
	if con.Screen() == nil {
		t.Fatal("no line editor on a pseudo-terminal")
	}
	vt := newVTScreen(100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			vt.write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	typed := make(chan string)
	go func() {
		for {
			line, err := con.ReadLine()
			if err != nil {
				close(typed)
				return
			}
			typed <- line
		}
	}()

	v := newHumanView(con.Out(), con.Flush, false)
	v.status, v.screen = con.SetStatus, con.Screen()
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	render := func(e event.Event) {
		t.Helper()
		e.Time = now
		if err := v.render(&e); err != nil {
			t.Fatal(err)
		}
	}
	// typeLine types line and Enter, as the user does, and waits for the
	// console to read it.
	typeLine := func(line string) {
		t.Helper()
		if _, err := io.WriteString(master, line+"\r"); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-typed:
			if got != line {
				t.Fatalf("the console read %q, want %q", got, line)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the console never read %q; the terminal shows:\n%s", line, strings.Join(vt.lines(), "\n"))
		}
	}

	events := sentLineEvents()
	ready, hello, sent1, delivered1, sent2, notDelivered2, unacked := events[0], events[1], events[2], events[3], events[4], events[5], events[6]
	render(ready)
	render(hello)
	vt.wait(t, "08:00 bob: hello alice")

	// A line typed, sent and acknowledged: once, ticked.
	typeLine("hi bob")
	render(sent1)
	vt.wait(t, "08:00 alice: hi bob")
	render(delivered1)
	vt.wait(t, "08:00 alice: hi bob ✓")

	// A line typed and sent; bob writes; then the receipt: our line is no
	// longer the last, so it is not rewritten, and nothing else is shown.
	typeLine("see you")
	render(event.Event{Kind: event.Sent, MsgIDs: []string{"m3"}, Text: "see you", Peers: []string{bobID}})
	render(event.Event{Kind: event.Message, Peer: bobID, Nick: "bob", Name: "bob", MsgID: "b2", Text: "bye"})
	render(event.Event{Kind: event.Delivered, MsgIDs: []string{"m3"}, Text: "see you", Peers: []string{bobID}, Names: []string{"bob"}})
	vt.wait(t, "08:00 bob: bye")

	// A line bob does not acknowledge: a notice of one line.
	typeLine("are you there?")
	render(sent2)
	render(notDelivered2)
	render(unacked)
	vt.wait(t, "not acknowledged yet")

	want := []string{
		"08:00 bob: hello alice",
		"08:00 alice: hi bob ✓",
		"08:00 alice: see you",
		"08:00 bob: bye",
		"08:00 alice: are you there?",
		`08:00 ! line "are you there?" not delivered to bob: no receipt within 30s`,
		"08:00 · 1 line(s) to bob not acknowledged yet: they are sent again if bob is back within 5m0s",
	}
	// The prompt below them is redrawn by the console's reading
	// goroutine, at a time of its own: it is left out.
	lines := vt.lines()
	if n := len(lines); n > 0 && lines[n-1] == ">" {
		lines = lines[:n-1]
	}
	if i := slices.Index(lines, want[0]); i < 0 || strings.Join(lines[i:], "\n") != strings.Join(want, "\n") {
		t.Errorf("the terminal shows\n%s\nwant it to end with\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// vtScreen is a small model of a terminal, enough for what the line editor
// (golang.org/x/term) and the human view write: text, carriage return and
// line feed, the cursor moved by CSI A, B, C and D, and CSI K and J to
// erase; colours and modes are ignored. It keeps every row written, so
// that the scroll can be read back as the user would see it.
type vtScreen struct {
	width int

	mu       sync.Mutex
	rows     [][]rune
	row, col int
	esc      []byte // an escape sequence being read
	pending  []byte // an incomplete UTF-8 sequence
	changed  chan struct{}
}

func newVTScreen(width int) *vtScreen {
	return &vtScreen{width: width, rows: [][]rune{nil}, changed: make(chan struct{})}
}

func (s *vtScreen) write(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := append(s.pending, p...)
	s.pending = nil
	for len(b) > 0 {
		if s.esc != nil {
			c := b[0]
			b = b[1:]
			s.esc = append(s.esc, c)
			if len(s.esc) == 2 && c != '[' {
				s.esc = nil // not a CSI sequence: ignored
			} else if len(s.esc) > 2 && c >= '@' && c <= '~' {
				s.csi(string(s.esc[2:len(s.esc)-1]), c)
				s.esc = nil
			}
			continue
		}
		r, n := rune(b[0]), 1
		if r >= 0x80 {
			if !utf8.FullRune(b) {
				s.pending = append([]byte(nil), b...)
				break
			}
			r, n = utf8.DecodeRune(b)
		}
		b = b[n:]
		switch r {
		case 0x1b:
			s.esc = []byte{0x1b}
		case '\r':
			s.col = 0
		case '\n':
			s.row++
			s.grow()
		default:
			if r < 0x20 {
				continue
			}
			if s.col >= s.width {
				s.row, s.col = s.row+1, 0
				s.grow()
			}
			line := s.rows[s.row]
			for len(line) <= s.col {
				line = append(line, ' ')
			}
			line[s.col] = r
			s.rows[s.row] = line
			s.col++
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// csi carries out ESC [ params final.
func (s *vtScreen) csi(params string, final byte) {
	n, err := strconv.Atoi(params)
	if err != nil || n < 1 {
		n = 1
	}
	switch final {
	case 'A':
		s.row = max(0, s.row-n)
	case 'B':
		s.row += n
		s.grow()
	case 'C':
		s.col = min(s.width, s.col+n)
	case 'D':
		s.col = max(0, s.col-n)
	case 'K':
		if len(s.rows[s.row]) > s.col {
			s.rows[s.row] = s.rows[s.row][:s.col]
		}
	case 'J':
		if len(s.rows[s.row]) > s.col {
			s.rows[s.row] = s.rows[s.row][:s.col]
		}
		s.rows = s.rows[:s.row+1]
	}
}

func (s *vtScreen) grow() {
	for len(s.rows) <= s.row {
		s.rows = append(s.rows, nil)
	}
}

// lines returns the rows written, without trailing blanks.
func (s *vtScreen) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.rows {
		out = append(out, strings.TrimRight(string(r), " "))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// wait waits until a row shows text, or a row holds it when it is not a
// whole row.
func (s *vtScreen) wait(t *testing.T, text string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		if slices.ContainsFunc(s.lines(), func(l string) bool { return strings.Contains(l, text) }) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("the terminal never showed %q; it shows:\n%s", text, strings.Join(s.lines(), "\n"))
		}
	}
}
