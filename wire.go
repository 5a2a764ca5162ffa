package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxLineBytes bounds one chat line, in both directions, so that a peer
// cannot make us buffer without limit and we never send what a careful peer
// would refuse.
const maxLineBytes = 64 << 10

// errLineTooLong is returned when a peer sends a line over maxLineBytes.
var errLineTooLong = fmt.Errorf("peer sent a line over %d KiB", maxLineBytes>>10)

// A wireFormat turns a stream's bytes into chat messages and back. The format
// of a stream is chosen by the protocol ID negotiated for it, so a richer
// format can be added beside the plain one without touching the session.
type wireFormat interface {
	newReader(r io.Reader) messageReader
	newWriter(w io.Writer) messageWriter
}

// messageReader reads one message at a time; it returns io.EOF when the
// remote side closed the stream cleanly.
type messageReader interface {
	ReadMessage() (string, error)
}

// messageWriter buffers messages; Flush sends what is buffered.
type messageWriter interface {
	WriteMessage(text string) error
	Flush() error
}

// lineFormat is the wire format of go-libp2p's chat-with-rendezvous example:
// UTF-8 text lines ending in "\n". That example sends every line followed by
// an empty line, so empty lines are ignored on read.
type lineFormat struct{}

func (lineFormat) newReader(r io.Reader) messageReader {
	return &lineReader{r: bufio.NewReaderSize(r, 4096)}
}

func (lineFormat) newWriter(w io.Writer) messageWriter {
	return &lineWriter{w: bufio.NewWriterSize(w, 16<<10)}
}

type lineReader struct {
	r   *bufio.Reader
	buf []byte
}

// ReadMessage returns the next non-empty line without its line ending. It
// never holds more than maxLineBytes of one line in memory.
func (lr *lineReader) ReadMessage() (string, error) {
	for {
		lr.buf = lr.buf[:0]
		for {
			chunk, err := lr.r.ReadSlice('\n')
			if len(lr.buf)+len(chunk) > maxLineBytes+2 { // +2 for "\r\n"
				return "", errLineTooLong
			}
			lr.buf = append(lr.buf, chunk...)
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil {
				if err == io.EOF && len(lr.buf) > 0 {
					// A last line without "\n" is still a line.
					break
				}
				return "", err
			}
			break
		}
		line := bytes.TrimRight(lr.buf, "\r\n")
		if len(line) > maxLineBytes {
			return "", errLineTooLong
		}
		if len(line) > 0 {
			return string(line), nil
		}
	}
}

type lineWriter struct {
	w *bufio.Writer
}

func (lw *lineWriter) WriteMessage(text string) error {
	if strings.ContainsAny(text, "\r\n") {
		// The room only hands us single lines; this guards the wire format.
		return errors.New("a chat line cannot contain a line break")
	}
	if _, err := lw.w.WriteString(text); err != nil {
		return err
	}
	return lw.w.WriteByte('\n')
}

func (lw *lineWriter) Flush() error { return lw.w.Flush() }
