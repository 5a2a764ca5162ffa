package lenprefix

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadLength(t *testing.T) {
	r := bytes.NewReader(Append(Append(nil, []byte("hello")), bytes.Repeat([]byte("x"), 300)))
	for _, want := range []uint64{5, 300} {
		n, err := ReadLength(r)
		if err != nil || n != want {
			t.Fatalf("ReadLength = %d, %v; want %d", n, err, want)
		}
		// The prefix alone was consumed: the message follows.
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ReadLength(r); err != io.EOF {
		t.Errorf("at the end: %v, want io.EOF", err)
	}
	for _, bad := range []string{"\x80", "\xff\xff", strings.Repeat("\xff", 11)} {
		if _, err := ReadLength(strings.NewReader(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ReadLength(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}
