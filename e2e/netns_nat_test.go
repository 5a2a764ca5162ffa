//go:build linux

package e2e

// Two peers, each behind a home NAT of its own, must meet at a rendezvous
// through a server on a "public" segment and chat both ways: the lab of
// issue 4. It is built from network namespaces with iproute2 and iptables:
//
//	 home1 (peer 1)              server (-server)              home2 (peer 2)
//	 192.168.1.2                  <pub>.1                       192.168.2.2
//	    | eth0                      | eth0                          | eth0
//	    | lan 192.168.1.1           |                               | lan 192.168.2.1
//	 router1 ---- wan <pub>.11 --- br0 (in pub) --- wan <pub>.12 ---- router2
//
// Each router masquerades its home behind its wan address and drops (does
// not reject) every unsolicited packet from the public side, as a home
// router does. Nothing is created in the host's own namespace but the
// namespaces themselves, no namespace has a route to the host or outside,
// and everything is deleted at the end of the test.
//
// The lab comes in two variants, which differ only in the "public"
// segment's addresses (<pub> above):
//
//   - 7.77.n.0/24 (TestNetnsTwoNATs): addresses outside go-multiaddr's
//     private and unroutable lists, so that libp2p treats the segment as
//     the internet. It exists only inside the lab's namespaces and is never
//     routed outside them (see natPublicNet and the pitfalls note). This is
//     the variant that proves hole punching (DCUtR).
//   - 100.64.n.0/24 (TestNetnsTwoNATsPrivate): private ranges only, as the
//     issue asks, like a carrier-grade NAT's segment. Every address is
//     private to go-multiaddr, so AutoNAT can never say "private" (it
//     probes public addresses only) and the peers run with -reachability
//     private, which reserves a relay slot at once (forced reachability, not
//     the hole-punching address filter, is what this variant needs), and
//     autorelay gives no address through a relay whose addresses are
//     private, so the node adds those itself (privateRelayAddrs in
//     node.go). They meet and chat over the server's relay and stay there: go-libp2p v0.51 never hole-punches
//     private addresses. Its hole-punch service starts only once the host
//     has a public address (p2p/protocol/holepunch/svc.go,
//     waitForPublicAddr), the addresses it offers are the host's
//     HolePunchAddrs (p2p/host/basic/addrs_manager.go), which drops every
//     address that is not manet.IsPublicAddr, and holepunch.WithAddrFilter
//     can only narrow that list, never widen it.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
)

var natNetnsCount atomic.Int32

// A natLab is the namespaces of the two-NAT lab and their addresses.
type natLab struct {
	pub, srv     string    // the public segment's switch, the server
	router, home [2]string // each home's router and the home itself
	iptables     string    // the iptables command that works here

	serverIP net.IP    // on the public segment
	wanIP    [2]net.IP // the routers' public addresses
	homeIP   [2]net.IP // the peers' private addresses
	// public is whether go-multiaddr takes the "public" segment for a
	// public one (the 7.77 variant) rather than a private one (100.64).
	public bool
}

// natPublicNet is the "public" segment's /16 in the lab that proves hole
// punching; each lab takes a /24 of it. go-multiaddr (net/private.go)
// counts 10/8, 172.16/12, 192.168/16 and 100.64/10 as private, and the
// documentation ranges (192.0.2/24, 198.51.100/24, 203.0.113/24), 198.18/15
// and 192.0.0.0/26 as unroutable: libp2p does not take an address there
// for a public one, so AutoNAT, the relay addresses and hole punching would
// not behave as on the internet. 7.0.0.0/8 is a real public block
// (allocated to the US DoD, never routed by this lab): it exists only
// inside the lab's namespaces, none of which has a route to the host or
// outside, so no packet to it can leave.
var natPublicNet = [2]byte{7, 77}

// natCGNATNet is the "public" segment's /16 in the private-ranges lab: the
// start of 100.64.0.0/10, the shared address space of carrier-grade NATs,
// which go-multiaddr counts as private.
var natCGNATNet = [2]byte{100, 64}

