package ucdm

import (
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/rendezvous-chat/rendezvous-chat/internal/lenprefix"
)

// ProtocolID is the libp2p protocol of universal-connectivity's direct
// messages (js-peer/src/lib/constants.ts, DIRECT_MESSAGE_PROTOCOL).
const ProtocolID = "/universal-connectivity/dm/1.0.0"

// MIMETextPlain is the only request type the reference peers send and show
// (js-peer/src/lib/constants.ts, MIME_TEXT_PLAIN).
const MIMETextPlain = "text/plain"

// Limits of a direct message. They bound what a peer can make us allocate,
// and they are far above what a chat line needs.
const (
	// MaxContentBytes bounds a request's content, in bytes of UTF-8.
	MaxContentBytes = 64 << 10
	// MaxFieldBytes bounds each short string: a type, a client version, a
	// status text.
	MaxFieldBytes = 1 << 10
	// MaxMessageBytes bounds one frame, the protobuf bytes after the length
	// prefix. It leaves room for a full content, the short strings, their
	// tags, and a little for fields a newer peer may add.
	MaxMessageBytes = MaxContentBytes + 8<<10
)

// Errors that callers tell apart with errors.Is. Each is returned wrapped,
// with what went wrong and where.
var (
	// ErrMalformed marks bytes that are not a valid message: a truncated
	// frame, a bad varint or tag, a field cut short, invalid UTF-8.
	ErrMalformed = errors.New("malformed direct message")
	// ErrTooLarge marks a frame or field over this package's limits.
	ErrTooLarge = errors.New("direct message too large")
)

// Status is the outcome a receiver reports. Its values are the .proto's
// (js-peer/src/lib/protobuf/direct-message.proto, lines 14-18); an unknown
// value is kept as it is, as proto3's open enums require.
type Status int32

// The statuses the reference defines.
const (
	StatusUnknown Status = 0
	StatusOK      Status = 200
	StatusError   Status = 500
)

// String returns the .proto's name of the status, which is what the
// JavaScript peers show in their errors.
func (s Status) String() string {
	switch s {
	case StatusUnknown:
		return "UNKNOWN"
	case StatusOK:
		return "OK"
	case StatusError:
		return "ERROR"
	}
	return fmt.Sprintf("Status(%d)", int32(s))
}

// Metadata describes the sending program and the moment of sending.
type Metadata struct {
	// ClientVersion is the sender's software version; the js-peer sends
	// "0.0.1".
	ClientVersion string
	// Timestamp is when the message was made, in milliseconds since the Unix
	// epoch, because that is what the js-peer sends (Date.now()).
	Timestamp int64
}

// Request is a DirectMessageRequest.
type Request struct {
	// Metadata is nil when the message has none on the wire.
	Metadata *Metadata
	// Content is the message text, at most MaxContentBytes.
	Content string
	// Type is a MIME type; the reference peers use MIMETextPlain.
	Type string
}

// Response is a DirectMessageResponse.
type Response struct {
	// Metadata is nil when the message has none on the wire. The js-peer
	// rejects a response without it, so Handler always sends one.
	Metadata *Metadata
	Status   Status
	// StatusText is an optional explanation. It is sent only when it is not
	// empty: proto3 would allow sending an empty one, but no reader tells
	// the two apart in a way that matters.
	StatusText string
}

// Field numbers, from the .proto.
const (
	fieldMetadata      protowire.Number = 1
	fieldClientVersion protowire.Number = 1
	fieldTimestamp     protowire.Number = 2
	fieldContent       protowire.Number = 2
	fieldType          protowire.Number = 3
	fieldStatus        protowire.Number = 2
	fieldStatusText    protowire.Number = 3
)

// appendMetadata appends m as protons does: each field only when it is not
// its default.
func appendMetadata(b []byte, m Metadata) []byte {
	if m.ClientVersion != "" {
		b = protowire.AppendTag(b, fieldClientVersion, protowire.BytesType)
		b = protowire.AppendString(b, m.ClientVersion)
	}
	if m.Timestamp != 0 {
		b = protowire.AppendTag(b, fieldTimestamp, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.Timestamp))
	}
	return b
}

// appendEmbedded appends metadata as field 1 of an enclosing message.
func appendEmbedded(b []byte, m *Metadata) []byte {
	if m == nil {
		return b
	}
	b = protowire.AppendTag(b, fieldMetadata, protowire.BytesType)
	return protowire.AppendBytes(b, appendMetadata(nil, *m))
}

