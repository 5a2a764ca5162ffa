package webui

import (
	"slices"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// TestBrowserAddrs: /addrs gives the page only what a browser can dial
// directly and check: WebTransport and WebRTC-direct with their
// certificate hashes, never a relayed address.
func TestBrowserAddrs(t *testing.T) {
	const (
		id    = "12D3KooWSelf"
		hash  = "/certhash/uEiAsGPzpiPGQzSlVHRXrUCT5EkTV7YFrV4VZ3hpEKTd_zg"
		relay = "/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
	)
	for _, c := range []struct {
		addr string
		keep bool
	}{
		{"/ip4/127.0.0.1/udp/4001/quic-v1/webtransport" + hash, true},
		{"/ip4/127.0.0.1/udp/4001/quic-v1/webtransport" + hash + hash, true}, // both certificates while one rotates
		{"/ip6/::1/udp/4001/quic-v1/webtransport" + hash, true},
		{"/ip4/127.0.0.1/udp/4002/webrtc-direct" + hash, true},
		{"/ip4/127.0.0.1/udp/4001/quic-v1/webtransport", false}, // no hash: the browser cannot check the peer
		{"/ip4/127.0.0.1/udp/4002/webrtc-direct", false},
		{"/ip4/127.0.0.1/tcp/4001", false},
		{"/ip4/127.0.0.1/udp/4001/quic-v1", false},
		{"/ip4/127.0.0.1/tcp/4001/ws", false},
		{"/ip4/1.2.3.4/udp/4001/quic-v1/webtransport" + hash + relay, false},
		{"/ip4/1.2.3.4/udp/4002/webrtc-direct" + hash + relay, false},
		{"/ip4/1.2.3.4/tcp/4001" + relay, false},
		{"/ip4/1.2.3.4/tcp/4001" + relay + "/webrtc", false}, // browser to browser, through a relay
	} {
		got := BrowserAddrs([]ma.Multiaddr{ma.StringCast(c.addr)}, id)
		var want []string
		if c.keep {
			want = []string{c.addr + "/p2p/" + id}
		}
		if !slices.Equal(got, want) {
			t.Errorf("BrowserAddrs(%s) = %q, want %q", c.addr, got, want)
		}
	}
}