// natLabCommands checks for root and the commands the lab needs, and
// ends the test by e2e.SetupFailed where it cannot run.
func natLabCommands(t *testing.T) {
	t.Helper()
	e2e.NeedRoot(t, "ip")
	_, errNft := exec.LookPath("iptables")
	_, errLegacy := exec.LookPath("iptables-legacy")
	if errNft != nil && errLegacy != nil {
		e2e.SetupFailed(t, "needs iptables (Debian package iptables) for the NAT routers")
	}
}

// newNATLab builds the lab with its "public" segment in pub.x.0/24 (x is
// one per lab of this process), and deletes it when the test ends, after
// the processes started later have been killed (cleanups run last
// registered first). Where it cannot be built, it skips the test, or fails
// it under CI (see e2e.SetupFailed).
func newNATLab(t *testing.T, pub [2]byte) *natLab {
	t.Helper()
	natLabCommands(t)
	n := natNetnsCount.Add(1)
	prefix := fmt.Sprintf("rc-nat-%d-%d", os.Getpid(), n)
	l := &natLab{pub: prefix + "-pub", srv: prefix + "-srv",
		router: [2]string{prefix + "-r1", prefix + "-r2"},
		home:   [2]string{prefix + "-h1", prefix + "-h2"}}
	names := []string{l.pub, l.srv, l.router[0], l.router[1], l.home[0], l.home[1]}
	// One /24 of pub per lab of this process; the namespaces (and so the
	// addresses) of other processes are separate anyway.
	sub := byte(n % 250)
	l.serverIP = net.IPv4(pub[0], pub[1], sub, 1).To4()
	for i := range 2 {
		l.wanIP[i] = net.IPv4(pub[0], pub[1], sub, byte(11+i)).To4()
		l.homeIP[i] = net.IPv4(192, 168, byte(1+i), 2).To4()
	}
	// The segment must be public or private to go-multiaddr, never
	// unroutable (libp2p ignores those addresses altogether), and the same
	// for all three addresses.
	m, _ := manet.FromIP(l.serverIP)
	l.public = manet.IsPublicAddr(m)
	for _, ip := range []net.IP{l.serverIP, l.wanIP[0], l.wanIP[1]} {
		m, _ := manet.FromIP(ip)
		if manet.IsPublicAddr(m) != l.public || (!l.public && !manet.IsPrivateAddr(m)) {
			t.Fatalf("%s: go-multiaddr takes it for neither a public nor a private address like %s", ip, l.serverIP)
		}
	}

	addNetnsGroup(t, names)
	for _, ns := range names {
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
		// IPv4 only: link-local IPv6 addresses on the veths would only add
		// addresses that lead nowhere.
		natNetnsExec(t, ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1")
		natNetnsExec(t, ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1")
	}

	// The public segment: a bridge with a port for the server and for each
	// router's wan. Each veth is created from inside its namespace with its
	// other end put straight into the other one, so it never appears in the
	// host's.
	if out, err := exec.Command("ip", "-n", l.pub, "link", "add", "br0", "type", "bridge").CombinedOutput(); err != nil {
		e2e.SetupFailed(t, "cannot create a bridge: %v: %s", err, strings.TrimSpace(string(out)))
	}
	ipCmd(t, "-n", l.pub, "link", "set", "br0", "up")
	veth := func(ns, dev, peerNS, peerDev string) {
		t.Helper()
		if out, err := exec.Command("ip", "-n", ns, "link", "add", dev, "type", "veth",
			"peer", "name", peerDev, "netns", peerNS).CombinedOutput(); err != nil {
			e2e.SetupFailed(t, "cannot create a veth pair: %v: %s", err, strings.TrimSpace(string(out)))
		}
	}
	port := func(ns, dev, bridgePort string, ip net.IP) {
		t.Helper()
		veth(ns, dev, l.pub, bridgePort)
		ipCmd(t, "-n", l.pub, "link", "set", bridgePort, "master", "br0")
		ipCmd(t, "-n", l.pub, "link", "set", bridgePort, "up")
		ipCmd(t, "-n", ns, "addr", "add", ip.String()+"/24", "dev", dev)
		ipCmd(t, "-n", ns, "link", "set", dev, "up")
	}
	port(l.srv, "eth0", "p-srv", l.serverIP)
	for i := range 2 {
		r, h := l.router[i], l.home[i]
		port(r, "wan", fmt.Sprintf("p-r%d", i+1), l.wanIP[i])
		// The home: one veth to its router, a private /24, and a default
		// route through the router (which itself has none).
		veth(h, "eth0", r, "lan")
		lanIP := net.IPv4(192, 168, byte(1+i), 1).To4()
		ipCmd(t, "-n", r, "addr", "add", lanIP.String()+"/24", "dev", "lan")
		ipCmd(t, "-n", r, "link", "set", "lan", "up")
		ipCmd(t, "-n", h, "addr", "add", l.homeIP[i].String()+"/24", "dev", "eth0")
		ipCmd(t, "-n", h, "link", "set", "eth0", "up")
		ipCmd(t, "-n", h, "route", "add", "default", "via", lanIP.String())
		natNetnsExec(t, r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	}
	l.iptables = natIptables(t, l.router[0])
	for _, r := range l.router {
		for _, rule := range [][]string{
			{"-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"},
			{"-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
			{"-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
			{"-A", "INPUT", "-i", "lan", "-j", "ACCEPT"},
			{"-A", "INPUT", "-j", "DROP"},
			{"-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
			{"-A", "FORWARD", "-i", "lan", "-o", "wan", "-j", "ACCEPT"},
			{"-A", "FORWARD", "-j", "DROP"},
		} {
			natNetnsExec(t, r, append([]string{l.iptables}, rule...)...)
		}
	}

	// The guarantee that nothing leaves: every namespace has only its own
	// interfaces, only the homes have a default route (to their router),
	// and no namespace but the homes can route to an address outside.
	wantLinks := map[string][]string{
		l.pub: {"lo", "br0", "p-srv", "p-r1", "p-r2"}, l.srv: {"lo", "eth0"},
		l.router[0]: {"lo", "wan", "lan"}, l.router[1]: {"lo", "wan", "lan"},
		l.home[0]: {"lo", "eth0"}, l.home[1]: {"lo", "eth0"},
	}
	for _, ns := range names {
		var links []string
		for _, line := range strings.Split(strings.TrimSpace(ipCmd(t, "-n", ns, "-o", "link", "show")), "\n") {
			if f := strings.Fields(line); len(f) > 1 {
				links = append(links, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
			}
		}
		if !natSameSet(links, wantLinks[ns]) {
			t.Fatalf("namespace %s has interfaces %v, want %v", ns, links, wantLinks[ns])
		}
		home := ns == l.home[0] || ns == l.home[1]
		if out := strings.TrimSpace(ipCmd(t, "-n", ns, "-4", "route", "show", "default")); out != "" && !home {
			t.Fatalf("namespace %s has a default route: %s", ns, out)
		}
		if out := strings.TrimSpace(ipCmd(t, "-n", ns, "-6", "route", "show", "default")); out != "" {
			t.Fatalf("namespace %s has an IPv6 default route: %s", ns, out)
		}
		if !home {
			if out, err := exec.Command("ip", "-n", ns, "route", "get", "1.1.1.1").CombinedOutput(); err == nil {
				t.Fatalf("namespace %s has a route to 1.1.1.1: %s", ns, out)
			}
		}
	}
	return l
}

// natIptables returns the iptables command that can add a NAT rule in the
// namespace ns: iptables (nft or legacy, whichever the system chose), else
// iptables-legacy. When neither works, it skips the test, or fails it under
// CI.
func natIptables(t *testing.T, ns string) string {
	t.Helper()
	var errs []string
	for _, cmd := range []string{"iptables", "iptables-legacy"} {
		if _, err := exec.LookPath(cmd); err != nil {
			continue
		}
		probe := []string{"netns", "exec", ns, cmd, "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "ACCEPT"}
		out, err := exec.Command("ip", probe...).CombinedOutput()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v: %s", cmd, err, strings.TrimSpace(string(out))))
			continue
		}
		probe[6] = "-D"
		natNetnsExec(t, ns, probe[3:]...)
		return cmd
	}
	e2e.SetupFailed(t, "cannot add a NAT rule in a namespace: %s", strings.Join(errs, "; "))
	return ""
}

// natNetnsExec runs a command in the namespace ns and fails the test if it fails.
func natNetnsExec(t *testing.T, ns string, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
}

func natSameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// natConnsSummary describes a conns event's connections to peer: for each,
// direct or relayed, transport and remote address.
func natConnsSummary(e e2e.Event, peer string) (summary string, direct, relayed int) {
	var parts []string
	for _, c := range e.Conns {
		if c.Peer != peer {
			continue
		}
		kind := "direct"
		if c.Relayed {
			kind = "relayed"
			relayed++
		} else {
			direct++
		}
		parts = append(parts, fmt.Sprintf("%s %s %s %s age %v", kind, c.Transport, c.Direction, c.Addr,
			time.Duration(c.AgeMS)*time.Millisecond))
	}
	if len(parts) == 0 {
		return "no connection", 0, 0
	}
	return strings.Join(parts, "; "), direct, relayed
}

// movedDirect accepts the notice that the chat moved to a direct
// connection.
var movedDirect = e2e.Code(event.PathMoved, func(e e2e.Event) bool { return !e.Relayed })

// natRun is one run of the two-NAT lab: its peers, and what it measured.
type natRun struct {
	a, b     *e2e.Proc
	aID, bID string
	// firstMessage is the time from the peers' start to the first message
	// received; direct is whether both ended with a direct connection.
	firstMessage time.Duration
	direct       bool
	// conns are the last /conns answers of a and b, for the other peer:
	// how many direct and relayed connections each listed.
	conns [2]struct{ direct, relayed int }
}

// runTwoNATs starts a server on the lab's public segment and a peer in each
// home, with peerArgs added, and checks that the peers meet at the
// rendezvous through the server and chat both ways. It logs whether they
// ended connected directly (hole punching worked) or through the server's
// relay, and the time to the first message, in one RESULT line; the
// callers decide which outcome their variant must have.
//
// RC_NAT_LOG_LEVEL, when set, is passed to the peers as -log-level, and
// their logs are shown at the end.
func runTwoNATs(t *testing.T, bin string, l *natLab, peerArgs ...string) natRun {
	t.Helper()
	rendezvous := fmt.Sprintf("nat-%d-%d", os.Getpid(), natNetnsCount.Load())

	// ip netns exec execs the binary, so the harness's kill reaches it.
	srv := e2e.StartCmd(t, "server", "ip", "netns", "exec", l.srv, bin, "-server", "-json",
		"-listen", fmt.Sprintf("/ip4/%s/tcp/4001", l.serverIP),
		"-listen", fmt.Sprintf("/ip4/%s/udp/4001/quic-v1", l.serverIP),
		"-identity", filepath.Join(t.TempDir(), "server.key"))
	rs := srv.Ready(t)
	var serverArgs []string
	for _, a := range rs.Addrs {
		if ip := lanAddrIP(a); ip.Equal(l.serverIP) {
			serverArgs = append(serverArgs, "-peer", a)
		}
	}
	if len(serverArgs) != 4 {
		t.Fatalf("server: want a TCP and a QUIC address on %s, got %v", l.serverIP, rs.Addrs)
	}
	t.Logf("server listens on %v", rs.Addrs)

	logLevel := os.Getenv("RC_NAT_LOG_LEVEL")
	var peers [2]*e2e.Proc
	for i := range 2 {
		args := append([]string{"netns", "exec", l.home[i], bin, "-json", "-mdns=false", "-nat=false",
			"-rendezvous", rendezvous}, serverArgs...)
		args = append(args, peerArgs...)
		if logLevel != "" {
			args = append(args, "-log-level", logLevel)
		}
		peers[i] = e2e.StartCmd(t, fmt.Sprintf("peer%d", i+1), "ip", args...)
	}
	if logLevel != "" {
		t.Cleanup(func() {
			for _, p := range peers {
				t.Logf("%s stderr:\n%s", p.Name, p.Stderr())
			}
		})
	}
	run := natRun{a: peers[0], b: peers[1]}
	a, b := run.a, run.b
	run.aID, run.bID = a.Ready(t).ID, b.Ready(t).ID
	aID, bID := run.aID, run.bID

	// The relay reservation and the rendezvous take their time behind a
	// NAT (and AutoNAT, where it decides): the usual meetTimeout is for
	// loopback.
	const natMeetTimeout = 40 * time.Second
	ja := a.Wait(t, event.Joined, e2e.Peer(bID), natMeetTimeout)
	jb := b.Wait(t, event.Joined, e2e.Peer(aID), natMeetTimeout)
	for _, c := range []struct {
		p *e2e.Proc
		j e2e.Event
	}{{a, ja}, {b, jb}} {
		t.Logf("%s: joined %v after start, %s over %s", c.p.Name, c.j.Time.Sub(c.p.Started).Round(time.Millisecond), c.j.Direction, c.j.Addr)
		// Each sees the other at its router's public address, or through
		// the relay: never at its private address, which it cannot reach.
		m, err := ma.NewMultiaddr(c.j.Addr)
		if err != nil {
			t.Errorf("%s: joined over %q: %v", c.p.Name, c.j.Addr, err)
			continue
		}
		if ip := lanAddrIP(c.j.Addr); !node.IsRelayed(m) && !ip.Equal(l.wanIP[0]) && !ip.Equal(l.wanIP[1]) {
			t.Errorf("%s: joined over %q: neither relayed nor a router's public address", c.p.Name, c.j.Addr)
		}
	}

	a.Send(t, "hello from behind NAT 1")
	m1 := b.Wait(t, event.Message, e2e.From(aID, "hello from behind NAT 1"), eventTimeout)
	b.Send(t, "hello from behind NAT 2")
	m2 := a.Wait(t, event.Message, e2e.From(bID, "hello from behind NAT 2"), eventTimeout)
	start := a.Started
	run.firstMessage = m1.Time.Sub(start)
	t.Logf("first message received %v after the peers started; the reply %v after",
		run.firstMessage.Round(time.Millisecond), m2.Time.Sub(start).Round(time.Millisecond))

	conns := func(when string) (directBoth bool) {
		directBoth = true
		for i, c := range []struct {
			p     *e2e.Proc
			other string
		}{{a, bID}, {b, aID}} {
			c.p.Send(t, "/conns")
			e := c.p.Wait(t, event.Conns, nil, eventTimeout)
			s, direct, relayed := natConnsSummary(e, c.other)
			t.Logf("%s, %s: %s", when, c.p.Name, s)
			run.conns[i].direct, run.conns[i].relayed = direct, relayed
			directBoth = directBoth && direct > 0
		}
		return directBoth
	}
	conns("after the first messages")
	// Hole punching may still turn the relayed connection into a direct
	// one, or a direct one may not last: look again a little later.
	const settle = 12 * time.Second
	met := later(ja.Time, jb.Time)
	time.Sleep(time.Until(met.Add(settle)))
	run.direct = conns(fmt.Sprintf("%v after meeting", time.Since(met).Round(time.Second)))
	result := "relayed"
	if run.direct {
		result = "direct"
	}
	t.Logf("RESULT: %s, first message %v after start", result, run.firstMessage.Round(time.Millisecond))
	// Each peer was told, in plain words, that it is behind NAT, and not
	// that it lacks a relay: it has one.
	for _, p := range []*e2e.Proc{a, b} {
		if len(p.All(event.Info, e2e.Code(event.ReachabilityPrivate))) == 0 {
			t.Errorf("%s: not told that it is behind NAT", p.Name)
		}
		p.NoEvent(t, 0, event.Error, e2e.Code(event.NoRelay), "it has a relay")
	}
	// Once there is a direct connection the chat itself moves to it.
	for _, p := range []*e2e.Proc{a, b} {
		moved := p.All(event.Info, movedDirect)
		if len(moved) > 0 {
			t.Logf("%s: the chat moved to a direct connection %v after start", p.Name, moved[0].Time.Sub(p.Started).Round(time.Millisecond))
		} else {
			t.Logf("%s: the chat did not move to a direct connection", p.Name)
		}
	}
	// The chat still works, whichever way it goes.
	a.Send(t, "still there?")
	b.Wait(t, event.Message, e2e.From(aID, "still there?"), eventTimeout)
	b.Send(t, "yes")
	a.Wait(t, event.Message, e2e.From(bID, "yes"), eventTimeout)
	return run
}

// TestNetnsTwoNATs: two peers, each behind a NAT of its own that drops
// unsolicited inbound packets, meet through a server on a "public" segment
// whose addresses libp2p takes for public ones (7.77.n.0/24, see the top of
// the file) and chat both ways. The test reports whether they end up
// connected directly (hole punching worked) or through the server's relay;
// it does not fail on a relayed connection, since hole punching may fail
// on a real network too.
func TestNetnsTwoNATs(t *testing.T) {
	bin := e2e.Binary(t) // skips under -short
	l := newNATLab(t, natPublicNet)
	if !l.public {
		t.Fatalf("the segment %s is not public to go-multiaddr: this lab would not test hole punching", l.serverIP)
	}
	runTwoNATs(t, bin, l)
}

// TestNetnsTwoNATsPrivate: the same lab built from private ranges only, its
// "public" segment in 100.64.n.0/24 like a carrier-grade NAT's. AutoNAT
// cannot tell the peers they are behind NAT there (it probes public
// addresses only), so they run with -reachability private; and autorelay
// gives no address through a relay whose addresses are private, which
// privateRelayAddrs makes up for. They must meet through the server's relay
// and chat both ways, and stay relayed: go-libp2p v0.51 never hole-punches
// private addresses (see the top of the file), which the chat says.
func TestNetnsTwoNATsPrivate(t *testing.T) {
	bin := e2e.Binary(t) // skips under -short
	l := newNATLab(t, natCGNATNet)
	if l.public {
		t.Fatalf("the segment %s is public to go-multiaddr: this lab would not be built from private ranges", l.serverIP)
	}
	run := runTwoNATs(t, bin, l, "-reachability", "private")
	if run.direct {
		t.Errorf("the peers ended connected directly: go-libp2p v0.51 was expected never to hole-punch private addresses")
	}
	for i, c := range run.conns {
		if c.direct != 0 || c.relayed == 0 {
			t.Errorf("peer%d lists %d direct and %d relayed connections to the other, want relayed ones only", i+1, c.direct, c.relayed)
		}
	}
	for _, p := range []*e2e.Proc{run.a, run.b} {
		// Forced, the reachability is announced once, and never guessed.
		if es := p.All(event.Info, func(e e2e.Event) bool {
			return e.Code == event.ReachabilityPublic || e.Code == event.ReachabilityPrivate
		}); len(es) != 1 || es[0].Code != event.ReachabilityPrivate || !es[0].Forced {
			t.Errorf("%s: reachability lines %+v, want one saying behind NAT, as -reachability says", p.Name, es)
		}
		// The chat opened over the relay says it stays there, 20 s after
		// it opened.
		p.Wait(t, event.Info, e2e.Code(event.StillRelayed), 40*time.Second)
		p.NoEvent(t, 0, event.Info, movedDirect, "no direct path exists here")
	}
}
