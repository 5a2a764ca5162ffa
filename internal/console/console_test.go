package console

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

func TestReadStdinLine(t *testing.T) {
	long := strings.Repeat("z", wire.MaxTextBytes+10)
	br := bufio.NewReaderSize(strings.NewReader("one\r\n\n"+long+"\nafter\nlast"), 64<<10)
	var got []string
	for {
		line, err := readStdinLine(br)
		if errors.Is(err, ErrLineTooLong) {
			got = append(got, "<too long>")
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, line)
	}
	// A too-long line is refused on its own; the lines after it still count.
	want := []string{"one", "", "<too long>", "after", "last"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}
