package gossiproom

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// presenceVersion is the version of the announcement format we write.
const presenceVersion = 1

// After a new neighbour or a newcomer, we announce ourselves again after
// neighbourAnnounceDelay plus a random part of extraAnnounceSpread, and
// never sooner than extraAnnounceSpacing after the last announcement (see
// tableLoop).
const (
	neighbourAnnounceDelay = 100 * time.Millisecond
	extraAnnounceSpread    = 900 * time.Millisecond
	// firstAnnounceDelay and firstAnnounceSpread time the announcement
	// after our first neighbour when we sync: the room's first news of us.
	firstAnnounceDelay  = 50 * time.Millisecond
	firstAnnounceSpread = 200 * time.Millisecond
	// introRetry spaces the tries of that announcement while the first
	// neighbour's presence subscription has not arrived, at most
	// maxIntroRetries times.
	introRetry           = 100 * time.Millisecond
	maxIntroRetries      = 20
	extraAnnounceSpacing = 200 * time.Millisecond
	// settledAnnounceDelay is when we announce ourselves once more after
	// joining, when GossipSub has grafted its first mesh (its heartbeat
	// runs 100 ms after start, then every second).
	settledAnnounceDelay = 1200 * time.Millisecond
)

// The kinds of announcement.
const (
	presenceHere = "here"
	presenceBye  = "bye"
)

// announcement is a presence message as it travels: a JSON object, for
// example
//
//	{"v":1,"t":"here","nick":"alice","caps":["/rendezvous-chat/1.0.0"],"every_ms":30000,"sync":true}
//	{"v":1,"t":"bye"}
//
// Unknown fields are ignored, so later versions may add some.
type announcement struct {
	V    int      `json:"v"`
	T    string   `json:"t"`
	Nick string   `json:"nick,omitempty"`
	Caps []string `json:"caps,omitempty"`
	// EveryMS is the sender's presence interval in milliseconds; receivers
	// time the sender out after three of them.
	EveryMS int64 `json:"every_ms,omitempty"`
	// Sync says that the sender asks its neighbours for the room's
	// announcements when it joins (SyncProtocol), so members need not
	// announce themselves again for it.
	Sync bool `json:"sync,omitempty"`
}

var errBadPresence = errors.New("malformed presence announcement")

// decodePresence parses and checks an announcement: valid UTF-8 (JSON
// decoding would silently replace bad bytes), a JSON object with v >= 1, t
// "here" or "bye", a nick and capabilities within the bounds we apply to
// our own, and a non-negative interval.
func decodePresence(data []byte) (*announcement, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not UTF-8", errBadPresence)
	}
	var a announcement
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadPresence, err)
	}
	if a.V < 1 {
		return nil, fmt.Errorf("%w: version %d", errBadPresence, a.V)
	}
	if a.T != presenceHere && a.T != presenceBye {
		return nil, fmt.Errorf("%w: type %q", errBadPresence, a.T)
	}
	if err := checkPresenceFields(a.Nick, a.Caps); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadPresence, err)
	}
	if a.EveryMS < 0 {
		return nil, fmt.Errorf("%w: interval %d ms", errBadPresence, a.EveryMS)
	}
	return &a, nil
}

