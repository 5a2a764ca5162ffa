package gossiproom

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// bucket is a token bucket: it holds up to burst tokens and gains rate
// tokens a second; each message takes one.
type bucket struct {
	tokens float64
	last   time.Time
}

// refill brings the bucket up to now.
func (b *bucket) refill(now time.Time, rate, burst float64) {
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens += elapsed * rate
		if b.tokens > burst {
			b.tokens = burst
		}
	}
	b.last = now
}

// authorLimiter keeps one token bucket per message author. Validators run
// on several pubsub workers at once, hence the lock.
//
// The map is bounded: when it reaches max entries, buckets that have filled
// up again (authors quiet for burst/rate seconds) are forgotten, which loses
// nothing since a new bucket starts full. If every bucket is still busy, a
// new author is refused until some are; that only happens when more than max
// authors publish within a few seconds, which is an attack of made-up
// identities, not a chat.
type authorLimiter struct {
	rate, burst float64
	max         int

	mu        sync.Mutex
	buckets   map[peer.ID]*bucket
	lastPrune time.Time
}

func newAuthorLimiter(rate float64, burst, max int) *authorLimiter {
	return &authorLimiter{
		rate:    rate,
		burst:   float64(burst),
		max:     max,
		buckets: make(map[peer.ID]*bucket),
	}
}

// allow takes a token from author's bucket and reports whether there was one.
func (l *authorLimiter) allow(author peer.ID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[author]
	if !ok {
		if len(l.buckets) >= l.max && !l.pruneLocked(now) {
			return false
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[author] = b
	}
	b.refill(now, l.rate, l.burst)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// pruneLocked forgets the buckets that are full again and reports whether
// there is room for a new one. It scans the map at most once a second, so
// that a crowd of new authors cannot make every message pay for a scan.
func (l *authorLimiter) pruneLocked(now time.Time) bool {
	if now.Sub(l.lastPrune) >= time.Second {
		l.lastPrune = now
		for id, b := range l.buckets {
			if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
				delete(l.buckets, id)
			}
		}
	}
	return len(l.buckets) < l.max
}

// size reports how many buckets are kept, for tests.
func (l *authorLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// pacer spaces our own publications: wait takes a token, sleeping until one
// is there. Callers that wait together are served in the order they
// reserved, because each reservation may drive the bucket below zero and the
// next caller waits for it to come back.
type pacer struct {
	rate, burst float64

	mu sync.Mutex
	b  bucket
}

func newPacer(rate float64, burst int) *pacer {
	return &pacer{rate: rate, burst: float64(burst), b: bucket{tokens: float64(burst), last: time.Now()}}
}

// reserve takes a token and returns how long to wait before using it.
func (p *pacer) reserve(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.b.refill(now, p.rate, p.burst)
	p.b.tokens--
	if p.b.tokens >= 0 {
		return 0
	}
	return time.Duration(-p.b.tokens / p.rate * float64(time.Second))
}

// take takes a token if one is there now, and reports whether it did.
func (p *pacer) take(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.b.refill(now, p.rate, p.burst)
	if p.b.tokens < 1 {
		return false
	}
	p.b.tokens--
	return true
}

// cancel gives back a token reserved by a caller that did not use it.
func (p *pacer) cancel() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.b.tokens++
	if p.b.tokens > p.burst {
		p.b.tokens = p.burst
	}
}

// wait takes a token, sleeping until it is there or ctx is done.
func (p *pacer) wait(ctx context.Context) error {
	d := p.reserve(time.Now())
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		p.cancel()
		return ctx.Err()
	}
}
