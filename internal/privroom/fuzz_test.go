package privroom

import (
	"bytes"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// FuzzOpen: any payload from any author opens to an error or to exactly
// what was sealed, and never panics.
func FuzzOpen(f *testing.F) {
	r := testRoom(f)
	a := testID(f, 1)
	sealed, _ := r.Seal(a, 7, []byte("seed"))
	f.Add([]byte(a), sealed)
	f.Add([]byte(a), sealed[:Overhead])
	f.Add([]byte{}, []byte{})
	f.Add([]byte("x"), []byte{sealVersion})
	f.Fuzz(func(t *testing.T, author, data []byte) {
		seq, plain, err := r.Open(peer.ID(author), data)
		if err != nil {
			if seq != 0 || plain != nil {
				t.Fatalf("error with %d, %q", seq, plain)
			}
			return
		}
		// It opened: only the seed can, from its author.
		if string(author) != string(a) || seq != 7 || string(plain) != "seed" {
			t.Fatalf("opened %q by %x at %d", plain, author, seq)
		}
	})
}

// admitReader feeds the peer's side of an admission from fuzz input and
// swallows what we write.
type admitReader struct {
	io.Reader
}

func (admitReader) Write(b []byte) (int, error) { return len(b), nil }

// FuzzAdmit: garbage from the peer, on either side, never panics, never
// admits, and is never read past the exchange's fixed sizes.
func FuzzAdmit(f *testing.F) {
	r := testRoom(f)
	a, b := testID(f, 1), testID(f, 2)
	f.Add(append(hello(bytes.Repeat([]byte{1}, nonceSize)), bytes.Repeat([]byte{2}, 1+macSize)...), true)
	f.Add(append(hello(bytes.Repeat([]byte{1}, nonceSize)), bytes.Repeat([]byte{2}, macSize)...), false)
	f.Add([]byte{}, true)
	f.Add([]byte{verdictAdmit}, false)
	f.Fuzz(func(t *testing.T, input []byte, initiator bool) {
		in := bytes.NewReader(input)
		if err := r.Admit(admitReader{in}, a, b, initiator); err == nil {
			t.Fatal("garbage admitted")
		}
		if read := len(input) - in.Len(); read > helloSize+1+macSize {
			t.Fatalf("read %d bytes", read)
		}
	})
}
