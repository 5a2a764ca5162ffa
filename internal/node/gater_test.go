package node

import (
	"net"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

func mustCIDR(t *testing.T, s string) net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return *n
}

func TestAddrGater(t *testing.T) {
	if NewGater(nil, nil) != nil {
		t.Error("no rules should mean no gater")
	}
	for _, tc := range []struct {
		name        string
		allow, deny []string
		accepted    []string
		refused     []string
	}{
		{
			name:     "deny",
			deny:     []string{"10.0.0.0/8", "fd00::/8"},
			accepted: []string{"/ip4/127.0.0.1/tcp/1", "/ip4/192.168.1.2/udp/1/quic-v1", "/ip6/::1/tcp/1"},
			refused:  []string{"/ip4/10.1.2.3/tcp/1", "/ip6/fd00::1/tcp/1", "/ip4/10.0.0.1/tcp/1/p2p/12D3KooWJXdGwzsv2LosFoqQDZaQc5jFwfrAjkXwQJ2gF3xQwWbS/p2p-circuit"},
		},
		{
			name:     "allow",
			allow:    []string{"192.168.1.0/24"},
			accepted: []string{"/ip4/192.168.1.7/tcp/1"},
			refused:  []string{"/ip4/192.168.2.7/tcp/1", "/ip4/127.0.0.1/tcp/1", "/dns4/example.com/tcp/1"},
		},
		{
			// A denied network inside an allowed one stays denied.
			name:     "deny wins over allow",
			allow:    []string{"127.0.0.0/8"},
			deny:     []string{"127.0.0.2/32"},
			accepted: []string{"/ip4/127.0.0.1/tcp/1"},
			refused:  []string{"/ip4/127.0.0.2/tcp/1", "/ip4/192.0.2.1/tcp/1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var allow, deny []net.IPNet
			for _, s := range tc.allow {
				allow = append(allow, mustCIDR(t, s))
			}
			for _, s := range tc.deny {
				deny = append(deny, mustCIDR(t, s))
			}
			g := NewGater(allow, deny)
			var all []ma.Multiaddr
			for _, s := range tc.accepted {
				a := ma.StringCast(s)
				all = append(all, a)
				if !g.InterceptAddrDial("", a) {
					t.Errorf("%s refused", s)
				}
			}
			for _, s := range tc.refused {
				a := ma.StringCast(s)
				all = append(all, a)
				if g.InterceptAddrDial("", a) {
					t.Errorf("%s accepted", s)
				}
			}
			if got := g.Denied(); got != int64(len(tc.refused)) {
				t.Errorf("denied count %d, want %d", got, len(tc.refused))
			}
			if kept := g.FilterAddrs(all); len(kept) != len(tc.accepted) {
				t.Errorf("FilterAddrs kept %v, want the %d accepted", kept, len(tc.accepted))
			}
		})
	}
}
