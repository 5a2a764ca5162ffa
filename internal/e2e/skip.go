//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// CI reports whether the tests run under continuous integration (CI=true
// in the environment). There a test that needs root, network namespaces or
// a browser must run: when it cannot set up, it fails instead of skipping.
func CI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// SetupFailed ends a test that cannot build what it needs (a network
// namespace, a bridge, a NAT rule): under CI it fails, elsewhere it skips,
// with the reason either way.
func SetupFailed(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("cannot set up the test under CI: %s", msg)
		return
	}
	t.Skipf("cannot set up the test here: %s", msg)
}

// NeedRoot ends the test by SetupFailed unless it runs as root and finds
// each of the commands in PATH (e.g. "ip" from iproute2, "iptables").
func NeedRoot(t testing.TB, commands ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SetupFailed(t, "needs root to create network namespaces")
	}
	for _, c := range commands {
		if _, err := exec.LookPath(c); err != nil {
			SetupFailed(t, "needs the %s command: %v", c, err)
		}
	}
}
