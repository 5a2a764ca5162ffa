package node

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// checkPortsFree fails when a fixed port we are told to listen on is taken.
// libp2p binds with SO_REUSEPORT (so that it can dial out from its listen
// port, which helps through NATs), and a second instance would otherwise
// share the port silently while the kernel splits connections between them.
func checkPortsFree(addrs []ma.Multiaddr) error {
	for _, a := range addrs {
		ip, err := a.ValueForProtocol(ma.P_IP4)
		if err != nil {
			if ip, err = a.ValueForProtocol(ma.P_IP6); err != nil {
				continue
			}
		}
		if port, err := a.ValueForProtocol(ma.P_TCP); err == nil && port != "0" {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				return fmt.Errorf("listen on %s: %w", a, err)
			}
			l.Close()
		}
		if port, err := a.ValueForProtocol(ma.P_UDP); err == nil && port != "0" {
			c, err := net.ListenPacket("udp", net.JoinHostPort(ip, port))
			if err != nil {
				return fmt.Errorf("listen on %s: %w", a, err)
			}
			c.Close()
		}
	}
	return nil
}

// loopbackOnly reports whether every listen address is a loopback one.
func loopbackOnly(addrs []ma.Multiaddr) bool {
	for _, a := range addrs {
		if !manet.IsIPLoopback(a) {
			return false
		}
	}
	return len(addrs) > 0
}

// Sleep waits for d, and reports false if ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// FirstLine shortens a multi-line error (libp2p's dial errors list every
// address) to its first line.
func FirstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// isDNS reports whether a starts with a DNS name rather than an IP address.
func isDNS(a ma.Multiaddr) bool {
	if len(a) == 0 {
		return false
	}
	switch a[0].Protocol().Code {
	case ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_DNSADDR:
		return true
	}
	return false
}

// onlyPrivate reports whether addrs, leaving out loopback ones, are all
// direct addresses in private ranges.
func onlyPrivate(addrs []ma.Multiaddr) bool {
	n := 0
	for _, a := range addrs {
		switch {
		case IsRelayed(a) || manet.IsPublicAddr(a):
			return false
		case manet.IsIPLoopback(a):
		default:
			n++
		}
	}
	return n > 0
}

// IsRelayed reports whether a is a relayed address (…/p2p-circuit…).
func IsRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// ViaRelay reports whether a peer with these addresses can likely be
// reached only through a relay: it has relay addresses and no public direct
// one. Its private addresses (a peer behind NAT advertises them too) lead
// nowhere unless it is on our LAN.
func ViaRelay(addrs []ma.Multiaddr) bool {
	relayed := false
	for _, a := range addrs {
		if IsRelayed(a) {
			relayed = true
		} else if manet.IsPublicAddr(a) {
			return false
		}
	}
	return relayed
}

// OnlyRelayed reports whether every address is a relayed one.
func OnlyRelayed(addrs []ma.Multiaddr) bool {
	for _, a := range addrs {
		if !IsRelayed(a) {
			return false
		}
	}
	return true
}

// TransportName names the transport of a connection: "tcp", "quic-v1",
// "relay/tcp"... fromState is what the connection's state says.
func TransportName(addr ma.Multiaddr, fromState string) string {
	name := fromState
	relayed := IsRelayed(addr)
	if name == "" || relayed {
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
	if relayed && !strings.Contains(name, "relay") {
		name = "relay/" + name
	}
	return name
}

// IsQUIC reports whether a is a QUIC (or WebTransport) address.
func IsQUIC(a ma.Multiaddr) bool {
	_, errQUIC := a.ValueForProtocol(ma.P_QUIC_V1)
	_, errOld := a.ValueForProtocol(ma.P_QUIC)
	return errQUIC == nil || errOld == nil
}

// MergeAddrInfo adds ai to infos, joining the addresses of one peer.
func MergeAddrInfo(infos []peer.AddrInfo, ai peer.AddrInfo) []peer.AddrInfo {
	for i := range infos {
		if infos[i].ID == ai.ID {
			infos[i].Addrs = append(infos[i].Addrs, ai.Addrs...)
			return infos
		}
	}
	return append(infos, ai)
}
