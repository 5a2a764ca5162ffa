package room

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

// Send sends one line to every peer in the room. While the room is empty it
// holds the line (bounded) for the peers who join. Every line is either
// delivered (acknowledged, on our own protocol) or reported as not
// delivered.
func (r *Room) Send(line string) {
	_ = r.send([]string{line}, "")
}

// SendLines sends lines, in order, as Send does, with one sent event for
// them all: a paste or a pipe delivers many lines at once, and an event
// per line would cost more than sending it. With Config.HoldWait it may
// wait for room among the held lines; it returns an error when even that
// wait ran out, and the caller should stop reading (see errStalled).
func (r *Room) SendLines(lines []string) error {
	return r.send(lines, "")
}

// SendTo sends a private line to the peer p (/msg): on its session when it
// has one, otherwise as a universal-connectivity direct message, which
// reaches a peer known from the topic only, whatever program it runs.
func (r *Room) SendTo(p peer.ID, text string) {
	if !r.allowed(p) {
		r.emit(event.Event{Kind: event.Error, Code: event.PrivatePeerLeft, Peer: p.String()})
		r.ledger.deliveries.refused(1)
		return
	}
	if r.roster.session(p) != nil || r.direct == nil {
		_ = r.send([]string{text}, p)
		return
	}
	if r.priv != nil {
		// In a private room direct messages go to admitted peers only.
		r.emit(event.Event{Kind: event.Error, Code: event.NotAdmitted, Command: "/msg", Peer: p.String(), Name: r.roster.nameOf(p)})
		r.ledger.deliveries.refused(1)
		return
	}
	r.direct.send(p, text)
}

// WaitDelivered returns when every line sent so far is delivered, or known
// not to be, or when ctx ends.
func (r *Room) WaitDelivered(ctx context.Context) {
	waitDelivered(ctx, func() int { n, _ := r.ledger.inFlight(0); return n })
}

// ReportUndelivered says which lines were not delivered, or are not known to
// be, in an error event (undelivered), and returns how many. The program
// calls it as it leaves, after Close.
func (r *Room) ReportUndelivered() int { return r.ledger.reportUndelivered() }

// send sends lines to every peer in the room, or only to the peer to
// (/msg), and follows each until every peer on our protocol acknowledged
// it.
func (r *Room) send(lines []string, to peer.ID) error {
	dl := r.ledger.deliveries
	fit := lines
	if slices.ContainsFunc(lines, tooLong) {
		fit = make([]string, 0, len(lines))
		for _, line := range lines {
			if tooLong(line) {
				r.emit(event.Event{Kind: event.Error, Code: event.LineTooLong, Bytes: int64(len(line)), Limit: wire.MaxTextBytes})
				dl.refused(1)
				continue
			}
			fit = append(fit, line)
		}
	}
	batch := r.ledger.lines(fit, to != "", time.Now())
	if len(batch) == 0 {
		return nil
	}
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	if r.lc.isClosing() {
		r.emit(event.Event{Kind: event.Error, Code: event.NotSentClosing, Count: len(batch), Private: to != ""})
		dl.refused(len(batch))
		return nil
	}
	// Lines go on the topic too when someone can be reached only there;
	// they are published first, so that they carry the topic's message ID
	// on the sessions as well.
	var topicOut topicOutcome
	if to == "" && r.topic != nil && r.topic.audience() {
		topicOut = r.topic.publish(batch)
	}
	if topicOut.published() {
		r.topic.remember(batch)
	}
	topicOnly := to == "" && r.topic != nil && topicOut.tried()
	for {
		var heldKept, heldUnsent int
		sessions := r.roster.recipients(to, func() {
			if to == "" && !topicOnly {
				heldKept, heldUnsent = r.ledger.hold(batch)
			}
		})
		switch {
		case len(sessions) == 0 && to != "":
			r.emit(event.Event{Kind: event.Error, Code: event.PrivatePeerLeft, Peer: to.String()})
			dl.fail(batch[0].msg.ID)
		case len(sessions) == 0 && topicOnly:
			r.topic.reportTopicOnly(batch, topicOut)
		case len(sessions) == 0:
			r.ledger.reportHeld(batch, heldKept, heldUnsent)
			if heldKept == len(batch) {
				return nil
			}
			rest := batch[heldKept:]
			if r.cfg.HoldWait > 0 && r.ledger.waitRoom(r.ctx, r.lc.closing, r.cfg.HoldWait) {
				batch = rest // someone joined, or the held lines had room again
				continue
			}
			r.ledger.refuseHeld(rest, r.cfg.HoldWait)
			if r.cfg.HoldWait > 0 {
				return errStalled
			}
		default:
			r.ledger.deliver(batch, sessions, to, topicOut)
		}
		return nil
	}
}

// tooLong reports whether a line is longer than a message may be.
func tooLong(line string) bool { return len(line) > wire.MaxTextBytes }

// reportHeld says which lines are held until someone joins.
func (l *ledger) reportHeld(batch []*outgoing, kept, unsent int) {
	if kept > 0 {
		l.r.emit(event.Event{Kind: event.Info, Code: event.Held, MsgIDs: msgIDs(batch[:kept]), Count: unsent})
	}
}

