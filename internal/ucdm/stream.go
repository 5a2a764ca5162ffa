package ucdm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// StreamTimeout bounds one exchange on a stream, in both directions: the
// sender's write and read, and the receiver's read, callback and write. The
// js-peer allows 5 seconds for each side; a little more here keeps slow relayed
// links working while a stalled peer still costs one stream for a bounded time.
const StreamTimeout = 10 * time.Second

// streamTimeout is StreamTimeout, a variable only so that tests can shorten
// it; nothing else changes it. Handlers read it when they are made and Send
// when it is called, so a test changes it before either.
var streamTimeout = StreamTimeout

// ErrStatus marks a response whose status is not OK. Send returns the
// response with it, so the caller can still show the peer's status text.
var ErrStatus = errors.New("direct message not accepted")

// ErrEmpty is returned by Send for an empty text, which the js-peer refuses
// to send too ("Message cannot be empty").
var ErrEmpty = errors.New("direct message is empty")

// Send delivers text to p as one direct message and returns p's response.
//
// It opens a new stream, over a relayed (limited) connection if that is all
// there is, because a browser peer is often reachable only through a relay
// and a direct message is small. The exchange ends when ctx is done or after
// StreamTimeout, whichever comes first; the stream is then reset, so nothing
// is left behind.
//
// The error wraps ErrStatus when p answered with a status other than OK (the
// response is returned too), ErrMalformed or ErrTooLarge when p's answer broke
// the format, and ErrEmpty or ErrTooLarge when text cannot be sent.
func Send(ctx context.Context, h host.Host, p peer.ID, text string, clientVersion string) (Response, error) {
	if text == "" {
		return Response{}, ErrEmpty
	}
	req := Request{
		Metadata: &Metadata{ClientVersion: clientVersion, Timestamp: time.Now().UnixMilli()},
		Content:  text,
		Type:     MIMETextPlain,
	}
	msg, err := req.Marshal()
	if err != nil {
		return Response{}, fmt.Errorf("direct message to %s: %w", p, err)
	}

	ctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "direct message"), p, ProtocolID)
	if err != nil {
		return Response{}, fmt.Errorf("direct message to %s: opening stream: %w", p, err)
	}
	resp, err := exchange(ctx, s, msg)
	if err != nil {
		_ = s.Reset()
		if cause := ctxCause(ctx); cause != nil {
			// The deadline or the reset is what made the exchange fail;
			// say why it happened.
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		return Response{}, fmt.Errorf("direct message to %s: %w", p, err)
	}
	_ = s.Close()
	if resp.Metadata == nil {
		// The js-peer refuses such a response too ("No metadata in
		// response"), so every implementation agrees it is broken.
		return resp, fmt.Errorf("direct message to %s: %w: response has no metadata", p, ErrMalformed)
	}
	if resp.Status != StatusOK {
		text := ""
		if resp.StatusText != "" {
			text = fmt.Sprintf(" (%q)", resp.StatusText)
		}
		return resp, fmt.Errorf("direct message to %s: %w: status %s%s", p, ErrStatus, resp.Status, text)
	}
	return resp, nil
}

// ctxCause returns why ctx is done, or is about to be: the stream deadline
// is the context's, and the stream can notice it a moment before the context
// does.
func ctxCause(ctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// exchange writes one framed request on s and reads one response, within the
// deadline of ctx. When ctx is canceled before its deadline, the stream is
// reset so that a blocked read returns at once.
func exchange(ctx context.Context, s network.Stream, msg []byte) (Response, error) {
	deadline, _ := ctx.Deadline() // always set: Send adds a timeout
	if err := s.SetDeadline(deadline); err != nil {
		return Response{}, fmt.Errorf("setting stream deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if _, err := s.Write(AppendFrame(nil, msg)); err != nil {
		return Response{}, fmt.Errorf("writing request: %w", err)
	}
	// Half-closing tells the receiver that no second request follows; the
	// js-peer reads only one, and so does Handler. Its error is not checked:
	// it fails when the receiver has already reset the stream, which the
	// read below reports, and the request is out anyway.
	_ = s.CloseWrite()
	resp, err := ReadResponse(s)
	if err == io.EOF {
		return Response{}, fmt.Errorf("reading response: the peer closed the stream without answering: %w", err)
	}
	if err != nil {
		return Response{}, fmt.Errorf("reading response: %w", err)
	}
	return resp, nil
}

// OK returns the response the reference receiver always sends: status OK,
// with metadata.
func OK(clientVersion string) Response {
	return Response{
		Metadata: &Metadata{ClientVersion: clientVersion, Timestamp: time.Now().UnixMilli()},
		Status:   StatusOK,
	}
}

// Refuse returns a response with status ERROR and a reason, for an
// application that turns a well-formed message down (for example one from a
// blocked peer). The js-peer shows such a refusal as an error.
func Refuse(clientVersion, reason string) Response {
	return Response{
		Metadata:   &Metadata{ClientVersion: clientVersion, Timestamp: time.Now().UnixMilli()},
		Status:     StatusError,
		StatusText: reason,
	}
}

// Handler returns a stream handler for ProtocolID that reads one request,
// passes it to fn, and writes fn's response. See HandlerWithErrors.
func Handler(fn func(from peer.ID, req Request) Response) network.StreamHandler {
	return HandlerWithErrors(fn, nil)
}

// HandlerWithErrors is Handler that also reports each failed exchange to
// onErr (when it is not nil), so that the application can show an error event
// for a malformed or oversized message. The error wraps ErrMalformed or
// ErrTooLarge when the peer broke the format.
//
// The request is read under a deadline of StreamTimeout, which also covers
// fn and the response. On a malformed or oversized request the stream is
// reset, as the js-peer does, and fn is not called. A nil fn answers OK. A
// response without metadata gets metadata with the current time, because
// the js-peer refuses a response without it. The handler runs on the
// goroutine libp2p gives it and starts none.
func HandlerWithErrors(fn func(from peer.ID, req Request) Response, onErr func(from peer.ID, err error)) network.StreamHandler {
	timeout := streamTimeout
	return func(s network.Stream) {
		from := s.Conn().RemotePeer()
		if err := serve(s, fn, timeout); err != nil {
			_ = s.Reset()
			if onErr != nil {
				onErr(from, fmt.Errorf("direct message from %s: %w", from, err))
			}
			return
		}
		_ = s.Close()
	}
}

func serve(s network.Stream, fn func(from peer.ID, req Request) Response, timeout time.Duration) error {
	if err := s.SetDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("setting stream deadline: %w", err)
	}
	req, err := ReadRequest(s)
	if err != nil {
		return fmt.Errorf("reading request: %w", err)
	}
	var resp Response
	if fn == nil {
		resp = OK("")
	} else {
		resp = fn(s.Conn().RemotePeer(), req)
	}
	if resp.Metadata == nil {
		resp.Metadata = &Metadata{Timestamp: time.Now().UnixMilli()}
	}
	if err := WriteResponse(s, resp); err != nil {
		return err
	}
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("closing the stream for writing: %w", err)
	}
	return nil
}
