package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// newTestPeerID returns the ID of a key nobody uses.
func newTestPeerID(t *testing.T) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// newLoopbackHost starts a libp2p host on loopback TCP, closed at the end.
func newLoopbackHost(t *testing.T, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// closedLoopbackAddr returns a TCP address on loopback where nothing listens.
func closedLoopbackAddr(t *testing.T) ma.Multiaddr {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
}

// TestDialReasonRealErrors: the errors of real dials, on loopback only,
// each come out as the reason that says what happened.
func TestDialReasonRealErrors(t *testing.T) {
	needHosts(t)
	h := newLoopbackHost(t)
	other := newLoopbackHost(t)
	filtered := newLoopbackHost(t, libp2p.ConnectionGater(NewGater(nil, []net.IPNet{mustCIDR(t, "127.0.0.0/8")})))

	// A TCP listener that accepts and never speaks: the security
	// handshake waits until the dial's deadline.
	hung, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hung.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	hungAddr := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", hung.Addr().(*net.TCPAddr).Port))

	closed := closedLoopbackAddr(t)
	refusedID := newTestPeerID(t)
	for _, tc := range []struct {
		name    string
		dialer  host.Host
		ai      peer.AddrInfo
		timeout time.Duration
		want    DialFailure
	}{
		{"refused", h, peer.AddrInfo{ID: refusedID, Addrs: []ma.Multiaddr{closed}}, 5 * time.Second, DialFailure{Why: event.WhyRefused}},
		// The swarm does not dial an address again right after it failed.
		{"backoff", h, peer.AddrInfo{ID: refusedID, Addrs: []ma.Multiaddr{closed}}, 5 * time.Second, DialFailure{Why: event.WhyBackoff}},
		{"no addresses", h, peer.AddrInfo{ID: newTestPeerID(t)}, 5 * time.Second, DialFailure{Why: event.WhyNoAddrs}},
		// A stale record: another peer now listens at the address.
		{"another peer", h, peer.AddrInfo{ID: newTestPeerID(t), Addrs: other.Addrs()}, 5 * time.Second, DialFailure{Why: event.WhyMismatch}},
		{"no transport", h, peer.AddrInfo{ID: newTestPeerID(t), Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/9/webrtc-direct")}},
			5 * time.Second, DialFailure{Why: event.WhyNoGoodAddrs}},
		{"no answer", h, peer.AddrInfo{ID: newTestPeerID(t), Addrs: []ma.Multiaddr{hungAddr}}, time.Second, DialFailure{Why: event.WhyTimeout, Wait: time.Second}},
		{"filtered", filtered, peer.AddrInfo{ID: other.ID(), Addrs: other.Addrs()}, 5 * time.Second, DialFailure{Why: event.WhyFiltered}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			err := tc.dialer.Connect(ctx, tc.ai)
			if err == nil {
				t.Fatal("the dial succeeded")
			}
			got := ExplainDial(err, tc.ai.Addrs, tc.timeout)
			t.Logf("%q\n  reads %+v", err, got)
			if got != tc.want {
				t.Errorf("ExplainDial = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDialReasonMixed: when addresses fail differently the most telling
// reason wins, a peer's loopback addresses count only when it has no other,
// and a peer with only private addresses is said to have only those. The
// errors are built by hand: such dials would leave loopback.
func TestDialReasonMixed(t *testing.T) {
	id := newTestPeerID(t)
	loop := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	lan := ma.StringCast("/ip4/192.168.2.2/tcp/4001")
	pub := ma.StringCast("/ip4/7.77.1.12/tcp/4001")
	relay := ma.StringCast("/ip4/7.77.1.1/tcp/4001/p2p/" + newTestPeerID(t).String() + "/p2p-circuit")
	refused := &net.OpError{Op: "dial", Net: "tcp4", Err: syscall.ECONNREFUSED}
	noRoute := &net.OpError{Op: "dial", Net: "tcp4", Err: syscall.ENETUNREACH}
	noReservation := errors.New("error opening relay circuit: NO_RESERVATION (204)")
	dialErr := func(causes map[string]error, addrs ...ma.Multiaddr) error {
		de := &swarm.DialError{Peer: id, Cause: errors.New("all dials failed")}
		for _, a := range addrs {
			de.DialErrors = append(de.DialErrors, swarm.TransportError{Address: a, Cause: causes[a.String()]})
		}
		return fmt.Errorf("failed to dial: %w", de)
	}
	for _, tc := range []struct {
		name  string
		addrs []ma.Multiaddr
		err   error
		want  DialFailure
	}{
		{"our own loopback says nothing of a peer elsewhere", []ma.Multiaddr{loop, lan},
			dialErr(map[string]error{loop.String(): refused, lan.String(): noRoute}, loop, lan),
			DialFailure{Why: event.WhyOnlyPrivate}},
		{"loopback counts when it is all there is", []ma.Multiaddr{loop},
			dialErr(map[string]error{loop.String(): refused}, loop), DialFailure{Why: event.WhyRefused}},
		{"the relay's word beats no route", []ma.Multiaddr{lan, relay},
			dialErr(map[string]error{lan.String(): noRoute, relay.String(): noReservation}, lan, relay),
			DialFailure{Why: event.WhyNoReservation}},
		{"refused beats no route", []ma.Multiaddr{lan, pub},
			dialErr(map[string]error{lan.String(): noRoute, pub.String(): refused}, lan, pub), DialFailure{Why: event.WhyRefused}},
		{"no route to a public address", []ma.Multiaddr{pub},
			dialErr(map[string]error{pub.String(): noRoute}, pub), DialFailure{Why: event.WhyNoRoute}},
		{"our limits", []ma.Multiaddr{pub},
			fmt.Errorf("failed to dial: %w", network.ErrResourceLimitExceeded), DialFailure{Why: event.WhyOurLimit}},
		{"the dial's deadline", []ma.Multiaddr{pub},
			fmt.Errorf("failed to dial: %w", context.DeadlineExceeded), DialFailure{Why: event.WhyTimeout, Wait: 10 * time.Second}},
		{"a DNS name that resolves to nothing", []ma.Multiaddr{ma.StringCast("/dnsaddr/bootstrap.libp2p.io")},
			fmt.Errorf("failed to dial: %w", &swarm.DialError{Peer: id, Cause: swarm.ErrNoGoodAddresses}),
			DialFailure{Why: event.WhyNoDNS}},
		{"something else", []ma.Multiaddr{pub},
			dialErr(map[string]error{pub.String(): errors.New("failed to negotiate security protocol: EOF\nmore")}, pub),
			DialFailure{Why: event.WhyOther, Cause: "failed to negotiate security protocol: EOF"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExplainDial(tc.err, tc.addrs, 10*time.Second); got != tc.want {
				t.Errorf("ExplainDial = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestBootstrapReport: the report names the peers that answered, with the
// address of the connection, and why the others did not.
func TestBootstrapReport(t *testing.T) {
	a, b, c := newTestPeerID(t), newTestPeerID(t), newTestPeerID(t)
	addrA := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	addrB := ma.StringCast("/ip4/127.0.0.1/tcp/1")
	addrC := ma.StringCast("/ip4/127.0.0.1/tcp/2")
	refused := fmt.Errorf("failed to dial: %w", &net.OpError{Op: "dial", Net: "tcp4", Err: syscall.ECONNREFUSED})
	e := bootstrapReport([]bootstrapResult{
		{ai: peer.AddrInfo{ID: a, Addrs: []ma.Multiaddr{addrA, ma.StringCast("/ip4/127.0.0.1/udp/4001/quic-v1")}}, addr: addrA},
		{ai: peer.AddrInfo{ID: b, Addrs: []ma.Multiaddr{addrB}}, err: refused},
		{ai: peer.AddrInfo{ID: c, Addrs: []ma.Multiaddr{addrC}}, err: refused},
	}, bootstrapTimeout)
	if e.Kind != event.Info || e.Code != event.BootstrapConnected || e.Count != 1 || e.Total != 3 {
		t.Errorf("report = %+v, want an info event, 1 of 3 reached", e)
	}
	want := []event.BootstrapPeer{
		{Peer: a.String(), Addr: addrA.String(), Reached: true},
		{Peer: b.String(), Addr: addrB.String(), Why: event.WhyRefused},
		{Peer: c.String(), Addr: addrC.String(), Why: event.WhyRefused},
	}
	if !slices.Equal(e.Bootstrap, want) {
		t.Errorf("peers = %+v, want %+v", e.Bootstrap, want)
	}
}
