package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
	"github.com/rendezvous-chat/rendezvous-chat/internal/room"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rendezvous-chat/rendezvous-chat/internal/gossiproom"
)

const (
	defaultRendezvous = "meet me here"
	// defaultLinger is how long piped input's lines may take to be
	// delivered once it ends (-linger).
	defaultLinger = 30 * time.Second
	// defaultProtocol is the protocol ID of go-libp2p's chat-with-rendezvous
	// example, so that we chat with it out of the box.
	defaultProtocol = "/chat/1.1.0"
)

// defaultListen listens on TCP and QUIC, on every IPv4 and IPv6 interface,
// on ports the system picks.
var defaultListen = []string{
	"/ip4/0.0.0.0/tcp/0",
	"/ip4/0.0.0.0/udp/0/quic-v1",
	"/ip6/::/tcp/0",
	"/ip6/::/udp/0/quic-v1",
}

// Config is everything the command line says.
type Config struct {
	Listen    []ma.Multiaddr
	Bootstrap []peer.AddrInfo
	// BootstrapSet is true when -peer was given; a server without it joins
	// no network, a chat peer without it uses the public bootstrap peers.
	BootstrapSet bool
	Rendezvous   string
	Protocol     protocol.ID
	MDNS         bool
	IdentityFile string
	Server       bool
	JSON         bool
	LogLevels    logLevels
	Version      bool

	// Allow and Deny are the address filters (-allow, -deny); AllowPeers
	// limits the chat to these peers (-allow-peer).
	Allow      []net.IPNet
	Deny       []net.IPNet
	AllowPeers []peer.ID
	// PSKFile is the swarm key of a private network (-psk); PSKGen is where
	// -psk-gen writes a new one.
	PSKFile string
	PSKGen  string
	// PassphraseFile holds the passphrase of a private room
	// (-passphrase-file); Private asks for it on the terminal (-private);
	// PassphraseGen is where -passphrase-gen writes a new one.
	PassphraseFile string
	Private        bool
	PassphraseGen  string
	// Notices are things the user should hear about the configuration, as
	// the codes of info events.
	Notices []event.Code
	// Relays are circuit-relay v2 servers to reserve a slot with (-relay),
	// used beside the -peer servers. NAT turns on UPnP/NAT-PMP port mapping.
	Relays []peer.AddrInfo
	NAT    bool
	// Reachability is what -reachability says: ReachabilityUnknown (auto)
	// lets AutoNAT find out; public or private skips AutoNAT's guess.
	Reachability network.Reachability
	// Nick is our nickname (-nick); "" shows us by our short peer ID.
	Nick string
	// Gossip makes the room a GossipSub topic too (-gossip); MaxFileBytes
	// bounds the files /get fetches and /send shares (-max-file);
	// PresenceInterval is the mean time between presence announcements
	// (-presence-interval).
	Gossip           bool
	MaxFileBytes     int64
	PresenceInterval time.Duration
	// Web is where to serve the room's page to browsers (-web host:port);
	// WebHost is its host, where the browser transports listen too.
	Web     string
	WebHost string
	// Linger is how long to keep running, once input that is not a
	// terminal (a pipe, a file) ends, for its lines to be delivered
	// (-linger); also how long a pipe may wait for someone to join when the
	// held lines are at their bound.
	Linger time.Duration
}

// errHelp is returned by parseFlags for -h: print the usage, exit 0.
var errHelp = flag.ErrHelp

// multiaddrList is a repeatable flag of multiaddrs. The first use replaces
// the default; later uses add to it.
type multiaddrList struct {
	addrs []ma.Multiaddr
	set   bool
}

func (l *multiaddrList) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(l.addrs))
	for i, a := range l.addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func (l *multiaddrList) Set(v string) error {
	a, err := ma.NewMultiaddr(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("not a multiaddr: %w", err)
	}
	if !l.set {
		l.addrs, l.set = nil, true
	}
	l.addrs = append(l.addrs, a)
	return nil
}

// peerList is a repeatable flag of full peer multiaddrs (ending in /p2p/ID).
type peerList struct {
	peers []peer.AddrInfo
	raw   []string
}

