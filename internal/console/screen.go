// Package console is the user's end of the chat: the line editor on a
// terminal (raw mode, Tab completion, a status before the prompt, stdin that
// can be interrupted), plain lines otherwise, and what the editor's screen
// shows (Screen), so that a view can rewrite its lines in place.
package console

import (
	"bytes"
	"io"
	"sync"
	"unicode/utf8"

	"golang.org/x/term"
)

// A screen follows what is on a terminal the line editor owns, so that the
// human view can rewrite a line it wrote or the line the user just typed
// while they are still the last ones on the screen: a sent line is shown
// once, in the form of everyone's lines, and gets its tick in place when
// it is acknowledged. Two writers share the terminal: the line editor
// (the prompt, the typed line, the echo of Enter) and the view (through
// the editor's Write); the editor's lock orders their writes.
type Screen struct {
	term *term.Terminal
	w    io.Writer // the terminal's own output

	mu sync.Mutex
	// viewing is set while the view writes, so that the output writer
	// can tell the view's writes from the editor's.
	viewing bool
	// seq counts the lines that ended on the screen: the view's writes and
	// the typed lines the editor ended with Enter.
	seq uint64
	// echoes counts the typed lines ended since the view last looked
	// (takeEcho), and echoRows is how many rows the last one took; width is
	// the terminal's width.
	echoes   int
	echoRows int
	width    int
}

// screenOutput is the terminal's output, seen by the screen.
type screenOutput struct{ s *Screen }

// Write passes the editor's or the view's output on, and counts the
// lines that end: the editor's "\r\n" after a typed line (Enter), and every
// write of the view.
func (o screenOutput) Write(p []byte) (int, error) {
	s := o.s
	s.mu.Lock()
	switch {
	case s.viewing:
		s.seq++
		s.echoes = 0
	case bytes.HasSuffix(p, []byte("\r\n")):
		s.seq++
		s.echoes++
	}
	s.mu.Unlock()
	return s.w.Write(p)
}

// viewWriter is where the view writes: the editor, which keeps the prompt
// and the partial line below what the view writes.
type viewWriter struct{ s *Screen }

func (v viewWriter) Write(p []byte) (int, error) {
	v.s.mu.Lock()
	v.s.viewing = true
	v.s.mu.Unlock()
	n, err := v.s.term.Write(p)
	v.s.mu.Lock()
	v.s.viewing = false
	v.s.mu.Unlock()
	return n, err
}

// typed records the line the user just ended with Enter, as the editor
// showed it (after the prompt).
func (s *Screen) typed(promptWidth int, line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.echoRows = rows(promptWidth+utf8.RuneCountInString(line), s.width)
}

// setWidth takes the terminal's width.
func (s *Screen) setWidth(w int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.width = w
}

// takeEcho reports whether the last thing on the screen is the one line
// the user typed, with how many rows it took, and forgets it.
func (s *Screen) TakeEcho() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, r := s.echoes, s.echoRows
	s.echoes = 0
	return r, n == 1 && r > 0
}

// mark returns where the screen is: rewriting a line is safe while mark
// stays the same.
func (s *Screen) Mark() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// Rows is how many rows of this terminal n characters take.
func (s *Screen) Rows(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return rows(n, s.width)
}

// rows is how many terminal rows n characters take at width (1 when the
// width is not known).
func rows(n, width int) int {
	if width <= 0 || n <= 0 {
		return 1
	}
	return (n + width - 1) / width
}
