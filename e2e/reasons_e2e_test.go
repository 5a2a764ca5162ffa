//go:build linux

package main

// End-to-end tests of what the user is told when peers cannot meet: a
// bootstrap peer that refuses, and a record at the rendezvous that outlived
// its peer. Loopback only, like the rest of the end-to-end tests.

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
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

// TestE2EBootstrapRefused: a bootstrap peer where nothing listens is named
// with its address and "refused (nothing listening)", in one line; beside
// one that answers, the progress line names both.
func TestE2EBootstrapRefused(t *testing.T) {
	t.Parallel()
	closed := closedLoopbackAddr(t)
	deadID := newTestPeerID(t)
	dead := fmt.Sprintf("%s/p2p/%s", closed, deadID)

	t.Run("alone", func(t *testing.T) {
		a := startProc(t, "a", "-json", "-mdns=false", "-listen", "/ip4/127.0.0.1/tcp/0",
			"-peer", dead, "-rendezvous", "bootstrap refused")
		a.ready(t)
		e := a.waitEvent(t, EventError, errorContains("no bootstrap peer reachable"), 30*time.Second)
		t.Logf("a: %s", e.Error)
		want := fmt.Sprintf("no bootstrap peer reachable: %s (%s): refused (nothing listening); only peers that dial us can join",
			shortID(deadID), closed)
		if !strings.HasPrefix(e.Error, want) {
			t.Errorf("a: %q, want it to start %q", e.Error, want)
		}
		checkPlainWords(t, "a", e.Error)
	})

	t.Run("beside one that answers", func(t *testing.T) {
		s, server := startServer(t)
		serverID := s.all(EventReady, nil)[0].ID
		b := startProc(t, "b", "-json", "-mdns=false", "-listen", "/ip4/127.0.0.1/tcp/0",
			"-peer", server, "-peer", dead, "-rendezvous", "bootstrap refused, one answers")
		b.ready(t)
		e := b.waitEvent(t, EventInfo, textContains("bootstrap peers"), 30*time.Second)
		t.Logf("b: %s", e.Text)
		serverAddr, _, _ := strings.Cut(server, "/p2p/")
		want := fmt.Sprintf("connected to 1 of 2 bootstrap peers: %s (%s); not reached: %s (%s): refused (nothing listening)",
			serverID[len(serverID)-8:], serverAddr, shortID(deadID), closed)
		if e.Text != want {
			t.Errorf("b: %q, want %q", e.Text, want)
		}
		checkPlainWords(t, "b", e.Text)
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
	goneID := gone.ready(t).ID
	gone.waitEvent(t, EventInfo, textContains("advertising at rendezvous"), 30*time.Second)
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
	gone.signal(t, syscall.SIGKILL)
	gone.waitExit(t, exitTimeout)

	c := startPeer(t, "c", server, rendezvous)
	cID := c.ready(t).ID
	e := c.waitEvent(t, EventInfo, byPeer(goneID), 30*time.Second)
	t.Logf("c: %s", e.Text)
	want := fmt.Sprintf("found %s at the rendezvous but could not reach it (its record may be stale, "+
		"or it is offline or behind NAT without a relay): refused (nothing listening)", goneID[len(goneID)-8:])
	if e.Text != want {
		t.Errorf("c: %q, want %q", e.Text, want)
	}
	checkPlainWords(t, "c", e.Text)

	d := startPeer(t, "d", server, rendezvous)
	dID := d.ready(t).ID
	meet(t, c, d, cID, dID)
	chatBothWays(t, c, d, cID, dID, "past a stale record")
	// c searches the rendezvous again within a second or two of its start,
	// and finds the stale record again: it must not say so twice.
	time.Sleep(3 * time.Second)
	if n := len(c.all(EventInfo, byPeer(goneID))); n != 1 {
		t.Errorf("c: told %d times about the stale record, want once", n)
	}
	for _, p := range []*proc{c, d} {
		noEvents(t, p, EventInfo, func(e Event) bool {
			return strings.Contains(e.Text, "could not reach") && e.Peer != goneID
		}, "only the gone peer is unreachable")
	}
	leaveByEndOfInput(t, c, d, cID)
}
