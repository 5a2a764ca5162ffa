//go:build linux

package main

// The default configuration dials the public bootstrap peers and multicasts
// mDNS queries, so it is tested only inside a network namespace of its own
// that has nothing but a loopback interface: no route leads out of it, and
// nothing the test starts there can reach the internet or the LAN.

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var netnsCount atomic.Int32

// ipCmd runs the ip command and fails the test if it fails.
func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNetns creates a network namespace with only its loopback interface,
// up and with multicast on so that mDNS works on it, and deletes it when
// the test ends. It skips the test where namespaces cannot be made.
func newNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2) to create a network namespace")
	}
	ns := fmt.Sprintf("rc-test-%d-%d", os.Getpid(), netnsCount.Add(1))
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here: ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
	}
	// Registered before any process starts, so it runs after their cleanups
	// have killed them.
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", ns, err, out)
		}
	})
	ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	ipCmd(t, "-n", ns, "link", "set", "lo", "multicast", "on")

	// The guarantee that nothing leaves: loopback is the only interface.
	links := strings.Split(strings.TrimSpace(ipCmd(t, "-n", ns, "-o", "link", "show")), "\n")
	if len(links) != 1 || !strings.Contains(links[0], " lo: ") {
		t.Fatalf("namespace %s has interfaces other than lo:\n%s", ns, strings.Join(links, "\n"))
	}
	return ns
}

// TestNetnsDefaultsOffline: with the default flags and no way out, each peer
// says at once that no bootstrap peer is reachable, and the two still meet
// by mDNS and chat.
func TestNetnsDefaultsOffline(t *testing.T) {
	bin := e2eBinary(t) // skips under -short
	ns := newNetns(t)

	// ip netns exec runs the binary in its own process (it execs, it does not
	// fork), so the proc's kill reaches the binary itself.
	a := startCmd(t, "a", "ip", "netns", "exec", ns, bin, "-json")
	b := startCmd(t, "b", "ip", "netns", "exec", ns, bin, "-json")
	aID, bID := a.ready(t).ID, b.ready(t).ID
	for _, p := range []*proc{a, b} {
		e := p.waitEvent(t, EventError, func(e Event) bool {
			return strings.Contains(e.Error, "no bootstrap peer reachable")
		}, 30*time.Second)
		if !strings.Contains(e.Error, "mDNS") {
			t.Errorf("%s: the error does not say that mDNS still works: %q", p.name, e.Error)
		}
	}
	meet(t, a, b, aID, bID)
	chatBothWays(t, a, b, aID, bID, "over mDNS")
	leaveByEndOfInput(t, a, b, aID)
}
