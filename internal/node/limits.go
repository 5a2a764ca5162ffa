package node

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

const (
	// MaxChatStreamsPerPeer bounds the chat streams one peer may have open
	// with us in each direction. Two is what a simultaneous dial needs;
	// everything past it is refused by the resource manager.
	MaxChatStreamsPerPeer = 2
	// maxConnsPerPeer bounds one peer's connections (TCP, QUIC, relayed...).
	maxConnsPerPeer = 8
)

// newResourceManager configures libp2p's resource manager on purpose rather
// than leaving chat streams to the general defaults: a peer gets at most a
// couple of chat streams and a few connections, so one hostile peer cannot
// crowd out the room.
func newResourceManager(chat []protocol.ID) (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	for _, pid := range chat {
		limits.AddProtocolPeerLimit(pid,
			rcmgr.BaseLimit{
				StreamsInbound:  MaxChatStreamsPerPeer,
				StreamsOutbound: MaxChatStreamsPerPeer,
				Streams:         2 * MaxChatStreamsPerPeer,
				Memory:          4 << 20,
			},
			rcmgr.BaseLimitIncrease{})
		limits.AddProtocolLimit(pid,
			rcmgr.BaseLimit{StreamsInbound: 512, StreamsOutbound: 512, Streams: 1024, Memory: 64 << 20},
			rcmgr.BaseLimitIncrease{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512, Memory: 64 << 20})
	}
	perPeer := rcmgr.PartialLimitConfig{
		PeerDefault: rcmgr.ResourceLimits{
			Conns:         maxConnsPerPeer,
			ConnsInbound:  maxConnsPerPeer / 2,
			ConnsOutbound: maxConnsPerPeer / 2,
		},
	}
	// Without metrics: by default the resource manager traces every
	// reservation (each stream, connection and buffer) into Prometheus
	// gauges that nothing here reads, stamping each event with a formatted
	// time; that was 4 % of the CPU of a room of 30 from start to exit.
	// The host's own metrics are off too (libp2p.DisableMetrics, in New).
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(perPeer.Build(limits.AutoScale())), rcmgr.WithMetricsDisabled())
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return rm, nil
}
