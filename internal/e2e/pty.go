//go:build linux

package e2e

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"
)

// OpenPTY opens a pseudo-terminal pair of 24 rows by 100 columns: the test
// holds the master side, and the program (or a console under test) gets the
// slave side as its stdin and stdout, as in a real terminal. Both are closed
// when the test ends.
//
// A host without pseudo-terminals cannot run a terminal test: that is a
// setup failure (SetupFailed), so that under CI the test fails rather than
// passing with no terminal coverage.
func OpenPTY(t testing.TB) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		SetupFailed(t, "no pseudo-terminals here: %v", err)
	}
	var n uint32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); errno != 0 {
		m.Close()
		SetupFailed(t, "TIOCGPTN: %v", errno)
	}
	var unlock int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		m.Close()
		SetupFailed(t, "TIOCSPTLCK: %v", errno)
	}
	// The slave side is opened as a terminal's stdin is: blocking, and
	// not registered with Go's poller. console.Open makes its stdin
	// non-blocking and registers its own copy, so that a read can be
	// cancelled; opened with os.OpenFile the slave is registered already,
	// the console's copy cannot be, and a console under test read it with
	// blocking reads that Close could not end (one such test hung now and
	// then).
	sfd, err := syscall.Open(fmt.Sprintf("/dev/pts/%d", n), syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		SetupFailed(t, "open the pseudo-terminal: %v", err)
	}
	s := os.NewFile(uintptr(sfd), fmt.Sprintf("/dev/pts/%d", n))
	// A real terminal has a size; without one the line editor wraps at
	// every character.
	ws := struct{ rows, cols, x, y uint16 }{rows: 24, cols: 100}
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, s.Fd(), syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws))); errno != 0 {
		m.Close()
		s.Close()
		SetupFailed(t, "TIOCSWINSZ: %v", errno)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// RecordScreen reads everything a program writes to the pseudo-terminal
// whose master side is master, until it is closed, and returns a function
// that gives what has been read so far: the screen's raw bytes, escapes
// included.
func RecordScreen(master *os.File) (text func() string) {
	var mu sync.Mutex
	var screen strings.Builder
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return screen.String()
	}
}
