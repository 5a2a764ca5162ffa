package privroom

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/chacha20poly1305"
)

// A sealed payload, as published on the room's topics:
//
//	version (1 byte, 0x01) || seq (8 bytes, big-endian) || nonce (24 random
//	bytes) || XChaCha20-Poly1305 ciphertext of the plaintext, with its 16-byte tag
//
// with associated data lp(sealLabel) || lp(author's peer ID) || version ||
// seq. The seq is the author's counter, chosen by the sealer and carried in
// the clear; the receiver takes the author from the message's signed From.
const (
	sealVersion = 0x01
	sealLabel   = "rendezvous-chat/topic-seal/v1"
	headerSize  = 1 + 8

	// Overhead is what sealing adds to a plaintext: 49 bytes.
	Overhead = headerSize + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
	// MaxSealed is the largest sealed payload Open takes: GossipSub's
	// default largest message (1 MiB). A topic that takes payloads of n
	// bytes takes sealed payloads of n + Overhead.
	MaxSealed = 1 << 20
	// MaxPlaintext is the largest plaintext Seal takes.
	MaxPlaintext = MaxSealed - Overhead
)

// ErrOpen: the payload was not sealed for this room by this author with
// this seq, or was changed on the way.
var ErrOpen = errors.New("privroom: the payload does not open: not sealed for this room by its author, or altered")

// ErrReplay: a payload whose seq this receiver has already accepted from
// its author, or one older than it still remembers.
var ErrReplay = errors.New("privroom: replayed payload")

// Seal seals a payload by author with seq: author is our own peer ID, seq
// the next number of our Counter. It fails only for a plaintext over
// MaxPlaintext. Sealing the same plaintext twice gives different payloads
// (a fresh random nonce each time).
func (r *Room) Seal(author peer.ID, seq uint64, plaintext []byte) ([]byte, error) {
	var nonce [chacha20poly1305.NonceSizeX]byte
	_, _ = rand.Read(nonce[:]) // never fails: crypto/rand.Read crashes the program rather than return an error
	return r.sealWithNonce(author, seq, nonce[:], plaintext)
}

func (r *Room) sealWithNonce(author peer.ID, seq uint64, nonce, plaintext []byte) ([]byte, error) {
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("privroom: plaintext of %d bytes, at most %d", len(plaintext), MaxPlaintext)
	}
	out := make([]byte, headerSize, Overhead+len(plaintext))
	out[0] = sealVersion
	binary.BigEndian.PutUint64(out[1:headerSize], seq)
	out = append(out, nonce...)
	return r.aead.Seal(out, nonce, plaintext, sealAD(author, out[:headerSize])), nil
}

// Open opens a payload: author is the message's signed author
// (peer.ID(msg.GetFrom()) under StrictSign). It returns the author's seq,
// to give to a ReplayGuard, and the plaintext. ErrOpen for a payload that
// fails: another room, another author, a changed seq or byte, a truncated
// or oversized payload, an unknown version.
func (r *Room) Open(author peer.ID, sealed []byte) (seq uint64, plaintext []byte, err error) {
	if len(sealed) < Overhead || len(sealed) > MaxSealed || sealed[0] != sealVersion {
		return 0, nil, ErrOpen
	}
	header := sealed[:headerSize]
	nonce := sealed[headerSize : headerSize+chacha20poly1305.NonceSizeX]
	plaintext, err = r.aead.Open(nil, nonce, sealed[headerSize+chacha20poly1305.NonceSizeX:], sealAD(author, header))
	if err != nil {
		return 0, nil, ErrOpen
	}
	return binary.BigEndian.Uint64(header[1:]), plaintext, nil
}

func sealAD(author peer.ID, header []byte) []byte {
	ad := appendLP(nil, []byte(sealLabel))
	ad = appendLP(ad, []byte(author))
	return append(ad, header...)
}

// Counter numbers our own sealed payloads: one per process, shared by all
// the room's topics. Each number is above the one before and at least the
// wall clock in nanoseconds, so that a restart goes on above the numbers
// of the last run (while the clock does not go back) and a receiver can
// tell an old number from a new one. It is safe for concurrent use.
type Counter struct {
	last atomic.Uint64
	now  func() time.Time
}

