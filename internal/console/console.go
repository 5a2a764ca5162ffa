package console

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"sync"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

// A Console is the user's end: where typed lines come from and where the
// human view writes. On a terminal it is a line editor that keeps the
// prompt and the partial input intact while messages arrive; otherwise it
// reads plain lines.
type Console struct {
	// out is where the view writes whole lines.
	out io.Writer
	// flush flushes out.
	flush func() error
	// interactive is true when the user types at a terminal.
	interactive bool

	readLine  func() (string, error)
	lineReady func() bool    // nil for the line editor
	term      *term.Terminal // the line editor, when there is one
	screen    *Screen        // what is on the editor's screen (see screen.go)
	in        *os.File       // stdin, made cancellable (see cancellableFile)
	rawOut    *os.File       // stdout itself
	restore   []func()
	wg        sync.WaitGroup
	stop      chan struct{}
	promptMu  sync.Mutex
	prompt    string // the editor's prompt, the status included
}

// ErrLineTooLong reports a typed or piped line over wire.MaxTextBytes; the
// line is dropped and reading goes on.
var ErrLineTooLong = errors.New("line too long")

// Open sets up the console. A terminal is put in raw mode for the
// line editor only when both stdin and stdout are terminals and the view is
// for a person; Close restores it.
func Open(stdin, stdout *os.File, forPerson bool) (*Console, error) {
	c := &Console{stop: make(chan struct{}), rawOut: stdout, prompt: prompt}
	in, restoreBlocking := cancellableFile(stdin)
	c.in = in
	c.restore = append(c.restore, restoreBlocking)

	if forPerson && term.IsTerminal(int(stdin.Fd())) && term.IsTerminal(int(stdout.Fd())) {
		state, err := term.MakeRaw(int(stdin.Fd()))
		if err != nil {
			c.Close()
			return nil, err
		}
		c.restore = append(c.restore, func() { _ = term.Restore(int(stdin.Fd()), state) })
		sc := &Screen{w: stdout}
		t := term.NewTerminal(struct {
			io.Reader
			io.Writer
		}{in, screenOutput{sc}}, prompt)
		sc.term = t
		c.term, c.screen = t, sc
		if w, h, err := term.GetSize(int(stdout.Fd())); err == nil {
			_ = t.SetSize(w, h)
			sc.setWidth(w)
		}
		c.watchSize(t, stdout)
		c.out, c.flush, c.interactive = viewWriter{sc}, func() error { return nil }, true
		c.readLine = func() (string, error) {
			line, err := t.ReadLine()
			if err == nil {
				sc.typed(c.promptWidth(), line)
			}
			return line, err
		}
		return c, nil
	}

	bw := bufio.NewWriterSize(stdout, 32<<10)
	c.out, c.flush = bw, bw.Flush
	br := bufio.NewReaderSize(in, 64<<10)
	c.readLine = func() (string, error) { return readStdinLine(br) }
	c.lineReady = func() bool {
		b, _ := br.Peek(br.Buffered())
		return bytes.IndexByte(b, '\n') >= 0
	}
	return c, nil
}

// Out is where a view writes whole lines: the line editor, which keeps the
// prompt below them, or buffered stdout.
func (c *Console) Out() io.Writer { return c.out }

// Flush flushes Out.
func (c *Console) Flush() error { return c.flush() }

// Interactive reports whether the user types at a terminal, in the line
// editor.
func (c *Console) Interactive() bool { return c.interactive }

// Screen is what the line editor's terminal shows, for a view that
// rewrites its lines; nil without a line editor.
func (c *Console) Screen() *Screen { return c.screen }

// LineReady reports whether a whole line is already waiting to be read, so
// that the next ReadLine will not block: a paste or a pipe.
func (c *Console) LineReady() bool {
	return c.lineReady != nil && c.lineReady()
}

// readStdinLine reads one line of at most wire.MaxTextBytes. A longer line is
// skipped to its end and reported as ErrLineTooLong.
func readStdinLine(br *bufio.Reader) (string, error) {
	chunk, err := br.ReadSlice('\n')
	if err == nil && len(chunk) <= wire.MaxTextBytes+2 {
		// The whole line was in the buffer, as nearly every line is: one
		// copy, into the string, instead of two.
		return string(bytes.TrimRight(chunk, "\r\n")), nil
	}
	var line []byte
	tooLong := false
	for {
		if !tooLong {
			if len(line)+len(chunk) > wire.MaxTextBytes+2 {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			chunk, err = br.ReadSlice('\n')
			continue
		}
		if tooLong && (err == nil || err == io.EOF) {
			return "", ErrLineTooLong
		}
		if err != nil && (err != io.EOF || len(line) == 0) {
			return "", err
		}
		return string(bytes.TrimRight(line, "\r\n")), nil
	}
}

// SetCompleter makes Tab complete the word before the cursor with
// complete, which returns the new line and cursor position, or false. It
// does nothing without a line editor.
func (c *Console) SetCompleter(complete func(line string, pos int) (string, int, bool)) {
	if c.term == nil {
		return
	}
	c.term.AutoCompleteCallback = func(line string, pos int, key rune) (string, int, bool) {
		if key != '\t' {
			return "", 0, false
		}
		return complete(line, pos)
	}
}

// prompt is the line editor's prompt when no status is shown.
const prompt = "> "

// promptWidth is how many characters the prompt takes.
func (c *Console) promptWidth() int {
	c.promptMu.Lock()
	defer c.promptMu.Unlock()
	return utf8.RuneCountInString(c.prompt)
}

// SetStatus shows status (a progress bar) before the prompt, "" to remove
// it, and redraws the prompt line at once. It does nothing without a line
// editor: piped output gets whole lines only.
func (c *Console) SetStatus(status string) {
	if c.term == nil {
		return
	}
	if status != "" {
		status += " "
	}
	c.promptMu.Lock()
	c.prompt = status + prompt
	c.promptMu.Unlock()
	c.term.SetPrompt(status + prompt)
	_, _ = c.term.Write(nil) // repaints the prompt line
}

// ReadLine returns the next line the user typed or piped; io.EOF at the end
// of input, on Ctrl-D or Ctrl-C at the terminal, and after Close.
func (c *Console) ReadLine() (string, error) {
	line, err := c.readLine()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "", io.EOF
	}
	return line, err
}

// closed reports whether Close has been called: a ReadLine that returned
// io.EOF then did not see the end of the input.
func (c *Console) Closed() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// Close unblocks a ReadLine in progress, stops the console's goroutines and
// restores the terminal. It is safe to call more than once.
func (c *Console) Close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	_ = c.in.SetReadDeadline(timeInPast)
	c.wg.Wait()
	if c.interactive {
		// Leave the shell's prompt on a line of its own, not after ours.
		// This goes around the line editor, which would redraw its prompt.
		_, _ = io.WriteString(c.rawOut, "\r\n")
	}
	for i := len(c.restore) - 1; i >= 0; i-- {
		c.restore[i]()
	}
}
