package room

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

const (
	// outboxSize is how many lines may wait for one peer's writer. While the
	// writer has a backlog it batches lines into one flush. A new session
	// takes every line the peer had not acknowledged, every held line and
	// the lines just published on the topic at once, so it holds them all.
	outboxSize = maxUnackedPerPeer + 2*maxHeldLines + maxRecentPublished
	// enqueueTimeout is how long a line may wait for room in a slow peer's
	// outbox before the user is told it was not delivered to that peer.
	enqueueTimeout = 10 * time.Second

	// A peer that silently vanishes (its network cut, no RST) is noticed by
	// libp2p ping: every livenessInterval we ping it, and after
	// livenessFailures pings in a row without a reply within livenessTimeout
	// the session ends. So a vanished peer is announced within
	// livenessInterval + livenessFailures*livenessTimeout = 8 s.
	livenessInterval = 2 * time.Second
	livenessTimeout  = 3 * time.Second
	livenessFailures = 2
	// pingsPerInterval bounds the liveness pings a peer sends per
	// livenessInterval, all sessions together: with more sessions than
	// that (a big room), each is pinged less often, so that a peer's pings
	// cost the same whatever the room's size. 16 sessions pinged every
	// 2 s, each ping on a new stream, were most of a 50-peer room's CPU at
	// rest; the pings now go over one stream per session (see pinger).
	pingsPerInterval = 8

	// maxQueuedAcks bounds the receipts waiting for the writer. A peer that
	// sends without ever reading ours would otherwise make them pile up;
	// beyond the bound the oldest are dropped, and the peer sends those
	// lines again when it reconnects, which we acknowledge then.
	maxQueuedAcks = 4096
	// peerClosedDrain bounds how long, after the peer closed the chat, the
	// writer may take to send the receipts and lines still queued.
	peerClosedDrain = 2 * time.Second
)

// errNoPing is returned by a session's ping function when the peer does not
// speak libp2p ping, so its liveness cannot be checked that way.
var errNoPing = errors.New("the peer does not answer libp2p ping")

// endKind says how a session ended, which decides what the room does next.
type endKind int

const (
	// endClosed: the peer closed the chat cleanly.
	endClosed endKind = iota
	// endBroken: the connection broke or the peer stopped answering; the
	// room tries to reconnect.
	endBroken
	// endRefused: the peer broke the protocol (an oversized line); the
	// stream was reset and the room does not redial it.
	endRefused
	// endLocal: we left.
	endLocal
)

