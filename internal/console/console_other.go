//go:build !unix

package console

import (
	"os"
	"time"

	"golang.org/x/term"
)

var timeInPast = time.Unix(1, 0)

// cancellableFile returns f as it is: elsewhere than on Unix a read of
// stdin in progress cannot be interrupted, and ends with the process.
func cancellableFile(f *os.File) (*os.File, func()) { return f, func() {} }

func (c *Console) watchSize(t *term.Terminal, out *os.File) {}
