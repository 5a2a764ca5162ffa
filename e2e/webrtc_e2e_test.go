//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pwebrtc "github.com/libp2p/go-libp2p/p2p/transport/webrtc"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/webui"
)

// webrtcPeerEnv, set to the URL of a binary's page, makes the test binary a
// WebRTC-direct peer of that binary's room instead of running the tests
// (see TestMain and webrtcPeerMain).
const webrtcPeerEnv = "RENDEZVOUS_CHAT_WEBRTC_PEER"

// TestE2EWebRTCDirect: a peer whose only transport is WebRTC-direct takes
// the address from the binary's /addrs, as the page does, dials it, and
// chats with the binary on the room's topic, a line each way.
//
// The page's own WebRTC-direct path cannot run here: in a namespace with
// only loopback, Chromium gathers no ICE candidate (it leaves loopback
// out), so TestE2EWebPage always connects over WebTransport. This test
// covers the binary's side of WebRTC-direct with go-libp2p's dialer
// instead, which includes loopback candidates.
//
// The peer is this test binary again, started in the same namespace: pion,
// under go-libp2p's WebRTC transport, opens an mDNS socket on every
// interface it sees, so the dialer must see only loopback, and a network
// namespace belongs to a thread, not to a process's goroutines.
func TestE2EWebRTCDirect(t *testing.T) {
	bin := e2e.Binary(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ns := newNetns(t)
	inNS := func(name string, args ...string) *e2e.Proc {
		return e2e.StartCmd(t, name, "ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	}
	server := inNS("server", "-server", "-json", "-listen", "/ip4/127.0.0.1/tcp/0")
	sr := server.Ready(t)
	a := inNS("a", "-json", "-mdns=false", "-peer", sr.Addrs[0], "-listen", "/ip4/127.0.0.1/tcp/0",
		"-rendezvous", "webrtc room", "-nick", "alice", "-web", "127.0.0.1:8080")
	aID := a.Ready(t).ID
	url := a.Wait(t, event.Info, e2e.Code(event.WebServing), startTimeout).Addr

	w := e2e.StartWith(t, "webrtc", e2e.Options{Path: "ip", Env: []string{webrtcPeerEnv + "=" + url}},
		"netns", "exec", ns, self)
	wr := w.Ready(t)
	for _, addr := range wr.Addrs {
		if _, err := ma.StringCast(addr).ValueForProtocol(ma.P_WEBRTC_DIRECT); err != nil {
			t.Errorf("the WebRTC-direct peer is connected to the binary over %s", addr)
		}
	}

	// The binary has the peer's subscription: until then, a line the peer
	// publishes can go to nobody (the pitfall the issue notes for the page),
	// and go-libp2p-pubsub does not tell the publisher when its stream is
	// open; the binary's joined event does.
	j := a.Wait(t, event.Joined, e2e.Peer(wr.ID), meetTimeout)
	if j.Via != event.ViaTopic {
		t.Errorf("the WebRTC-direct peer joined %q, want via the topic", j.Via)
	}
	w.Send(t, "hi over webrtc-direct")
	e := a.Wait(t, event.Message, e2e.From(wr.ID, "hi over webrtc-direct"), eventTimeout)
	if e.Via != event.ViaTopic {
		t.Errorf("the WebRTC-direct peer's line came %q, want via the topic", e.Via)
	}
	a.Send(t, "hello, webrtc-direct peer")
	w.Wait(t, event.Message, e2e.From(aID, "hello, webrtc-direct peer"), eventTimeout)
}

// webrtcPeerMain is the WebRTC-direct peer of TestE2EWebRTCDirect: it
// reads the binary's /addrs at pageURL, dials its WebRTC-direct address
// with a host that has no other transport, and joins the room's topic
// (GossipSub, StrictSign, raw UTF-8 lines, as the page does). It prints JSON
// events, as the binary does, so that the harness reads it: ready (its ID,
// and the addresses it is connected to the binary on) once the binary is a
// subscriber of the topic, then every line from another peer. Each line of
// stdin is published; the end of stdin ends it.
func webrtcPeerMain(pageURL string) int {
	if err := webrtcPeer(pageURL); err != nil {
		fmt.Fprintln(os.Stderr, "webrtc-direct peer:", err)
		return 1
	}
	return 0
}

func webrtcPeer(pageURL string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Get(strings.TrimSuffix(pageURL, "/") + "/addrs")
	if err != nil {
		return err
	}
	var info webui.Info
	err = json.NewDecoder(res.Body).Decode(&info)
	res.Body.Close()
	if err != nil {
		return fmt.Errorf("GET /addrs: %w", err)
	}
	var target *peer.AddrInfo
	for _, s := range info.Addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("/addrs: %w", err)
		}
		if _, err := a.ValueForProtocol(ma.P_WEBRTC_DIRECT); err == nil {
			if target, err = peer.AddrInfoFromP2pAddr(a); err != nil {
				return fmt.Errorf("/addrs: %w", err)
			}
			break
		}
	}
	if target == nil {
		return fmt.Errorf("/addrs has no WebRTC-direct address: %q", info.Addrs)
	}

	// WebRTC-direct is the only transport (no relay either), so whatever
	// connects this host to the binary is WebRTC-direct. It listens on
	// nothing: the page cannot listen either.
	h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.Transport(libp2pwebrtc.New),
		libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		return err
	}
	defer h.Close()
	dialCtx, stop := context.WithTimeout(ctx, 20*time.Second)
	err = h.Connect(dialCtx, *target)
	stop()
	if err != nil {
		return fmt.Errorf("dial %s: %w", target, err)
	}

	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageSignaturePolicy(pubsub.StrictSign))
	if err != nil {
		return err
	}
	topic, err := ps.Join(info.Topic)
	if err != nil {
		return err
	}
	sub, err := topic.Subscribe()
	if err != nil {
		return err
	}
	// A line published before the binary's subscription has arrived would
	// go to nobody: ready waits for it (and the test, for the binary to
	// have ours).
	for deadline := time.Now().Add(20 * time.Second); !slices.Contains(topic.ListPeers(), target.ID); {
		if time.Now().After(deadline) {
			return fmt.Errorf("the binary never subscribed to %q with us", info.Topic)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var mu sync.Mutex
	out := json.NewEncoder(os.Stdout)
	emit := func(e event.Event) {
		mu.Lock()
		defer mu.Unlock()
		e.Time = time.Now()
		_ = out.Encode(e)
	}
	var via []string
	for _, c := range h.Network().ConnsToPeer(target.ID) {
		via = append(via, c.RemoteMultiaddr().String())
	}
	emit(event.Event{Kind: event.Ready, ID: h.ID().String(), Addrs: via})

	go func() {
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if m.GetFrom() != h.ID() {
				emit(event.Event{Kind: event.Message, Peer: m.GetFrom().String(), Text: string(m.Data), Via: event.ViaTopic})
			}
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if err := topic.Publish(ctx, in.Bytes()); err != nil {
			return err
		}
	}
	return in.Err()
}
