package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// outboxSize is how many lines may wait for one peer's writer. While the
	// writer has a backlog it batches lines into one flush.
	outboxSize = 1024
	// enqueueTimeout is how long a line may wait for room in a slow peer's
	// outbox before the user is told it was not delivered to that peer.
	enqueueTimeout = 10 * time.Second
)

// A session is the chat with one peer. It owns the stream it writes on, a
// reader goroutine and a writer goroutine for that stream, and a reader
// goroutine for each extra stream the peer opened to us (see adopt).
type session struct {
	peer   peer.ID
	stream network.Stream
	format wireFormat
	emit   emitFunc
	// onEnd is called once, from whichever goroutine ended the session.
	onEnd func(s *session, reason string)

	outbox   chan string
	drain    chan struct{} // closed to make the writer send what is queued and stop
	wrote    chan struct{} // closed when the writer has returned
	done     chan struct{} // closed when the session has ended
	finished chan struct{} // closed when wait has returned: the room has been told
	joined   chan struct{} // closed once the room announced the session; reading waits for it
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	drained  atomic.Bool // set once run has discarded what was left in the outbox

	mu     sync.Mutex
	extra  []network.Stream
	ended  bool
	reason string
}

// extraDrainTimeout bounds how long, after the peer closed the chat, the
// session keeps reading its extra streams for lines still on the way.
const extraDrainTimeout = 2 * time.Second

func newSession(s network.Stream, format wireFormat, emit emitFunc, onEnd func(*session, string)) *session {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{
		peer:     s.Conn().RemotePeer(),
		stream:   s,
		format:   format,
		emit:     emit,
		onEnd:    onEnd,
		outbox:   make(chan string, outboxSize),
		drain:    make(chan struct{}),
		wrote:    make(chan struct{}),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
		joined:   make(chan struct{}),
		ctx:      ctx,
		cancel:   cancel,
	}
}

// start starts the session's reader and writer. It runs before the room
// publishes the session, so that adopt never adds to wg while wait waits.
func (s *session) start() {
	s.wg.Add(2)
	go s.readLoop(s.stream, true)
	go s.writeLoop()
}

// announced lets the readers go, once the room has reported the session.
func (s *session) announced() { close(s.joined) }

// wait returns when the session has ended and all its goroutines have
// returned; only then is the room told (onEnd), so that every line the peer
// sent is reported before it is said to have left.
func (s *session) wait() {
	s.wg.Wait()
	s.drained.Store(true)
	s.discardQueued()
	s.mu.Lock()
	reason := s.reason
	s.mu.Unlock()
	s.onEnd(s, reason)
	close(s.finished)
}

// adopt takes a further stream from the same peer. Both sides may dial each
// other at once, and go-libp2p's chat example splits its lines between all
// the streams it has with us, so we keep reading every stream but write on
// one only: no line of theirs is lost and none of ours is duplicated. The
// extra stream is not closed early because that example panics when a
// stream it uses ends. It reports false if the session has already ended.
func (s *session) adopt(st network.Stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.extra = append(s.extra, st)
	s.wg.Add(1)
	go s.readLoop(st, false)
	return true
}

func (s *session) readLoop(st network.Stream, primary bool) {
	defer s.wg.Done()
	// The peer's lines are reported only after the room said it joined.
	<-s.joined
	r := s.format.newReader(st)
	for {
		text, err := r.ReadMessage()
		if err != nil {
			if primary {
				s.end(errors.Is(err, io.EOF), readEndReason(err))
			} else {
				_ = st.Close()
			}
			return
		}
		s.emit(Event{Kind: EventMessage, Peer: s.peer.String(), Text: text})
	}
}

// readEndReason says in plain words why a peer's stream ended.
func readEndReason(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "closed the chat"
	case errors.Is(err, errLineTooLong):
		return err.Error()
	case errors.Is(err, network.ErrReset):
		return "connection reset"
	default:
		return fmt.Sprintf("connection lost: %v", err)
	}
}