// refuseHeld reports lines that could not be held: the held lines are at
// their bound, and nobody joined (within wait, when the sender waited).
func (l *ledger) refuseHeld(lines []*outgoing, wait time.Duration) {
	for _, o := range lines {
		l.deliveries.fail(o.msg.ID)
	}
	e := event.Event{Kind: event.Error, Code: event.HeldFull, MsgIDs: msgIDs(lines), Limit: maxHeldLines}
	if wait > 0 {
		e.Code, e.Count, e.WaitMS = event.Stalled, len(lines), event.Millis(wait)
	}
	l.r.emit(e)
}

// deliver queues lines on sessions, after one sent event for them all.
func (l *ledger) deliver(batch []*outgoing, sessions []*session, to peer.ID, topicOut topicOutcome) {
	r := l.r
	// Peers on the plain protocol first: a line's noReceipt must be
	// complete before expect publishes it to the readers that take
	// receipts.
	slices.SortStableFunc(sessions, func(a, b *session) int { return boolCompare(a.framed(), b.framed()) })
	// The sent event goes out before the lines, so that it comes before
	// their delivered events; a peer a line then cannot reach gets an
	// error event after it.
	sent := event.Event{Kind: event.Sent, MsgIDs: msgIDs(batch), Private: to != ""}
	if len(batch) == 1 {
		sent.Text = batch[0].msg.Text
	}
	if topicOut.published() {
		sent.Topic = r.topic.cfg.Topic
	}
	if to != "" {
		sent.To = to.String()
	}
	for _, s := range sessions {
		sent.Peers = append(sent.Peers, s.peerID)
	}
	r.emit(sent)
	r.emitAll(topicOut.failures)
	for _, f := range topicOut.failures {
		l.deliveries.fail(f.MsgID)
	}
	if len(topicOut.overRate) > 0 {
		r.topic.tellOverRate(topicOut.overRate, sessions)
	}
	l.queue(batch, sessions)
}

// queue queues lines on sessions, in chunks that fit every peer's window of
// unacknowledged lines, and reports the lines some peer could not get. Each
// chunk is recorded as expected from every peer on our protocol before it
// is queued on any session, so that no receipt comes before the line is
// followed for every peer.
func (l *ledger) queue(batch []*outgoing, sessions []*session) {
	r := l.r
	var failures []event.Event
	// failFor reports that lines did not reach s.
	failFor := func(lines []*outgoing, s *session, err error) {
		for _, o := range lines {
			failures = append(failures, notDelivered(o, s, err))
			l.deliveries.fail(o.msg.ID)
		}
	}
	active := slices.Clone(sessions)
	frames := make([]*wire.Frame, 0, len(batch))
	for rest := batch; len(rest) > 0 && len(active) > 0; {
		n := len(rest)
		active = slices.DeleteFunc(active, func(s *session) bool {
			if !s.framed() {
				return false
			}
			room, err := l.receipts.waitWindow(s.peer, r.lc.closing, s.done)
			if err != nil {
				failFor(rest, s, err)
				return true
			}
			n = min(n, room)
			return false
		})
		chunk := rest[:n]
		rest = rest[n:]
		var to []peer.ID
		var toIDs, plain []string
		for _, s := range active {
			if s.framed() {
				to, toIDs = append(to, s.peer), append(toIDs, s.peerID)
			} else {
				plain = append(plain, s.peerID)
			}
		}
		// A line's noReceipt must be complete before expectAll publishes
		// it to the readers that take receipts.
		if len(plain) > 0 {
			for _, o := range chunk {
				o.noReceipt = plain
			}
			l.deliveries.plainQueued(len(plain) * len(chunk))
		}
		l.receipts.expectAll(chunk, to, toIDs)
		l.reportDropped()
		frames = frames[:0]
		for _, o := range chunk {
			frames = append(frames, o.frame())
		}
		active = slices.DeleteFunc(active, func(s *session) bool {
			k, err := s.enqueue(r.lc.closing, frames...)
			if err == nil {
				return false
			}
			for _, o := range chunk[k:] {
				l.unassign(o, s)
				failures = append(failures, notDelivered(o, s, err))
			}
			// The session is gone or stuck: the rest of the lines fail
			// for it too, without waiting for it again.
			failFor(rest, s, err)
			return true
		})
	}
	r.emitAll(failures)
}

// written hears from a session's writer that lines reached a peer on the
// plain protocol (as far as anyone can know: the flush succeeded). Only
// plain sessions call it (see streams.attach).
func (l *ledger) written(_ *session, lines []*wire.Frame) {
	l.deliveries.plainDone(len(lines))
}

// lost hears from a session that lines did not reach a peer on the plain
// protocol. Only plain sessions call it, as written.
func (l *ledger) lost(_ *session, ids []string) {
	l.deliveries.plainDone(len(ids))
	for _, id := range ids {
		l.deliveries.fail(id)
	}
}

