// Package lenprefix reads and writes the unsigned-varint length prefixes
// that universal-connectivity's protocols put before each message (the
// framing of js-libp2p's it-length-prefixed): the direct messages of
// internal/ucdm and the file exchange of internal/ucfile.
package lenprefix

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrMalformed marks a prefix that is not one: the stream ended inside it,
// or it runs past the longest varint.
var ErrMalformed = errors.New("malformed length prefix")

// Append appends msg with its length prefix.
func Append(b, msg []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(msg)))
	return append(b, msg...)
}

// ReadLength reads one length prefix, a byte at a time, so that it never
// consumes what follows it, whatever the reader. A stream that ends before
// the first byte gives io.EOF unwrapped, so that a caller can tell "nothing
// at all" from a truncated prefix.
func ReadLength(r io.Reader) (uint64, error) {
	br := &byteReader{r: r}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		switch {
		case err == io.EOF && br.n == 0:
			return 0, io.EOF
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return 0, fmt.Errorf("%w: the stream ended inside it", ErrMalformed)
		case br.n >= binary.MaxVarintLen64:
			return 0, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return 0, fmt.Errorf("read length prefix: %w", err)
	}
	return n, nil
}

type byteReader struct {
	r   io.Reader
	n   int
	buf [1]byte
}

func (br *byteReader) ReadByte() (byte, error) {
	if _, err := io.ReadFull(br.r, br.buf[:]); err != nil {
		return 0, err
	}
	br.n++
	return br.buf[0], nil
}