// checkString enforces UTF-8 and a length limit on a string to be sent, so
// that we never send what we would refuse to read.
func checkString(name, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%w: %s is %d bytes, over the limit of %d", ErrTooLarge, name, len(s), limit)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrMalformed, name)
	}
	return nil
}

func checkMetadata(m *Metadata) error {
	if m == nil {
		return nil
	}
	return checkString("client version", m.ClientVersion, MaxFieldBytes)
}

// Marshal encodes the request's protobuf bytes, without a length prefix, in
// the order and with the omissions of the js-peer's protons encoder.
func (r Request) Marshal() ([]byte, error) {
	if err := checkMetadata(r.Metadata); err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	if err := checkString("content", r.Content, MaxContentBytes); err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	if err := checkString("type", r.Type, MaxFieldBytes); err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	b := appendEmbedded(nil, r.Metadata)
	if r.Content != "" {
		b = protowire.AppendTag(b, fieldContent, protowire.BytesType)
		b = protowire.AppendString(b, r.Content)
	}
	if r.Type != "" {
		b = protowire.AppendTag(b, fieldType, protowire.BytesType)
		b = protowire.AppendString(b, r.Type)
	}
	return b, nil
}

// Marshal encodes the response's protobuf bytes, without a length prefix.
func (r Response) Marshal() ([]byte, error) {
	if err := checkMetadata(r.Metadata); err != nil {
		return nil, fmt.Errorf("encoding response: %w", err)
	}
	if err := checkString("status text", r.StatusText, MaxFieldBytes); err != nil {
		return nil, fmt.Errorf("encoding response: %w", err)
	}
	b := appendEmbedded(nil, r.Metadata)
	if r.Status != StatusUnknown {
		b = protowire.AppendTag(b, fieldStatus, protowire.VarintType)
		// An enum is an int32 on the wire: a negative value is sign-extended
		// to ten bytes, as protons and every other encoder do.
		b = protowire.AppendVarint(b, uint64(int64(r.Status)))
	}
	if r.StatusText != "" {
		b = protowire.AppendTag(b, fieldStatusText, protowire.BytesType)
		b = protowire.AppendString(b, r.StatusText)
	}
	return b, nil
}

// field is one decoded field: its number, and either its varint value or its
// bytes, according to its wire type.
type field struct {
	num   protowire.Number
	typ   protowire.Type
	v     uint64
	bytes []byte
}

// is reports whether f is field num with wire type typ. A known field number
// with another wire type is skipped like an unknown field, as protobuf-go
// does; the js-peer's protons decoder would misread it instead, so no
// reference defines anything better.
func (f field) is(num protowire.Number, typ protowire.Type) bool {
	return f.num == num && f.typ == typ
}