// A session is the chat with one peer. It owns the stream it writes on, a
// reader goroutine and a writer goroutine for that stream, and a reader
// goroutine for each extra stream the peer opened to us (see adopt).
type session struct {
	peer      peer.ID
	peerID    string // peer.String(), computed once: base58 on every line is costly
	stream    network.Stream
	format    wire.Format
	direction string // "inbound" or "outbound": who opened the chat
	emit      event.Emit
	// onFrame hands the room what the peer sent: messages, receipts,
	// nicknames. It runs on the reading goroutine, in the order received.
	onFrame func(s *session, f wire.Frame)
	// names is the peer's nickname and the name the view shows it by; the
	// roster sets it (see names.go).
	names atomic.Pointer[peerNames]
	// ping checks once that the peer is alive (see watchLiveness).
	ping func(ctx context.Context, p peer.ID) error
	// sessions counts the room's sessions, for the liveness interval.
	sessions func() int
	// onWritten is told, on the writer's goroutine, of the lines a flush
	// wrote: for the plain protocol, which has no receipts, that is when
	// they are delivered as far as we can know. Only plain sessions have
	// it: on ours a line is delivered when its receipt comes.
	onWritten func(s *session, lines []*wire.Frame)
	// onLost is told of the lines (their IDs) that did not reach a peer on
	// the plain protocol; only plain sessions have it, too.
	onLost func(s *session, ids []string)
	// unflushed are the lines written since the last flush, which a
	// failure would lose; the writer goroutine owns it.
	unflushed []*wire.Frame
	// onEnd is called once, from whichever goroutine ended the session.
	onEnd func(s *session, kind endKind, code event.Code, detail endDetail)

	outbox    *outbox
	drain     chan struct{} // closed (once, by drainOnce) to make the writer send what is queued and stop
	drainOnce sync.Once
	ackReady  chan struct{} // signals the writer that acks are queued
	wrote     chan struct{} // closed when the writer has returned
	done      chan struct{} // closed when the session has ended
	finished  chan struct{} // closed when wait has returned: the room has been told
	joined    chan struct{} // closed once the room announced the session; reading waits for it
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	drained   atomic.Bool // set once wait has discarded what was left in the outbox

	// switchTo hands the writer the stream to move to (see migrate).
	switchTo chan migration

	mu   sync.Mutex
	acks []string // message IDs to acknowledge, oldest first
	// spareAcks is the writer's last batch of acks, emptied, for the reader
	// to fill next: the two take turns with two slices instead of growing
	// a new one for every batch of lines received.
	spareAcks []string
	extra     []network.Stream
	// successor is the stream the primary reader moves to once the current
	// one ends cleanly: the path the session is migrating to. While we open
	// it ourselves, successorReady is open: the peer may end the old stream
	// before our opening of the new one returns.
	successor      network.Stream
	migrating      bool
	successorReady chan struct{}
	ended          bool
	kind           endKind
	code           event.Code
	detail         endDetail
}

// extraDrainTimeout bounds how long, after the peer closed the chat, the
// session keeps reading its extra streams for lines still on the way.
const extraDrainTimeout = 2 * time.Second

// peerNames is what a peer is called: its own nickname (sanitized, maybe
// empty) and the name the view shows.
type peerNames struct {
	nick, name string
}

func newSession(s network.Stream, format wire.Format, direction string, emit event.Emit,
	ping func(context.Context, peer.ID) error, onFrame func(*session, wire.Frame),
	onEnd func(*session, endKind, event.Code, endDetail)) *session {
	ctx, cancel := context.WithCancel(context.Background())
	ss := &session{
		peer:      s.Conn().RemotePeer(),
		peerID:    s.Conn().RemotePeer().String(),
		stream:    s,
		format:    format,
		direction: direction,
		emit:      emit,
		ping:      ping,
		onFrame:   onFrame,
		onEnd:     onEnd,
		outbox:    newOutbox(outboxSize),
		drain:     make(chan struct{}),
		ackReady:  make(chan struct{}, 1),
		wrote:     make(chan struct{}),
		done:      make(chan struct{}),
		finished:  make(chan struct{}),
		joined:    make(chan struct{}),
		switchTo:  make(chan migration, 1),
		ctx:       ctx,
		cancel:    cancel,
	}
	ss.names.Store(&peerNames{name: event.ShortID(ss.peer)})
	return ss
}

// livenessEvery is how long to wait before the next liveness ping: every
// livenessInterval, or longer when the room has more than pingsPerInterval
// sessions.
func (s *session) livenessEvery() time.Duration {
	n := 1
	if s.sessions != nil {
		n = s.sessions()
	}
	if n <= pingsPerInterval {
		return livenessInterval
	}
	return livenessInterval * time.Duration(n) / pingsPerInterval
}

// nick is the peer's nickname, and name the name the view shows.
func (s *session) nick() string { return s.names.Load().nick }
func (s *session) name() string { return s.names.Load().name }

// framed reports whether the peer speaks our framed protocol, with message
// IDs, receipts and nicknames.
func (s *session) framed() bool { return s.format.Framed() }

// start starts the session's reader, writer and liveness check. It runs
// before the room publishes the session, so that adopt never adds to wg
// while wait waits.
func (s *session) start() {
	s.wg.Add(3)
	go s.readLoop(s.stream, s.format, true)
	go s.writeLoop()
	go s.watchLiveness()
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
	kind, code, detail := s.kind, s.code, s.detail
	s.mu.Unlock()
	s.onEnd(s, kind, code, detail)
	close(s.finished)
}

