package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer that the logger and the test may use at
// once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogThrough: while the line editor owns the terminal, log lines go
// through it; afterwards they go back to stderr.
func TestLogThrough(t *testing.T) {
	var buf lockedBuffer
	restore := logThrough(&buf, logLevels{})
	log.Errorw("through the editor", "n", 1)
	restore()
	log.Errorw("back on stderr")
	got := buf.String()
	if !strings.Contains(got, "through the editor") || !strings.Contains(got, "ERROR") {
		t.Errorf("the editor got %q, want the error line", got)
	}
	if strings.Contains(got, "back on stderr") {
		t.Errorf("a log line after restore went to the editor: %q", got)
	}
}
