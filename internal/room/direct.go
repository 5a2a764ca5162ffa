package room

import (
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
	"github.com/rendezvous-chat/rendezvous-chat/internal/ucdm"
)

const (
	// maxDirectPerPeer and directRate bound the direct messages a peer may
	// send us (a bucket), beyond which they are refused with an error
	// status.
	maxDirectPerPeer = 10
	directRate       = 2.0
	// hostileNoteEvery spaces the errors one peer can cause us to show.
	hostileNoteEvery = time.Minute
)

// directs are universal-connectivity's direct messages
// (/universal-connectivity/dm/1.0.0): how /msg reaches a peer we have no
// framed session with, and how such peers reach us. It owns two per-peer
// tables, both bounded (see peerBuckets): the rate of each peer's direct
// messages, and the rate of the errors a peer may cause us to show.
type directs struct {
	r     *Room
	limit *peerBuckets
	// errorNotes keeps hostile peers from filling the screen with the
	// errors they cause: one a minute per peer.
	errorNotes *peerBuckets
}

func newDirects(r *Room) *directs {
	return &directs{r: r, limit: newPeerBuckets(directRate, maxDirectPerPeer),
		errorNotes: newPeerBuckets(1/hostileNoteEvery.Seconds(), 1)}
}

// peerBuckets is a token bucket per peer, bounded in the peers it
// remembers.
type peerBuckets struct {
	rate, burst float64
	mu          sync.Mutex
	buckets     map[peer.ID]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

// maxPeerBuckets bounds a peerBuckets; past it, full buckets are dropped.
const maxPeerBuckets = 4096

func newPeerBuckets(rate float64, burst int) *peerBuckets {
	return &peerBuckets{rate: rate, burst: float64(burst), buckets: make(map[peer.ID]*tokenBucket)}
}

// allow takes a token from p's bucket, if there is one.
func (b *peerBuckets) allow(p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	t := b.buckets[p]
	if t == nil {
		if len(b.buckets) >= maxPeerBuckets {
			for id, old := range b.buckets {
				if old.tokens+now.Sub(old.last).Seconds()*b.rate >= b.burst {
					delete(b.buckets, id)
				}
			}
			if len(b.buckets) >= maxPeerBuckets {
				return false
			}
		}
		t = &tokenBucket{tokens: b.burst, last: now}
		b.buckets[p] = t
	}
	t.tokens = min(b.burst, t.tokens+now.Sub(t.last).Seconds()*b.rate)
	t.last = now
	if t.tokens < 1 {
		return false
	}
	t.tokens--
	return true
}

// received takes a direct message.
func (d *directs) received(from peer.ID, req ucdm.Request) ucdm.Response {
	r := d.r
	if !r.allowed(from) {
		return ucdm.Refuse(r.cfg.Version, "not accepted from this peer")
	}
	if !d.limit.allow(from) {
		d.noteHostile(event.Event{Kind: event.Error, Code: event.DirectFlood, Peer: from.String(), Limit: maxDirectPerPeer})
		return ucdm.Refuse(r.cfg.Version, "too many direct messages")
	}
	if r.lc.isClosing() {
		return ucdm.Refuse(r.cfg.Version, "leaving")
	}
	nick, name, _ := r.roster.knows(from)
	if name == "" {
		name = event.ShortID(from)
	}
	r.emit(event.Event{Kind: event.Direct, Peer: from.String(), Nick: nick, Name: name, Private: true, Text: req.Content})
	return ucdm.OK(r.cfg.Version)
}

// failed hears of a direct message that broke the format or a limit.
func (d *directs) failed(from peer.ID, err error) {
	d.noteHostile(event.Event{Kind: event.Error, Code: event.DirectMalformed, Peer: from.String(), Cause: node.FirstLine(err)})
}

// noteHostile reports what a peer did wrong, once a minute per peer.
func (d *directs) noteHostile(e event.Event) {
	if p, err := peer.Decode(e.Peer); err == nil && d.errorNotes.allow(p) {
		d.r.emit(e)
	}
}

// send sends text to p as a direct message, in the background.
func (d *directs) send(p peer.ID, text string) {
	r := d.r
	if !r.lc.add() {
		r.emit(event.Event{Kind: event.Error, Code: event.NotSentClosing, Count: 1, Private: true})
		r.ledger.deliveries.refused(1)
		return
	}
	name := r.roster.nameOf(p)
	// Followed, so that the program waits for it as it leaves.
	dl := r.ledger.deliveries
	dl.dms.Add(1)
	r.emit(event.Event{Kind: event.Sent, Private: true, To: p.String(), Text: text, Via: event.ViaDM})
	go func() {
		defer r.lc.done()
		resp, err := ucdm.Send(r.ctx, r.host, p, text, r.cfg.Version)
		dl.dms.Add(-1)
		if err != nil {
			dl.refused(1)
			e := event.Event{Kind: event.Error, Code: event.DirectFailed, Peer: p.String(), Name: name,
				Private: true, Text: text, Status: resp.Status.String(), Why: event.WhyOther, Cause: node.FirstLine(err)}
			switch {
			case notSupported(err):
				e.Why, e.Cause = event.WhyNotSupported, ""
			case errors.Is(err, ucdm.ErrStatus):
				e.Why, e.Cause = event.WhyStatus, resp.StatusText
			}
			r.emit(e)
			return
		}
		r.emit(event.Event{Kind: event.Delivered, Private: true, Peers: []string{p.String()}, Names: []string{name},
			Text: text, Status: resp.Status.String(), Via: event.ViaDM})
	}()
}
