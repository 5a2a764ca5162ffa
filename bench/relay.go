package main

// relay.go: the floors of the hot path. Two small processes relay lines
// from one to the other, the way two chat processes relay them: the sender
// reads lines from stdin and writes them to one connection; the receiver
// reads them and prints each as a message event, the chat's JSON through
// the chat's own encoder (bench/internal/relay). The driver measures these
// paths with the same code as the chat's (stdin of one process to stdout of
// the other).
//
// Two pairs, so that the ratios say where the time goes:
//
//   - relay-send → relay-recv, modes of the suite's own executable: one
//     plain loopback TCP connection (this file). The chat's cost over it is
//     everything libp2p and the chat add. relay-recv is also the start-up
//     and RSS floor of a minimal Go process, which is why the suite itself
//     does not link go-libp2p.
//   - p2p-send → p2p-recv, the command bench/p2prelay, which the suite
//     builds when it first needs it: one libp2p stream between two go-libp2p
//     hosts (TCP, Noise, yamux). The chat's cost over it is what the chat
//     itself adds: its frames, message IDs, receipts, the sent and delivered
//     events, its goroutines and channels.

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/rendezvous-chat/rendezvous-chat/bench/internal/relay"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// relayPeer stands in for a peer ID in the TCP relay's message lines, so
// that they have the chat's length (a peer ID is 52 characters).
var relayPeer = "12D3KooW" + strings.Repeat("R", 44)

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
	out := bufio.NewWriterSize(stdout, relay.StdoutBuffer)
	if err := relay.Emit(out, event.Event{Kind: event.Ready, ID: "relay-recv", Addrs: []string{l.Addr().String()}}); err != nil {
		return err
	}
	relay.ExitAtEndOfStdin()
	c, err := l.Accept()
	l.Close()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := relay.Emit(out, event.Event{Kind: event.Joined, Peer: relayPeer}); err != nil {
		return err
	}
	return relay.PrintLines(bufio.NewReaderSize(c, relay.ConnRBuffer), out, relayPeer, event.ShortIDString(relayPeer))
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
	if err := relay.Emit(bufio.NewWriter(stdout), event.Event{Kind: event.Ready, ID: "relay-send", Addrs: []string{c.LocalAddr().String()}}); err != nil {
		return err
	}
	if err := relay.CopyLines(stdin, c); err != nil {
		return err
	}
	return c.(*net.TCPConn).CloseWrite()
}

// p2pRelayBin returns the libp2p stream relay's executable, building it
// from bench/p2prelay into the suite's temporary directory the first time.
func (s *suite) p2pRelayBin() (string, error) {
	s.p2pOnce.Do(func() {
		if s.root == "" {
			s.p2pErr = fmt.Errorf("build bench/p2prelay: %v", s.rootErr)
			return
		}
		path := filepath.Join(s.tmp, "p2prelay")
		cmd := exec.Command(s.cfg.goCmd, "build", "-o", path, "./bench/p2prelay")
		cmd.Dir = s.root
		if out, err := cmd.CombinedOutput(); err != nil {
			s.p2pErr = fmt.Errorf("go build ./bench/p2prelay: %v\n%s", err, out)
			return
		}
		s.p2pBin = path
	})
	return s.p2pBin, s.p2pErr
}