// adopt takes a further stream from the same peer. Both sides may dial each
// other at once, and go-libp2p's chat example splits its lines between all
// the streams it has with us, so we keep reading every stream but write on
// one only: no line of theirs is lost and none of ours is duplicated. The
// extra stream is not closed early because that example panics when a
// stream it uses ends. It reports false if the session has already ended.
func (s *session) adopt(st network.Stream, format wire.Format) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.extra = append(s.extra, st)
	s.wg.Add(1)
	go s.readLoop(st, format, false)
	return true
}

// readLoop reads one of the peer's streams, in the stream's own format.
func (s *session) readLoop(st network.Stream, format wire.Format, primary bool) {
	defer s.wg.Done()
	// The peer's lines are reported only after the room said it joined.
	<-s.joined
	r := format.NewReader(st)
	for {
		f, err := r.Read()
		if errors.Is(err, wire.ErrTooLong) || errors.Is(err, wire.ErrMalformed) {
			// Stop the peer at once rather than read the rest of the line.
			_ = st.Reset()
			e := event.Event{Kind: event.Error, Code: event.ProtocolViolation, Peer: s.peerID, Name: s.name(),
				Plain: !format.Framed(), Limit: wire.MaxTextBytes}
			if format.Framed() {
				e.Cause = err.Error()
			}
			s.emit(e)
			s.end(endRefused, event.LeftProtocol, endDetail{})
			return
		}
		if err != nil {
			if primary && errors.Is(err, io.EOF) {
				if next := s.awaitSuccessor(); next != nil {
					// The peer finished the old path: everything it sent there has
					// been read, so reading the new one keeps the order.
					_ = st.Close()
					st, r = next, s.format.NewReader(next)
					s.emit(event.Event{Kind: event.Info, Code: event.PathMoved, Peer: s.peerID, Name: s.name(),
						Addr: next.Conn().RemoteMultiaddr().String(), Relayed: next.Conn().Stat().Limited})
					continue
				}
			}
			if primary {
				kind, code, detail := readEnd(err, st)
				if kind == endClosed {
					// Send the receipts and lines still queued: the peer
					// reads until our end before it leaves.
					s.drainWriter(peerClosedDrain)
				}
				s.end(kind, code, detail)
			} else {
				_ = st.Close()
			}
			return
		}
		s.onFrame(s, f)
	}
}

// readEnd says why a peer's stream ended, and how. A reset on a
// connection that is still open comes from the peer itself (or its resource
// limits): it refused the chat, and redialing would only repeat it.
func readEnd(err error, st network.Stream) (endKind, event.Code, endDetail) {
	switch {
	case errors.Is(err, io.EOF):
		return endClosed, event.LeftClosed, endDetail{}
	case errors.Is(err, network.ErrReset) && !st.Conn().IsClosed():
		return endRefused, event.LeftRefused, endDetail{}
	case errors.Is(err, network.ErrReset):
		return endBroken, event.LeftConnReset, endDetail{}
	default:
		return endBroken, event.LeftConnLost, endDetail{cause: err.Error()}
	}
}

// endDetail is what a left event says beside its code: the error of a
// broken connection, or how long the peer did not answer.
type endDetail struct {
	cause string
	wait  time.Duration
}

// watchLiveness pings the peer now and then and ends the session when it
// stops answering: a peer whose network was cut sends no RST, and its
// stream would otherwise look open for many minutes.
func (s *session) watchLiveness() {
	defer s.wg.Done()
	tick := time.NewTimer(s.livenessEvery())
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		tick.Reset(s.livenessEvery())
		err := s.ping(s.ctx, s.peer)
		switch {
		case s.ctx.Err() != nil:
			return
		case errors.Is(err, errNoPing):
			log.Debugw("no liveness check", "peer", s.peer, "err", err)
			return
		case err == nil:
			failures = 0
		default:
			failures++
			log.Debugw("ping failed", "peer", s.peer, "failures", failures, "err", err)
			if failures >= livenessFailures {
				s.end(endBroken, event.LeftNotAnswering, endDetail{wait: time.Duration(failures) * livenessTimeout})
				return
			}
		}
	}
}

