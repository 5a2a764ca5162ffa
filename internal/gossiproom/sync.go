package gossiproom

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"
)

// SyncProtocol is the presence sync: a peer that has just joined a room
// asks a few of its first neighbours for the announcements they hold, and
// learns at once who is in the room, instead of waiting for every member to
// announce itself again. The answer is the announcements themselves, as
// their authors signed them on the presence topic (go-libp2p-pubsub's
// message, protobuf, each after its length as a uvarint), the neighbour's
// own first; the asking peer checks every signature and every announcement
// as the topic's validator would, so a neighbour can only pass on what
// members really announced. It can pass on old announcements of a member
// that has left, which then stays until it times out (three of its
// intervals), as if it had missed the bye.
//
// Without it, every member announced itself again whenever a newcomer
// arrived, so a room of fifty started together sent some 250 announcements
// to everyone, and every peer checked the signature of each copy that
// reached it: most of what the room's CPU did while it met.
//
// Private rooms do not sync: an announcement opened once is refused when it
// comes again (the Sealer's replay guard), so a synced copy would make the
// topic's own copy look like a replay. Their members announce themselves
// again for newcomers, as before.
const SyncProtocol protocol.ID = "/rendezvous-chat/presence-sync/1.0.0"

const (
	// syncTimeout bounds one sync, asked or answered.
	syncTimeout = 5 * time.Second
	// maxSyncEntries bounds the announcements in one answer: past that,
	// a newcomer learns of the rest from their periodic announcements.
	maxSyncEntries = 1024
	// maxSyncServing bounds the answers we write at once; a request past
	// it is refused (the asker has other neighbours).
	maxSyncServing = 4
	// newcomerPhase is how long after joining we are new, and ask each of
	// our first newcomerPulls neighbours; settledPullDelay is when we ask
	// settledPulls more, once the room has had time to announce itself
	// (see settledAnnounceDelay).
	newcomerPhase    = 30 * time.Second
	newcomerPulls    = 3
	settledPullDelay = 1500 * time.Millisecond
	settledPulls     = 2
)

// maxSyncEntryBytes bounds one synced announcement: its payload (sealed or
// not) and the message around it (author, sequence number, topic, a
// signature, and a key for authors whose ID does not hold it).
func (p *presence) maxSyncEntryBytes() int {
	return MaxPresenceBytes + sealOverhead(p.opts.Sealer) + len(p.name) + 1024
}

// syncs reports whether we take part in the presence sync.
func (p *presence) syncs() bool { return p.topic != nil && p.opts.Sealer == nil && p.host != nil }

// serveSync answers a neighbour's sync: our own latest announcement, then
// those of the peers our table holds.
func (p *presence) serveSync(s network.Stream) {
	remote := s.Conn().RemotePeer()
	if p.opts.Peers != nil && !p.opts.Peers(remote) {
		_ = s.Reset()
		return
	}
	select {
	case p.serving <- struct{}{}:
		defer func() { <-p.serving }()
	default:
		_ = s.Reset()
		return
	}
	_ = s.SetDeadline(time.Now().Add(syncTimeout))
	w := bufio.NewWriter(s)
	var lenBuf [binary.MaxVarintLen64]byte
	write := func(raw []byte) error {
		if _, err := w.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(raw)))]); err != nil {
			return err
		}
		_, err := w.Write(raw)
		return err
	}
	entries := p.table.announcements(maxSyncEntries-1, remote)
	if own := p.ownAnnouncement.Load(); own != nil {
		entries = append([][]byte{*own}, entries...)
	}
	for _, raw := range entries {
		if err := write(raw); err != nil {
			_ = s.Reset()
			return
		}
	}
	if err := w.Flush(); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// pull asks the neighbour nb for the announcements it holds and hands
// those that are new to us to the table. It runs on its own goroutine,
// counted in p.wg.
func (p *presence) pull(nb peer.ID) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(p.ctx, syncTimeout)
	defer cancel()
	s, err := p.host.NewStream(ctx, nb, SyncProtocol)
	if err != nil {
		return
	}
	_ = s.SetDeadline(time.Now().Add(syncTimeout))
	r := bufio.NewReader(s)
	for range maxSyncEntries {
		raw, err := readSyncEntry(r, p.maxSyncEntryBytes())
		if errors.Is(err, io.EOF) {
			_ = s.Close()
			return
		}
		if err != nil {
			_ = s.Reset()
			return
		}
		o, ok := p.syncedObservation(raw)
		if !ok {
			continue
		}
		p.stats.synced.Add(1)
		if !p.observe(o) {
			_ = s.Reset()
			return
		}
	}
	_ = s.Reset() // more than an answer may hold
}

// readSyncEntry reads one length-prefixed entry of at most limit bytes.
func readSyncEntry(r *bufio.Reader, limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err // io.EOF between entries: the answer is complete
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("sync entry of %d bytes, more than %d", n, limit)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, fmt.Errorf("sync entry: %w", io.ErrUnexpectedEOF)
	}
	return raw, nil
}

// syncedObservation checks a synced announcement as the topic would (its
// topic, a valid author other than us, a newer announcement than the one we
// hold, its signature, its size and form) and returns it as an observation.
// The signature is checked last, as it costs the most, and only for what
// would be news.
func (p *presence) syncedObservation(raw []byte) (observation, bool) {
	var m pb.Message
	if err := proto.Unmarshal(raw, &m); err != nil || m.GetTopic() != p.name {
		return observation{}, false
	}
	author, err := peer.IDFromBytes(m.GetFrom())
	if err != nil || author == p.self || (p.opts.Peers != nil && !p.opts.Peers(author)) {
		return observation{}, false
	}
	seq := seqNumber(m.GetSeqno())
	if !p.table.wouldTake(author, seq) {
		return observation{}, false
	}
	data := m.GetData()
	if len(data) > MaxPresenceBytes {
		return observation{}, false
	}
	ann, err := decodePresence(data)
	if err != nil || ann.T != presenceHere {
		return observation{}, false
	}
	if verifySigned(&m, author) != nil {
		return observation{}, false
	}
	return observation{kind: obsPresence, peer: author, ann: ann, seq: seq, raw: raw, synced: true}, true
}

// verifySigned checks a pubsub message's signature by its author, as
// go-libp2p-pubsub does (StrictSign): over "libp2p-pubsub:" and the message
// without its signature and key, with the key the author's ID holds or the
// key the message carries, which must match the ID.
func verifySigned(m *pb.Message, author peer.ID) error {
	var key crypto.PubKey
	if len(m.GetKey()) == 0 {
		k, err := author.ExtractPublicKey()
		if err != nil {
			return err
		}
		key = k
	} else {
		k, err := crypto.UnmarshalPublicKey(m.GetKey())
		if err != nil {
			return err
		}
		if !author.MatchesPublicKey(k) {
			return errors.New("the message's key is not its author's")
		}
		key = k
	}
	unsigned := proto.CloneOf(m)
	unsigned.Signature, unsigned.Key = nil, nil
	b, err := proto.Marshal(unsigned)
	if err != nil {
		return err
	}
	ok, err := key.Verify(append([]byte("libp2p-pubsub:"), b...), m.GetSignature())
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("bad signature")
	}
	return nil
}
