package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/rendezvous-chat/rendezvous-chat/internal/gossiproom"
	"github.com/rendezvous-chat/rendezvous-chat/internal/webui"
	"github.com/rendezvous-chat/rendezvous-chat/web"

	"github.com/rendezvous-chat/rendezvous-chat/internal/console"
	"github.com/rendezvous-chat/rendezvous-chat/internal/privroom"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/term"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
	"github.com/rendezvous-chat/rendezvous-chat/internal/room"
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
	// maxSendBatch bounds the lines read ahead and sent together.
	maxSendBatch = 256
)

// Exit statuses of the program beside 0 (a normal end).
const (
	// exitFailed: the program could not start, or failed.
	exitFailed = 1
	// exitUsage: a bad command line.
	exitUsage = 2
	// exitUndelivered: input that was not a terminal ended and some of its
	// lines were not delivered (the undelivered event says which).
	exitUndelivered = 3
)

// errUndelivered ends run when lines of piped input were not delivered.
var errUndelivered = errors.New("not every line was delivered")

// Main runs the program with the given arguments and standard files and
// returns its exit status: 0 on a normal end, or one of the exit… codes.
func Main(args []string, stdin, stdout, stderr *os.File) int {
	cfg, err := parseFlags(args)
	if errors.Is(err, errHelp) {
		printUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "rendezvous-chat: %v (see -h)\n", err)
		return exitUsage
	}
	if cfg.Version {
		fmt.Fprintf(stdout, "rendezvous-chat %s\n", version)
		return 0
	}
	if cfg.PassphraseGen != "" {
		pass, err := privroom.Generate()
		if err == nil {
			err = privroom.WritePassphraseFile(cfg.PassphraseGen, pass)
		}
		if err != nil {
			fmt.Fprintf(stderr, "rendezvous-chat: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "%s\nwrote this new passphrase to %s; give it to the other members, by a way strangers cannot read, "+
			"and start with -passphrase-file %s\n", pass, cfg.PassphraseGen, cfg.PassphraseGen)
		return 0
	}
	if cfg.PSKGen != "" {
		if err := node.GeneratePSK(cfg.PSKGen); err != nil {
			fmt.Fprintf(stderr, "rendezvous-chat: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "wrote a new swarm key to %s; give it to the members of the private network (-psk %s)\n", cfg.PSKGen, cfg.PSKGen)
		return 0
	}
	cfg.LogLevels.apply()
	defer startProfile(stderr)()

	// A closed stdout must end us with an error we handle, not kill us
	// with SIGPIPE: asking for the signal turns it into EPIPE.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	// SIGHUP: the terminal went away.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, cfg, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "rendezvous-chat: %v\n", err)
		if errors.Is(err, errUndelivered) {
			return exitUndelivered
		}
		return exitFailed
	}
	return 0
}

// run builds the node, the room and the view, wires them together, and
// tears them down in order when ctx ends, stdin ends or stdout breaks.
func run(ctx context.Context, cfg *Config, stdin, stdout *os.File) error {
	key, err := node.LoadIdentity(cfg.IdentityFile)
	if err != nil {
		return err
	}
	var psk pnet.PSK
	if cfg.PSKFile != "" {
		if psk, err = node.LoadPSK(cfg.PSKFile); err != nil {
			return err
		}
	}
	gater := node.NewGater(cfg.Allow, cfg.Deny)
	priv, err := privateRoom(cfg, stdin)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// A server has no chat: it leaves the terminal alone, so Ctrl-C works.
	con, err := console.Open(stdin, stdout, !cfg.JSON && !cfg.Server)
	if err != nil {
		return fmt.Errorf("open terminal: %w", err)
	}
	defer con.Close()
	if con.Interactive() && term.IsTerminal(int(os.Stderr.Fd())) {
		defer logThrough(con.Out(), cfg.LogLevels)()
	}
	events := startView(cfg, con, stdout, cancel)
	defer events.stop()

	nodeCfg := node.Config{
		Key:           key,
		Version:       version,
		Listen:        cfg.Listen,
		Bootstrap:     cfg.Bootstrap,
		Rendezvous:    cfg.Rendezvous,
		MDNS:          cfg.MDNS,
		Server:        cfg.Server,
		ChatProtocols: chatProtocols(cfg.Protocol, priv != nil),
		PSK:           psk,
		Gater:         gater,
		Relays:        cfg.Relays,
		NAT:           cfg.NAT,
		Reachability:  cfg.Reachability,

		BootstrapAreServers: cfg.BootstrapSet,
	}
	if cfg.Web != "" {
		if nodeCfg.BrowserListen, err = browserListen(cfg.WebHost); err != nil {
			return err
		}
	}
	topic := cfg.Rendezvous
	if priv != nil {
		// Nobody without the room's key can compute where it meets.
		nodeCfg.Rendezvous, nodeCfg.MDNSService, topic = priv.Rendezvous(), priv.MDNSService(), priv.Topic()
	}
	n, err := node.New(nodeCfg, events.emit)
	if err != nil {
		return err
	}
	ready := event.Event{Kind: event.Ready, ID: n.Host.ID().String(), Addrs: n.Addrs(), Server: cfg.Server}
	if !cfg.Server {
		ready.Rendezvous, ready.Nick, ready.Private = cfg.Rendezvous, cfg.Nick, priv != nil
	}
	events.emit(ready)
	for _, code := range cfg.Notices {
		events.emit(event.Event{Kind: event.Info, Code: code})
	}

	if cfg.Server {
		n.Start(nil)
		<-ctx.Done()
		con.Close()
		err := n.Close()
		events.stop()
		return closeErr(err)
	}

	// Input that is not a terminal (a pipe, a file) is a script's: its
	// lines are slowed rather than refused, and waited for at its end.
	piped := !term.IsTerminal(int(stdin.Fd()))
	allowPeers := make(map[peer.ID]bool)
	for _, id := range cfg.AllowPeers {
		allowPeers[id] = true
	}
	r := room.New(n.Host, room.Config{
		Protocols:  chatProtocols(cfg.Protocol, priv != nil),
		Formats:    chatFormats(cfg.Protocol),
		Private:    priv,
		AllowPeers: allowPeers,
		Gater:      gater,
		Nick:       cfg.Nick,
		Version:    version,
		HoldWait:   holdWait(piped, cfg.Linger),
	}, events.emit)
	if cfg.Gossip {
		if err := r.JoinTopic(room.TopicConfig{
			Topic:            topic,
			MaxFileBytes:     cfg.MaxFileBytes,
			PresenceInterval: cfg.PresenceInterval,
		}); err != nil {
			r.Close(0)
			_ = n.Close()
			return fmt.Errorf("join the room's topic: %w", err)
		}
	}
	n.Start(r.Offer)
	if cfg.Web != "" {
		page, err := webui.Start(webui.Config{Addr: cfg.Web, Files: web.Dist, Info: func() webui.Info {
			id := n.Host.ID().String()
			return webui.Info{Peer: id, Addrs: webui.BrowserAddrs(n.Host.Addrs(), id), Topic: topic,
				Presence: gossiproom.PresenceTopic(topic), Nick: r.Nick()}
		}})
		if err != nil {
			r.Close(0)
			_ = n.Close()
			return err
		}
		defer page.Close()
		events.emit(event.Event{Kind: event.Info, Code: event.WebServing, Addr: page.URL()})
	}
	con.SetCompleter(func(line string, pos int) (string, int, bool) {
		return complete(line, pos, r.Names(), r.FileHandles())
	})

	// One goroutine reads the user's lines, so that no line is split
	// between peers; it ends at the end of input or when the console closes.
	inputDone := make(chan struct{})
	go func() {
		defer close(inputDone)
		defer cancel() // the end of input ends the program
		if readInput(con, r, events.emit) == inputEnded && piped && cfg.Linger > 0 {
			// A script's input ended: give its lines time to arrive.
			lingerCtx, stop := context.WithTimeout(ctx, cfg.Linger)
			r.WaitDelivered(lingerCtx)
			stop()
		}
	}()

	<-ctx.Done()
	// Stop reading first; closing the room then frees a Send that waits on
	// a slow peer, delivers what is queued and closes the sessions; then the
	// node and the view close.
	con.Close()
	r.Close(shutdownTimeout)
	<-inputDone
	undelivered := 0
	if piped {
		undelivered = r.ReportUndelivered()
	}
	err = n.Close()
	events.stop()
	if err := closeErr(err); err != nil {
		return err
	}
	if undelivered > 0 {
		return fmt.Errorf("%d line(s) not delivered: %w", undelivered, errUndelivered)
	}
	return nil
}

// holdWait is how long a pipe may wait for someone to join when the held
// lines are at their bound; a person typing is told at once instead.
func holdWait(piped bool, linger time.Duration) time.Duration {
	if !piped {
		return 0
	}
	return max(linger, time.Second)
}

// inputRoom is what the input loop needs of the room.
type inputRoom interface {
	commandRoom
	SendLines(lines []string) error
}

// Why readInput returned.
type inputEnd int

const (
	// inputEnded: the input ended (end of file, Ctrl-D).
	inputEnded inputEnd = iota
	// inputQuit: /quit, a read error, or the console closed.
	inputQuit
	// inputStalled: the room could not take more lines (nobody joined
	// while the held lines were at their bound), so reading stopped.
	inputStalled
)

// readInput reads the user's lines until the end of input or /quit: it
// runs commands, and sends the other lines, in order. Lines that are
// already waiting (a paste, a pipe) go to the room together, which costs
// far less per line than one at a time.
func readInput(con *console.Console, r inputRoom, emit event.Emit) inputEnd {
	batch := make([]string, 0, maxSendBatch)
	// flush sends the lines read so far; it reports false when the room
	// could take no more.
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		err := r.SendLines(batch)
		batch = batch[:0]
		return err == nil
	}
	for {
		line, err := con.ReadLine()
		if errors.Is(err, console.ErrLineTooLong) {
			if !flush() {
				return inputStalled
			}
			emit(event.Event{Kind: event.Error, Code: event.LineTooLong, Limit: wire.MaxTextBytes})
			continue
		}
		if err != nil {
			if !flush() {
				return inputStalled
			}
			if !errors.Is(err, io.EOF) {
				emit(event.Event{Kind: event.Error, Code: event.InputFailed, Cause: err.Error()})
				return inputQuit
			}
			if con.Closed() {
				return inputQuit
			}
			return inputEnded
		}
		if strings.HasPrefix(line, "/") {
			if !flush() { // the lines before a command go first
				return inputStalled
			}
			if runCommand(r, emit, line) == commandQuit {
				return inputQuit
			}
			continue
		}
		if line != "" {
			batch = append(batch, line)
		}
		if len(batch) == maxSendBatch || !con.LineReady() {
			if !flush() {
				return inputStalled
			}
		}
	}
}

