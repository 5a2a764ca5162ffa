//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
)

// Module is the import path of the program under test: the module's root
// package.
const Module = "github.com/rendezvous-chat/rendezvous-chat"

// The binaries are built at most once per test binary, on first use, so
// that a run of only the unit tests pays nothing; Main removes them at the
// end.
var (
	buildMu  sync.Mutex
	buildDir string
	builds   = map[bool]*built{} // by race
)

type built struct {
	path string
	err  error
}

// Main runs the tests of a package that starts the binary, and then
// removes the binaries built for them:
//
//	func TestMain(m *testing.M) { e2e.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	KillAll()
	buildMu.Lock()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	buildMu.Unlock()
	os.Exit(code)
}

// Race reports whether this binary (the test binary, or bench) was built
// with -race.
func Race() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// Binary returns the path of the program, built on first use with -race
// when the test binary has it, so that the end-to-end runs also look for
// data races in the real binary. It skips the calling test under -short:
// every end-to-end test calls it (or Start) first.
func Binary(t testing.TB) string {
	t.Helper()
	return binary(t, Race())
}

// BinaryNoRace is Binary built without the race detector, even under
// -race: for tests that start so many processes that race-built ones would
// starve each other.
func BinaryNoRace(t testing.TB) string {
	t.Helper()
	return binary(t, false)
}

func binary(t testing.TB, race bool) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	b := builds[race]
	if b == nil {
		b = &built{}
		builds[race] = b
		if buildDir == "" {
			buildDir, b.err = os.MkdirTemp("", "rendezvous-chat-e2e-")
		}
		if b.err == nil {
			name := "rendezvous-chat"
			if !race {
				name += "-norace"
			}
			b.path, b.err = Build(filepath.Join(buildDir, name), race)
		}
	}
	if b.err != nil {
		t.Fatalf("build the binary: %v", b.err)
	}
	return b.path
}

// Build builds the program into path, with -race when race is set, from
// the module that holds the working directory (the repository or any
// directory in it), and returns path.
func Build(path string, race bool) (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(gomod))
	if err != nil || mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("find the module (go env GOMOD): %v; run from the repository", err)
	}
	args := []string{"build", "-o", path}
	if race {
		args = append(args, "-race")
	}
	args = append(args, Module)
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Dir(mod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return path, nil
}

// Env is the environment of every child: ours without go-log settings,
// which would add log lines to stderr, and with the race detector (when
// the binary has it) told to stop the program at the first race, so that
// it cannot go unnoticed, and not to linger for its default second at
// every exit.
func Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOLOG_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	return append(env, "GORACE=halt_on_error=1 atexit_sleep_ms=100")
}
