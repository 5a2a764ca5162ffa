// Package relay is what the benchmark suite's floors share (bench/relay.go,
// the TCP relay pair in the suite's own executable, and bench/p2prelay, the
// libp2p stream relay pair in a command of its own): reading lines as the
// chat reads them, and printing each as the chat's JSON message event
// through the chat's own encoder (event.AppendJSON).
//
// Both mirror the chat's buffer sizes and flush rules: a 64 KiB stdin
// reader, a 16 KiB writer to the connection, a 4 KiB reader from it and a
// 32 KiB writer to stdout, each flushed when no more input is waiting.
package relay

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// Buffer sizes, the chat's.
const (
	StdinBuffer  = 64 << 10 // reader of stdin
	ConnWBuffer  = 16 << 10 // writer to the connection
	ConnRBuffer  = 4 << 10  // reader from the connection
	StdoutBuffer = 32 << 10 // writer to stdout
)

// Emit writes one event as the chat's JSON view does, and flushes.
func Emit(out *bufio.Writer, e event.Event) error {
	e.Time = time.Now()
	if _, err := out.Write(event.AppendJSON(nil, &e)); err != nil {
		return err
	}
	return out.Flush()
}

// ExitAtEndOfStdin ends the process when its stdin ends, as the chat does,
// even before a connection.
func ExitAtEndOfStdin() {
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
}

// PrintLines reads lines from in and prints each as a message event from
// peer (shown as name), as the chat's receiving side does: the event
// encoded by event.AppendJSON into out, flushed when no more input is
// waiting. It returns nil at the end of the input.
func PrintLines(in *bufio.Reader, out *bufio.Writer, peer, name string) error {
	var long, buf []byte
	for {
		line, err := ReadLine(in, &long)
		if text := strings.TrimRight(string(line), "\r\n"); text != "" {
			buf = event.AppendJSON(buf[:0], &event.Event{Kind: event.Message, Time: time.Now(), Peer: peer, Name: name, Text: text})
			if _, err := out.Write(buf); err != nil {
				return err
			}
		}
		if in.Buffered() == 0 {
			if err := out.Flush(); err != nil {
				return err
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out.Flush()
			}
			return err
		}
	}
}

// CopyLines copies stdin to conn line by line, as the chat's sending side
// does. It returns nil at the end of stdin, everything flushed.
func CopyLines(stdin io.Reader, conn io.Writer) error {
	in := bufio.NewReaderSize(stdin, StdinBuffer)
	w := bufio.NewWriterSize(conn, ConnWBuffer)
	var long []byte
	for {
		line, err := ReadLine(in, &long)
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				line = append(line, '\n')
			}
			if _, err := w.Write(line); err != nil {
				return err
			}
		}
		if in.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return w.Flush()
			}
			return err
		}
	}
}

// ReadLine returns the next line, with its newline, or what is left at the
// end of the input, with the error that ended it. A line longer than the
// reader's buffer is gathered in *long, which is reused between calls. The
// returned slice is valid until the next call.
func ReadLine(in *bufio.Reader, long *[]byte) ([]byte, error) {
	*long = (*long)[:0]
	for {
		chunk, err := in.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			*long = append(*long, chunk...)
			continue
		}
		if len(*long) == 0 {
			return chunk, err
		}
		*long = append(*long, chunk...)
		return *long, err
	}
}