// chatProtocols are the chat protocols we offer, in order of preference:
// our own, then the plain one (-pid) for go-libp2p's example; in a private
// room ours only, which proves membership before anything flows.
func chatProtocols(plain protocol.ID, private bool) []protocol.ID {
	if plain == room.Protocol || private {
		return []protocol.ID{room.Protocol}
	}
	return []protocol.ID{room.Protocol, plain}
}

// browserListen is where the browser transports listen for -web: on the
// page's host, on ports the system picks.
func browserListen(host string) ([]ma.Multiaddr, error) {
	ip := net.ParseIP(host)
	switch {
	case host == "" || host == "0.0.0.0":
		ip = net.IPv4zero
	case host == "localhost":
		ip = net.IPv4(127, 0, 0, 1)
	case ip == nil:
		return nil, fmt.Errorf("-web %s: give an IP address or localhost as the host", host)
	}
	proto := "ip4"
	if ip.To4() == nil {
		proto = "ip6"
	}
	var addrs []ma.Multiaddr
	for _, tail := range []string{"udp/0/quic-v1/webtransport", "udp/0/webrtc-direct"} {
		a, err := ma.NewMultiaddr(fmt.Sprintf("/%s/%s/%s", proto, ip, tail))
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// privateRoom derives a private room's keys from its passphrase
// (-passphrase-file, or typed with -private), or returns nil for an open
// room. The derivation takes about a second, on purpose: so does every
// guess of the passphrase.
func privateRoom(cfg *Config, stdin *os.File) (*privroom.Room, error) {
	var pass string
	switch {
	case cfg.PassphraseFile != "":
		p, err := privroom.ReadPassphraseFile(cfg.PassphraseFile)
		if err != nil {
			return nil, err
		}
		pass = p
	case cfg.Private:
		if !term.IsTerminal(int(stdin.Fd())) {
			return nil, errors.New("-private reads the passphrase from a terminal; with a pipe or a file, use -passphrase-file")
		}
		fmt.Fprint(os.Stderr, "passphrase of the room (not shown): ")
		b, err := term.ReadPassword(int(stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, fmt.Errorf("read the passphrase: %w", err)
		}
		pass = string(b)
	default:
		return nil, nil
	}
	priv, err := privroom.Derive(pass, cfg.Rendezvous)
	if err != nil {
		return nil, fmt.Errorf("private room: %w", err)
	}
	return priv, nil
}

// chatFormats gives each chat protocol its wire format.
func chatFormats(plain protocol.ID) map[protocol.ID]wire.Format {
	return map[protocol.ID]wire.Format{plain: wire.Line{}, room.Protocol: wire.Framed{}}
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

// startProfile writes a CPU profile of the run to the file that
// RENDEZVOUS_CHAT_CPUPROFILE names, if any: how the hot path was measured
// (docs/performance.md). It returns the function that ends it.
func startProfile(stderr *os.File) func() {
	path := os.Getenv("RENDEZVOUS_CHAT_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "rendezvous-chat: cpu profile: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}