func (s *session) writeLoop() {
	defer s.wg.Done()
	defer close(s.wrote)
	w := s.format.NewWriter(s.currentStream())
	var batch []*wire.Frame // what the writer took from the outbox
	for {
		select {
		case m := <-s.switchTo:
			// Lines so far go out on the old path; the rest on the new one.
			if err := s.flush(w); err != nil {
				s.lost(err)
				s.end(endBroken, event.LeftWriteFailed, endDetail{cause: err.Error()})
				return
			}
			s.mu.Lock()
			old := s.stream
			s.stream = m.stream
			s.extra = append(s.extra, old)
			s.mu.Unlock()
			if !m.initiator {
				// Tell the peer we are done with the old path.
				_ = old.CloseWrite()
			}
			w = s.format.NewWriter(m.stream)
		case <-s.outbox.ready:
			batch = s.outbox.take(batch[:0])
			err := s.write(w, batch)
			clear(batch)
			if err != nil {
				s.lost(err)
				s.end(endBroken, event.LeftWriteFailed, endDetail{cause: err.Error()})
				return
			}
		case <-s.ackReady:
			if err := s.writeAcks(w); err != nil {
				s.lost(err)
				s.end(endBroken, event.LeftWriteFailed, endDetail{cause: err.Error()})
				return
			}
		case <-s.drain:
			s.flushQueue(w)
			return
		case <-s.ctx.Done():
			// The session ended (the peer went): what is buffered and
			// not flushed never reached it.
			s.lost(errSessionEnded)
			return
		}
	}
}

// write sends frames taken from the outbox, and flushes only when nothing
// else is waiting, so a backlog goes out in few large writes and a lone line
// goes out at once. A line counts as written only once a flush after it
// succeeded: until then it is in unflushed, and reported lost if writing
// fails.
func (s *session) write(w wire.Writer, frames []*wire.Frame) error {
	// Every line of the batch is unflushed before any is written: when a
	// write fails, the lines after it are lost too, and must be reported.
	s.unflushed = appendLines(s.unflushed, frames)
	for _, f := range frames {
		if err := w.Write(*f); err != nil {
			return err
		}
	}
	if len(s.outbox.ready) == 0 && len(s.ackReady) == 0 {
		return s.flush(w)
	}
	return nil
}

// flush sends what the writer buffered; the lines in it are then written.
func (s *session) flush(w wire.Writer) error {
	if err := w.Flush(); err != nil {
		return err
	}
	if len(s.unflushed) > 0 {
		if s.onWritten != nil {
			s.onWritten(s, s.unflushed)
		}
		clear(s.unflushed)
		s.unflushed = s.unflushed[:0]
	}
	return nil
}

// queueAck queues a receipt for the writer, which sends receipts in
// batches. It never blocks the reader: see maxQueuedAcks.
func (s *session) queueAck(id string) {
	s.mu.Lock()
	if len(s.acks) >= maxQueuedAcks {
		s.acks = s.acks[1:]
	}
	s.acks = append(s.acks, id)
	s.mu.Unlock()
	select {
	case s.ackReady <- struct{}{}:
	default:
	}
}

