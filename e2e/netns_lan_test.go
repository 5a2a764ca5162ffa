//go:build linux

package e2e

// Two peers on one LAN segment, with no server and no way out of it, must
// meet by mDNS alone. The LAN is built from network namespaces with
// iproute2: one namespace per peer, each with a veth whose other end is a
// port of a bridge in a third, "switch", namespace. Nothing is created in
// the host's own namespace but the namespaces themselves, and no namespace
// has a default route, so the public bootstrap peers cannot be reached.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

var lanNetnsCount atomic.Int32

// A netnsLAN is two peer namespaces, a and b, joined by a bridge in sw.
type netnsLAN struct {
	a, b, sw     string // namespace names
	rendezvous   string // unique to this LAN, for the peers started on it
	subnet       *net.IPNet
	addrA, addrB net.IP
}

// newNetnsLAN builds a LAN of three namespaces and deletes them when the
// test ends, after the processes started later have been killed (cleanups
// run last registered first). Where it cannot be built, it skips the test,
// or fails it under CI (see e2e.SetupFailed).
func newNetnsLAN(t *testing.T) *netnsLAN {
	t.Helper()
	e2e.NeedRoot(t, "ip")
	n := lanNetnsCount.Add(1)
	prefix := fmt.Sprintf("rc-lan-%d-%d", os.Getpid(), n)
	l := &netnsLAN{a: prefix + "-a", b: prefix + "-b", sw: prefix + "-br",
		rendezvous: fmt.Sprintf("lan-%d-%d", os.Getpid(), n)}
	names := []string{l.a, l.b, l.sw}

	addNetnsGroup(t, names)

	// The switch: a bridge with one port per peer. Each veth is created
	// from inside its peer namespace with its other end put straight into
	// the switch namespace, so it never appears in the host's.
	if out, err := exec.Command("ip", "-n", l.sw, "link", "add", "br0", "type", "bridge").CombinedOutput(); err != nil {
		e2e.SetupFailed(t, "cannot create a bridge: %v: %s", err, strings.TrimSpace(string(out)))
	}
	l.subnet = &net.IPNet{IP: net.IPv4(10, 88, byte(n), 0).To4(), Mask: net.CIDRMask(24, 32)}
	l.addrA, l.addrB = net.IPv4(10, 88, byte(n), 1).To4(), net.IPv4(10, 88, byte(n), 2).To4()
	for _, p := range []struct {
		ns, port string
		ip       net.IP
	}{{l.a, "veth-a", l.addrA}, {l.b, "veth-b", l.addrB}} {
		if out, err := exec.Command("ip", "-n", p.ns, "link", "add", "eth0", "type", "veth",
			"peer", "name", p.port, "netns", l.sw).CombinedOutput(); err != nil {
			e2e.SetupFailed(t, "cannot create a veth pair: %v: %s", err, strings.TrimSpace(string(out)))
		}
		ipCmd(t, "-n", l.sw, "link", "set", p.port, "master", "br0")
		ipCmd(t, "-n", l.sw, "link", "set", p.port, "up")
		ipCmd(t, "-n", p.ns, "addr", "add", p.ip.String()+"/24", "dev", "eth0")
		ipCmd(t, "-n", p.ns, "link", "set", "eth0", "up")
	}
	ipCmd(t, "-n", l.sw, "link", "set", "br0", "up")
	for _, ns := range names {
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	}

	// mDNS needs multicast on the LAN: veths and bridges have it by
	// default, and this says so if that ever changes.
	for _, dev := range [][2]string{{l.a, "eth0"}, {l.b, "eth0"}, {l.sw, "veth-a"}, {l.sw, "veth-b"}, {l.sw, "br0"}} {
		flags := lanLinkFlags(t, dev[0], dev[1])
		if !slices.Contains(flags, "MULTICAST") || !slices.Contains(flags, "UP") {
			t.Fatalf("%s in %s: flags %v, want MULTICAST and UP", dev[1], dev[0], flags)
		}
	}
	// The guarantee that nothing leaves: each peer has only lo and its veth,
	// no namespace has a default route, and a public address is unreachable.
	for _, ns := range []string{l.a, l.b} {
		var links []string
		for _, line := range strings.Split(strings.TrimSpace(ipCmd(t, "-n", ns, "-o", "link", "show")), "\n") {
			if f := strings.Fields(line); len(f) > 1 {
				links = append(links, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
			}
		}
		if !slices.Equal(links, []string{"lo", "eth0"}) {
			t.Fatalf("namespace %s has interfaces %v, want lo and eth0 only", ns, links)
		}
		for _, dst := range []string{"1.1.1.1", "2606:4700:4700::1111"} {
			if out, err := exec.Command("ip", "-n", ns, "route", "get", dst).CombinedOutput(); err == nil {
				t.Fatalf("namespace %s has a route to %s: %s", ns, dst, out)
			}
		}
	}
	for _, ns := range names {
		for _, family := range []string{"-4", "-6"} {
			if out := strings.TrimSpace(ipCmd(t, "-n", ns, family, "route", "show", "default")); out != "" {
				t.Fatalf("namespace %s has a default route: %s", ns, out)
			}
		}
	}
	return l
}

// lanLinkFlags returns the flags of a link, as ip prints them in <...>.
func lanLinkFlags(t *testing.T, ns, dev string) []string {
	t.Helper()
	out := ipCmd(t, "-n", ns, "-o", "link", "show", "dev", dev)
	i, j := strings.Index(out, "<"), strings.Index(out, ">")
	if i < 0 || j < i {
		t.Fatalf("%s in %s: no flags in %q", dev, ns, out)
	}
	return strings.Split(out[i+1:j], ",")
}

// lanAddrIP returns the IPv4 address of a multiaddr, or nil.
func lanAddrIP(addr string) net.IP {
	m, err := ma.NewMultiaddr(addr)
	if err != nil {
		return nil
	}
	v, err := m.ValueForProtocol(ma.P_IP4)
	if err != nil {
		return nil
	}
	return net.ParseIP(v).To4()
}

// lanBootstrapError accepts the error saying that no bootstrap peer is
// reachable, and that says what still works (why: event.WhyMDNSOnly or
// event.WhyInboundOnly).
func lanBootstrapError(why string) e2e.Match {
	return e2e.Code(event.BootstrapUnreachable, func(e e2e.Event) bool { return e.Why == why })
}

// TestNetnsLANmDNS: two peers with the default configuration on one LAN
// segment, with no server and no internet, meet by mDNS over the LAN and
// chat; without mDNS they do not meet at all.
func TestNetnsLANmDNS(t *testing.T) {
	bin := e2e.Binary(t) // skips under -short
	// Both LANs are made here, so that the whole test skips (or fails under
	// CI) where they cannot be; each subtest's processes are killed at its end, before the
	// LANs are deleted at the end of the test.
	withMDNS, withoutMDNS := newNetnsLAN(t), newNetnsLAN(t)

	// start runs the binary in the peer namespace ns (ip netns exec execs
	// it, so the harness's kill reaches the binary itself).
	start := func(t *testing.T, name, ns string, args ...string) *e2e.Proc {
		return e2e.StartCmd(t, name, "ip", append([]string{"netns", "exec", ns, bin, "-json"}, args...)...)
	}

	t.Run("mdns", func(t *testing.T) {
		l := withMDNS
		a := start(t, "a", l.a, "-rendezvous", l.rendezvous)
		b := start(t, "b", l.b, "-rendezvous", l.rendezvous)
		ra, rb := a.Ready(t), b.Ready(t)
		aID, bID := ra.ID, rb.ID
		t.Logf("a advertises %v", ra.Addrs)
		t.Logf("b advertises %v", rb.Addrs)
		for _, c := range []struct {
			r  e2e.Event
			ip net.IP
		}{{ra, l.addrA}, {rb, l.addrB}} {
			if !slices.ContainsFunc(c.r.Addrs, func(s string) bool { return lanAddrIP(s).Equal(c.ip) }) {
				t.Errorf("ready addresses %v do not include the LAN address %s", c.r.Addrs, c.ip)
			}
		}
		for _, p := range []*e2e.Proc{a, b} {
			e := p.Wait(t, event.Error, lanBootstrapError(event.WhyMDNSOnly), 30*time.Second)
			t.Logf("%s: %v after start: %s", p.Name, e.Time.Sub(p.Started).Round(time.Millisecond), e.Error)
		}
		ja, jb := meet(t, a, b, aID, bID)
		for _, c := range []struct {
			p    *e2e.Proc
			j    e2e.Event
			want net.IP
		}{{a, ja, l.addrB}, {b, jb, l.addrA}} {
			t.Logf("%s: joined %v after start, %s over %s", c.p.Name, c.j.Time.Sub(c.p.Started).Round(time.Millisecond), c.j.Direction, c.j.Addr)
			// On the LAN, and the other peer's own address there: not
			// loopback, which each namespace has to itself.
			if ip := lanAddrIP(c.j.Addr); !c.want.Equal(ip) || !l.subnet.Contains(ip) {
				t.Errorf("%s: joined over %q, want the other peer's LAN address %s in %s", c.p.Name, c.j.Addr, c.want, l.subnet)
			}
		}

		chatBothWays(t, a, b, aID, bID, "over the LAN")
		leaveByEndOfInput(t, a, b, aID)
	})

	// The control: the same LAN and flags but -mdns=false. Nothing else can
	// bring the peers together, so they must not meet.
	t.Run("no mdns", func(t *testing.T) {
		l := withoutMDNS
		a := start(t, "a", l.a, "-mdns=false", "-rendezvous", l.rendezvous)
		b := start(t, "b", l.b, "-mdns=false", "-rendezvous", l.rendezvous)
		a.Ready(t)
		b.Ready(t)
		for _, p := range []*e2e.Proc{a, b} {
			p.Wait(t, event.Error, lanBootstrapError(event.WhyInboundOnly), 30*time.Second)
		}
		const quiet = 5 * time.Second
		a.NoEvent(t, quiet, event.Joined, nil, "joined without mDNS")
		b.NoEvent(t, 0, event.Joined, nil, "joined without mDNS")
	})
}

// addNetnsGroup creates the namespaces names and deletes them when the test
// ends (after the processes started later have been killed: cleanups run
// last registered first), then checks that none is left behind. When the
// first cannot be created, it skips the test, or fails it under CI.
func addNetnsGroup(t *testing.T, names []string) {
	t.Helper()
	// Registered first, so it runs last: after every namespace is deleted,
	// none of ours may still be listed.
	t.Cleanup(func() {
		out, err := exec.Command("ip", "netns", "list").CombinedOutput()
		if err != nil {
			t.Errorf("ip netns list: %v: %s", err, out)
			return
		}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && slices.Contains(names, f[0]) {
				t.Errorf("namespace %s left behind after the test", f[0])
			}
		}
	})
	for i, ns := range names {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			if i == 0 {
				e2e.SetupFailed(t, "ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
			}
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns delete %s: %v: %s", ns, err, out)
			}
		})
	}
}
