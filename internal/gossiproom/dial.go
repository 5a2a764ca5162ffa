package gossiproom

import (
	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// DialPolicy says when a peer should dial room peers it finds at the
// rendezvous. In a small room every peer may dial every other; in a big one
// that is the full mesh this package exists to avoid. GossipSub needs only a
// handful of room peers on live connections: it keeps a mesh of D of them
// (between Dlo and Dhi), at least Dout of which we dialed ourselves, and
// gossips message IDs to Dlazy others. Lines reach everyone else through the
// mesh, so the rest of the room needs no connection from us.
//
// The defaults are go-libp2p-pubsub's (v0.19.0): D = 6, Dlo = 5, Dhi = 12,
// Dout = 2, Dlazy = 6, a heartbeat every second. The policy keeps at least D
// room peers connected, at least Dout of them dialed by us (so that peers
// that dialed us, possibly all run by one attacker, cannot make up our whole
// mesh), and dials nothing while both hold. Peers that dial us are never
// refused here; the connection manager bounds them (see WaterMarks).
type DialPolicy struct {
	// D is the number of room peers to keep connected; Dout how many of
	// them we must have dialed; Dhi and Dlazy only feed WaterMarks.
	D, Dout, Dhi, Dlazy int
}

// DefaultDialPolicy returns the policy built on go-libp2p-pubsub's default
// gossipsub parameters.
func DefaultDialPolicy() DialPolicy {
	return DialPolicy{
		D:     pubsub.GossipSubD,
		Dout:  pubsub.GossipSubDout,
		Dhi:   pubsub.GossipSubDhi,
		Dlazy: pubsub.GossipSubDlazy,
	}
}

// WantDial reports whether to dial one more found room peer, given how many
// room peers are connected now (peers that are subscribed to the chat topic
// on a live connection; see Room.RoomConns) and how many of those
// connections we dialed.
func (p DialPolicy) WantDial(connected, outbound int) bool {
	return connected < p.D || outbound < p.Dout
}

// Budget returns how many found room peers to dial now, given the room peers
// connected, the outbound ones among them, and the dials already in flight
// (which count as if they had succeeded, so that a burst of found peers does
// not overshoot). Dial them in random order: if every peer dialed the first
// peers found, the oldest peers at the rendezvous would collect everyone's
// connections.
func (p DialPolicy) Budget(connected, outbound, inFlight int) int {
	need := max(p.D-connected, p.Dout-outbound, 0) - inFlight
	return max(need, 0)
}

// WaterMarks suggests a connection manager's low and high water marks for a
// host that needs others connections for things besides the room (the DHT's
// routing table, relays, bootstrap peers).
//
// The low mark leaves room for a full mesh (Dhi) plus the Dlazy peers we
// gossip to, above the others: trimming down to it never cuts into the
// mesh. GossipSub tags mesh peers in the connection manager (value 20, plus a
// decaying bonus for first deliveries), so a trim drops idle non-mesh room
// peers first. Room peers should not be protected: protecting every room
// peer would make the high mark meaningless in a big room. The high mark is
// three times the low one: the manager trims only past it, so short bursts
// of inbound dials (several peers meeting us at once) cost no churn, and a
// crowd of inbound dials is still cut back to the low mark.
//
// With about 40 others (a DHT client's busy routing table and a few relays),
// this gives 58 and 174, so the chat node's 64/192 fits.
func (p DialPolicy) WaterMarks(others int) (low, high int) {
	low = max(others, 0) + p.Dhi + p.Dlazy
	return low, 3 * low
}
