package ucfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// chunkSize is how much of a file is read and sent at a time: the memory a
// transfer holds, on either side.
const chunkSize = 64 << 10

// Handler returns a stream handler for ProtocolID that serves the files of
// store. See HandlerWithErrors.
func Handler(store *Store, maxBytes int64) network.StreamHandler {
	return HandlerWithErrors(store, maxBytes, nil)
}

// HandlerWithErrors is Handler that also reports each request it could not
// serve to onErr (when it is not nil): ErrUnknownID, ErrChanged, ErrTooLarge
// (a file over maxBytes, or an ID over MaxIDBytes), ErrMalformed, ErrBusy,
// ErrTooSlow (a peer that reads under the least rate), or a transfer that
// broke or stalled.
//
// The handler reads one request within RequestTimeout. Only then, for an ID
// its store holds, does it take a transfer slot: at most
// MaxConcurrentTransfers transfers at a time, and at most
// MaxTransfersPerPeer to one peer. It answers with the file's length and
// bytes, at no less than the least rate (MinRate over RateWindow) and with
// no write waiting more than IdleTimeout, then ends the stream. A request it
// cannot serve gets no answer: the stream is reset, as the js-peer does for
// an unknown ID. maxBytes of zero or less means DefaultMaxBytes. The
// handler runs on the goroutine libp2p gives it and starts none.
func HandlerWithErrors(store *Store, maxBytes int64, onErr func(from peer.ID, err error)) network.StreamHandler {
	h, _ := newHandler(store, maxBytes, onErr)
	return h
}

// newHandler is HandlerWithErrors, and also returns the handler's table of
// transfers, for tests to look at.
func newHandler(store *Store, maxBytes int64, onErr func(from peer.ID, err error)) (network.StreamHandler, *transfers) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if store == nil {
		store = &Store{}
	}
	srv := &server{
		store:     store,
		maxBytes:  maxBytes,
		transfers: newTransfers(MaxConcurrentTransfers, MaxTransfersPerPeer),
		request:   requestTimeout,
		pacing:    current(),
	}
	return func(s network.Stream) {
		from := s.Conn().RemotePeer()
		if err := srv.serve(s, from); err != nil {
			_ = s.Reset()
			if onErr != nil {
				onErr(from, fmt.Errorf("file request from %s: %w", from, err))
			}
			return
		}
		_ = s.Close()
	}, srv.transfers
}

type server struct {
	store     *Store
	maxBytes  int64
	transfers *transfers
	request   time.Duration
	pacing    pacing
}

func (srv *server) serve(s network.Stream, from peer.ID) error {
	if err := s.SetDeadline(time.Now().Add(srv.request)); err != nil {
		return fmt.Errorf("setting stream deadline: %w", err)
	}
	id, err := ReadRequest(s)
	if err != nil {
		return fmt.Errorf("reading request: %w", err)
	}
	e, ok := srv.store.lookup(id)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownID, id)
	}
	if err := srv.transfers.take(from); err != nil {
		return fmt.Errorf("file %s: %w", id, err)
	}
	defer srv.transfers.give(from)
	f, size, err := e.open()
	if err != nil {
		return fmt.Errorf("file %s: %w", id, err)
	}
	defer func() { _ = f.Close() }()
	if size > srv.maxBytes {
		return fmt.Errorf("file %s: %w: %d bytes, over the limit of %d", id, ErrTooLarge, size, srv.maxBytes)
	}
	if err := srv.send(s, f, size); err != nil {
		return fmt.Errorf("sending file %s: %w", id, err)
	}
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("sending file %s: closing the stream for writing: %w", id, err)
	}
	return nil
}

// send writes the length prefix and exactly size bytes of f, at the pace of
// srv (see write). A file that ends early (it was truncated after the check
// in open) is an error, and the stream is then reset, so the fetcher sees a
// short body rather than a wrong one.
func (srv *server) send(s network.Stream, f io.Reader, size int64) error {
	pc := srv.pacing.start(time.Now())
	buf := make([]byte, chunkSize)
	// The prefix goes out with the first chunk, in one write.
	prefix := binary.AppendUvarint(nil, uint64(size))
	first := copy(buf, prefix)
	var sent int64
	pending := buf[:first]
	for {
		room := buf[len(pending):cap(buf)]
		if left := size - sent; int64(len(room)) > left {
			room = room[:left]
		}
		n, err := io.ReadFull(f, room)
		sent += int64(n)
		pending = buf[:len(pending)+n]
		if err != nil && !(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			return fmt.Errorf("reading: %w", err)
		}
		if n < len(room) {
			return fmt.Errorf("the file ended after %d of %d bytes", sent, size)
		}
		if err := write(s, pending, pc); err != nil {
			return fmt.Errorf("after %d of %d bytes: %w", sent-int64(n), size, err)
		}
		if sent == size {
			return nil
		}
		pending = buf[:0]
	}
}

// write writes all of b, each write under the deadline pc sets. A write cut
// by its deadline that still made progress enough (any, for the idle
// timeout; the window's due, for the least rate) goes on with the rest.
func write(s network.Stream, b []byte, pc *pace) error {
	for len(b) > 0 {
		dl, rated := pc.deadline(time.Now())
		if err := s.SetWriteDeadline(dl); err != nil {
			return fmt.Errorf("setting write deadline: %w", err)
		}
		n, err := s.Write(b)
		b = b[n:]
		met := pc.add(n, time.Now())
		switch {
		case err == nil:
		case !isTimeout(err):
			return err
		case rated && !met:
			return fmt.Errorf("%w: the peer read under the least rate of %s (%w)", ErrTooSlow, pc.rule(), err)
		case !rated && n == 0:
			return fmt.Errorf("the peer read nothing for %v: %w", pc.idle, err)
		}
	}
	return nil
}

// transfers counts the transfers a Handler serves, in all and by peer. It
// is the one owner of the counts. A peer's entry goes when its count drops
// to zero, so the table holds only peers with a transfer under way: never
// more than the total allows, however many identities ask.
type transfers struct {
	mu       sync.Mutex
	total    int
	byPeer   map[peer.ID]int
	maxTotal int
	maxPeer  int
}

func newTransfers(maxTotal, maxPeer int) *transfers {
	return &transfers{byPeer: make(map[peer.ID]int), maxTotal: maxTotal, maxPeer: maxPeer}
}

// take takes a slot for a transfer to p, or returns an ErrBusy error; a slot
// taken is given back with give.
func (t *transfers) take(p peer.ID) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.byPeer[p] >= t.maxPeer:
		return fmt.Errorf("%w: %d transfers to this peer under way, the most one peer gets", ErrBusy, t.byPeer[p])
	case t.total >= t.maxTotal:
		return fmt.Errorf("%w: %d transfers under way, the most served at once", ErrBusy, t.total)
	}
	t.total++
	t.byPeer[p]++
	return nil
}

// give gives back a slot that take gave for p.
func (t *transfers) give(p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total--
	if t.byPeer[p] <= 1 {
		delete(t.byPeer, p)
		return
	}
	t.byPeer[p]--
}

// counts returns the transfers under way and the peers they go to.
func (t *transfers) counts() (total, peers int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total, len(t.byPeer)
}
