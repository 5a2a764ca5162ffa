package ucdm

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// newHost starts a libp2p host that listens on loopback only. The tests dial
// nothing else: every peer address they use comes from such a host.
func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// pair starts two hosts and connects the first to the second.
func pair(t *testing.T) (host.Host, host.Host) {
	t.Helper()
	a, b := newHost(t), newHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// errLog collects what a handler reports, safely across goroutines.
type errLog struct {
	mu   sync.Mutex
	errs []error
	ch   chan error
}

func newErrLog() *errLog { return &errLog{ch: make(chan error, 64)} }

func (l *errLog) report(_ peer.ID, err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
	l.ch <- err
}

func (l *errLog) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-l.ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the handler reported no error")
		return nil
	}
}

func TestSendRoundTrip(t *testing.T) {
	a, b := pair(t)
	got := make(chan Request, 1)
	var from peer.ID
	b.SetStreamHandler(ProtocolID, Handler(func(p peer.ID, req Request) Response {
		from = p
		got <- req
		return OK("test/2")
	}))

	before := time.Now().UnixMilli()
	text := "hello, 世界 ✓"
	resp, err := Send(context.Background(), a, b.ID(), text, "test/1")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != StatusOK || resp.Metadata == nil || resp.Metadata.ClientVersion != "test/2" {
		t.Errorf("response %+v, want OK with client version test/2", resp)
	}
	req := <-got
	if from != a.ID() {
		t.Errorf("handler saw sender %s, want %s", from, a.ID())
	}
	if req.Content != text || req.Type != MIMETextPlain {
		t.Errorf("request %+v, want content %q of type %s", req, text, MIMETextPlain)
	}
	if req.Metadata == nil || req.Metadata.ClientVersion != "test/1" ||
		req.Metadata.Timestamp < before || req.Metadata.Timestamp > time.Now().UnixMilli() {
		t.Errorf("request metadata %+v: want client version test/1 and a timestamp in ms since the epoch", req.Metadata)
	}

	// The longest content allowed goes through too.
	long := strings.Repeat("é", MaxContentBytes/2)
	if _, err := Send(context.Background(), a, b.ID(), long, "test/1"); err != nil {
		t.Fatalf("content of %d bytes: %v", len(long), err)
	}
	if r := <-got; r.Content != long {
		t.Errorf("long content came out %d bytes", len(r.Content))
	}
}

func TestSendRefused(t *testing.T) {
	a, b := pair(t)
	b.SetStreamHandler(ProtocolID, Handler(func(peer.ID, Request) Response {
		return Refuse("test", "you are blocked")
	}))
	resp, err := Send(context.Background(), a, b.ID(), "hi", "test")
	if !errors.Is(err, ErrStatus) {
		t.Fatalf("got %v, want ErrStatus", err)
	}
	if resp.Status != StatusError || resp.StatusText != "you are blocked" {
		t.Errorf("response %+v", resp)
	}
	if !strings.Contains(err.Error(), "ERROR") || !strings.Contains(err.Error(), "you are blocked") {
		t.Errorf("error %q does not say what the peer answered", err)
	}
}

func TestHandlerAddsMetadata(t *testing.T) {
	a, b := pair(t)
	// A nil func answers OK, and metadata is filled in: the js-peer refuses a
	// response without it.
	b.SetStreamHandler(ProtocolID, Handler(nil))
	resp, err := Send(context.Background(), a, b.ID(), "hi", "test")
	if err != nil || resp.Metadata == nil || resp.Metadata.Timestamp == 0 {
		t.Fatalf("got %+v, %v", resp, err)
	}
	b.SetStreamHandler(ProtocolID, Handler(func(peer.ID, Request) Response { return Response{Status: StatusOK} }))
	resp, err = Send(context.Background(), a, b.ID(), "hi", "test")
	if err != nil || resp.Metadata == nil {
		t.Fatalf("got %+v, %v", resp, err)
	}
}

func TestSendRefusesBadText(t *testing.T) {
	a, b := pair(t)
	b.SetStreamHandler(ProtocolID, Handler(nil))
	if _, err := Send(context.Background(), a, b.ID(), "", "test"); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty: got %v", err)
	}
	if _, err := Send(context.Background(), a, b.ID(), strings.Repeat("a", MaxContentBytes+1), "test"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized: got %v", err)
	}
	if _, err := Send(context.Background(), a, b.ID(), "\xff", "test"); !errors.Is(err, ErrMalformed) {
		t.Errorf("invalid UTF-8: got %v", err)
	}
}

// rawExchange opens a stream to the handler, writes raw bytes, optionally
// half-closes, and reads until the handler ends the stream. It returns what
// the handler sent and the error that ended reading.
func rawExchange(t *testing.T, a host.Host, to peer.ID, raw []byte, closeWrite bool) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := a.NewStream(ctx, to, ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Reset() }()
	// The handler must end the exchange well before this deadline.
	_ = s.SetDeadline(time.Now().Add(8 * time.Second))
	if _, err := s.Write(raw); err != nil {
		return nil, err
	}
	if closeWrite {
		_ = s.CloseWrite()
	}
	return io.ReadAll(s)
}