// encodePresence writes an announcement.
func encodePresence(a announcement) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(a); err != nil {
		return nil, fmt.Errorf("encoding presence: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// PresenceKind says what a PresenceEvent is about.
type PresenceKind int

const (
	// Joined: a peer we did not know is in the room.
	Joined PresenceKind = iota + 1
	// Updated: a known peer announced a new nick or capabilities, or
	// announced itself for the first time after we had seen it only on the
	// chat topic.
	Updated
	// Left: a peer said bye, or has not been seen for too long.
	Left
)

func (k PresenceKind) String() string {
	switch k {
	case Joined:
		return "joined"
	case Updated:
		return "updated"
	case Left:
		return "left"
	}
	return fmt.Sprintf("PresenceKind(%d)", int(k))
}

// Via says what showed a peer to be present.
type Via string

const (
	// ViaPresence: its announcement on the presence topic.
	ViaPresence Via = "presence"
	// ViaChat: a chat line it wrote.
	ViaChat Via = "chat"
	// ViaTopic: its subscription to the chat topic, seen on a direct
	// connection to it.
	ViaTopic Via = "topic"
	// ViaDiscovery: its record on universal-connectivity's browser
	// peer-discovery topic.
	ViaDiscovery Via = "discovery"
)

// Leave reasons.
const (
	// ReasonBye: the peer announced that it leaves.
	ReasonBye = "bye"
	// ReasonTimeout: a peer that announces itself missed three intervals.
	ReasonTimeout = "timeout"
	// ReasonSilent: a peer that does not announce itself gave no sign for
	// SilentTTL.
	ReasonSilent = "silent"
)

// PresenceEvent is a change in who is in the room.
type PresenceEvent struct {
	Kind PresenceKind
	Peer peer.ID
	// Nick and Capabilities are as the peer announced them: bounded and
	// UTF-8, not sanitized. They are empty for a peer that does not
	// announce itself.
	Nick         string
	Capabilities []string
	// Announces says whether the peer speaks the presence topic.
	Announces bool
	// Via is what showed the peer (Joined, Updated).
	Via Via
	// Reason says why a peer left (Left): ReasonBye, ReasonTimeout or
	// ReasonSilent.
	Reason string
}

// PresentPeer is one peer in the presence table.
type PresentPeer struct {
	Peer         peer.ID
	Nick         string
	Capabilities []string
	Announces    bool
	// Via is what showed the peer last; LastSeen when.
	Via      Via
	LastSeen time.Time
	// Neighbour says that we are connected to it and it subscribes to the
	// chat topic; a neighbour never times out.
	Neighbour bool
}

// Counts summarizes the presence table.
type Counts struct {
	// Total peers present (not counting us); Announcing of them speak the
	// presence topic; Silent do not (universal-connectivity peers), and
	// are known only from the chat topic or browser discovery.
	Total, Announcing, Silent int
}

// observation is a sign about a peer, for tableLoop.
type observation struct {
	kind obsKind
	peer peer.ID
	at   time.Time
	ann  *announcement // obsPresence
	seq  uint64        // obsPresence: the message's pubsub sequence number
	raw  []byte        // obsPresence: the signed message, for the sync (nil if we do not sync)
	// synced says that the announcement came from a neighbour's sync, not
	// the topic: it is no news of a newcomer.
	synced bool
}

type obsKind int

const (
	obsPresence obsKind = iota
	obsChat
	obsTopicJoin
	obsTopicLeave
	obsDiscovery
)

func (k obsKind) via() Via {
	switch k {
	case obsChat:
		return ViaChat
	case obsDiscovery:
		return ViaDiscovery
	case obsPresence:
		return ViaPresence
	}
	return ViaTopic
}

// entry is a row of the table.
type entry struct {
	PresentPeer
	ttl time.Duration // since LastSeen, when not a neighbour
	seq uint64        // last announcement's sequence number
	raw []byte        // last "here" as signed, for the sync (see SyncProtocol)
}

// table is the presence table. tableLoop is its only writer; the lock lets
// Peers and Counts read it.
type table struct {
	self     peer.ID
	interval time.Duration
	silent   time.Duration
	max      int

	mu      sync.Mutex
	entries map[peer.ID]*entry
	// gone remembers, for three intervals, peers that said bye and the
	// sequence number of their bye, so that a line or an older "here" still
	// on its way does not bring them back.
	gone map[peer.ID]tombstone
}

type tombstone struct {
	seq   uint64
	until time.Time
}

func newTable(self peer.ID, o Options) *table {
	return &table{
		self:     self,
		interval: o.PresenceInterval,
		silent:   o.SilentTTL,
		max:      o.MaxPresencePeers,
		entries:  make(map[peer.ID]*entry),
		gone:     make(map[peer.ID]tombstone),
	}
}

// announcedTTL is how long an announcing peer stays after its last sign:
// three of its intervals, taken between ours and ten of ours, so that a
// peer that announces more often than we do is held to our pace, and a
// peer that claims a very long interval cannot linger.
func (t *table) announcedTTL(everyMS int64) time.Duration {
	every := time.Duration(everyMS) * time.Millisecond
	every = min(max(every, t.interval), 10*t.interval)
	return 3 * every
}

// apply records o and returns the event it causes, if any. The second
// result is false when the table was full and the peer was left out.
func (t *table) apply(o observation) (ev *PresenceEvent, fit bool) {
	if o.peer == t.self || o.peer == "" {
		return nil, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[o.peer]
	if g, ok := t.gone[o.peer]; ok {
		if o.at.After(g.until) {
			delete(t.gone, o.peer)
		} else if o.kind != obsPresence || o.seq <= g.seq || o.ann.T == presenceBye {
			return nil, true
		} else {
			delete(t.gone, o.peer) // a newer "here": it came back
		}
	}

	switch o.kind {
	case obsPresence:
		if e != nil && e.Announces && o.seq <= e.seq {
			return nil, true // older than what we have: reordered on the way
		}
		if o.ann.T == presenceBye {
			if len(t.gone) < t.max {
				t.gone[o.peer] = tombstone{seq: o.seq, until: o.at.Add(3 * t.interval)}
			}
			if e == nil {
				return nil, true
			}
			delete(t.entries, o.peer)
			return &PresenceEvent{Kind: Left, Peer: o.peer, Nick: e.Nick, Capabilities: e.Capabilities,
				Announces: e.Announces, Reason: ReasonBye}, true
		}
		kind := Updated
		if e == nil {
			if len(t.entries) >= t.max {
				return nil, false
			}
			e = &entry{}
			e.Peer = o.peer
			t.entries[o.peer] = e
			kind = Joined
		} else if e.Announces && e.Nick == o.ann.Nick && slices.Equal(e.Capabilities, o.ann.Caps) {
			kind = 0 // nothing new to tell
		}
		e.Announces = true
		e.Nick = o.ann.Nick
		e.Capabilities = slices.Clone(o.ann.Caps)
		e.Via = ViaPresence
		e.LastSeen = o.at
		e.ttl = t.announcedTTL(o.ann.EveryMS)
		e.seq = o.seq
		e.raw = o.raw
		if kind == 0 {
			return nil, true
		}
		return &PresenceEvent{Kind: kind, Peer: o.peer, Nick: e.Nick, Capabilities: slices.Clone(e.Capabilities),
			Announces: true, Via: ViaPresence}, true

	case obsTopicLeave:
		if e != nil {
			e.Neighbour = false
			e.LastSeen = o.at // the clock starts now
		}
		return nil, true

	default: // obsChat, obsTopicJoin, obsDiscovery
		if e != nil {
			e.LastSeen = o.at
			if o.kind == obsTopicJoin {
				e.Neighbour = true
			}
			if !e.Announces {
				e.Via = o.kind.via()
			}
			return nil, true
		}
		if len(t.entries) >= t.max {
			return nil, false
		}
		e = &entry{ttl: t.silent}
		e.Peer = o.peer
		e.Via = o.kind.via()
		e.LastSeen = o.at
		e.Neighbour = o.kind == obsTopicJoin
		t.entries[o.peer] = e
		return &PresenceEvent{Kind: Joined, Peer: o.peer, Via: e.Via}, true
	}
}

// expire removes the peers whose time is up and returns their Left events.
func (t *table) expire(now time.Time) []PresenceEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	var evs []PresenceEvent
	for id, e := range t.entries {
		if e.Neighbour || now.Sub(e.LastSeen) <= e.ttl {
			continue
		}
		delete(t.entries, id)
		reason := ReasonSilent
		if e.Announces {
			reason = ReasonTimeout
		}
		evs = append(evs, PresenceEvent{Kind: Left, Peer: id, Nick: e.Nick, Capabilities: e.Capabilities,
			Announces: e.Announces, Reason: reason})
	}
	for id, g := range t.gone {
		if now.After(g.until) {
			delete(t.gone, id)
		}
	}
	return evs
}

func (t *table) peers() []PresentPeer {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]PresentPeer, 0, len(t.entries))
	for _, e := range t.entries {
		p := e.PresentPeer
		p.Capabilities = slices.Clone(p.Capabilities)
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b PresentPeer) int {
		switch {
		case a.Peer < b.Peer:
			return -1
		case a.Peer > b.Peer:
			return 1
		}
		return 0
	})
	return out
}