// writeAcks sends every queued receipt, wire.MaxAckIDs to a frame.
func (s *session) writeAcks(w wire.Writer) error {
	s.mu.Lock()
	batch := s.acks
	s.acks, s.spareAcks = s.spareAcks[:0], nil
	s.mu.Unlock()
	for ids := batch; len(ids) > 0; {
		n := min(len(ids), wire.MaxAckIDs)
		if err := w.Write(wire.Frame{Type: wire.TypeAck, IDs: ids[:n]}); err != nil {
			return err
		}
		ids = ids[n:]
	}
	// The writer has encoded the IDs; the slice goes back, emptied, unless
	// a burst grew it past what the next batches need.
	if cap(batch) <= 4*wire.MaxAckIDs {
		clear(batch)
		s.mu.Lock()
		s.spareAcks = batch[:0]
		s.mu.Unlock()
	}
	if len(s.outbox.ready) == 0 {
		return s.flush(w)
	}
	return nil
}

// drainWriter makes the writer send what is queued, close our side of the
// stream and stop, and waits for it, at most for bound.
func (s *session) drainWriter(bound time.Duration) {
	_ = s.currentStream().SetWriteDeadline(time.Now().Add(bound))
	s.drainOnce.Do(func() { close(s.drain) })
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case <-s.wrote:
	case <-t.C:
	}
}

// flushQueue sends every queued line, then closes our side of the stream so
// that the peer sees a clean end. shutdown bounds it with a write deadline.
func (s *session) flushQueue(w wire.Writer) {
	for frames := s.outbox.take(nil); len(frames) > 0; frames = s.outbox.take(frames[:0]) {
		s.unflushed = appendLines(s.unflushed, frames)
		for _, f := range frames {
			if err := w.Write(*f); err != nil {
				s.lost(err)
				return
			}
		}
	}
	if err := s.writeAcks(w); err != nil {
		s.lost(err)
		return
	}
	if err := s.flush(w); err != nil {
		if !s.framed() {
			s.lost(err)
			return
		}
		s.emit(event.Event{Kind: event.Error, Code: event.FlushFailed, Peer: s.peerID, Name: s.name(), Cause: err.Error()})
		return
	}
	_ = s.currentStream().CloseWrite()
}

// discardQueued reports every line still queued as not delivered.
func (s *session) discardQueued() {
	lines := slices.DeleteFunc(s.outbox.take(nil), func(f *wire.Frame) bool { return f.Type != wire.TypeMsg })
	s.reportLost(lines, errSessionEnded)
}

// appendLines appends the message frames among frames to lines.
func appendLines(lines, frames []*wire.Frame) []*wire.Frame {
	for _, f := range frames {
		if f.Type == wire.TypeMsg {
			lines = append(lines, f)
		}
	}
	return lines
}

// lost reports the lines that writing had not yet flushed when it failed
// (err): none of them is known to have reached the peer. On our own
// protocol the room follows every line until the peer acknowledges it, and
// sends it again or reports it (see receipts), so nothing is said here.
func (s *session) lost(err error) {
	lines := s.unflushed
	s.unflushed = nil
	s.reportLost(lines, err)
}

// reportLost says which lines did not reach this peer on the plain
// protocol, and why.
func (s *session) reportLost(lines []*wire.Frame, err error) {
	if len(lines) == 0 || s.framed() {
		return
	}
	ids := make([]string, len(lines))
	for i, f := range lines {
		ids[i] = f.ID
	}
	if s.onLost != nil {
		s.onLost(s, ids)
	}
	s.emit(event.Event{Kind: event.Error, Code: event.LinesLost, Peer: s.peerID, Name: s.name(),
		Count: len(lines), MsgIDs: ids, Cause: err.Error()})
}

// enqueue queues frames for this peer, in order. It waits a bounded time
// for room in the outbox (backpressure for a fast typist or a pipe), and
// returns how many it queued before an error.
func (s *session) enqueue(cancel <-chan struct{}, frames ...*wire.Frame) (int, error) {
	n, err := s.outbox.pushWait(frames, cancel, s.done, enqueueTimeout)
	if n > 0 {
		s.afterEnqueue()
	}
	return n, err
}

// afterEnqueue covers a line queued after wait discarded the outbox: nobody
// would send or report it, so it is reported here.
func (s *session) afterEnqueue() {
	if s.drained.Load() {
		s.discardQueued()
	}
}

