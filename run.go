package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/term"

	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const (
	// shutdownTimeout bounds how long queued lines may take to go out when
	// we leave.
	shutdownTimeout = 3 * time.Second
	// eventBuffer lets bursts of events pass while the view writes.
	eventBuffer = 1024
)

// Main runs the program with the given arguments and standard files and
// returns its exit status: 0 on a normal end, 1 when it could not start,
// 2 for a bad command line.
func Main(args []string, stdin, stdout, stderr *os.File) int {
	cfg, err := parseFlags(args)
	if errors.Is(err, errHelp) {
		printUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "rendezvous-chat: %v (see -h)\n", err)
		return 2
	}
	if cfg.Version {
		fmt.Fprintf(stdout, "rendezvous-chat %s\n", version)
		return 0
	}
	if cfg.PSKGen != "" {
		if err := generatePSK(cfg.PSKGen); err != nil {
			fmt.Fprintf(stderr, "rendezvous-chat: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote a new swarm key to %s; give it to the members of the private network (-psk %s)\n", cfg.PSKGen, cfg.PSKGen)
		return 0
	}
	cfg.LogLevels.apply()

	// A closed stdout must end us with an error we handle, not kill us
	// with SIGPIPE: asking for the signal turns it into EPIPE.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	// SIGHUP: the terminal went away.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, cfg, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "rendezvous-chat: %v\n", err)
		return 1
	}
	return 0
}

// run builds the node, the room and the view, wires them together, and
// tears them down in order when ctx ends, stdin ends or stdout breaks.
func run(ctx context.Context, cfg *Config, stdin, stdout *os.File) error {
	key, err := loadIdentity(cfg.IdentityFile)
	if err != nil {
		return err
	}
	var psk pnet.PSK
	if cfg.PSKFile != "" {
		if psk, err = loadPSK(cfg.PSKFile); err != nil {
			return err
		}
	}
	gater := newAddrGater(cfg.Allow, cfg.Deny)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// A server has no chat: it leaves the terminal alone, so Ctrl-C works.
	con, err := openConsole(stdin, stdout, !cfg.JSON && !cfg.Server)
	if err != nil {
		return fmt.Errorf("open terminal: %w", err)
	}
	defer con.Close()
	if con.interactive && term.IsTerminal(int(os.Stderr.Fd())) {
		defer logThrough(con.out, cfg.LogLevels)()
	}

	// Events flow from the room and the node to one view goroutine.
	events := make(chan Event, eventBuffer)
	viewDone := make(chan struct{})
	var v view
	if cfg.JSON {
		v = newJSONView(stdout)
	} else {
		hv := newHumanView(con.out, con.flush, useColor(stdout))
		if con.interactive {
			hv.status = con.SetStatus
		}
		v = hv
	}
	go func() {
		defer close(viewDone)
		viewLoop(v, events, func(err error) {
			log.Debugw("output closed", "err", err)
			cancel()
		})
	}()
	var closeEvents sync.Once
	emitting := sync.RWMutex{}
	closed := false
	emit := func(e Event) {
		emitting.RLock()
		defer emitting.RUnlock()
		if closed {
			return
		}
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		events <- e
	}
	stopEvents := func() {
		closeEvents.Do(func() {
			emitting.Lock()
			closed = true
			close(events)
			emitting.Unlock()
			<-viewDone
		})
	}
	defer stopEvents()

	node, err := NewNode(NodeConfig{
		Key:           key,
		Listen:        cfg.Listen,
		Bootstrap:     cfg.Bootstrap,
		Rendezvous:    cfg.Rendezvous,
		MDNS:          cfg.MDNS,
		Server:        cfg.Server,
		ChatProtocols: chatProtocols(cfg.Protocol),
		PSK:           psk,
		Gater:         gater,
		Relays:        cfg.Relays,
		NAT:           cfg.NAT,
		Reachability:  cfg.Reachability,

		BootstrapAreServers: cfg.BootstrapSet,
	}, emit)
	if err != nil {
		return err
	}
	ready := Event{Kind: EventReady, ID: node.Host.ID().String(), Addrs: node.Addrs(), Server: cfg.Server}
	if !cfg.Server {
		ready.Rendezvous = cfg.Rendezvous
	}
	emit(ready)
	for _, notice := range cfg.Notices {
		emit(Event{Kind: EventInfo, Text: notice})
	}

	if cfg.Server {
		node.Start(nil)
		<-ctx.Done()
		con.Close()
		err := node.Close()
		stopEvents()
		return closeErr(err)
	}

	allowPeers := make(map[peer.ID]bool)
	for _, id := range cfg.AllowPeers {
		allowPeers[id] = true
	}
	room := NewRoom(node.Host, RoomConfig{
		Protocols:  chatProtocols(cfg.Protocol),
		Formats:    chatFormats(cfg.Protocol),
		AllowPeers: allowPeers,
		Gater:      gater,
		Nick:       cfg.Nick,
	}, emit)
	if cfg.Gossip {
		if err := room.StartGossip(GossipConfig{
			Topic:            cfg.Rendezvous,
			MaxFileBytes:     cfg.MaxFileBytes,
			PresenceInterval: cfg.PresenceInterval,
		}); err != nil {
			room.Close(0)
			_ = node.Close()
			return fmt.Errorf("join the room's topic: %w", err)
		}
	}
	node.Start(room.Offer)
	con.SetCompleter(func(line string, pos int) (string, int, bool) { return complete(line, pos, room.Names()) })

	// One goroutine reads the user's lines, so that no line is split
	// between peers; it ends at the end of input or when the console closes.
	inputDone := make(chan struct{})
	go func() {
		defer close(inputDone)
		defer cancel() // the end of input ends the program
		readInput(con, room, emit)
	}()

	<-ctx.Done()
	// Stop reading first; closing the room then frees a Send that waits on
	// a slow peer, delivers what is queued and closes the sessions; then the
	// node and the view close.
	con.Close()
	room.Close(shutdownTimeout)
	<-inputDone
	err = node.Close()
	stopEvents()
	return closeErr(err)
}