func (l *peerList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.raw, ",")
}

func (l *peerList) Set(v string) error {
	v = strings.TrimSpace(v)
	a, err := ma.NewMultiaddr(v)
	if err != nil {
		return fmt.Errorf("not a multiaddr: %w", err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		if errors.Is(err, peer.ErrInvalidAddr) {
			return errors.New("it needs a /p2p/<peer ID> part, as printed by a -server node")
		}
		return err
	}
	l.raw = append(l.raw, v)
	l.peers = node.MergeAddrInfo(l.peers, *ai)
	return nil
}

// cidrList is a repeatable flag of networks in CIDR notation.
type cidrList []net.IPNet

func (l *cidrList) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(*l))
	for i, n := range *l {
		s[i] = n.String()
	}
	return strings.Join(s, ",")
}

func (l *cidrList) Set(v string) error {
	_, n, err := net.ParseCIDR(strings.TrimSpace(v))
	if err != nil {
		return errors.New("not a network in CIDR notation, e.g. 10.0.0.0/8 or fd00::/8")
	}
	*l = append(*l, *n)
	return nil
}

// peerIDList is a repeatable flag of peer IDs.
type peerIDList []peer.ID

func (l *peerIDList) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(*l))
	for i, id := range *l {
		s[i] = id.String()
	}
	return strings.Join(s, ",")
}

func (l *peerIDList) Set(v string) error {
	id, err := peer.Decode(strings.TrimSpace(v))
	if err != nil {
		return errors.New("not a peer ID (one looks like 12D3KooW followed by 44 more characters)")
	}
	*l = append(*l, id)
	return nil
}

// flagValues holds the flags that need parsing after flag.Parse.
type flagValues struct {
	listen  multiaddrList
	peers   peerList
	pid     string
	logSpec string
	allow   cidrList
	deny    cidrList
	peerIDs peerIDList
	relays  peerList
	reach   string
	nick    string
	nickSet bool
	maxFile string
}