func TestHandlerHostileInput(t *testing.T) {
	a, b := pair(t)
	log := newErrLog()
	var calls atomic.Int32
	b.SetStreamHandler(ProtocolID, HandlerWithErrors(func(peer.ID, Request) Response {
		calls.Add(1)
		return OK("test")
	}, log.report))

	frame := func(body []byte) []byte { return AppendFrame(nil, body) }
	cases := []struct {
		name string
		raw  []byte
		want error
	}{
		{"garbage", []byte("\x07\xff\xfe\xfd\xfc\xfb\xfa\xf9"), ErrMalformed},
		{"huge varint", append(repeatByte(0xff, 10), 0x01), ErrMalformed},
		{"prefix over the limit", binary.AppendUvarint(nil, 1<<40), ErrTooLarge},
		{"prefix just over the limit", binary.AppendUvarint(nil, MaxMessageBytes+1), ErrTooLarge},
		{"truncated frame", append(binary.AppendUvarint(nil, 100), "only a little"...), ErrMalformed},
		{"truncated prefix", []byte{0x80}, ErrMalformed},
		{"bad utf-8", frame([]byte{0x12, 0x01, 0xff}), ErrMalformed},
	}
	for _, tc := range hostileFrames {
		if len(tc.body) <= MaxMessageBytes {
			cases = append(cases, struct {
				name string
				raw  []byte
				want error
			}{"frame: " + tc.name, frame(tc.body), tc.want})
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got, err := rawExchange(t, a, b.ID(), tc.raw, true)
			if len(got) != 0 {
				t.Errorf("the handler answered %x; it must reset without answering", got)
			}
			if err == nil {
				t.Errorf("the stream ended cleanly; want a reset")
			}
			if reported := log.next(t); !errors.Is(reported, tc.want) {
				t.Errorf("handler reported %v, want %v", reported, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the application saw %d hostile requests; it must see none", n)
	}
	// The handler still serves well-formed messages.
	if _, err := Send(context.Background(), a, b.ID(), "still here?", "test"); err != nil {
		t.Fatalf("after hostile input: %v", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the application saw %d requests, want 1", n)
	}
}

func repeatByte(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// shortTimeout shortens the stream deadline for one test. It must run before
// the test makes handlers or sends.
func shortTimeout(t *testing.T, d time.Duration) {
	old := streamTimeout
	streamTimeout = d
	t.Cleanup(func() { streamTimeout = old })
}

func TestHandlerStalledSender(t *testing.T) {
	shortTimeout(t, 500*time.Millisecond)
	a, b := pair(t)
	log := newErrLog()
	b.SetStreamHandler(ProtocolID, HandlerWithErrors(nil, log.report))

	// A length prefix and part of a frame, and then nothing: the handler's
	// deadline must end the stream.
	for _, raw := range [][]byte{
		append(binary.AppendUvarint(nil, 100), "partial"...),
		{0x80},
		nil,
	} {
		start := time.Now()
		got, err := rawExchange(t, a, b.ID(), raw, false)
		if len(got) != 0 || err == nil {
			t.Errorf("%x: got %x, %v; want a reset", raw, got, err)
		}
		if reported := log.next(t); reported == nil {
			t.Error("no error reported")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%x: the handler held the stream for %v", raw, d)
		}
	}
	if _, err := Send(context.Background(), a, b.ID(), "still here?", "test"); err != nil {
		t.Fatalf("after stalled senders: %v", err)
	}
}

func TestSendHostileResponses(t *testing.T) {
	shortTimeout(t, 2*time.Second)
	a, b := pair(t)
	cases := []struct {
		name  string
		reply []byte
		want  error
	}{
		{"garbage", []byte{0x03, 0xff, 0xff, 0xff}, ErrMalformed},
		{"huge prefix", binary.AppendUvarint(nil, 1<<50), ErrTooLarge},
		{"truncated", append(binary.AppendUvarint(nil, 50), 0x0a), ErrMalformed},
		{"no metadata", AppendFrame(nil, []byte{0x10, 0xc8, 0x01}), ErrMalformed},
		{"status UNKNOWN", AppendFrame(nil, []byte{0x0a, 0x00}), ErrStatus},
		{"nothing", nil, io.EOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b.SetStreamHandler(ProtocolID, func(s network.Stream) {
				defer func() { _ = s.Close() }()
				_, _ = ReadFrame(s, MaxMessageBytes)
				_, _ = s.Write(tc.reply)
			})
			start := time.Now()
			_, err := Send(context.Background(), a, b.ID(), "hi", "test")
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestSendStalledReceiver(t *testing.T) {
	a, b := pair(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	b.SetStreamHandler(ProtocolID, func(s network.Stream) {
		// Send a length prefix, then stall until the test ends.
		_, _ = s.Write(binary.AppendUvarint(nil, 20))
		<-release
		_ = s.Reset()
	})

	// The caller's context bounds the exchange.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Send(ctx, a, b.ID(), "hi", "test")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want an error that says the deadline passed", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}

	// So does cancellation before the deadline.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start = time.Now()
	_, err = Send(ctx, a, b.ID(), "hi", "test")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestSendStreamTimeout(t *testing.T) {
	shortTimeout(t, 400*time.Millisecond)
	a, b := pair(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	b.SetStreamHandler(ProtocolID, func(s network.Stream) {
		<-release
		_ = s.Reset()
	})
	// Without a deadline of the caller's, StreamTimeout bounds the exchange.
	start := time.Now()
	if _, err := Send(context.Background(), a, b.ID(), "hi", "test"); err == nil {
		t.Error("a silent receiver gave no error")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}
