package room

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
)

// pingCommandTimeout bounds /ping.
const pingCommandTimeout = 5 * time.Second

// Peers returns the peers the room has a session with.
func (r *Room) Peers() []peer.ID {
	sessions := r.roster.sessionList()
	ids := make([]peer.ID, len(sessions))
	for i, s := range sessions {
		ids[i] = s.peer
	}
	return ids
}

// PeerList describes everyone in the room, for /peers.
func (r *Room) PeerList() []event.PeerInfo {
	everyone := r.roster.everyone()
	list := make([]event.PeerInfo, 0, len(everyone))
	for _, k := range everyone {
		if k.s == nil {
			list = append(list, event.PeerInfo{Peer: k.idText, Nick: k.nick, Name: k.nm, Protocol: r.topic.cfg.Topic, Path: event.ViaTopic})
			continue
		}
		st := k.s.currentStream()
		list = append(list, event.PeerInfo{
			Peer:      k.idText,
			Nick:      k.nick,
			Name:      k.nm,
			Protocol:  string(st.Protocol()),
			Path:      pathName(st.Conn()),
			Direction: k.s.direction,
			Addr:      st.Conn().RemoteMultiaddr().String(),
		})
	}
	slices.SortFunc(list, func(a, b event.PeerInfo) int { return strings.Compare(a.Name, b.Name) })
	return list
}

// Pending lists our lines that some peer has not acknowledged, for
// /pending.
func (r *Room) Pending() []event.PendingInfo {
	list := []event.PendingInfo{}
	for _, e := range r.ledger.receipts.pending() {
		list = append(list, event.PendingInfo{
			MsgID:   e.o.msg.ID,
			Text:    e.o.msg.Text,
			Waiting: peerStrings(e.peers),
			Names:   r.roster.nameList(e.peers),
			AgeMS:   time.Since(e.o.sent).Milliseconds(),
		})
	}
	return list
}

// Conns describes every connection to every peer we have a session with:
// the view a developer wants when showing how two peers are connected.
func (r *Room) Conns() []event.ConnInfo {
	conns := []event.ConnInfo{}
	for _, p := range r.Peers() {
		rtt := r.host.Peerstore().LatencyEWMA(p)
		name := r.roster.nameOf(p)
		for _, c := range r.host.Network().ConnsToPeer(p) {
			stat, state := c.Stat(), c.ConnState()
			addr := c.RemoteMultiaddr()
			conns = append(conns, event.ConnInfo{
				Peer:      p.String(),
				Name:      name,
				Addr:      addr.String(),
				Transport: node.TransportName(addr, state.Transport),
				Security:  string(state.Security),
				Muxer:     string(state.StreamMultiplexer),
				Direction: strings.ToLower(stat.Direction.String()),
				Relayed:   stat.Limited || node.IsRelayed(addr),
				AgeMS:     time.Since(stat.Opened).Milliseconds(),
				RTTMS:     float64(rtt.Microseconds()) / 1000,
			})
		}
	}
	return conns
}

// Ping measures the round-trip time to the peer p, in the background so
// that typing goes on: a ping event, or a ping_failed error.
func (r *Room) Ping(p peer.ID) {
	r.lc.Go(func() {
		ctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(r.ctx, "ping"), pingCommandTimeout)
		defer cancel()
		start := time.Now()
		if err := r.streams.ping(ctx, p); err != nil {
			r.emit(event.Event{Kind: event.Error, Code: event.PingFailed, Command: "/ping", Peer: p.String(),
				Name: r.roster.nameOf(p), Cause: err.Error()})
			return
		}
		rtt := time.Since(start)
		if l := r.host.Peerstore().LatencyEWMA(p); l > 0 && l < rtt {
			rtt = l // ping recorded the exact round trip; ours includes opening the stream
		}
		r.emit(event.Event{Kind: event.Ping, Peer: p.String(), Name: r.roster.nameOf(p), RTTMS: float64(rtt.Microseconds()) / 1000})
	})
}

// A FindError says why FindPeer found no one peer, with the code of the
// error event that tells the user.
type FindError struct {
	Code  event.Code // event.NoSuchPeer, event.AmbiguousPeer or event.RoomEmpty
	Name  string     // the name asked for
	Count int        // the peers that match (AmbiguousPeer)
}

func (e *FindError) Error() string {
	return fmt.Sprintf("%s %q (%d)", e.Code, e.Name, e.Count)
}

// FindPeer returns the one room peer named by name: the name the view
// shows, its nickname, or a prefix or suffix of its peer ID (the short
// form the view shows will do); with an empty name, the only peer in the
// room. It returns a *FindError when there is no such single peer.
func (r *Room) FindPeer(name string) (peer.ID, error) {
	var byName, byNick, byID []peer.ID
	for _, k := range r.roster.everyone() {
		switch {
		case name == "" || k.nm == name:
			byName = append(byName, k.id)
		case k.nick == name:
			byNick = append(byNick, k.id)
		case strings.HasPrefix(k.idText, name) || strings.HasSuffix(k.idText, name):
			byID = append(byID, k.id)
		}
	}
	for _, found := range [][]peer.ID{byName, byNick, byID} {
		switch {
		case len(found) == 1:
			return found[0], nil
		case len(found) > 1:
			return "", &FindError{Code: event.AmbiguousPeer, Name: name, Count: len(found)}
		}
	}
	if name == "" {
		return "", &FindError{Code: event.RoomEmpty}
	}
	return "", &FindError{Code: event.NoSuchPeer, Name: name}
}