// msgIDs lists the IDs of lines.
func msgIDs(lines []*outgoing) []string {
	ids := make([]string, len(lines))
	for i, o := range lines {
		ids[i] = o.msg.ID
	}
	return ids
}

// boolCompare orders false before true.
func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	default:
		return 1
	}
}

// frame is the message frame of an outgoing line.
func (o *outgoing) frame() *wire.Frame { return &o.msg }

// notDelivered is the error event for a line that did not reach s.
func notDelivered(o *outgoing, s *session, err error) event.Event {
	e := event.Event{Kind: event.Error, Code: event.NotDelivered, Peer: s.peerID, Name: s.name(),
		MsgID: o.msg.ID, Text: o.msg.Text, Why: event.WhyOther, Cause: err.Error()}
	var de *deliveryError
	if errors.As(err, &de) {
		e.Why, e.Cause, e.WaitMS, e.Limit = de.why, "", event.Millis(de.wait), int64(de.limit)
	}
	return e
}

// A deliveryError says why a line could not be queued for a peer, in the
// fields of a not_delivered event.
type deliveryError struct {
	why   string // event.Why…
	wait  time.Duration
	limit int
}

func (e *deliveryError) Error() string { return e.why }

var (
	errSessionEnded = &deliveryError{why: event.WhySessionEnded}
	errClosing      = &deliveryError{why: event.WhyClosing}
)

// emitDelivered reports lines that every peer has acknowledged. A run of
// lines acknowledged by the same peers is one event: a pasted paragraph is
// one "delivered" line, not one per line.
func (l *ledger) emitDelivered(done []*outgoing) {
	r := l.r
	for i := 0; i < len(done); {
		first := done[i]
		j := i + 1
		for j < len(done) && done[j].msg.Private == first.msg.Private &&
			sameStrings(done[j].toIDs, first.toIDs) && sameStrings(done[j].noReceipt, first.noReceipt) {
			j++
		}
		// Every peer it went to acknowledged it (a line that failed for
		// some peer is not reported here).
		e := event.Event{Kind: event.Delivered, Private: first.msg.Private, Peers: first.toIDs,
			Names: r.roster.nameList(first.to), NoReceipt: first.noReceipt, MsgIDs: make([]string, 0, j-i)}
		for _, o := range done[i:j] {
			e.MsgIDs = append(e.MsgIDs, o.msg.ID)
		}
		if j-i == 1 {
			e.Text = first.msg.Text
		}
		r.emit(e)
		i = j
	}
}

// sameStrings reports whether a and b hold the same strings: at once when
// they are the same slice, as for the lines of one batch.
func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	return slices.Equal(a, b)
}

// expireLoop reports, now and then, the lines that some peer has not
// acknowledged within resendWindow, and stops waiting for them.
func (l *ledger) expireLoop() {
	r := l.r
	tick := time.NewTicker(resendWindow / 60)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-tick.C:
		}
		cutoff := time.Now().Add(-resendWindow)
		if lost := l.expireHeld(cutoff); len(lost) > 0 {
			for _, o := range lost {
				l.deliveries.fail(o.msg.ID)
			}
			r.emit(event.Event{Kind: event.Error, Code: event.HeldUndelivered, Count: len(lost), MsgIDs: msgIDs(lost)})
		}
		for _, e := range l.receipts.expire(cutoff) {
			l.reportNoReceipt(e, resendWindow)
		}
		l.reportDropped()
		r.seen.prune(cutoff)
	}
}

// reportNoReceipt says that the line e.o is not delivered: e.peers did not
// acknowledge it within wait, and we stopped waiting for them.
func (l *ledger) reportNoReceipt(e expiry, wait time.Duration) {
	l.r.emit(event.Event{Kind: event.Error, Code: event.NotDelivered, Why: event.WhyNoReceipt,
		MsgID: e.o.msg.ID, Text: e.o.msg.Text, Peers: peerStrings(e.peers), Names: l.r.roster.nameList(e.peers),
		WaitMS: event.Millis(wait)})
}

// reportDropped says which lines the receipts gave up when they dropped a
// peer's queue for another's (see maxUnackedPeers): not acknowledged in
// the time they waited. It runs after every call that may create a queue
// (queue, streams.attach), and in expireLoop, so that they are said soon
// and not kept.
func (l *ledger) reportDropped() {
	now := time.Now()
	for _, e := range l.receipts.takeDropped() {
		l.reportNoReceipt(e, now.Sub(e.o.sent))
	}
}

// reportUnacknowledged tells, as we leave, which lines some peer has not
// acknowledged: they may or may not have arrived.
func (l *ledger) reportUnacknowledged() {
	r := l.r
	counts := l.receipts.unackedCounts()
	peers := make([]peer.ID, 0, len(counts))
	for p := range counts {
		peers = append(peers, p)
	}
	slices.Sort(peers)
	for _, p := range peers {
		r.emit(event.Event{Kind: event.Error, Code: event.UnackedAtExit, Peer: p.String(),
			Name: r.roster.nameOf(p), Count: counts[p]})
	}
}
