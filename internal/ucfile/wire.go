package ucfile

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/rendezvous-chat/rendezvous-chat/internal/lenprefix"
)

// ProtocolID is the libp2p protocol of universal-connectivity's file
// exchange (js-peer/src/lib/constants.ts, FILE_EXCHANGE_PROTOCOL).
const ProtocolID = "/universal-connectivity-file/1"

// Limits and timeouts of the exchange.
const (
	// MaxIDBytes bounds a file ID, as the nim-peer does (MaxFileIdSize);
	// the IDs of the js-peer and of this package are 36 bytes.
	MaxIDBytes = 1 << 10
	// DefaultMaxBytes is the largest file Fetch accepts when the caller
	// gives no limit of its own, and the chat's default for -max-file.
	DefaultMaxBytes int64 = 64 << 20
	// RequestTimeout bounds how long a server waits for a request.
	RequestTimeout = 10 * time.Second
	// IdleTimeout bounds how long either side waits for the other during a
	// transfer: a read or write that makes no progress for this long ends
	// it. A deadline per step, rather than for the whole transfer, lets a
	// large file cross a slow link while a stalled peer is still dropped.
	IdleTimeout = 30 * time.Second
	// MaxConcurrentTransfers bounds the transfers one Handler serves at a
	// time; a request beyond them is refused, so that peers cannot make us
	// read the disk and send without limit.
	MaxConcurrentTransfers = 16
	// MaxTransfersPerPeer bounds the transfers one Handler serves to one
	// peer at a time, so that a single peer cannot take every slot of
	// MaxConcurrentTransfers. A user fetching two files at once is served
	// both; a third waits for the user to try again.
	MaxTransfersPerPeer = 2
	// MinRate and RateWindow are the least rate of a transfer, on both
	// sides: each MinRate×RateWindow bytes (480 KiB) must follow the
	// previous ones within RateWindow, or the transfer ends with ErrTooSlow.
	// A peer that trickles, never idle for IdleTimeout, still cannot hold
	// a transfer (and the server's slot) open for ever: a file of n bytes
	// takes at most about n/MinRate+RateWindow (a file of DefaultMaxBytes,
	// 70 minutes). 16 KiB/s is 128 kbit/s, a tenth or less of what a slow
	// real link carries (a relayed or mobile connection, a few hundred
	// KiB/s), and what a server with 2 Mbit/s of upload gives each of
	// MaxConcurrentTransfers at once.
	MinRate    = 16 << 10
	RateWindow = 30 * time.Second
)

// The timeouts and the least rate, as variables only so that tests can
// shorten them; nothing else changes them. Handlers read them when they are
// made and Fetch when it is called.
var (
	requestTimeout = RequestTimeout
	idleTimeout    = IdleTimeout
	// trailerWait bounds how long Fetch, after the whole body, waits to see
	// the stream end. Every implementation ends it right away; one that does
	// not is given the benefit of the doubt after this long.
	trailerWait = time.Second
	minRate     = int64(MinRate)
	rateWindow  = RateWindow
)

// Errors that callers tell apart with errors.Is. Each is returned wrapped,
// with what went wrong and where.
var (
	// ErrMalformed marks bytes that break the format: a bad varint, an empty
	// or invalid ID, a stream that ends inside a length prefix or an ID.
	ErrMalformed = errors.New("malformed file exchange message")
	// ErrTooLarge marks an ID over MaxIDBytes or a file over the limit.
	ErrTooLarge = errors.New("too large")
	// ErrUnavailable marks a request the peer did not answer with a file: it
	// ended the stream before a length prefix, which is what every
	// implementation does for an ID it does not know or a file it will not
	// serve.
	ErrUnavailable = errors.New("file not available from that peer")
	// ErrLengthMismatch marks a body shorter or longer than its prefix.
	ErrLengthMismatch = errors.New("received length does not match the announced length")
	// ErrExists marks a destination that already exists, when Fetch may not
	// overwrite it.
	ErrExists = errors.New("destination already exists")
	// ErrUnknownID is reported by a Handler for a request of an ID that its
	// Store does not hold.
	ErrUnknownID = errors.New("no file shared under that ID")
	// ErrChanged is reported by a Handler for a shared file that was
	// replaced or modified since it was shared; it is no longer served.
	ErrChanged = errors.New("shared file changed since it was shared")
	// ErrBusy is reported by a Handler for a request beyond
	// MaxConcurrentTransfers, or beyond MaxTransfersPerPeer for its peer.
	ErrBusy = errors.New("too many transfers at once")
	// ErrTooSlow marks a transfer that fell under the least rate (MinRate
	// over RateWindow): Fetch returns it for a peer that sends too slowly,
	// and a Handler reports it for a peer that reads too slowly.
	ErrTooSlow = errors.New("transfer too slow")
)