// walk calls fn for each varint or bytes field of b. Fields of the group and
// fixed wire types, which no field of these messages has, are checked to be
// well formed and skipped. A decoding error is returned wrapped in
// ErrMalformed.
func walk(what string, b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %s: tag: %v", ErrMalformed, what, protowire.ParseError(n))
		}
		// ConsumeTag checks only the lower bound of a field number.
		if !num.IsValid() {
			return fmt.Errorf("%w: %s: field number %d out of range", ErrMalformed, what, num)
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.bytes, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: %s: field %d: %v", ErrMalformed, what, num, protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.VarintType && typ != protowire.BytesType {
			continue
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// str turns a bytes field into a string after checking it as checkString
// does.
func str(what, name string, f field, limit int) (string, error) {
	if len(f.bytes) > limit {
		return "", fmt.Errorf("%w: %s: %s is %d bytes, over the limit of %d", ErrTooLarge, what, name, len(f.bytes), limit)
	}
	if !utf8.Valid(f.bytes) {
		return "", fmt.Errorf("%w: %s: %s is not valid UTF-8", ErrMalformed, what, name)
	}
	return string(f.bytes), nil
}

// mergeMetadata decodes b into m. Protobuf merges an embedded message that
// occurs twice, so a second occurrence updates only the fields it carries.
func mergeMetadata(what string, b []byte, m *Metadata) error {
	what += ": metadata"
	return walk(what, b, func(f field) error {
		switch {
		case f.is(fieldClientVersion, protowire.BytesType):
			s, err := str(what, "client version", f, MaxFieldBytes)
			if err != nil {
				return err
			}
			m.ClientVersion = s
		case f.is(fieldTimestamp, protowire.VarintType):
			m.Timestamp = int64(f.v)
		}
		return nil
	})
}

func embedded(what string, f field, m **Metadata) error {
	if *m == nil {
		*m = new(Metadata)
	}
	return mergeMetadata(what, f.bytes, *m)
}

// UnmarshalRequest decodes a request's protobuf bytes (without the length
// prefix). Unknown fields are skipped; the limits of this package apply.
func UnmarshalRequest(b []byte) (Request, error) {
	const what = "request"
	if len(b) > MaxMessageBytes {
		return Request{}, fmt.Errorf("%w: %s is %d bytes, over the limit of %d", ErrTooLarge, what, len(b), MaxMessageBytes)
	}
	var r Request
	err := walk(what, b, func(f field) error {
		var err error
		switch {
		case f.is(fieldMetadata, protowire.BytesType):
			err = embedded(what, f, &r.Metadata)
		case f.is(fieldContent, protowire.BytesType):
			r.Content, err = str(what, "content", f, MaxContentBytes)
		case f.is(fieldType, protowire.BytesType):
			r.Type, err = str(what, "type", f, MaxFieldBytes)
		}
		return err
	})
	if err != nil {
		return Request{}, err
	}
	return r, nil
}

// UnmarshalResponse decodes a response's protobuf bytes (without the length
// prefix). Unknown fields are skipped; the limits of this package apply.
func UnmarshalResponse(b []byte) (Response, error) {
	const what = "response"
	if len(b) > MaxMessageBytes {
		return Response{}, fmt.Errorf("%w: %s is %d bytes, over the limit of %d", ErrTooLarge, what, len(b), MaxMessageBytes)
	}
	var r Response
	err := walk(what, b, func(f field) error {
		var err error
		switch {
		case f.is(fieldMetadata, protowire.BytesType):
			err = embedded(what, f, &r.Metadata)
		case f.is(fieldStatus, protowire.VarintType):
			// An int32 field keeps the low 32 bits of its varint.
			r.Status = Status(int32(f.v))
		case f.is(fieldStatusText, protowire.BytesType):
			r.StatusText, err = str(what, "status text", f, MaxFieldBytes)
		}
		return err
	})
	if err != nil {
		return Response{}, err
	}
	return r, nil
}

// AppendFrame appends msg with its unsigned-varint length prefix, the
// framing of it-length-prefixed and so of it-protobuf-stream.
func AppendFrame(b, msg []byte) []byte { return lenprefix.Append(b, msg) }

// ReadFrame reads one length-prefixed frame of at most limit bytes. A prefix
// over the limit is refused before anything is allocated. A stream that ends
// before the first byte gives io.EOF unwrapped, so that a caller can tell "no
// message at all" from a truncated one.
func ReadFrame(r io.Reader, limit int) ([]byte, error) {
	n, err := lenprefix.ReadLength(r)
	switch {
	case err == io.EOF:
		return nil, io.EOF
	case errors.Is(err, lenprefix.ErrMalformed):
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	case err != nil:
		return nil, err
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("%w: length prefix announces %d bytes, over the limit of %d", ErrTooLarge, n, limit)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: stream ended inside a frame of %d bytes", ErrMalformed, n)
		}
		return nil, fmt.Errorf("reading a frame of %d bytes: %w", n, err)
	}
	return buf, nil
}

// ReadRequest reads one length-prefixed request.
func ReadRequest(r io.Reader) (Request, error) {
	b, err := ReadFrame(r, MaxMessageBytes)
	if err != nil {
		return Request{}, err
	}
	return UnmarshalRequest(b)
}

// ReadResponse reads one length-prefixed response.
func ReadResponse(r io.Reader) (Response, error) {
	b, err := ReadFrame(r, MaxMessageBytes)
	if err != nil {
		return Response{}, err
	}
	return UnmarshalResponse(b)
}

// WriteRequest writes req with its length prefix in one Write, so that it
// leaves in as few packets as the transport allows.
func WriteRequest(w io.Writer, req Request) error {
	b, err := req.Marshal()
	if err != nil {
		return err
	}
	if _, err := w.Write(AppendFrame(nil, b)); err != nil {
		return fmt.Errorf("writing request: %w", err)
	}
	return nil
}

// WriteResponse writes resp with its length prefix in one Write.
func WriteResponse(w io.Writer, resp Response) error {
	b, err := resp.Marshal()
	if err != nil {
		return err
	}
	if _, err := w.Write(AppendFrame(nil, b)); err != nil {
		return fmt.Errorf("writing response: %w", err)
	}
	return nil
}
