package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/node"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/rendezvous-chat/rendezvous-chat/internal/room"
)

const testPeerAddr = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWJXdGwzsv2LosFoqQDZaQc5jFwfrAjkXwQJ2gF3xQwWbS"

func TestParseFlagsDefaults(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Rendezvous != defaultRendezvous || cfg.Protocol != defaultProtocol || !cfg.MDNS || cfg.Server || cfg.JSON {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
	if len(cfg.Listen) != len(defaultListen) {
		t.Errorf("listen = %v, want the %d defaults", cfg.Listen, len(defaultListen))
	}
	// A chat peer bootstraps from the public network by default...
	if len(cfg.Bootstrap) == 0 || cfg.BootstrapSet {
		t.Errorf("bootstrap = %v (set %v), want the public peers", cfg.Bootstrap, cfg.BootstrapSet)
	}
	// ...and a server from nothing, so that a local server stays local.
	cfg, err = parseFlags([]string{"-server"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Bootstrap) != 0 {
		t.Errorf("server bootstrap = %v, want none", cfg.Bootstrap)
	}
}

func TestParseFlagsValues(t *testing.T) {
	cfg, err := parseFlags([]string{
		"-listen", "/ip4/127.0.0.1/tcp/0", "-listen", "/ip6/::1/udp/0/quic-v1",
		"-peer", testPeerAddr, "-peer", "/ip4/127.0.0.2/tcp/4001/p2p/12D3KooWJXdGwzsv2LosFoqQDZaQc5jFwfrAjkXwQJ2gF3xQwWbS",
		"-rendezvous", "our room", "-pid", "/chat/2", "-mdns=false", "-identity", "k.key",
		"-json", "-log-level", "warn,dht=debug",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Listen) != 2 || cfg.Listen[1].String() != "/ip6/::1/udp/0/quic-v1" {
		t.Errorf("listen = %v", cfg.Listen)
	}
	// Two addresses of one peer are one bootstrap peer.
	if len(cfg.Bootstrap) != 1 || len(cfg.Bootstrap[0].Addrs) != 2 || !cfg.BootstrapSet {
		t.Errorf("bootstrap = %v", cfg.Bootstrap)
	}
	if cfg.Rendezvous != "our room" || cfg.Protocol != "/chat/2" || cfg.MDNS || cfg.IdentityFile != "k.key" || !cfg.JSON {
		t.Errorf("cfg = %+v", cfg)
	}
	if cfg.LogLevels.all != "warn" || cfg.LogLevels.subsystem["dht"] != "debug" {
		t.Errorf("log levels = %+v", cfg.LogLevels)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // a part of the one-line error
	}{
		{[]string{"-listen", "notamultiaddr"}, `"notamultiaddr"`},
		{[]string{"-listen", "/ip4/999.0.0.1/tcp/0"}, `"/ip4/999.0.0.1/tcp/0"`},
		{[]string{"-peer", "/ip4/127.0.0.1/tcp/4001"}, "/p2p/"},
		{[]string{"-peer", "garbage"}, `"garbage"`},
		{[]string{"-peer", "/ip4/127.0.0.1/tcp/4001/p2p/notapeerid"}, "notapeerid"},
		{[]string{"-rendezvous", ""}, "-rendezvous"},
		{[]string{"-rendezvous", "   "}, "-rendezvous"},
		{[]string{"-pid", "chat"}, `"chat"`},
		{[]string{"-pid", "/chat 1"}, `"/chat 1"`},
		{[]string{"-log-level", "loud"}, `"loud"`},
		{[]string{"-log-level", "dht=loud"}, `"loud"`},
		{[]string{"-mdns=maybe"}, "maybe"},
		{[]string{"-nosuchflag"}, "nosuchflag"},
		{[]string{"-deny", "10.0.0.0"}, `"10.0.0.0"`},
		{[]string{"-allow", "nonsense/8"}, `"nonsense/8"`},
		{[]string{"-allow-peer", "QmNope"}, `"QmNope"`},
		{[]string{"-psk", "k", "-listen", "/ip4/127.0.0.1/udp/0/quic-v1"}, "QUIC"},
		{[]string{"stray"}, `"stray"`},
		{[]string{"-reachability", "maybe"}, `"maybe"`},
		{[]string{"-reachability", ""}, "-reachability"},
		{[]string{"-server", "-reachability", "private"}, "-reachability"},
		{[]string{"-nick", ""}, "-nick"},
		{[]string{"-nick", "two words"}, `"two words"`},
		{[]string{"-nick", "/op"}, `"/op"`},
		{[]string{"-nick", "a~b"}, "~"},
		{[]string{"-nick", strings.Repeat("n", 33)}, "32 characters"},
		{[]string{"-linger", "-1s"}, "-linger"},
		{[]string{"-linger", "soon"}, "soon"},
		{[]string{"-passphrase-file", "p", "-private"}, "one way"},
		{[]string{"-server", "-private"}, "-server"},
		{[]string{"-web", "8080"}, "host:port"},
		{[]string{"-web", "127.0.0.1:http"}, "port"},
		{[]string{"-web", "127.0.0.1:8080", "-private"}, "private room"},
		{[]string{"-web", "127.0.0.1:8080", "-gossip=false"}, "-gossip=false"},
		{[]string{"-web", "127.0.0.1:8080", "-psk", "k"}, "-psk"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := parseFlags(tc.args)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line containing %q", msg, tc.want)
			}
		})
	}
}

// TestParseFlagsReachability: -reachability takes auto (the default, which
// lets AutoNAT decide), public or private, in any case; a server is public.
func TestParseFlagsReachability(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want network.Reachability
	}{
		{nil, network.ReachabilityUnknown},
		{[]string{"-reachability", "auto"}, network.ReachabilityUnknown},
		{[]string{"-reachability", "public"}, network.ReachabilityPublic},
		{[]string{"-reachability", "Private"}, network.ReachabilityPrivate},
		{[]string{"-server", "-reachability", "public"}, network.ReachabilityPublic},
	} {
		cfg, err := parseFlags(tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if cfg.Reachability != tc.want {
			t.Errorf("%q: reachability %v, want %v", tc.args, cfg.Reachability, tc.want)
		}
	}
}

func TestParseFlagsNick(t *testing.T) {
	cfg, err := parseFlags([]string{"-nick", "zoë"})
	if err != nil || cfg.Nick != "zoë" {
		t.Fatalf("-nick zoë: %+v, %v", cfg, err)
	}
	// Without -nick, the login name, made valid (or none).
	t.Setenv("USER", "jane doe")
	cfg, err = parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Nick != defaultNick() || room.CheckNick(cfg.Nick) != nil && cfg.Nick != "" {
		t.Errorf("default nick %q, want a valid one from the login name", cfg.Nick)
	}
}

func TestParseFlagsHelp(t *testing.T) {
	if _, err := parseFlags([]string{"-h"}); !errors.Is(err, errHelp) {
		t.Fatalf("-h: err = %v, want errHelp", err)
	}
	var out bytes.Buffer
	printUsage(&out)
	for _, flag := range []string{"-listen", "-peer", "-rendezvous", "-pid", "-nick", "-mdns", "-identity", "-server", "-json", "-log-level", "-reachability", "-version"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("usage lacks %s", flag)
		}
	}
	if strings.Count(out.String(), "e.g.") < 8 {
		t.Errorf("usage should give an example for each flag:\n%s", out.String())
	}
}