// lookup returns p's entry, if the table holds one.
func (t *table) lookup(p peer.ID) (PresentPeer, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[p]
	if e == nil {
		return PresentPeer{}, false
	}
	pp := e.PresentPeer
	pp.Capabilities = slices.Clone(pp.Capabilities)
	return pp, true
}

// wouldTake reports whether an announcement of p with sequence number seq
// would be news to the table: p is not in it, or only by an older
// announcement, and has not said bye since.
func (t *table) wouldTake(p peer.ID, seq uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g, ok := t.gone[p]; ok && seq <= g.seq {
		return false
	}
	e := t.entries[p]
	return e == nil || !e.Announces || seq > e.seq
}

// announcements returns the signed announcements the table holds, at most
// max, leaving out those of except (who asks).
func (t *table) announcements(max int, except peer.ID) [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	var list [][]byte
	for p, e := range t.entries {
		if len(list) >= max {
			break
		}
		if e.raw != nil && p != except {
			list = append(list, e.raw)
		}
	}
	return list
}

func (t *table) counts() Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	var c Counts
	for _, e := range t.entries {
		c.Total++
		if e.Announces {
			c.Announcing++
		} else {
			c.Silent++
		}
	}
	return c
}

// presence is the Room's presence side: the presence topic, our own
// announcements and their pacing, and the table of the peers present, kept
// by two goroutines (readLoop and tableLoop). It is a type of its own so
// that the Room's chat side sees only a small surface: observations go in
// (observe, observeNow), events come out (events), and the Room starts and
// stops it. It runs on a context derived from the Room's, so that it can
// cancel and wait for its own goroutines; they also end when the Room's
// context does.
type presence struct {
	self   peer.ID
	name   string // the presence topic's name; "" with DisablePresence
	opts   Options
	stats  *counters
	tracer *tracer        // tells when our "bye" has been written out
	limit  *authorLimiter // per author; nil with DisablePresence

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // readLoop, tableLoop

	topic *pubsub.Topic        // nil with DisablePresence
	sub   *pubsub.Subscription // nil with DisablePresence

	table  *table
	obs    chan observation // to tableLoop
	out    chan PresenceEvent
	leave  chan chan byeSent
	renick chan struct{} // a new nick to announce; capacity 1

	nickMu sync.Mutex
	nick   string

	// host opens and answers syncs (see SyncProtocol); ownAnnouncement is
	// our latest "here" as the router signed it, which our answers start
	// with; serving counts the answers being written (maxSyncServing).
	host            host.Host
	ownAnnouncement atomic.Pointer[[]byte]
	serving         chan struct{}
}

