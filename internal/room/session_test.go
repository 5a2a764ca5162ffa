package room

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event/eventtest"
	"github.com/rendezvous-chat/rendezvous-chat/internal/wire"
)

// brokenStream is a stream whose writes all fail: the peer's end is gone.
type brokenStream struct {
	network.Stream // nil: calling anything else fails the test with a panic
	conn           brokenConn
}

func (s *brokenStream) Write([]byte) (int, error)        { return 0, errors.New("stream reset") }
func (s *brokenStream) Close() error                     { return nil }
func (s *brokenStream) Reset() error                     { return nil }
func (s *brokenStream) CloseWrite() error                { return nil }
func (s *brokenStream) SetWriteDeadline(time.Time) error { return nil }
func (s *brokenStream) SetDeadline(time.Time) error      { return nil }
func (s *brokenStream) Conn() network.Conn               { return s.conn }
func (s *brokenStream) Protocol() protocol.ID            { return plainProtocol }

type brokenConn struct {
	network.Conn
	peer peer.ID
}

func (c brokenConn) RemotePeer() peer.ID { return c.peer }

// TestPlainLossReported: when writing to a peer on the plain protocol
// fails, every line that no flush had sent is reported lost, not just the
// one being written: the writer buffers many before it flushes.
func TestPlainLossReported(t *testing.T) {
	// Short lines fail at the flush; long ones fill the writer's buffer,
	// so that a write in the middle of the batch fails and the lines
	// after it are never written at all.
	for _, size := range []int{100, 2000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { testPlainLossReported(t, size) })
	}
}

func testPlainLossReported(t *testing.T, size int) {
	events := eventtest.New()
	st := &brokenStream{conn: brokenConn{peer: "plain-peer"}}
	s := newSession(st, wire.Line{}, "inbound", events.Emit, nil, nil, func(*session, endKind, event.Code, endDetail) {})
	const n = 50
	line := strings.Repeat("x", size)
	for i := range n {
		s.outbox.put(&wire.Frame{Type: wire.TypeMsg, ID: fmt.Sprint(i), Text: line})
	}
	s.wg.Add(1)
	go s.writeLoop()
	s.wg.Wait()
	s.discardQueued()
	lost := 0
	for _, e := range events.Snapshot() {
		if e.Code == event.LinesLost {
			lost += e.Count
			if len(e.MsgIDs) != e.Count {
				t.Errorf("%d lines lost but %d IDs named", e.Count, len(e.MsgIDs))
			}
		}
	}
	if lost != n {
		t.Errorf("%d of %d unwritten lines reported lost", lost, n)
	}
}