// newFlagSet declares every flag on a new FlagSet writing into cfg and v.
func newFlagSet(cfg *Config, v *flagValues) *flag.FlagSet {
	fs := flag.NewFlagSet("rendezvous-chat", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Main prints errors once, in one line
	fs.Var(&v.listen, "listen", "listen on `MULTIADDR` (repeatable)\n"+
		"e.g. -listen /ip4/0.0.0.0/tcp/4001 -listen /ip4/0.0.0.0/udp/4001/quic-v1\n"+
		"(default: TCP and QUIC-v1 on all IPv4 and IPv6 interfaces, ports picked by the system)")
	fs.Var(&v.peers, "peer", "bootstrap from the peer at `MULTIADDR`, ending in /p2p/<peer ID> (repeatable)\n"+
		"e.g. -peer /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW...\n"+
		"(default: the public IPFS Amino DHT bootstrap peers; none with -server)")
	fs.StringVar(&cfg.Rendezvous, "rendezvous", defaultRendezvous, "meet the peers who use the same `STRING`; anyone who knows it can join and read,\n"+
		"unless the room is private (-passphrase-file, -private)\n"+
		"e.g. -rendezvous 'book club'")
	fs.StringVar(&v.pid, "pid", defaultProtocol, "the plain chat protocol `ID`, spoken with peers that do not speak ours ("+string(room.Protocol)+")\n"+
		"e.g. -pid /chat/1.1.0")
	fs.Func("nick", "show me to the room as `NAME`: up to 32 characters, no spaces (change it with /nick)\n"+
		"(default: your login name)\n"+
		"e.g. -nick alice", func(s string) error {
		v.nick, v.nickSet = s, true
		return room.CheckNick(s)
	})
	fs.BoolVar(&cfg.MDNS, "mdns", true, "also find peers on the local network with mDNS\n"+
		"e.g. -mdns=false")
	fs.StringVar(&cfg.IdentityFile, "identity", "", "keep this node's private key in `FILE`, for a stable peer ID\n"+
		"(created with mode 0600 when missing; default: a new key every run)\n"+
		"e.g. -identity ~/.rendezvous-chat.key")
	fs.BoolVar(&cfg.Server, "server", false, "run a headless node with no chat: a DHT server and circuit relay\n"+
		"that others bootstrap from\n"+
		"e.g. -server -listen /ip4/0.0.0.0/tcp/4001 -identity server.key")
	fs.BoolVar(&cfg.JSON, "json", false, "print events as JSON lines on stdout instead of the chat view\n"+
		"e.g. -json | jq -c 'select(.event==\"message\")'")
	fs.StringVar(&v.logSpec, "log-level", "", "log `LEVEL` on stderr: debug, info, warn or error, optionally per subsystem\n"+
		"e.g. -log-level warn,dht=debug\n"+
		"(default: $GOLOG_LOG_LEVEL, or error)")
	fs.Var(&v.relays, "relay", "use the circuit relay at `MULTIADDR`, ending in /p2p/<peer ID>, when peers cannot reach us directly (repeatable;\n"+
		"the -peer servers are relays too)\n"+
		"e.g. -relay /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW...")
	fs.StringVar(&v.reach, "reachability", "auto", "skip AutoNAT's guess: `MODE` auto, public or private; private reserves relay slots at once\n"+
		"(behind carrier-grade NAT, or in a lab built from private ranges; a -server is always public)\n"+
		"e.g. -reachability private")
	fs.BoolVar(&cfg.NAT, "nat", true, "ask the router to forward a port to us (UPnP, NAT-PMP); off when listening on loopback only\n"+
		"e.g. -nat=false")
	fs.Var(&v.deny, "deny", "refuse connections to and from the network `CIDR` (repeatable)\n"+
		"e.g. -deny 10.0.0.0/8 -deny fd00::/8")
	fs.Var(&v.allow, "allow", "refuse connections to and from everything outside the network `CIDR` (repeatable)\n"+
		"e.g. -allow 192.168.1.0/24")
	fs.Var(&v.peerIDs, "allow-peer", "chat only with the peer `ID` (repeatable)\n"+
		"e.g. -allow-peer 12D3KooW...")
	fs.StringVar(&cfg.PSKFile, "psk", "", "join the private network whose swarm key is in `FILE` (TCP only: QUIC cannot carry it)\n"+
		"e.g. -psk swarm.key -peer /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW...")
	fs.StringVar(&cfg.PSKGen, "psk-gen", "", "write a new swarm key to `FILE` (mode 0600) and exit\n"+
		"e.g. -psk-gen swarm.key")
	fs.StringVar(&cfg.PassphraseFile, "passphrase-file", "", "make the room private: only those who hold the passphrase in `FILE` (its first line; mode 0600)\n"+
		"can find the room, enter it and read it (see docs/private-rooms.md for what it does not protect)\n"+
		"e.g. -rendezvous 'our room' -passphrase-file room.pass")
	fs.BoolVar(&cfg.Private, "private", false, "make the room private, with a passphrase typed on the terminal (not echoed)\n"+
		"e.g. -rendezvous 'our room' -private")
	fs.StringVar(&cfg.PassphraseGen, "passphrase-gen", "", "write a new random passphrase (6 words, 77 bits) to `FILE` (mode 0600), print it, and exit\n"+
		"e.g. -passphrase-gen room.pass")
	fs.BoolVar(&cfg.Gossip, "gossip", true, "make the room a GossipSub topic named as the rendezvous string too, so that it scales\n"+
		"to hundreds of peers and universal-connectivity peers join it; false: direct streams only\n"+
		"e.g. -gossip=false")
	fs.StringVar(&v.maxFile, "max-file", "64MiB", "fetch (/get) and share (/send) files of at most `SIZE` (bytes, or with KiB, MiB, GiB)\n"+
		"e.g. -max-file 1GiB")
	fs.DurationVar(&cfg.PresenceInterval, "presence-interval", gossiproom.DefaultPresenceInterval,
		"announce our presence on the topic every `DURATION` (give every peer of a room the same)\n"+
			"e.g. -presence-interval 10s")
	fs.DurationVar(&cfg.Linger, "linger", defaultLinger,
		"when input is not a terminal (a pipe, a file) and ends, wait up to `DURATION` for its lines to be delivered;\n"+
			"exit 0 when all were, 3 when some were not; 0 waits for nothing\n"+
			"e.g. echo 'build done' | rendezvous-chat -rendezvous ops -linger 1m")
	fs.StringVar(&cfg.Web, "web", "", "serve the room's page on `ADDR` (host:port): a browser that opens it joins the room over\n"+
		"WebTransport or WebRTC-direct, as a peer of its own (the page is http; use 127.0.0.1 or localhost for WebTransport)\n"+
		"e.g. -web 127.0.0.1:8080")
	fs.BoolVar(&cfg.Version, "version", false, "print the version and exit")
	return fs
}

// parseFlags parses the command line into a Config. It returns errHelp for
// -h, and otherwise an error that names the bad value.
func parseFlags(args []string) (*Config, error) {
	cfg := &Config{}
	var v flagValues
	fs := newFlagSet(cfg, &v)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: every option is a flag", fs.Arg(0))
	}

	cfg.Listen = v.listen.addrs
	if !v.listen.set {
		for _, s := range defaultListen {
			cfg.Listen = append(cfg.Listen, ma.StringCast(s))
		}
	}
	if len(cfg.Listen) == 0 {
		return nil, errors.New("-listen: no address to listen on")
	}

	cfg.Bootstrap = v.peers.peers
	cfg.BootstrapSet = len(v.peers.raw) > 0
	switch {
	case cfg.BootstrapSet || cfg.Server:
	case cfg.PSKFile != "":
		cfg.Notices = append(cfg.Notices, event.PSKNoBootstrap)
	default:
		cfg.Bootstrap = dht.GetDefaultBootstrapPeerAddrInfos()
	}
	if cfg.PSKFile != "" {
		var kept []ma.Multiaddr
		for _, a := range cfg.Listen {
			if node.IsQUIC(a) {
				continue
			}
			kept = append(kept, a)
		}
		if len(kept) == 0 {
			return nil, errors.New("-psk: QUIC cannot carry a private network and no TCP -listen address is left")
		}
		if len(kept) < len(cfg.Listen) {
			cfg.Notices = append(cfg.Notices, event.PSKTCPOnly)
		}
		cfg.Listen = kept
	}
	cfg.Allow, cfg.Deny, cfg.AllowPeers = v.allow, v.deny, v.peerIDs
	cfg.Relays = v.relays.peers

	if strings.TrimSpace(cfg.Rendezvous) == "" {
		return nil, fmt.Errorf("invalid value %q for flag -rendezvous: the rendezvous string cannot be empty", cfg.Rendezvous)
	}
	if !strings.HasPrefix(v.pid, "/") || strings.ContainsAny(v.pid, " \t\r\n") {
		return nil, fmt.Errorf("invalid value %q for flag -pid: a protocol ID starts with / and has no spaces, e.g. %s", v.pid, defaultProtocol)
	}
	cfg.Protocol = protocol.ID(v.pid)
	var err error
	cfg.Nick = v.nick
	if !v.nickSet {
		cfg.Nick = defaultNick()
	}

	if cfg.MaxFileBytes, err = parseSize(v.maxFile); err != nil {
		return nil, fmt.Errorf("invalid value %q for flag -max-file: %w", v.maxFile, err)
	}
	if cfg.PresenceInterval < time.Second || cfg.PresenceInterval > time.Hour {
		return nil, fmt.Errorf("invalid value %v for flag -presence-interval: between 1s and 1h", cfg.PresenceInterval)
	}
	if cfg.PassphraseFile != "" && cfg.Private {
		return nil, errors.New("-passphrase-file and -private: give the passphrase one way")
	}
	if (cfg.PassphraseFile != "" || cfg.Private) && cfg.Server {
		return nil, errors.New("-server has no room: a private room needs no server of its own (-passphrase-file and -private are for chat peers)")
	}
	if cfg.Web != "" {
		host, port, err := net.SplitHostPort(cfg.Web)
		if err != nil || port == "" {
			return nil, fmt.Errorf("invalid value %q for flag -web: want host:port, e.g. 127.0.0.1:8080", cfg.Web)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return nil, fmt.Errorf("invalid value %q for flag -web: the port must be a number from 0 to 65535", cfg.Web)
		}
		switch {
		case cfg.Server:
			return nil, errors.New("-web serves a room's page, and a -server has no room")
		case cfg.PSKFile != "":
			return nil, errors.New("-web: a private network (-psk) cannot carry the browser transports (WebTransport, WebRTC)")
		case cfg.PassphraseFile != "" || cfg.Private:
			return nil, errors.New("-web: a private room stays closed to the page, which cannot prove it holds the passphrase")
		case !cfg.Gossip:
			return nil, errors.New("-web: the page joins the room's topic, which -gossip=false turns off")
		}
		cfg.WebHost = host
	}
	if cfg.Linger < 0 || cfg.Linger > 24*time.Hour {
		return nil, fmt.Errorf("invalid value %v for flag -linger: between 0 and 24h", cfg.Linger)
	}
	if strings.HasSuffix(cfg.Rendezvous, gossiproom.PresenceSuffix) {
		return nil, fmt.Errorf("invalid value %q for flag -rendezvous: it may not end in %q, the suffix of presence topics", cfg.Rendezvous, gossiproom.PresenceSuffix)
	}

	reach, err := parseReachability(v.reach, cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("invalid value %q for flag -reachability: %w", v.reach, err)
	}
	cfg.Reachability = reach

	levels, err := parseLogLevels(v.logSpec)
	if err != nil {
		return nil, fmt.Errorf("invalid value %q for flag -log-level: %w", v.logSpec, err)
	}
	cfg.LogLevels = levels
	return cfg, nil
}

