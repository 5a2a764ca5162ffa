package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// pingCommandTimeout bounds /ping.
const pingCommandTimeout = 5 * time.Second

// runCommand carries out a line typed as a command and reports whether it
// was one. Only the commands below are taken; any other line, even one that
// starts with "/", is a message as before.
func (r *Room) runCommand(line string) bool {
	name, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	switch name {
	case "/conns":
		r.emit(Event{Kind: EventConns, Conns: r.Conns()})
	case "/ping":
		r.pingCommand(strings.TrimSpace(arg))
	default:
		return false
	}
	return true
}

// Conns describes every connection to every peer in the room: the view a
// developer wants when showing how two peers are connected.
func (r *Room) Conns() []ConnInfo {
	conns := []ConnInfo{}
	for _, p := range r.Peers() {
		rtt := r.host.Peerstore().LatencyEWMA(p)
		for _, c := range r.host.Network().ConnsToPeer(p) {
			stat, state := c.Stat(), c.ConnState()
			addr := c.RemoteMultiaddr()
			conns = append(conns, ConnInfo{
				Peer:      p.String(),
				Addr:      addr.String(),
				Transport: transportName(addr, state.Transport),
				Security:  string(state.Security),
				Muxer:     string(state.StreamMultiplexer),
				Direction: strings.ToLower(stat.Direction.String()),
				Relayed:   stat.Limited || isRelayed(addr),
				AgeMS:     time.Since(stat.Opened).Milliseconds(),
				RTTMS:     float64(rtt.Microseconds()) / 1000,
			})
		}
	}
	return conns
}

// transportName names the transport of a connection: "tcp", "quic-v1",
// "relay over tcp"...
func transportName(addr ma.Multiaddr, fromState string) string {
	name := fromState
	if name == "" || isRelayed(addr) {
		// A relayed connection's state names the relay's own transport
		// only sometimes; the address always does.
		name = "?"
	scan:
		for _, c := range addr {
			switch c.Protocol().Code {
			case ma.P_CIRCUIT:
				break scan // what follows is the relay's hop to the peer
			case ma.P_TCP, ma.P_QUIC_V1, ma.P_WEBTRANSPORT, ma.P_WS, ma.P_WSS, ma.P_WEBRTC_DIRECT:
				name = c.Protocol().Name
			}
		}
	}
	if isRelayed(addr) && !strings.Contains(name, "relay") {
		name = "relay/" + name
	}
	return name
}

func isRelayed(addr ma.Multiaddr) bool {
	_, err := addr.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// pingCommand measures the round-trip time to a room peer named by a prefix
// or suffix of its ID (the short form the view shows will do), in the
// background so that typing goes on.
func (r *Room) pingCommand(name string) {
	p, err := r.findPeer(name)
	if err != nil {
		r.emit(Event{Kind: EventError, Error: "/ping: " + err.Error()})
		return
	}
	r.mu.Lock()
	if r.isClosing() {
		r.mu.Unlock()
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(r.ctx, "ping"), pingCommandTimeout)
		defer cancel()
		start := time.Now()
		if err := r.ping(ctx, p); err != nil {
			r.emit(Event{Kind: EventError, Peer: p.String(), Error: fmt.Sprintf("/ping %s: %v", shortID(p), err)})
			return
		}
		rtt := time.Since(start)
		if l := r.host.Peerstore().LatencyEWMA(p); l > 0 && l < rtt {
			rtt = l // ping recorded the exact round trip; ours includes opening the stream
		}
		r.emit(Event{Kind: EventPing, Peer: p.String(), RTTMS: float64(rtt.Microseconds()) / 1000})
	}()
}

// findPeer returns the one room peer whose ID starts or ends with name; with
// an empty name, the only peer in the room.
func (r *Room) findPeer(name string) (peer.ID, error) {
	var found []peer.ID
	for _, p := range r.Peers() {
		s := p.String()
		if name == "" || strings.HasPrefix(s, name) || strings.HasSuffix(s, name) {
			found = append(found, p)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && name == "":
		return "", fmt.Errorf("nobody is in the room")
	case len(found) == 0:
		return "", fmt.Errorf("no peer in the room matches %q", sanitize(name))
	default:
		return "", fmt.Errorf("%d peers match %q: give more of the ID", len(found), sanitize(name))
	}
}