// newPresence prepares the presence side of a room; name is the presence
// topic's name, or "" when presence is disabled, in which case the table
// still fills from the chat topic's signs. The counters and the tracer are
// the Room's, shared because the router reports on all topics through one
// tracer and Stats reports on all of them together. Nothing runs before
// join and start.
func newPresence(ctx context.Context, h host.Host, name string, opts Options, stats *counters, tr *tracer) *presence {
	ctx, cancel := context.WithCancel(ctx)
	p := &presence{
		host:    h,
		serving: make(chan struct{}, maxSyncServing),
		self:    h.ID(),
		name:    name,
		opts:    opts,
		stats:   stats,
		tracer:  tr,
		ctx:     ctx,
		cancel:  cancel,
		table:   newTable(h.ID(), opts),
		obs:     make(chan observation, 1024),
		out:     make(chan PresenceEvent, opts.QueueSize),
		leave:   make(chan chan byeSent),
		renick:  make(chan struct{}, 1),
		nick:    opts.Nick,
	}
	if name != "" {
		// About three announcements per interval (one periodic, two
		// extra: see tableLoop), and a burst of five: "here" at start, the
		// extra ones after new neighbours and newcomers, after a nick
		// change, and "bye".
		p.limit = newAuthorLimiter(3/opts.PresenceInterval.Seconds(), 5, 2*opts.MaxPresencePeers)
	}
	return p
}

// join registers the presence topic's validator on the router, joins the
// topic and subscribes to it; with presence disabled it does nothing. The
// Room calls it while it sets up the router, before start.
func (p *presence) join(ps *pubsub.PubSub) error {
	if p.name == "" {
		return nil
	}
	inline := pubsub.WithValidatorInline(true)
	if err := ps.RegisterTopicValidator(p.name, pubsub.ValidatorEx(p.validate), inline); err != nil {
		return fmt.Errorf("presence topic validator: %w", err)
	}
	var err error
	if p.topic, err = ps.Join(p.name); err != nil {
		return fmt.Errorf("joining presence topic: %w", err)
	}
	if p.sub, err = p.topic.Subscribe(pubsub.WithBufferSize(p.opts.QueueSize)); err != nil {
		return fmt.Errorf("subscribing to presence topic: %w", err)
	}
	return nil
}