func (s *session) writeLoop() {
	defer s.wg.Done()
	defer close(s.wrote)
	w := s.format.newWriter(s.stream)
	for {
		select {
		case line := <-s.outbox:
			if err := s.write(w, line); err != nil {
				s.lost(1, err)
				s.end(false, fmt.Sprintf("send failed: %v", err))
				return
			}
		case <-s.drain:
			s.flushQueue(w)
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// write sends one line, and flushes only when no other line is waiting, so
// a backlog goes out in few large writes and a lone line goes out at once.
func (s *session) write(w messageWriter, line string) error {
	if err := w.WriteMessage(line); err != nil {
		return err
	}
	if len(s.outbox) == 0 {
		return w.Flush()
	}
	return nil
}

// flushQueue sends every queued line, then closes our side of the stream so
// that the peer sees a clean end. shutdown bounds it with a write deadline.
func (s *session) flushQueue(w messageWriter) {
	for len(s.outbox) > 0 {
		if err := w.WriteMessage(<-s.outbox); err != nil {
			s.lost(1, err)
			return
		}
	}
	if err := w.Flush(); err != nil {
		s.emit(Event{Kind: EventError, Peer: s.peer.String(),
			Error: fmt.Sprintf("the last lines to %s may not have been delivered: %v", shortID(s.peer), err)})
		return
	}
	_ = s.stream.CloseWrite()
}

// discardQueued reports every line still queued as not delivered.
func (s *session) discardQueued() {
	n := 0
	for len(s.outbox) > 0 {
		<-s.outbox
		n++
	}
	s.lost(n, errors.New("the session ended"))
}

// lost reports lines that could not be sent to this peer.
func (s *session) lost(n int, err error) {
	if n <= 0 {
		return
	}
	s.emit(Event{Kind: EventError, Peer: s.peer.String(),
		Error: fmt.Sprintf("%d line(s) not delivered to %s: %v", n, shortID(s.peer), err)})
}

// enqueue queues a line for this peer. It waits a bounded time for room in
// the outbox (backpressure for a fast typist or a pipe), and returns an
// error when the line could not be queued.
func (s *session) enqueue(line string, cancel <-chan struct{}) error {
	select {
	case s.outbox <- line:
		s.afterEnqueue()
		return nil
	default:
	}
	t := time.NewTimer(enqueueTimeout)
	defer t.Stop()
	select {
	case <-s.done:
		return errors.New("the session ended")
	case <-cancel:
		return errors.New("shutting down")
	case s.outbox <- line:
		s.afterEnqueue()
		return nil
	case <-t.C:
		return fmt.Errorf("the peer has not read for %v", enqueueTimeout)
	}
}

// afterEnqueue covers a line queued after run discarded the outbox: nobody
// would send or report it, so it is reported here.
func (s *session) afterEnqueue() {
	if s.drained.Load() {
		s.discardQueued()
	}
}

// end stops the session once: its stream is closed and its goroutines told
// to stop. It does not wait; wait and shutdown do. When the peer closed the
// chat cleanly, its extra streams are read a little longer, since lines it
// sent on them may still be on the way.
func (s *session) end(peerClosed bool, reason string) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	s.reason = reason
	extra := s.extra
	s.mu.Unlock()

	s.cancel()
	close(s.done)
	_ = s.stream.Close()
	for _, st := range extra {
		if peerClosed {
			_ = st.CloseWrite()
			_ = st.SetReadDeadline(time.Now().Add(extraDrainTimeout))
		} else {
			_ = st.Close()
		}
	}
}

// shutdown delivers what is queued and ends the session, all bounded by the
// deadline. Our lines are delivered only once the peer has read them: the
// stream's buffers and the connection go away with us. So after sending
// them and closing our side, it waits for the peer to close its side too,
// which it does when it has read to our end. The caller waits for wait.
func (s *session) shutdown(deadline time.Time) {
	_ = s.stream.SetWriteDeadline(deadline)
	close(s.drain)
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-s.wrote:
		select {
		case <-s.done:
		case <-t.C:
		}
	case <-t.C:
	}
	s.end(false, "we left")
}
