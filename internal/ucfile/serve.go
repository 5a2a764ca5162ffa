package ucfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
// (a file over maxBytes, or an ID over MaxIDBytes), ErrMalformed, ErrBusy, or
// a transfer that broke or stalled.
//
// The handler reads one request within RequestTimeout. It answers with the
// file's length and bytes, each write within IdleTimeout, then ends the
// stream. A request it cannot serve gets no answer: the stream is reset, as
// the js-peer does for an unknown ID. maxBytes of zero or less means
// DefaultMaxBytes. At most MaxConcurrentTransfers requests are served at a
// time. The handler runs on the goroutine libp2p gives it and starts none.
func HandlerWithErrors(store *Store, maxBytes int64, onErr func(from peer.ID, err error)) network.StreamHandler {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if store == nil {
		store = &Store{}
	}
	srv := &server{
		store:    store,
		maxBytes: maxBytes,
		slots:    make(chan struct{}, MaxConcurrentTransfers),
		request:  requestTimeout,
		idle:     idleTimeout,
	}
	return func(s network.Stream) {
		from := s.Conn().RemotePeer()
		if err := srv.serve(s); err != nil {
			_ = s.Reset()
			if onErr != nil {
				onErr(from, fmt.Errorf("file request from %s: %w", from, err))
			}
			return
		}
		_ = s.Close()
	}
}

type server struct {
	store    *Store
	maxBytes int64
	// slots holds a token for each transfer under way.
	slots   chan struct{}
	request time.Duration
	idle    time.Duration
}

func (srv *server) serve(s network.Stream) error {
	select {
	case srv.slots <- struct{}{}:
		defer func() { <-srv.slots }()
	default:
		return ErrBusy
	}
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

// send writes the length prefix and exactly size bytes of f, each write
// under a fresh idle deadline. A file that ends early (it was truncated
// after the check in open) is an error, and the stream is then reset, so
// the fetcher sees a short body rather than a wrong one.
func (srv *server) send(s network.Stream, f io.Reader, size int64) error {
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
		if err := s.SetWriteDeadline(time.Now().Add(srv.idle)); err != nil {
			return fmt.Errorf("setting write deadline: %w", err)
		}
		if _, err := s.Write(pending); err != nil {
			return fmt.Errorf("after %d of %d bytes: %w", sent-int64(n), size, err)
		}
		if sent == size {
			return nil
		}
		pending = buf[:0]
	}
}