// Topic returns the gossip topic on which files of room are announced, as
// the Go peer names it (roomName + "-file"). For the demo's room,
// "universal-connectivity", it is the js, Rust and Nim peers' fixed
// "universal-connectivity-file".
func Topic(room string) string {
	return room + "-file"
}

// Announcement returns the payload that announces a file on Topic(room): the
// ID's bytes, nothing around them.
func Announcement(id string) []byte {
	return []byte(id)
}

// ParseAnnouncement checks a payload received on Topic(room) and returns the
// file ID it announces. The file is to be fetched from the message's signer.
func ParseAnnouncement(data []byte) (string, error) {
	if err := checkID(data); err != nil {
		return "", fmt.Errorf("file announcement: %w", err)
	}
	return string(data), nil
}

// checkID applies the rules of an ID: not empty (the Rust peer refuses an
// empty request), at most MaxIDBytes, and valid UTF-8, because every
// implementation treats an ID as a string (the Rust peer panics on invalid
// UTF-8).
func checkID(id []byte) error {
	switch {
	case len(id) == 0:
		return fmt.Errorf("%w: empty file ID", ErrMalformed)
	case len(id) > MaxIDBytes:
		return fmt.Errorf("%w: file ID of %d bytes, over the limit of %d", ErrTooLarge, len(id), MaxIDBytes)
	case !utf8.Valid(id):
		return fmt.Errorf("%w: file ID is not valid UTF-8", ErrMalformed)
	}
	return nil
}

// NewID returns a new file ID in the js-peer's form: a random version 4 UUID
// in canonical text form (RFC 9562, section 5.4).
func NewID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])  // crypto/rand.Read never fails
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant 10
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// AppendRequest appends the request for id: its length as an unsigned
// varint, then its bytes.
func AppendRequest(b []byte, id string) []byte {
	return lenprefix.Append(b, []byte(id))
}

// readLength reads an unsigned-varint length prefix. A stream that ends
// before its first byte gives io.EOF unwrapped, so that a caller can tell
// "nothing at all" from a truncated prefix.
func readLength(r io.Reader) (uint64, error) {
	n, err := lenprefix.ReadLength(r)
	if errors.Is(err, lenprefix.ErrMalformed) {
		return 0, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return n, err
}

// ReadRequest reads one request and returns the file ID. A prefix over
// MaxIDBytes is refused before anything is allocated for it.
func ReadRequest(r io.Reader) (string, error) {
	n, err := readLength(r)
	if err == io.EOF {
		return "", fmt.Errorf("%w: stream ended before a request", ErrMalformed)
	}
	if err != nil {
		return "", err
	}
	if n > MaxIDBytes {
		return "", fmt.Errorf("%w: request announces a file ID of %d bytes, over the limit of %d", ErrTooLarge, n, MaxIDBytes)
	}
	id := make([]byte, n)
	if _, err := io.ReadFull(r, id); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return "", fmt.Errorf("%w: stream ended inside a file ID of %d bytes", ErrMalformed, n)
		}
		return "", fmt.Errorf("reading file ID: %w", err)
	}
	if err := checkID(id); err != nil {
		return "", err
	}
	return string(id), nil
}