// Next returns the next number: max(last + 1, now in Unix nanoseconds).
func (c *Counter) Next() uint64 {
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	for {
		last := c.last.Load()
		next := last + 1
		if ns := now().UnixNano(); ns > 0 {
			next = max(next, uint64(ns))
		}
		if c.last.CompareAndSwap(last, next) {
			return next
		}
	}
}

// ReplayGuard remembers, per author, the seqs it accepted, to refuse a
// payload that comes again: after GossipSub's own cache of seen messages
// has forgotten it, anyone who kept a signed message can publish it
// again. It keeps the last replayWindow seqs of each author, so that
// payloads that arrive out of order (by other paths of the mesh) still
// pass, and refuses a seq below all of them; with maxAge, it also refuses
// a seq (a Counter's time) older than that, so that a replay reaches no
// receiver that never saw its author. It remembers maxAuthors authors at
// most, forgetting the one heard from least recently: a hostile member
// can make as many identities as it likes. It is safe for concurrent use.
type ReplayGuard struct {
	mu         sync.Mutex
	authors    map[peer.ID]*window
	maxAuthors int
	maxAge     time.Duration
	now        func() time.Time
	tick       uint64 // counts accepts, for least recently heard
}

// replayWindow is how many seqs per author a ReplayGuard keeps.
const replayWindow = 64

type window struct {
	seqs  [replayWindow]uint64
	n     int    // seqs used
	full  bool   // the window has let a seq go: floor holds
	floor uint64 // once full, every seq ≤ floor is refused
	heard uint64 // tick of the last accept
}

// NewReplayGuard returns a guard for maxAuthors authors (at least 1) that
// refuses seqs older than maxAge by our clock (0: no age limit; a few
// minutes more than the clocks of the room may differ by, say 10 minutes).
func NewReplayGuard(maxAuthors int, maxAge time.Duration) *ReplayGuard {
	return &ReplayGuard{authors: map[peer.ID]*window{}, maxAuthors: max(maxAuthors, 1), maxAge: maxAge, now: time.Now}
}

// Accept records seq from author, or returns an error wrapping ErrReplay
// when it was accepted before or is too old. Call it only with the seq of
// a payload that Open opened, so that nobody without the key can use up
// an author's numbers.
func (g *ReplayGuard) Accept(author peer.ID, seq uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxAge > 0 {
		if oldest := g.now().Add(-g.maxAge).UnixNano(); oldest > 0 && seq < uint64(oldest) {
			return fmt.Errorf("%w: seq older than %v", ErrReplay, g.maxAge)
		}
	}
	w := g.authors[author]
	if w == nil {
		if len(g.authors) >= g.maxAuthors {
			g.forgetOne()
		}
		w = &window{}
		g.authors[author] = w
	}
	if err := w.accept(seq); err != nil {
		return err
	}
	g.tick++
	w.heard = g.tick
	return nil
}

// forgetOne forgets the author heard from least recently.
func (g *ReplayGuard) forgetOne() {
	var oldest peer.ID
	var heard uint64
	first := true
	for id, w := range g.authors {
		if first || w.heard < heard {
			oldest, heard, first = id, w.heard, false
		}
	}
	delete(g.authors, oldest)
}

func (w *window) accept(seq uint64) error {
	if w.full && seq <= w.floor {
		return fmt.Errorf("%w: seq below the last %d accepted", ErrReplay, replayWindow)
	}
	lowest := 0
	for i, s := range w.seqs[:w.n] {
		if s == seq {
			return fmt.Errorf("%w: seq seen before", ErrReplay)
		}
		if s < w.seqs[lowest] {
			lowest = i
		}
	}
	if w.n < replayWindow {
		w.seqs[w.n] = seq
		w.n++
		return nil
	}
	// Full: the lowest of the window and seq goes, and becomes the floor.
	w.full = true
	if seq < w.seqs[lowest] {
		w.floor = seq
		return nil
	}
	w.floor = w.seqs[lowest]
	w.seqs[lowest] = seq
	return nil
}
