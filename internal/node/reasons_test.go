package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

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
// read as a few plain words, on one line, without libp2p's wrappers.
func TestDialReasonRealErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
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
		want    string
	}{
		{"refused", h, peer.AddrInfo{ID: refusedID, Addrs: []ma.Multiaddr{closed}}, 5 * time.Second, "refused (nothing listening)"},
		// The swarm does not dial an address again right after it failed.
		{"backoff", h, peer.AddrInfo{ID: refusedID, Addrs: []ma.Multiaddr{closed}}, 5 * time.Second, "another dial of ours failed moments ago"},
		{"no addresses", h, peer.AddrInfo{ID: newTestPeerID(t)}, 5 * time.Second, "no address known for it"},
		// A stale record: another peer now listens at the address.
		{"another peer", h, peer.AddrInfo{ID: newTestPeerID(t), Addrs: other.Addrs()}, 5 * time.Second, "another peer now answers at its address"},
		{"no transport", h, peer.AddrInfo{ID: newTestPeerID(t), Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/9/webrtc-direct")}},
			5 * time.Second, "none of its addresses can be dialed from here"},
		{"no answer", h, peer.AddrInfo{ID: newTestPeerID(t), Addrs: []ma.Multiaddr{hungAddr}}, time.Second, "no answer in 1s"},
		{"filtered", filtered, peer.AddrInfo{ID: other.ID(), Addrs: other.Addrs()}, 5 * time.Second, "refused by our -allow/-deny filters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			err := tc.dialer.Connect(ctx, tc.ai)
			if err == nil {
				t.Fatal("the dial succeeded")
			}
			got := dialReason(err, tc.ai.Addrs, tc.timeout)
			t.Logf("%q\n  reads %q", err, got)
			if !strings.HasPrefix(got, tc.want) || strings.Contains(got, "\n") || strings.Contains(got, "failed to dial") {
				t.Errorf("dialReason = %q, want one line starting %q", got, tc.want)
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
		want  string
	}{
		{"our own loopback says nothing of a peer elsewhere", []ma.Multiaddr{loop, lan},
			dialErr(map[string]error{loop.String(): refused, lan.String(): noRoute}, loop, lan),
			"it lists only private addresses, none reachable from here"},
		{"loopback counts when it is all there is", []ma.Multiaddr{loop},
			dialErr(map[string]error{loop.String(): refused}, loop), "refused (nothing listening)"},
		{"the relay's word beats no route", []ma.Multiaddr{lan, relay},
			dialErr(map[string]error{lan.String(): noRoute, relay.String(): noReservation}, lan, relay),
			"its relay no longer holds a slot for it"},
		{"refused beats no route", []ma.Multiaddr{lan, pub},
			dialErr(map[string]error{lan.String(): noRoute, pub.String(): refused}, lan, pub), "refused (nothing listening)"},
		{"no route to a public address", []ma.Multiaddr{pub},
			dialErr(map[string]error{pub.String(): noRoute}, pub), "no route to its addresses"},
		{"our limits", []ma.Multiaddr{pub},
			fmt.Errorf("failed to dial: %w", network.ErrResourceLimitExceeded), "our connection limits are reached"},
		{"the dial's deadline", []ma.Multiaddr{pub},
			fmt.Errorf("failed to dial: %w", context.DeadlineExceeded), "no answer in 10s"},
		{"a DNS name that resolves to nothing", []ma.Multiaddr{ma.StringCast("/dnsaddr/bootstrap.libp2p.io")},
			fmt.Errorf("failed to dial: %w", &swarm.DialError{Peer: id, Cause: swarm.ErrNoGoodAddresses}),
			"its DNS name gave no address we can dial (no DNS here?)"},
		{"something else", []ma.Multiaddr{pub},
			dialErr(map[string]error{pub.String(): errors.New("failed to negotiate security protocol: EOF\nmore")}, pub),
			"failed to negotiate security protocol: EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dialReason(tc.err, tc.addrs, 10*time.Second); got != tc.want {
				t.Errorf("dialReason = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDescribeBootstrap: the progress line names the peers that answered,
// with the address of the connection, and groups the others by reason.
func TestDescribeBootstrap(t *testing.T) {
	a, b, c := newTestPeerID(t), newTestPeerID(t), newTestPeerID(t)
	addrA := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	addrB := ma.StringCast("/ip4/127.0.0.1/tcp/1")
	addrC := ma.StringCast("/ip4/127.0.0.1/tcp/2")
	refused := fmt.Errorf("failed to dial: %w", &net.OpError{Op: "dial", Net: "tcp4", Err: syscall.ECONNREFUSED})
	reached, answered, failed := describeBootstrap([]bootstrapResult{
		{ai: peer.AddrInfo{ID: a, Addrs: []ma.Multiaddr{addrA, ma.StringCast("/ip4/127.0.0.1/udp/4001/quic-v1")}}, addr: addrA},
		{ai: peer.AddrInfo{ID: b, Addrs: []ma.Multiaddr{addrB}}, err: refused},
		{ai: peer.AddrInfo{ID: c, Addrs: []ma.Multiaddr{addrC}}, err: refused},
	}, bootstrapTimeout)
	if reached != 1 {
		t.Errorf("reached = %d, want 1", reached)
	}
	if want := shortID(a) + " (/ip4/127.0.0.1/tcp/4001)"; answered != want {
		t.Errorf("answered = %q, want %q", answered, want)
	}
	want := fmt.Sprintf("%s (/ip4/127.0.0.1/tcp/1), %s (/ip4/127.0.0.1/tcp/2): refused (nothing listening)", shortID(b), shortID(c))
	if failed != want {
		t.Errorf("failed = %q, want %q", failed, want)
	}
	if got := bootstrapText(reached, 3, answered, failed); !strings.HasPrefix(got, "connected to 1 of 3 bootstrap peers: ") ||
		!strings.Contains(got, "; not reached: ") {
		t.Errorf("bootstrapText = %q", got)
	}
}

// TestDialNotes: a failed dial is told once per peer, and never for a peer
// that was in the chat.
func TestDialNotes(t *testing.T) {
	var d dialNotes
	met, stranger := newTestPeerID(t), newTestPeerID(t)
	d.joined(met)
	if d.tell(met) {
		t.Error("told about a peer that was in the chat")
	}
	if !d.tell(stranger) {
		t.Error("not told about a stranger")
	}
	if d.tell(stranger) {
		t.Error("told twice about the same stranger")
	}
}