// start starts the table's loop and, when we joined the presence topic,
// the reader of announcements. The table's loop runs without the topic
// too, because the chat topic's signs still fill the table.
func (p *presence) start() {
	p.wg.Add(1)
	go p.tableLoop()
	if p.sub != nil {
		p.wg.Add(1)
		go p.readLoop()
	}
}

// leaveTopic cancels the subscription and closes the topic. The Room calls
// it while the router still runs, so that our presence neighbours learn at
// once that we left; the subscription must go first, since the router
// refuses to close a topic that still has one.
func (p *presence) leaveTopic() {
	if p.sub != nil {
		p.sub.Cancel()
	}
	if p.topic != nil {
		_ = p.topic.Close() // fails only if the router already stopped
	}
}

// close cancels the presence context, waits for the goroutines and closes
// the events channel, which only tableLoop sends on and so may be closed
// only after it returned. The Room calls it once, in stop, after it has
// cancelled its own context.
func (p *presence) close() {
	p.cancel()
	p.wg.Wait()
	close(p.out)
}

// events returns the channel behind Room.Presence.
func (p *presence) events() <-chan PresenceEvent { return p.out }

// peers returns the presence table, sorted by ID.
func (p *presence) peers() []PresentPeer { return p.table.peers() }

// counts summarizes the presence table.
func (p *presence) counts() Counts { return p.table.counts() }

// Peers returns the presence table: every peer known to be in the room,
// sorted by ID.
func (r *Room) Peers() []PresentPeer { return r.pres.peers() }

// Counts summarizes the presence table.
func (r *Room) Counts() Counts { return r.pres.counts() }

// Present returns p's entry in the presence table, and whether the table
// holds p: whether p is known to be in the room (it announced itself, or
// its lines were seen, and the table had room for it).
func (r *Room) Present(p peer.ID) (PresentPeer, bool) { return r.pres.table.lookup(p) }

// setNick changes the nickname we announce, and wakes tableLoop to
// announce it within half an interval.
func (p *presence) setNick(nick string) error {
	if err := checkPresenceFields(nick, nil); err != nil {
		return err
	}
	if p.ctx.Err() != nil {
		return ErrClosed
	}
	p.nickMu.Lock()
	p.nick = nick
	p.nickMu.Unlock()
	select {
	case p.renick <- struct{}{}:
	default:
	}
	return nil
}

// supportsSync reports whether identify told us that nb answers syncs.
func (p *presence) supportsSync(nb peer.ID) bool {
	protos, err := p.host.Peerstore().SupportsProtocols(nb, SyncProtocol)
	return err == nil && len(protos) > 0
}

