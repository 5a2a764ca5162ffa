//go:build unix

package console

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/term"
)

var timeInPast = time.Unix(1, 0)

// cancellableFile returns stdin as a file whose reads can be interrupted
// with a deadline, so that the goroutine reading it can be stopped and
// waited for like every other. A blocking read of fd 0 could not be. It
// puts the descriptor in non-blocking mode, which Go's poller then manages;
// the returned function puts it back, because the descriptor is shared
// with the shell that started us.
func cancellableFile(f *os.File) (*os.File, func()) {
	fd := int(f.Fd())
	if err := syscall.SetNonblock(fd, true); err != nil {
		return f, func() {}
	}
	nf := os.NewFile(uintptr(fd), f.Name())
	return nf, func() {
		_ = syscall.SetNonblock(fd, false)
		// nf is not closed: closing it would close fd 0, which os.Stdin
		// shares; keep it reachable so no finalizer closes it either.
		keepFiles = append(keepFiles, nf)
	}
}

var keepFiles []*os.File

// watchSize keeps the line editor's idea of the window size current.
func (c *Console) watchSize(t *term.Terminal, out *os.File) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer signal.Stop(winch)
		for {
			select {
			case <-c.stop:
				return
			case <-winch:
				if w, h, err := term.GetSize(int(out.Fd())); err == nil {
					_ = t.SetSize(w, h)
					if c.screen != nil {
						c.screen.setWidth(w)
					}
				}
			}
		}
	}()
}
