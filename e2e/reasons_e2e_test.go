//go:build linux

package e2e

// End-to-end tests of what the user is told when peers cannot meet: a
// bootstrap peer that refuses, and a record at the rendezvous that outlived
// its peer. Loopback only, like the rest of the end-to-end tests.

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// checkPlainWords fails the test when a message shows libp2p's dial error
// text instead of plain words, or spans several lines.
func checkPlainWords(t *testing.T, name, msg string) {
	t.Helper()
	for _, raw := range []string{"\n", "failed to dial", "all dials failed", "connect: connection refused", "12D3KooW"} {
		if strings.Contains(msg, raw) {
			t.Errorf("%s: %q contains %q: not plain words on one line", name, msg, raw)
		}
	}
}

// checkNamed fails the test when a message does not name each of names
// (short peer IDs, addresses): people must see which peer it is about.
func checkNamed(t *testing.T, name, msg string, names ...string) {
	t.Helper()
	for _, n := range names {
		if !strings.Contains(msg, n) {
			t.Errorf("%s: %q does not name %s", name, msg, n)
		}
	}
}

// sameDials reports whether the bootstrap dials got are want, in order:
// the same peers, at the same addresses, reached or not for the same
// reason (the causes and waits aside).
func sameDials(got, want []event.BootstrapPeer) bool {
	return slices.EqualFunc(got, want, func(g, w event.BootstrapPeer) bool {
		return g.Peer == w.Peer && g.Addr == w.Addr && g.More == w.More && g.Reached == w.Reached && g.Why == w.Why
	})
}

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

// TestE2EBootstrapRefused: a bootstrap peer where nothing listens is named
// with its address and "refused (nothing listening)", in one line; beside
// one that answers, the progress line names both.
func TestE2EBootstrapRefused(t *testing.T) {
	e2e.Binary(t) // skips under -short
	t.Parallel()
	closed := closedLoopbackAddr(t)
	deadID := newTestPeerID(t)
	dead := fmt.Sprintf("%s/p2p/%s", closed, deadID)

	t.Run("alone", func(t *testing.T) {
		a := e2e.Start(t, "a", "-json", "-mdns=false", "-listen", "/ip4/127.0.0.1/tcp/0",
			"-peer", dead, "-rendezvous", "bootstrap refused")
		a.Ready(t)
		e := a.Wait(t, event.Error, e2e.Code(event.BootstrapUnreachable), 30*time.Second)
		t.Logf("a: %s", e.Error)
		// The dead peer, at its address, refused (nothing listening); only
		// peers that dial us can join.
		want := event.BootstrapPeer{Peer: deadID.String(), Addr: closed.String(), Why: event.WhyRefused}
		if e.Why != event.WhyInboundOnly || !sameDials(e.Bootstrap, []event.BootstrapPeer{want}) {
			t.Errorf("a: %+v, want why %q and bootstrap %+v", e, event.WhyInboundOnly, want)
		}
		checkPlainWords(t, "a", e.Error)
		checkNamed(t, "a", e.Error, event.ShortID(deadID), closed.String())
	})

	t.Run("beside one that answers", func(t *testing.T) {
		s, server := startServer(t)
		serverID := s.Ready(t).ID
		b := e2e.Start(t, "b", "-json", "-mdns=false", "-listen", "/ip4/127.0.0.1/tcp/0",
			"-peer", server, "-peer", dead, "-rendezvous", "bootstrap refused, one answers")
		b.Ready(t)
		e := b.Wait(t, event.Info, e2e.Code(event.BootstrapConnected), 30*time.Second)
		t.Logf("b: %s", e.Text)
		// Connected to 1 of 2: the server at its address; not reached: the
		// dead peer, at its address, refused (nothing listening).
		serverAddr, _, _ := strings.Cut(server, "/p2p/")
		want := []event.BootstrapPeer{
			{Peer: serverID, Addr: serverAddr, Reached: true},
			{Peer: deadID.String(), Addr: closed.String(), Why: event.WhyRefused},
		}
		if e.Count != 1 || e.Total != 2 || !sameDials(e.Bootstrap, want) {
			t.Errorf("b: %+v, want 1 of 2 with bootstrap %+v", e, want)
		}
		checkPlainWords(t, "b", e.Text)
		checkNamed(t, "b", e.Text, event.ShortIDString(serverID), serverAddr, event.ShortID(deadID), closed.String())
	})
}

// TestE2EStaleRecord: a peer advertised at the rendezvous and was killed
// (kill -9), so its record outlives it at the server. A newcomer that finds
// it is told once, in plain words, that it could not reach it and why; it
// does not hang on it, and meets and chats with a live peer.
func TestE2EStaleRecord(t *testing.T) {
	t.Parallel()
	_, server := startServer(t)
	const rendezvous = "stale record"
	gone := startPeer(t, "gone", server, rendezvous)
	goneID := gone.Ready(t).ID
	gone.Wait(t, event.Info, e2e.Code(event.Advertising), 30*time.Second)
	// "advertising" means the record was sent, not that the server has
	// read it: killed at once, the peer's connection is reset and the
	// server may never read it. A DHT client asks the server until it
	// lists the peer.
	h, _ := newClient(t, server)
	probe, err := dht.New(h, dht.Mode(dht.ModeClient))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = probe.Close() })
	rd := drouting.NewRoutingDiscovery(probe)
	for deadline := time.Now().Add(30 * time.Second); ; {
		listed := false
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if ch, err := rd.FindPeers(ctx, rendezvous); err == nil {
			for ai := range ch {
				listed = listed || ai.ID.String() == goneID
			}
		}
		cancel()
		if listed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server does not list the peer at the rendezvous 30 s after it advertised")
		}
		time.Sleep(100 * time.Millisecond)
	}
	gone.Signal(t, syscall.SIGKILL)
	gone.WaitExit(t, exitTimeout)

	c := startPeer(t, "c", server, rendezvous)
	cID := c.Ready(t).ID
	e := c.Wait(t, event.Info, e2e.Peer(goneID), 30*time.Second)
	t.Logf("c: %s", e.Text)
	// Found at the rendezvous but could not reach it: refused (nothing
	// listening).
	if e.Code != event.PeerUnreachable || e.Why != event.WhyRefused {
		t.Errorf("c: %+v, want %q, %q", e, event.PeerUnreachable, event.WhyRefused)
	}
	checkPlainWords(t, "c", e.Text)
	checkNamed(t, "c", e.Text, event.ShortIDString(goneID))

	d := startPeer(t, "d", server, rendezvous)
	dID := d.Ready(t).ID
	meet(t, c, d, cID, dID)
	chatBothWays(t, c, d, cID, dID, "past a stale record")
	// c searches the rendezvous again within a second or two of its start,
	// and finds the stale record again: it must not say so twice.
	time.Sleep(3 * time.Second)
	if n := len(c.All(event.Info, e2e.Peer(goneID))); n != 1 {
		t.Errorf("c: told %d times about the stale record, want once", n)
	}
	for _, p := range []*e2e.Proc{c, d} {
		p.NoEvent(t, 0, event.Info, func(e e2e.Event) bool {
			return e.Code == event.PeerUnreachable && e.Peer != goneID
		}, "only the gone peer is unreachable")
	}
	leaveByEndOfInput(t, c, d, cID)
}