func FuzzParseFlags(f *testing.F) {
	for _, s := range []string{"/ip4/127.0.0.1/tcp/0", testPeerAddr, "garbage", "/p2p/", "/ip6/::/udp/0/quic-v1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		// Any value must give a config or an error, never a panic.
		_, _ = parseFlags([]string{"-listen", v})
		_, _ = parseFlags([]string{"-peer", v})
		_, _ = parseFlags([]string{"-pid", v, "-rendezvous", v, "-log-level", v})
	})
}

func TestParseFlagsPrivateNetwork(t *testing.T) {
	cfg, err := parseFlags([]string{"-psk", "swarm.key"})
	if err != nil {
		t.Fatal(err)
	}
	// QUIC cannot carry a swarm key: only the TCP defaults stay, and the
	// public bootstrap peers are not used, with a notice for each.
	for _, a := range cfg.Listen {
		if node.IsQUIC(a) {
			t.Errorf("QUIC address %s kept in a private network", a)
		}
	}
	if len(cfg.Listen) != 2 || len(cfg.Bootstrap) != 0 || len(cfg.Notices) != 2 {
		t.Errorf("listen %v, bootstrap %v, notices %q", cfg.Listen, cfg.Bootstrap, cfg.Notices)
	}
	cfg, err = parseFlags([]string{"-psk", "swarm.key", "-peer", testPeerAddr, "-listen", "/ip4/127.0.0.1/tcp/0",
		"-deny", "10.0.0.0/8", "-allow", "127.0.0.0/8", "-allow-peer", "12D3KooWJXdGwzsv2LosFoqQDZaQc5jFwfrAjkXwQJ2gF3xQwWbS"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Bootstrap) != 1 || len(cfg.Notices) != 0 || len(cfg.Deny) != 1 || len(cfg.Allow) != 1 || len(cfg.AllowPeers) != 1 {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestParseFlagsGossip(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Gossip || cfg.MaxFileBytes != 64<<20 || cfg.PresenceInterval != 30*time.Second {
		t.Errorf("gossip defaults: gossip %v, max file %d, presence %v", cfg.Gossip, cfg.MaxFileBytes, cfg.PresenceInterval)
	}
	cfg, err = parseFlags([]string{"-gossip=false", "-max-file", "1GiB", "-presence-interval", "5s"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Gossip || cfg.MaxFileBytes != 1<<30 || cfg.PresenceInterval != 5*time.Second {
		t.Errorf("gossip values: gossip %v, max file %d, presence %v", cfg.Gossip, cfg.MaxFileBytes, cfg.PresenceInterval)
	}
	for _, args := range [][]string{
		{"-max-file", "0"},
		{"-max-file", "1.5GiB"},
		{"-max-file", "12 parsecs"},
		{"-max-file", "2048GiB"},
		{"-presence-interval", "10ms"},
		{"-presence-interval", "2h"},
		{"-rendezvous", "room/rendezvous-chat/presence/1"},
	} {
		if _, err := parseFlags(args); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: err = %v, want a one-line error", args, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "512b": 512, "4K": 4 << 10, "64MiB": 64 << 20, "2 GB": 2 << 30, "7kib": 7 << 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
