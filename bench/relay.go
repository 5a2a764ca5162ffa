package main

// relay.go: the TCP floor. Two small processes of the suite's own relay
// lines over one plain loopback TCP connection, the way two chat processes
// relay them over libp2p: relay-send reads lines from stdin and writes them
// to the connection; relay-recv reads them and prints each as a message
// event in the chat's JSON form. The driver measures both paths with the
// same code (stdin of one process to stdout of the other), so the
// difference is what libp2p and the chat add: the security handshake's
// encryption, yamux, and the chat's goroutines and channels.
//
// Both mirror the chat's buffer sizes and flush rules: a 64 KiB stdin
// reader, a 16 KiB writer to the connection, a 4 KiB reader from it and a
// 32 KiB writer to stdout, each flushed when no more input is waiting.

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// relayPeer stands in for a peer ID, so that the floor's message lines
// have the chat's length (a peer ID is 52 characters).
var relayPeer = "12D3KooW" + strings.Repeat("R", 44)

// relayEvent is the subset of the chat's JSON event that the relays print,
// in the same field order.
type relayEvent struct {
	Kind  string    `json:"event"`
	Time  time.Time `json:"time"`
	ID    string    `json:"id,omitempty"`
	Addrs []string  `json:"addrs,omitempty"`
	Peer  string    `json:"peer,omitempty"`
	Text  string    `json:"text,omitempty"`
}

// relayMain runs a relay mode and returns the exit status, or reports
// false when args do not name one.
func relayMain(args []string) (int, bool) {
	if len(args) == 0 {
		return 0, false
	}
	var err error
	switch args[0] {
	case "relay-recv":
		err = relayRecv(args[1:], os.Stdout)
	case "relay-send":
		err = relaySend(args[1:], os.Stdin, os.Stdout)
	default:
		return 0, false
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", args[0], err)
		return 1, true
	}
	return 0, true
}

// relayRecv accepts one connection and prints every line it reads from it
// as a message event, until the connection ends.
func relayRecv(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("relay-recv", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "TCP address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	out := bufio.NewWriterSize(stdout, 32<<10)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	emit := func(e relayEvent) error {
		e.Time = time.Now()
		return enc.Encode(e)
	}
	if err := emit(relayEvent{Kind: "ready", ID: "relay-recv", Addrs: []string{l.Addr().String()}}); err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return err
	}
	// Like the chat, the end of stdin ends it, even before a connection.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	c, err := l.Accept()
	l.Close()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := emit(relayEvent{Kind: "joined", Peer: relayPeer}); err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return err
	}
	in := bufio.NewReaderSize(c, 4096)
	var long []byte
	for {
		line, err := readRelayLine(in, &long)
		if text := strings.TrimRight(string(line), "\r\n"); text != "" {
			if err := emit(relayEvent{Kind: "message", Peer: relayPeer, Text: text}); err != nil {
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

// relaySend connects to the receiver and copies stdin to it line by line
// until stdin ends.
func relaySend(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("relay-send", flag.ContinueOnError)
	to := fs.String("to", "", "TCP address of a relay-recv")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := net.Dial("tcp", *to)
	if err != nil {
		return err
	}
	defer c.Close()
	ready, _ := json.Marshal(relayEvent{Kind: "ready", Time: time.Now(), ID: "relay-send", Addrs: []string{c.LocalAddr().String()}})
	if _, err := fmt.Fprintf(stdout, "%s\n", ready); err != nil {
		return err
	}
	in := bufio.NewReaderSize(stdin, 64<<10)
	w := bufio.NewWriterSize(c, 16<<10)
	var long []byte
	for {
		line, err := readRelayLine(in, &long)
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
				if err := w.Flush(); err != nil {
					return err
				}
				return c.(*net.TCPConn).CloseWrite()
			}
			return err
		}
	}
}

// readRelayLine returns the next line, with its newline, or what is left at
// the end of the input, with the error that ended it. A line longer than
// the reader's buffer is gathered in *long, which is reused between calls.
// The returned slice is valid until the next call.
func readRelayLine(in *bufio.Reader, long *[]byte) ([]byte, error) {
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
