// Package wire holds the chat's two wire formats: the plain text lines of
// go-libp2p's chat-with-rendezvous example (Line), and this program's own
// framed, versioned format (Framed), one JSON object per line. Both turn a
// stream's bytes into Frames and back, so a session does not care which one
// its stream speaks; the protocol ID negotiated for the stream decides.
package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxTextBytes bounds the text of one chat message, in both formats and in
// both directions, so that a peer cannot make us buffer without limit and we
// never send what a careful peer would refuse.
const MaxTextBytes = 64 << 10

// ErrTooLong is returned when a peer sends a line or frame over the limit.
var ErrTooLong = errors.New("over the size limit")

// A Format turns a stream's bytes into frames and back.
type Format interface {
	NewReader(r io.Reader) Reader
	NewWriter(w io.Writer) Writer
	// Framed reports whether the format carries more than text: message
	// IDs, receipts and nicknames.
	Framed() bool
}

// A Reader reads one frame at a time; it returns io.EOF when the remote side
// closed the stream cleanly, an error wrapping ErrTooLong for a line or
// frame over the limit, and one wrapping ErrMalformed for a frame that
// cannot be decoded.
type Reader interface {
	Read() (Frame, error)
}

// A Writer buffers frames; Flush sends what is buffered. A format that has
// no way to say something (the plain format has no receipts) drops it.
type Writer interface {
	Write(f Frame) error
	Flush() error
}

// Line is the wire format of go-libp2p's chat-with-rendezvous example: UTF-8
// text lines ending in "\n". That example sends every line followed by an
// empty line, so empty lines are ignored on read. Only message frames have a
// form here; their IDs and the private flag are lost.
type Line struct{}

// NewReader returns a reader of plain lines, each a message frame.
func (Line) NewReader(r io.Reader) Reader {
	return &lineReader{r: newLineScanner(r, MaxTextBytes)}
}

// NewWriter returns a writer of plain lines.
func (Line) NewWriter(w io.Writer) Writer {
	return &lineWriter{w: bufio.NewWriterSize(w, 16<<10)}
}

// Framed reports false: plain lines carry text only.
func (Line) Framed() bool { return false }

type lineReader struct {
	r *lineScanner
}

// Read returns the next non-empty line, without its line ending, as a
// message frame.
func (lr *lineReader) Read() (Frame, error) {
	for {
		line, err := lr.r.next()
		if err != nil {
			return Frame{}, err
		}
		if len(line) > 0 {
			return Frame{Type: TypeMsg, Text: string(line)}, nil
		}
	}
}

type lineWriter struct {
	w *bufio.Writer
}

func (lw *lineWriter) Write(f Frame) error {
	if f.Type != TypeMsg {
		return nil
	}
	if strings.ContainsAny(f.Text, "\r\n") {
		// The room only hands us single lines; this guards the wire format.
		return errors.New("a chat line cannot contain a line break")
	}
	if _, err := lw.w.WriteString(f.Text); err != nil {
		return err
	}
	return lw.w.WriteByte('\n')
}

func (lw *lineWriter) Flush() error { return lw.w.Flush() }

// A lineScanner reads lines of at most limit bytes (without the line ending)
// and never holds more than that of one line in memory.
type lineScanner struct {
	r     *bufio.Reader
	buf   []byte
	limit int
}

func newLineScanner(r io.Reader, limit int) *lineScanner {
	return &lineScanner{r: bufio.NewReaderSize(r, 4096), limit: limit}
}

// next returns the next line without its "\n" or "\r\n". The slice is valid
// until the next call.
func (ls *lineScanner) next() ([]byte, error) {
	ls.buf = ls.buf[:0]
	for {
		chunk, err := ls.r.ReadSlice('\n')
		if len(ls.buf)+len(chunk) > ls.limit+2 { // +2 for "\r\n"
			return nil, fmt.Errorf("line %w of %d KiB", ErrTooLong, ls.limit>>10)
		}
		ls.buf = append(ls.buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if err == io.EOF && len(ls.buf) > 0 {
				// A last line without "\n" is still a line.
				break
			}
			return nil, err
		}
		break
	}
	line := bytes.TrimRight(ls.buf, "\r\n")
	if len(line) > ls.limit {
		return nil, fmt.Errorf("line %w of %d KiB", ErrTooLong, ls.limit>>10)
	}
	return line, nil
}
