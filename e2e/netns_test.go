//go:build linux

package e2e

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

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
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
// the test ends. Where namespaces cannot be made, it skips the test, or
// fails it under CI (see e2e.SetupFailed).
func newNetns(t *testing.T) string {
	t.Helper()
	e2e.NeedRoot(t, "ip")
	ns := fmt.Sprintf("rc-test-%d-%d", os.Getpid(), netnsCount.Add(1))
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		e2e.SetupFailed(t, "ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
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
	bin := e2e.Binary(t) // skips under -short
	ns := newNetns(t)

	// ip netns exec runs the binary in its own process (it execs, it does not
	// fork), so the harness's kill reaches the binary itself.
	a := e2e.StartCmd(t, "a", "ip", "netns", "exec", ns, bin, "-json")
	b := e2e.StartCmd(t, "b", "ip", "netns", "exec", ns, bin, "-json")
	aID, bID := a.Ready(t).ID, b.Ready(t).ID
	for _, p := range []*e2e.Proc{a, b} {
		e := p.Wait(t, event.Error, e2e.Code(event.BootstrapUnreachable), 30*time.Second)
		if e.Why != event.WhyMDNSOnly {
			t.Errorf("%s: the error does not say that mDNS still works: %+v", p.Name, e)
		}
	}
	meet(t, a, b, aID, bID)
	chatBothWays(t, a, b, aID, bID, "over mDNS")
	leaveByEndOfInput(t, a, b, aID)
}
