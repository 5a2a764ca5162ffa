package room

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// A pinger checks that one peer answers libp2p ping, for a session's
// liveness (see session.watchLiveness), over one ping stream that it keeps
// between checks. go-libp2p's ping.Ping opens a stream for every call: a
// yamux stream, the protocol's negotiation, a goroutine and a seeded
// random source on our side and a handler with its goroutine and timer on
// the peer's, which cost more than the ping itself, every livenessInterval
// for every session, and were a twentieth of the CPU of a room of 50.
//
// A stream on a relayed connection is not kept (see checkBy).
//
// The peer's handler closes a ping stream after 10 s without a ping, and
// any after 30 s: a check that fails on a stream kept from before is tried
// once more on a new one before it counts as a failure.
//
// Only the session's liveness goroutine calls check.
type pinger struct {
	host host.Host
	st   network.Stream // nil before the first check and after a failure
	stop func() bool    // unregisters st's reset at the session's end
	out  [ping.PingSize]byte
	in   [ping.PingSize]byte
}

func newPinger(h host.Host) *pinger { return &pinger{host: h} }

// check pings p once, within livenessTimeout. ctx is the session's: when it
// ends, the stream is reset.
func (pg *pinger) check(ctx context.Context, p peer.ID) error {
	if !answersPing(pg.host, p) {
		return errNoPing
	}
	return pg.checkBy(ctx, p, time.Now().Add(livenessTimeout))
}

// checkBy is check with its deadline: a second try on a new stream shares
// the first one's time, so that a peer that vanished is still noticed
// within livenessFailures*livenessTimeout.
func (pg *pinger) checkBy(ctx context.Context, p peer.ID, deadline time.Time) error {
	kept := pg.st != nil
	if !kept {
		openCtx, cancel := context.WithDeadline(network.WithAllowLimitedConn(ctx, "ping"), deadline)
		st, err := pg.host.NewStream(openCtx, p, ping.ID)
		cancel()
		if err != nil {
			return err
		}
		if err := st.Scope().SetService(ping.ServiceName); err != nil {
			_ = st.Reset()
			return err
		}
		pg.st, pg.stop = st, context.AfterFunc(ctx, func() { _ = st.Reset() })
	}
	start := time.Now()
	err := pg.roundTrip(deadline)
	if err == nil {
		// As ping.Ping does: /conns and /ping show the peerstore's figure.
		pg.host.Peerstore().RecordLatency(p, time.Since(start))
		if pg.st.Conn().Stat().Limited {
			// Not kept on a relayed connection: a relay bounds what it
			// carries, and once the chat has moved to a direct connection
			// the next check should go there too (NewStream prefers it).
			pg.drop()
		}
		return nil
	}
	pg.drop()
	if kept && ctx.Err() == nil && time.Now().Before(deadline) {
		return pg.checkBy(ctx, p, deadline)
	}
	return err
}

// roundTrip sends 32 random bytes on the stream and reads them back.
func (pg *pinger) roundTrip(deadline time.Time) error {
	if err := pg.st.SetDeadline(deadline); err != nil {
		return err
	}
	_, _ = rand.Read(pg.out[:])
	if _, err := pg.st.Write(pg.out[:]); err != nil {
		return err
	}
	if _, err := io.ReadFull(pg.st, pg.in[:]); err != nil {
		return err
	}
	if !bytes.Equal(pg.out[:], pg.in[:]) {
		return fmt.Errorf("ping: the peer answered other bytes than were sent")
	}
	return nil
}

// drop resets the stream, for the next check to open another.
func (pg *pinger) drop() {
	pg.stop()
	_ = pg.st.Reset()
	pg.st, pg.stop = nil, nil
}

// answersPing reports whether p may answer libp2p ping: only a peer that
// identify has described, without a ping handler, has none; before identify
// completes its protocols are simply unknown.
func answersPing(h host.Host, p peer.ID) bool {
	known, err := h.Peerstore().GetProtocols(p)
	return err != nil || len(known) == 0 || slices.Contains(known, ping.ID)
}