// parseReachability parses -reachability. A server must be reachable: its
// relay service runs only while the host believes it is public, so it
// refuses private.
func parseReachability(s string, server bool) (network.Reachability, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto":
		return network.ReachabilityUnknown, nil
	case "public":
		return network.ReachabilityPublic, nil
	case "private":
		if server {
			return 0, errors.New("a -server must be public: its relay service runs only then")
		}
		return network.ReachabilityPrivate, nil
	}
	return 0, errors.New("want auto, public or private")
}

// parseSize parses a size in bytes, with an optional KiB, MiB or GiB (or
// K, M, G, KB, MB, GB, all powers of 1024).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToLower(strings.TrimSpace(s[len(num):]))
	shift := 0
	switch unit {
	case "", "b":
	case "k", "kb", "kib":
		shift = 10
	case "m", "mb", "mib":
		shift = 20
	case "g", "gb", "gib":
		shift = 30
	default:
		return 0, fmt.Errorf("unknown unit %q: want bytes, KiB, MiB or GiB, e.g. 64MiB", unit)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)>>shift {
		return 0, errors.New("want a positive size of at most 1 TiB, e.g. 64MiB")
	}
	return n << shift, nil
}

// printUsage writes the help text: what the program is, then every flag
// with an example.
func printUsage(w io.Writer) {
	var v flagValues
	fs := newFlagSet(&Config{}, &v)
	fmt.Fprintf(w, `rendezvous-chat: peer-to-peer chat over libp2p.

Start it in two terminals, anywhere, with the same rendezvous string, and type.

Usage:
  rendezvous-chat [flags]
  rendezvous-chat -rendezvous 'our room'
  rendezvous-chat -server -listen /ip4/0.0.0.0/tcp/4001
  rendezvous-chat -peer <address printed by the server> -mdns=false

Flags:
`)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// defaultNick is the user's login name, made valid, or "" when there is
// none: the peer is then shown by its short ID.
func defaultNick() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	// A Windows login name is DOMAIN\name.
	name = name[strings.LastIndex(name, `\`)+1:]
	if nick := room.CleanNick(name); room.CheckNick(nick) == nil {
		return nick
	}
	return ""
}
