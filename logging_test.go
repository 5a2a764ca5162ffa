package main

import (
	"strings"
	"testing"
)

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