// end stops the session once: its streams are closed and its goroutines
// told to stop. It does not wait; wait and shutdown do. When the peer closed
// the chat cleanly, its extra streams are read a little longer, since lines
// it sent on them may still be on the way.
func (s *session) end(kind endKind, code event.Code, detail endDetail) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	s.kind, s.code, s.detail = kind, code, detail
	extra := s.extra
	s.mu.Unlock()

	s.cancel()
	close(s.done)
	// A broken or refused stream is reset; a clean end is closed, so the
	// peer reads everything we sent before it.
	closeStream := network.Stream.Close
	if kind == endBroken || kind == endRefused {
		closeStream = network.Stream.Reset
	}
	_ = closeStream(s.currentStream())
	for _, st := range extra {
		switch kind {
		case endClosed:
			_ = st.CloseWrite()
			_ = st.SetReadDeadline(time.Now().Add(extraDrainTimeout))
		default:
			_ = closeStream(st)
		}
	}
}

// shutdown delivers what is queued and ends the session, all bounded by the
// deadline. Our lines are delivered only once the peer has read them: the
// stream's buffers and the connection go away with us. So after sending
// them and closing our side, it waits for the peer to close its side too,
// which it does when it has read to our end. The caller waits for wait.
func (s *session) shutdown(deadline time.Time) {
	_ = s.currentStream().SetWriteDeadline(deadline)
	s.drainOnce.Do(func() { close(s.drain) })
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
	s.end(endLocal, event.LeftWeLeft, endDetail{})
}

// A migration moves the session to another stream, on a better connection.
type migration struct {
	stream    network.Stream
	initiator bool
}

// currentStream is the stream the session writes on.
func (s *session) currentStream() network.Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stream
}

// onLimitedConn reports whether the session runs over a relayed (limited)
// connection.
func (s *session) onLimitedConn() bool {
	return s.currentStream().Conn().Stat().Limited
}

// expectMigration announces that we are opening a stream on a direct
// connection to move the session to (migrate with initiator true follows,
// or cancelMigration). It reports false when a move is already under way.
func (s *session) expectMigration() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.migrating {
		return false
	}
	s.migrating = true
	s.successorReady = make(chan struct{})
	return true
}

// cancelMigration gives up a move announced by expectMigration.
func (s *session) cancelMigration() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.successorReady != nil {
		close(s.successorReady)
		s.successorReady = nil
	}
	if s.successor == nil {
		s.migrating = false
	}
}

// migrate moves the session to st, a stream on a direct connection, with no
// line lost or repeated. Both sides write their remaining lines on the old
// stream, then switch to the new one, and read the old one to its end
// before reading the new one. The side that opened st (the initiator)
// closes its writing on the old stream only after reading the peer's end
// of it, so that the peer has registered st before it sees that end. It
// reports false when the session cannot migrate now.
func (s *session) migrate(st network.Stream, initiator bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.successor != nil || (s.migrating && !initiator) {
		return false
	}
	select {
	case s.switchTo <- migration{stream: st, initiator: initiator}:
	default:
		return false // the writer has not taken the last switch yet
	}
	s.successor, s.migrating = st, true
	if s.successorReady != nil {
		close(s.successorReady)
		s.successorReady = nil
	}
	return true
}

// awaitSuccessor returns the stream to read next when a move is under way,
// waiting (bounded) while we are still opening it, or nil.
func (s *session) awaitSuccessor() network.Stream {
	s.mu.Lock()
	ready := s.successorReady
	s.mu.Unlock()
	if ready != nil {
		t := time.NewTimer(dialTimeout)
		select {
		case <-ready:
		case <-t.C:
		case <-s.ctx.Done():
		}
		t.Stop()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.successor
	s.successor, s.migrating = nil, false
	return next
}

// pathName says whether a connection is direct or relayed.
func pathName(c network.Conn) string {
	if c.Stat().Limited {
		return "relayed"
	}
	return "direct"
}
