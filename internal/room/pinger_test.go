package room

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// pingPair starts two hosts on loopback, b counting the ping streams it is
// opened and closing each after closeAfter pings (0: never), as go-libp2p's
// handler closes one after 30 s; a is connected to b.
func pingPair(t *testing.T, closeAfter int) (a, b host.Host, streams *atomic.Int32) {
	t.Helper()
	newHost := func() host.Host {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		return h
	}
	a, b = newHost(), newHost()
	streams = new(atomic.Int32)
	b.SetStreamHandler(ping.ID, func(s network.Stream) {
		streams.Add(1)
		defer s.Close()
		buf := make([]byte, ping.PingSize)
		for n := 0; closeAfter == 0 || n < closeAfter; n++ {
			if _, err := io.ReadFull(s, buf); err != nil {
				return
			}
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	})
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return a, b, streams
}

// TestPingerKeepsItsStream: a session's liveness checks go over one ping
// stream, not a stream each.
func TestPingerKeepsItsStream(t *testing.T) {
	needHosts(t)
	a, b, streams := pingPair(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	pg := newPinger(a)
	for i := range 5 {
		if err := pg.check(ctx, b.ID()); err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
	}
	if n := streams.Load(); n != 1 {
		t.Errorf("5 checks opened %d ping streams, want 1", n)
	}
	if a.Peerstore().LatencyEWMA(b.ID()) <= 0 {
		t.Error("no round-trip time recorded for /ping and /conns")
	}
	// The session's end resets the stream.
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for len(streamsOf(a, b.ID(), ping.ID)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the ping stream outlived the session")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPingerReopensAClosedStream: a peer that closed our ping stream (its
// handler does after 30 s) still passes the next check, on a new stream.
func TestPingerReopensAClosedStream(t *testing.T) {
	needHosts(t)
	a, b, streams := pingPair(t, 2)
	pg := newPinger(a)
	for i := range 5 {
		if err := pg.check(context.Background(), b.ID()); err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
	}
	if n := streams.Load(); n != 3 {
		t.Errorf("5 checks, the peer closing after 2 pings, opened %d ping streams, want 3", n)
	}
}

// TestPingerFailsInTime: a peer that stops answering fails the check within
// livenessTimeout, the retry on a new stream included.
func TestPingerFailsInTime(t *testing.T) {
	needHosts(t)
	a, b, _ := pingPair(t, 0)
	pg := newPinger(a)
	if err := pg.check(context.Background(), b.ID()); err != nil {
		t.Fatal(err)
	}
	b.SetStreamHandler(ping.ID, func(s network.Stream) {}) // takes new streams, answers nothing
	for _, s := range streamsOf(b, a.ID(), ping.ID) {
		_ = s.Reset()
	}
	start := time.Now()
	if err := pg.check(context.Background(), b.ID()); err == nil {
		t.Fatal("a peer that does not answer passed the check")
	}
	if d := time.Since(start); d > livenessTimeout+time.Second {
		t.Errorf("the check failed after %v, want within about %v", d, livenessTimeout)
	}
}

// streamsOf lists h's streams of the protocol proto to p.
func streamsOf(h host.Host, p peer.ID, proto string) []network.Stream {
	var out []network.Stream
	for _, c := range h.Network().ConnsToPeer(p) {
		for _, s := range c.GetStreams() {
			if string(s.Protocol()) == proto {
				out = append(out, s)
			}
		}
	}
	return out
}