// maxSendBatch bounds the lines read ahead and sent together.
const maxSendBatch = 256

// readInput reads the user's lines until the end of input or /quit: it
// runs commands, and sends the other lines, in order. Lines that are
// already waiting (a paste, a pipe) go to the room together, which costs
// far less per line than one at a time.
func readInput(con *console, room *Room, emit emitFunc) {
	batch := make([]string, 0, maxSendBatch)
	flush := func() {
		if len(batch) > 0 {
			room.SendLines(batch)
			batch = batch[:0]
		}
	}
	defer flush()
	for {
		line, err := con.ReadLine()
		if errors.Is(err, errStdinLineTooLong) {
			flush()
			emit(Event{Kind: EventError, Error: fmt.Sprintf("line not sent: it is over the limit of %d KiB", wire.MaxTextBytes>>10)})
			continue
		}
		if err != nil {
			flush()
			if !errors.Is(err, io.EOF) {
				emit(Event{Kind: EventError, Error: fmt.Sprintf("read input: %v", err)})
			}
			return
		}
		if strings.HasPrefix(line, "/") {
			flush() // the lines before a command go first
			if room.runCommand(line) == commandQuit {
				return
			}
			continue
		}
		if line != "" {
			batch = append(batch, line)
		}
		if len(batch) == maxSendBatch || !con.LineReady() {
			flush()
		}
	}
}

// chatProtocols are the chat protocols we offer, in order of preference:
// our own, then the plain one (-pid) for go-libp2p's example.
func chatProtocols(plain protocol.ID) []protocol.ID {
	if plain == chatProtocol {
		return []protocol.ID{chatProtocol}
	}
	return []protocol.ID{chatProtocol, plain}
}

// chatFormats gives each chat protocol its wire format.
func chatFormats(plain protocol.ID) map[protocol.ID]wire.Format {
	return map[protocol.ID]wire.Format{plain: wire.Line{}, chatProtocol: wire.Framed{}}
}

// closeErr keeps errors from closing that the user should hear of.
func closeErr(err error) error {
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// useColor reports whether to colour the human view: only on a terminal,
// and never when NO_COLOR is set (https://no-color.org).
func useColor(stdout *os.File) bool {
	if os.Getenv("NO_COLOR") != "" {
		return false
	}
	fi, err := stdout.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