// observe hands o to the table's loop, waiting if it is busy; it returns
// false when the room closes.
func (p *presence) observe(o observation) bool {
	o.at = time.Now()
	select {
	case p.obs <- o:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// observeNow hands o to the table's loop if it can take it at once.
func (p *presence) observeNow(o observation) {
	o.at = time.Now()
	select {
	case p.obs <- o:
	default:
	}
}

// readLoop hands announcements from the presence subscription to the
// table's loop.
func (p *presence) readLoop() {
	defer p.wg.Done()
	for {
		m, err := p.sub.Next(p.ctx)
		if err != nil {
			return
		}
		ann, ok := m.ValidatorData.(*announcement)
		if !ok || m.GetFrom() == p.self {
			continue // ours (the validator leaves no announcement on ours)
		}
		o := observation{kind: obsPresence, peer: m.GetFrom(), ann: ann, seq: seqNumber(m.GetSeqno())}
		if p.syncs() && ann.T == presenceHere {
			o.raw, _ = proto.Marshal(m.Message) // kept for the syncs we answer
		}
		if !p.observe(o) {
			return
		}
	}
}

// seqNumber reads a pubsub sequence number: go-libp2p-pubsub writes 8
// bytes, big-endian, from a counter that starts at the time the router
// started in nanoseconds, so a restarted peer's numbers are higher than
// before. Longer numbers keep their last 8 bytes.
func seqNumber(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

// byeSent tells Close that our bye is out: done is closed once it has
// been written to every presence neighbour (nil if it was not sent).
type byeSent struct{ done <-chan struct{} }

// jitter returns the interval times a random factor in [0.8, 1.2).
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// tableLoop owns the presence table: it applies observations, times peers
// out, announces us, and queues the resulting events for Presence without
// ever waiting on its reader.
func (p *presence) tableLoop() {
	defer p.wg.Done()
	interval := p.opts.PresenceInterval
	check := time.NewTicker(max(min(interval, p.opts.SilentTTL)/4, 5*time.Millisecond))
	defer check.Stop()

	// The first announcement goes out at once; the next after a jittered
	// interval, or half an interval after the last one when the nick
	// changes.
	announce := time.NewTimer(0)
	defer announce.Stop()
	var lastAnnounce time.Time
	announcing := p.topic != nil
	if !announcing {
		announce.Stop()
	}
	// Besides the periodic announcements, we announce again soon after a
	// new neighbour joins (our first announcement may have reached nobody)
	// and after a newcomer announces itself (it knows nobody yet), so that
	// peers started together, or a newcomer in a big room, learn of each
	// other within a second or two rather than an interval. Those extra
	// announcements spend the tokens of a bucket of 4 refilled at 2 per
	// interval; with the periodic one, that stays within what receivers
	// accept from us (a burst of 5, then 3 per interval), so that none is
	// dropped, and a storm of joins costs each peer at most three
	// announcements per interval.
	extra := newPacer(2/interval.Seconds(), 4)
	extraPending := false
	// One extra announcement once the mesh has had its first heartbeats:
	// the one at start reached at most our first neighbours.
	settled := time.NewTimer(settledAnnounceDelay)
	defer settled.Stop()

	// While we are new, we ask our first neighbours for the room's
	// announcements, and a few more once the room has announced itself
	// (see SyncProtocol).
	joinedAt := time.Now()
	pulled := make(map[peer.ID]bool)
	// introduced says that an announcement of ours went to a presence
	// neighbour; until then, with the sync, we announce only when someone
	// can hear it.
	metNeighbour, introduced, introRetries := false, false, 0
	settledPull := time.NewTimer(settledPullDelay)
	defer settledPull.Stop()
	if !p.syncs() {
		settledPull.Stop()
	}
	pull := func(nb peer.ID) {
		if pulled[nb] || !p.supportsSync(nb) {
			return
		}
		pulled[nb] = true
		p.wg.Add(1)
		go p.pull(nb)
	}

	var pending []PresenceEvent
	queue := func(ev PresenceEvent) {
		if len(pending) >= p.opts.QueueSize {
			pending = pending[1:]
			p.stats.presenceDropped.Add(1)
		}
		pending = append(pending, ev)
	}

	for {
		var out chan PresenceEvent
		var next PresenceEvent
		if len(pending) > 0 {
			out, next = p.out, pending[0]
		}
		select {
		case <-p.ctx.Done():
			return
		case out <- next:
			pending = pending[1:]
		case o := <-p.obs:
			ev, fit := p.table.apply(o)
			if !fit {
				p.stats.presenceFull.Add(1)
			}
			if ev != nil {
				queue(*ev)
			}
			if o.kind == obsTopicJoin && p.syncs() && time.Since(joinedAt) < newcomerPhase && len(pulled) < newcomerPulls {
				pull(o.peer)
			}
			// A newcomer that syncs learns of us from its neighbours; one
			// that does not (private rooms, earlier versions) needs us to
			// announce ourselves again. Our first neighbour is how the
			// room first learns of us; later ones that sync have us from
			// their syncs.
			newcomer := o.kind == obsPresence && !o.synced && ev != nil && ev.Kind == Joined && !o.ann.Sync
			first := o.kind == obsTopicJoin && !metNeighbour
			neighbour := o.kind == obsTopicJoin && (!p.syncs() || first)
			if o.kind == obsTopicJoin {
				metNeighbour = true
			}
			if (neighbour || newcomer) && announcing && !extraPending &&
				time.Since(lastAnnounce) >= extraAnnounceSpacing && extra.take(time.Now()) {
				// Soon, not now, so that a burst of joins costs one
				// announcement, spread over peers by the random delay.
				// Our own arrival, when we sync, is no burst: the room
				// learns of us sooner.
				extraPending = true
				delay := neighbourAnnounceDelay + rand.N(extraAnnounceSpread)
				if first && p.syncs() {
					delay = firstAnnounceDelay + rand.N(firstAnnounceSpread)
				}
				announce.Reset(delay)
			}
		case now := <-check.C:
			for _, ev := range p.table.expire(now) {
				queue(ev)
			}
		case <-settledPull.C:
			n := 0
			for _, pp := range p.table.peers() {
				if n >= settledPulls {
					break
				}
				if pp.Neighbour && !pulled[pp.Peer] && p.supportsSync(pp.Peer) {
					pull(pp.Peer)
					n++
				}
			}
		case <-settled.C:
			if announcing && !extraPending && extra.take(time.Now()) {
				extraPending = true
				announce.Reset(rand.N(extraAnnounceSpread / 3))
			}
		case <-announce.C:
			if !announcing {
				continue
			}

			extraPending = false
			announce.Reset(jitter(interval))
			if !introduced && p.syncs() && len(p.topic.ListPeers()) == 0 {
				// Nobody would hear it. When a neighbour has just come
				// (on the chat topic), its presence subscription is on
				// its way: try again shortly. Otherwise the next
				// neighbour brings it.
				if metNeighbour && introRetries < maxIntroRetries {
					introRetries++
					extraPending = true
					announce.Reset(introRetry)
				} else {
					metNeighbour = false
				}
				continue
			}
			p.announce(presenceHere)
			introduced = true
			lastAnnounce = time.Now()
		case <-p.renick:
			if announcing {
				wait := time.Until(lastAnnounce.Add(interval / 2))
				announce.Reset(max(wait, 0))
			}
		case reply := <-p.leave:
			var sent byeSent
			if announcing {
				announcing = false
				announce.Stop()
				sent.done = p.announce(presenceBye)
			}
			reply <- sent
		}
	}
}

// announce publishes our announcement of kind t. For a bye it returns a
// channel closed once the bye has been written to every presence
// neighbour; nil if it could not be published.
func (p *presence) announce(t string) <-chan struct{} {
	a := announcement{V: presenceVersion, T: t}
	if t == presenceHere {
		p.nickMu.Lock()
		a.Nick = p.nick
		p.nickMu.Unlock()
		a.Caps = p.opts.Capabilities
		a.EveryMS = p.opts.PresenceInterval.Milliseconds()
		a.Sync = p.syncs()
	}
	data, err := encodePresence(a)
	if err == nil && p.opts.Sealer != nil {
		data, err = p.opts.Sealer.Seal(data)
	}
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(p.ctx, announceTimeout)
	defer cancel()
	if t != presenceBye {
		// A "here" that fails is simply sent again at the next interval.
		if p.topic.Publish(ctx, data) == nil {
			p.stats.announced.Add(1)
		}
		return nil
	}
	// The router forms the message's ID inside Publish; our validator,
	// which it runs there before sending anything, starts the watch.
	c := &byeCapture{want: len(p.topic.ListPeers())}
	if err := p.topic.Publish(ctx, data, pubsub.WithValidatorData(c)); err != nil {
		return nil
	}
	return c.done
}

// byeDrain is how long Close waits, after our bye was handed to the
// neighbours' streams, for it to leave (see presence.bye).
const byeDrain = 50 * time.Millisecond

// bye asks the table's loop to publish our "bye" (so that it cannot cross
// a "here" from the same loop) and waits, up to LeaveLinger, for it to be
// written to our presence neighbours, and byeDrain more for it to leave. Without the presence topic there is
// nobody to tell.
func (p *presence) bye() {
	if p.topic == nil {
		return
	}
	reply := make(chan byeSent, 1)
	select {
	case p.leave <- reply:
	case <-p.ctx.Done():
		return
	}
	var sent byeSent
	select {
	case sent = <-reply:
	case <-p.ctx.Done():
		return
	}
	if sent.done == nil {
		return
	}
	t := time.NewTimer(p.opts.LeaveLinger)
	defer t.Stop()
	select {
	case <-sent.done:
	case <-t.C:
		return
	case <-p.ctx.Done():
		return
	}
	// "Written" is when the stream multiplexer took the bye (yamux queues
	// it for its send loop), not when it left: a connection closed at once
	// after, as ours are when we leave, can drop it. Give the send loops a
	// moment, within the linger.
	select {
	case <-time.After(byeDrain):
	case <-t.C:
	case <-p.ctx.Done():
	}
}

// byeCapture carries, through the validator data, how many neighbours our
// bye should reach, and back the channel the tracer closes when it has.
type byeCapture struct {
	want int
	done <-chan struct{}
}
