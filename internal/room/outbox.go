package room

import (
	"sync"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

// An outbox is the bounded queue of frames waiting for one session's
// writer. It takes and gives frames in batches: a pipe sends hundreds of
// lines at once, and a channel operation (and a wake-up) per line cost more
// than writing the line.
type outbox struct {
	limit int

	mu     sync.Mutex
	frames []*wire.Frame
	// ready holds a signal while frames may be waiting (it may be stale:
	// the writer then finds nothing); room is closed, and replaced, when
	// the writer takes frames, to wake a sender waiting for room.
	ready chan struct{}
	room  chan struct{}
}

func newOutbox(limit int) *outbox {
	return &outbox{limit: limit, ready: make(chan struct{}, 1), room: make(chan struct{})}
}

// push queues as many of frames as there is room for, in order, and
// returns how many.
func (q *outbox) push(frames []*wire.Frame) int {
	q.mu.Lock()
	n := min(len(frames), q.limit-len(q.frames))
	if n > 0 {
		q.frames = append(q.frames, frames[:n]...)
	}
	q.mu.Unlock()
	if n > 0 {
		q.signal()
	}
	return max(n, 0)
}

// put queues frames whatever the limit: a new session's first frames,
// which outboxSize already bounds (see streams.fill).
func (q *outbox) put(frames ...*wire.Frame) {
	q.mu.Lock()
	q.frames = append(q.frames, frames...)
	q.mu.Unlock()
	q.signal()
}

func (q *outbox) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pushWait queues frames, in order, waiting for room while the writer
// takes them, but never longer than wait without progress. It returns how
// many it queued, and why it stopped short: the session ended (done), the
// room is closing (cancel), or the peer is not reading.
func (q *outbox) pushWait(frames []*wire.Frame, cancel, done <-chan struct{}, wait time.Duration) (int, error) {
	queued := 0
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		q.mu.Lock()
		room := q.room
		q.mu.Unlock()
		queued += q.push(frames[queued:])
		if queued == len(frames) {
			return queued, nil
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		select {
		case <-room:
			// The writer took frames: wait afresh for the rest.
			timer.Reset(wait)
		case <-done:
			return queued, errSessionEnded
		case <-cancel:
			return queued, errClosing
		case <-timer.C:
			return queued, &deliveryError{why: event.WhyNotReading, wait: wait}
		}
	}
}

// take moves every queued frame into buf (which it returns) and frees
// their room.
func (q *outbox) take(buf []*wire.Frame) []*wire.Frame {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.frames) == 0 {
		return buf
	}
	buf = append(buf, q.frames...)
	clear(q.frames)
	q.frames = q.frames[:0]
	close(q.room)
	q.room = make(chan struct{})
	return buf
}
