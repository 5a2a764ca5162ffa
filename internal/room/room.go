package room

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
	"github.com/rendezvous-chat/rendezvous-chat/internal/privroom"
	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

// Protocol is this program's own chat protocol: framed, with message IDs,
// receipts and nicknames (see internal/wire). It is offered first; peers
// that speak only the plain protocol of go-libp2p's example get that.
const Protocol = protocol.ID("/rendezvous-chat/1.0.0")

// connProtectTag marks connections to chat peers for the connection manager.
const connProtectTag = "rendezvous-chat"

// Config says how a room talks and whom it talks to.
type Config struct {
	// Protocols are offered in this order when we open a stream; each must
	// have a wire format in Formats.
	Protocols []protocol.ID
	Formats   map[protocol.ID]wire.Format
	// Nick is the nickname we start with; "" shows us by our short ID.
	Nick string
	// AllowPeers, when not empty, are the only peers we chat with.
	AllowPeers map[peer.ID]bool
	// Gater, when set, removes addresses in denied networks from found
	// peers, so that they are never dialed.
	Gater *node.Gater
	// Version is this program's version, which direct-message replies
	// carry.
	Version string
	// Private, when set, makes the room private: only peers that prove
	// they hold its key (derived from the passphrase) get a session, and
	// its topics are sealed. See private.go.
	Private *privroom.Room
	// HoldWait, when not zero, makes sending wait (up to HoldWait) for
	// room among the held lines rather than refuse lines: a pipe is
	// slowed, not cut. Without it (a person typing) the lines past the
	// bound are refused at once, with an error.
	HoldWait time.Duration
}

// A Room is everyone met at the rendezvous. It takes found peers from the
// node (Offer) and lines from the user (Send), keeps one session per peer,
// and reports what happens as events: it never prints.
//
// Its jobs are pieces of their own, each the one owner of its state: the
// roster (who is here, and the names they are shown by), the dialer (which
// found peers to dial, and the memory of dials), the streams (opening,
// accepting and moving chat streams), the sessions, the ledger of our lines
// (receipts, resend, held lines) and the dedupe of theirs, and, when the room
// is a GossipSub topic too, the topic bridge, the files and the direct
// messages. The Room itself is the public API and the path of a line.
type Room struct {
	host host.Host
	cfg  Config
	emit event.Emit

	ctx    context.Context // ends when the room closes; dials use it
	cancel context.CancelFunc
	lc     *lifecycle
	// sendMu serialises sending with Close, so that a line is either sent
	// or reported not sent.
	sendMu    sync.Mutex
	closeOnce sync.Once

	roster  *roster
	dialer  *dialer
	streams *streams
	ledger  *ledger
	seen    *seenTable
	// topic, files and direct are nil when the room has no topic
	// (-gossip=false).
	topic  *topicBridge
	files  *files
	direct *directs
	// priv is the private room's part; nil in an open room.
	priv *private
}

// New registers the chat protocols on the host and returns the room.
func New(h host.Host, cfg Config, emit event.Emit) *Room {
	ctx, cancel := context.WithCancel(context.Background())
	lc := newLifecycle()
	r := &Room{
		host:   h,
		cfg:    cfg,
		emit:   emit,
		ctx:    ctx,
		cancel: cancel,
		lc:     lc,
		roster: newRoster(lc, cfg.Nick),
		seen:   newSeenTable(),
	}
	r.ledger = newLedger(r)
	if cfg.Private != nil {
		r.priv = newPrivate(r, cfg.Private)
	}
	r.dialer = newDialer(r)
	r.streams = newStreams(r)
	for _, pid := range cfg.Protocols {
		h.SetStreamHandler(pid, r.streams.handle)
	}
	r.lc.Go(r.ledger.expireLoop)
	return r
}

// Offer takes a peer found by discovery and dials it in the background,
// unless it is us, has no address, is already in the room or being dialed,
// or was tried moments ago. It never blocks.
func (r *Room) Offer(ai peer.AddrInfo) { r.dialer.offer(ai) }

// allowed reports whether -allow-peer lets us chat with id.
func (r *Room) allowed(id peer.ID) bool {
	return len(r.cfg.AllowPeers) == 0 || r.cfg.AllowPeers[id]
}

// admitted reports whether id may exchange direct messages and files with
// us: in a private room, only a peer that proved its membership on a chat
// session; in an open room, anyone -allow-peer allows.
func (r *Room) admitted(id peer.ID) bool {
	return r.allowed(id) && (r.priv == nil || r.roster.session(id) != nil)
}

