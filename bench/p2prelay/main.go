// Command p2prelay is the benchmark suite's libp2p stream floor (issue 17):
// two small processes with a go-libp2p host each, on loopback TCP only,
// with Noise and go-libp2p's default muxer (yamux), and otherwise
// go-libp2p's defaults (its resource manager and identify; no DHT, no
// mDNS, no connection manager of ours). The sender opens one stream to the
// receiver and writes its stdin to it line by line; the receiver prints
// every line as the chat's message event (bench/internal/relay, the same
// code as the TCP floor's). What the chat adds beyond this is its own:
// frames, message IDs, receipts, the sent and delivered events, its
// goroutines and channels.
//
//	p2prelay recv [-listen MULTIADDR]
//	p2prelay send -to MULTIADDR/p2p/ID
//
// The suite (bench/) builds it and starts the pair itself. Security:
// go-libp2p's default list offers TLS first and Noise second, so two
// default hosts would agree on TLS; the chat offers Noise first
// (internal/node), and so does this floor, so that both encrypt alike.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/rendezvous-chat/rendezvous-chat/bench/internal/relay"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// lineProtocol is the floor's stream protocol: lines, nothing else.
const lineProtocol = protocol.ID("/rendezvous-chat-bench/lines/1.0.0")

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: p2prelay recv [-listen MULTIADDR] | p2prelay send -to MULTIADDR")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "recv":
		err = recv(os.Args[2:], os.Stdout)
	case "send":
		err = send(os.Args[2:], os.Stdin, os.Stdout)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "p2prelay %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// newHost builds a host with TCP as its only transport, Noise and the
// default muxer, listening on listen (nowhere when empty).
func newHost(listen string) (host.Host, error) {
	opts := []libp2p.Option{
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.DefaultMuxers,
	}
	if listen == "" {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings(listen))
	}
	return libp2p.New(opts...)
}

// recv listens, takes the first stream of the floor's protocol and prints
// every line it reads from it as a message event, until the stream ends.
func recv(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("recv", flag.ContinueOnError)
	listen := fs.String("listen", "/ip4/127.0.0.1/tcp/0", "multiaddr to listen on (loopback)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h, err := newHost(*listen)
	if err != nil {
		return err
	}
	defer h.Close()
	out := bufio.NewWriterSize(stdout, relay.StdoutBuffer)
	var once sync.Once
	done := make(chan error, 1)
	h.SetStreamHandler(lineProtocol, func(s network.Stream) {
		first := false
		once.Do(func() { first = true })
		if !first {
			_ = s.Reset()
			return
		}
		done <- serve(s, out)
	})
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("no listen address (%v)", err)
	}
	ready := event.Event{Kind: event.Ready, ID: h.ID().String()}
	for _, a := range addrs {
		ready.Addrs = append(ready.Addrs, a.String())
	}
	if err := relay.Emit(out, ready); err != nil {
		return err
	}
	relay.ExitAtEndOfStdin()
	return <-done
}

// serve answers the stream's opening with one byte, so that the sender
// knows it is open both ways (the chat's peers exchange a hello), then
// prints its lines.
func serve(s network.Stream, out *bufio.Writer) error {
	defer s.Close()
	remote := s.Conn().RemotePeer()
	if _, err := s.Write([]byte{'\n'}); err != nil {
		return err
	}
	if err := relay.Emit(out, event.Event{Kind: event.Joined, Peer: remote.String(), Name: event.ShortID(remote)}); err != nil {
		return err
	}
	return relay.PrintLines(bufio.NewReaderSize(s, relay.ConnRBuffer), out, remote.String(), event.ShortID(remote))
}

// send connects to the receiver, opens one stream and copies stdin to it
// line by line until stdin ends; then it closes its side and waits for the
// receiver to close the stream, so that nothing is cut off.
func send(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	to := fs.String("to", "", "multiaddr of a p2prelay recv, with /p2p/ID")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ai, err := peer.AddrInfoFromString(*to)
	if err != nil {
		return err
	}
	h, err := newHost("")
	if err != nil {
		return err
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Connect(ctx, *ai); err != nil {
		return err
	}
	s, err := h.NewStream(ctx, ai.ID, lineProtocol)
	if err != nil {
		return err
	}
	// The receiver's byte: the protocol is agreed and the stream open.
	_ = s.SetReadDeadline(time.Now().Add(20 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		_ = s.Reset()
		return fmt.Errorf("open the stream: %w", err)
	}
	_ = s.SetReadDeadline(time.Time{})
	ready := event.Event{Kind: event.Ready, ID: h.ID().String(), Addrs: []string{s.Conn().LocalMultiaddr().String()}}
	if err := relay.Emit(bufio.NewWriter(stdout), ready); err != nil {
		return err
	}
	if err := relay.CopyLines(stdin, s); err != nil {
		_ = s.Reset()
		return err
	}
	if err := s.CloseWrite(); err != nil {
		return err
	}
	_ = s.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, _ = io.Copy(io.Discard, s)
	return s.Close()
}