// received takes what a peer sent, from its session's reader.
func (r *Room) received(s *session, f wire.Frame) {
	switch f.Type {
	case wire.TypeMsg:
		if f.ID == "" {
			// A plain line: from a peer on the plain protocol, or on an
			// extra stream of that protocol.
			r.emit(event.Event{Kind: event.Message, Peer: s.peerID, Name: s.name(), Text: f.Text})
			return
		}
		// Acknowledge even a message seen before: our first receipt of it
		// may be what was lost.
		s.queueAck(f.ID)
		if !r.seen.firstSight(s.peer, f.ID) {
			log.Debugw("dropped a message received twice", "peer", s.peer, "id", f.ID)
			return
		}
		r.emit(event.Event{Kind: event.Message, Peer: s.peerID, Nick: s.nick(), Name: s.name(),
			MsgID: f.ID, Private: f.Private, Text: f.Text})
	case wire.TypeAck:
		r.ledger.emitDelivered(r.ledger.receipts.ack(s.peer, f.IDs))
	case wire.TypeHello, wire.TypeNick:
		r.emitAll(r.roster.peerNick(s, &f))
	case wire.TypeFile:
		if r.files != nil && r.allowed(s.peer) {
			r.files.described(s, f)
		}
	default:
		// A frame type from a newer version of the protocol.
		log.Debugw("ignored a frame of unknown type", "peer", s.peer, "type", f.Type)
	}
}

// sessionEnded is called once by each session when it ends.
func (r *Room) sessionEnded(s *session, kind endKind, code event.Code, detail endDetail) {
	renamed := r.roster.remove(s, kind == endBroken)
	r.dialer.sessionEnded(s.peer, kind)
	r.seen.left(s.peer)
	r.host.ConnManager().Unprotect(s.peer, connProtectTag)
	if r.lc.isClosing() {
		return
	}
	r.emit(event.Event{Kind: event.Left, Code: code, Peer: s.peerID, Nick: s.nick(), Name: s.name(),
		Cause: detail.cause, WaitMS: event.Millis(detail.wait)})
	r.emitAll(renamed)
	if n := r.ledger.receipts.unackedCounts()[s.peer]; n > 0 {
		r.emit(event.Event{Kind: event.Info, Code: event.UnackedOnLeave, Peer: s.peerID, Name: s.name(),
			Count: n, WaitMS: event.Millis(resendWindow)})
	}
	if kind == endBroken {
		r.lc.Go(func() { r.dialer.redial(s.peer) })
	}
}

// emitAll emits events in order.
func (r *Room) emitAll(events []event.Event) {
	for _, e := range events {
		r.emit(e)
	}
}

// Close delivers what is queued to each peer (bounded by timeout), reports
// what could not be delivered, ends every session and waits for every
// goroutine the room started.
func (r *Room) Close(timeout time.Duration) {
	r.closeOnce.Do(func() {
		// From here on nothing new starts: no dial, no session, no
		// background work (see lifecycle).
		r.lc.close()
		r.streams.stop()
		for _, pid := range r.cfg.Protocols {
			r.host.RemoveStreamHandler(pid)
		}
		// Wait for a Send in progress: it sees closing and returns. Later
		// calls wait for Close to finish, then report the line not sent.
		r.sendMu.Lock()
		defer r.sendMu.Unlock()

		if lost := r.ledger.dropHeld(); len(lost) > 0 {
			for _, o := range lost {
				r.ledger.deliveries.fail(o.msg.ID)
			}
			r.emit(event.Event{Kind: event.Error, Code: event.HeldUndelivered, Count: len(lost), MsgIDs: msgIDs(lost)})
		}
		defer r.ledger.reportUnacknowledged()
		deadline := time.Now().Add(timeout)
		var wg sync.WaitGroup
		for _, s := range r.roster.sessionList() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.shutdown(deadline)
			}()
		}
		wg.Wait()
		// The topic last: its "bye" tells the room we left.
		r.closeTopic()
		r.cancel()
		r.lc.wait()
	})
}

// runsOurProgram reports whether identify says the peer runs this program.
func (r *Room) runsOurProgram(p peer.ID) bool {
	agent, err := r.host.Peerstore().Get(p, "AgentVersion")
	name, _ := agent.(string)
	return err == nil && strings.HasPrefix(name, node.UserAgentName+"/")
}

// connected reports whether the host has a connection to p.
func (r *Room) connected(p peer.ID) bool {
	return r.host.Network().Connectedness(p) == network.Connected
}

func peerStrings(peers []peer.ID) []string {
	s := make([]string, len(peers))
	for i, p := range peers {
		s[i] = p.String()
	}
	return s
}
