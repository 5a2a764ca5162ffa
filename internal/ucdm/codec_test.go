package ucdm

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The interop vectors below were derived by hand from
// js-peer/src/lib/protobuf/direct-message.proto and the protons encoder
// generated from it (js-peer/src/lib/protobuf/direct-message.ts), then framed
// as it-protobuf-stream frames them (an unsigned-varint length first). The
// messages are what the js-peer's send and receive build
// (js-peer/src/lib/direct-message.ts, lines 112-119 and 163-169), with fixed
// timestamps. Derivation of the request, field by field:
//
//	Metadata:  0a 05 "0.0.1"            field 1 (1<<3|2 = 0x0a), length 5
//	           10 80 d0 95 ff bc 31     field 2 (2<<3|0 = 0x10), varint of
//	                                    1700000000000 = 0x18bcfe56800
//	Request:   0a 0e <metadata>         field 1, the 14 bytes above
//	           12 05 "hello"            field 2 (2<<3|2 = 0x12)
//	           1a 0a "text/plain"       field 3 (3<<3|2 = 0x1a)
//	Frame:     23 <request>             0x23 = 35 bytes
//
// The response carries status OK = 200 as field 2: 10 c8 01 (200 as a
// varint is 0xc8 0x01). protons writes fields in field-number order and leaves
// out default values, so these bytes are exactly what a js-peer sends. The
// tests check them against this package and, independently, against
// protobuf-go's reflection-based codec built from the same .proto.
const (
	jsRequestFrame  = "23" + "0a0e" + "0a05302e302e31" + "1080d095ffbc31" + "120568656c6c6f" + "1a0a746578742f706c61696e"
	jsResponseFrame = "13" + "0a0e" + "0a05302e302e31" + "1081d095ffbc31" + "10c801"
)

var (
	jsRequest = Request{
		Metadata: &Metadata{ClientVersion: "0.0.1", Timestamp: 1700000000000},
		Content:  "hello",
		Type:     MIMETextPlain,
	}
	jsResponse = Response{
		Metadata: &Metadata{ClientVersion: "0.0.1", Timestamp: 1700000000001},
		Status:   StatusOK,
	}
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInteropVectors(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteRequest(&buf, jsRequest); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(buf.Bytes()); got != jsRequestFrame {
		t.Errorf("request frame\n got %s\nwant %s", got, jsRequestFrame)
	}
	buf.Reset()
	if err := WriteResponse(&buf, jsResponse); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(buf.Bytes()); got != jsResponseFrame {
		t.Errorf("response frame\n got %s\nwant %s", got, jsResponseFrame)
	}

	req, err := ReadRequest(bytes.NewReader(mustHex(t, jsRequestFrame)))
	if err != nil {
		t.Fatal(err)
	}
	if !equalRequest(req, jsRequest) {
		t.Errorf("decoded request %+v, want %+v", req, jsRequest)
	}
	resp, err := ReadResponse(bytes.NewReader(mustHex(t, jsResponseFrame)))
	if err != nil {
		t.Fatal(err)
	}
	if !equalResponse(resp, jsResponse) {
		t.Errorf("decoded response %+v, want %+v", resp, jsResponse)
	}
}

func equalMetadata(a, b *Metadata) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func equalRequest(a, b Request) bool {
	return equalMetadata(a.Metadata, b.Metadata) && a.Content == b.Content && a.Type == b.Type
}

func equalResponse(a, b Response) bool {
	return equalMetadata(a.Metadata, b.Metadata) && a.Status == b.Status && a.StatusText == b.StatusText
}

// dmDescriptor builds, by hand, the descriptor protoc would make of
// js-peer/src/lib/protobuf/direct-message.proto, so that protobuf-go's own
// codec can check this package's.
func dmDescriptor(t testing.TB) protoreflect.FileDescriptor {
	t.Helper()
	optional := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	fieldOf := func(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{
			Name:     proto.String(name),
			JsonName: proto.String(name),
			Number:   proto.Int32(num),
			Label:    optional,
			Type:     typ.Enum(),
		}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	statusText := fieldOf("statusText", 3, descriptorpb.FieldDescriptorProto_TYPE_STRING, "")
	statusText.Proto3Optional = proto.Bool(true)
	statusText.OneofIndex = proto.Int32(0)
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("direct-message.proto"),
		Package: proto.String("dm"),
		Syntax:  proto.String("proto3"),
		EnumType: []*descriptorpb.EnumDescriptorProto{{
			Name: proto.String("Status"),
			Value: []*descriptorpb.EnumValueDescriptorProto{
				{Name: proto.String("UNKNOWN"), Number: proto.Int32(0)},
				{Name: proto.String("OK"), Number: proto.Int32(200)},
				{Name: proto.String("ERROR"), Number: proto.Int32(500)},
			},
		}},
		MessageType: []*descriptorpb.DescriptorProto{
			{
				Name: proto.String("Metadata"),
				Field: []*descriptorpb.FieldDescriptorProto{
					fieldOf("clientVersion", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""),
					fieldOf("timestamp", 2, descriptorpb.FieldDescriptorProto_TYPE_INT64, ""),
				},
			},
			{
				Name: proto.String("DirectMessageRequest"),
				Field: []*descriptorpb.FieldDescriptorProto{
					fieldOf("metadata", 1, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".dm.Metadata"),
					fieldOf("content", 2, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""),
					fieldOf("type", 3, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""),
				},
			},
			{
				Name: proto.String("DirectMessageResponse"),
				Field: []*descriptorpb.FieldDescriptorProto{
					fieldOf("metadata", 1, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".dm.Metadata"),
					fieldOf("status", 2, descriptorpb.FieldDescriptorProto_TYPE_ENUM, ".dm.Status"),
					statusText,
				},
				OneofDecl: []*descriptorpb.OneofDescriptorProto{{Name: proto.String("_statusText")}},
			},
		},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// refDecode decodes b with protobuf-go into a Request or Response of this
// package, to compare with what this package decodes.
func refDecodeRequest(fd protoreflect.FileDescriptor, b []byte) (Request, error) {
	m := dynamicpb.NewMessage(fd.Messages().ByName("DirectMessageRequest"))
	if err := proto.Unmarshal(b, m); err != nil {
		return Request{}, err
	}
	fields := m.Descriptor().Fields()
	r := Request{
		Content: m.Get(fields.ByName("content")).String(),
		Type:    m.Get(fields.ByName("type")).String(),
	}
	if md := fields.ByName("metadata"); m.Has(md) {
		r.Metadata = refMetadata(m.Get(md).Message())
	}
	return r, nil
}

func refDecodeResponse(fd protoreflect.FileDescriptor, b []byte) (Response, error) {
	m := dynamicpb.NewMessage(fd.Messages().ByName("DirectMessageResponse"))
	if err := proto.Unmarshal(b, m); err != nil {
		return Response{}, err
	}
	fields := m.Descriptor().Fields()
	r := Response{
		Status:     Status(m.Get(fields.ByName("status")).Enum()),
		StatusText: m.Get(fields.ByName("statusText")).String(),
	}
	if md := fields.ByName("metadata"); m.Has(md) {
		r.Metadata = refMetadata(m.Get(md).Message())
	}
	return r, nil
}

func refMetadata(m protoreflect.Message) *Metadata {
	fields := m.Descriptor().Fields()
	return &Metadata{
		ClientVersion: m.Get(fields.ByName("clientVersion")).String(),
		Timestamp:     m.Get(fields.ByName("timestamp")).Int(),
	}
}

func TestAgainstProtobufGo(t *testing.T) {
	fd := dmDescriptor(t)
	reqs := []Request{
		jsRequest,
		{},
		{Metadata: &Metadata{}},
		{Metadata: &Metadata{Timestamp: -1}, Content: "héllo ✓ 🙂", Type: "text/markdown"},
		{Content: strings.Repeat("x", MaxContentBytes)},
	}
	for _, want := range reqs {
		b, err := want.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := refDecodeRequest(fd, b)
		if err != nil {
			t.Fatalf("protobuf-go cannot decode our request %+v: %v", want, err)
		}
		if !equalRequest(got, want) {
			t.Errorf("protobuf-go decoded %+v, we encoded %+v", got, want)
		}
	}
	resps := []Response{
		jsResponse,
		{},
		{Metadata: &Metadata{ClientVersion: "x"}, Status: StatusError, StatusText: "blocked"},
		{Status: Status(-7)},
		{Status: Status(404)},
	}
	for _, want := range resps {
		b, err := want.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := refDecodeResponse(fd, b)
		if err != nil {
			t.Fatalf("protobuf-go cannot decode our response %+v: %v", want, err)
		}
		if !equalResponse(got, want) {
			t.Errorf("protobuf-go decoded %+v, we encoded %+v", got, want)
		}
	}
}

// withUnknown appends fields no version of the .proto has, of every wire
// type, which a decoder must skip.
func withUnknown(b []byte) []byte {
	b = protowire.AppendTag(b, 99, protowire.VarintType)
	b = protowire.AppendVarint(b, 12345)
	b = protowire.AppendTag(b, 100, protowire.BytesType)
	b = protowire.AppendString(b, "future")
	b = protowire.AppendTag(b, 101, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, 7)
	b = protowire.AppendTag(b, 102, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 7)
	b = protowire.AppendTag(b, 103, protowire.StartGroupType)
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	b = protowire.AppendTag(b, 103, protowire.EndGroupType)
	// A known number with the wrong wire type is skipped as unknown too.
	b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, 1)
	return b
}

func TestUnknownFieldsSkipped(t *testing.T) {
	b, _ := jsRequest.Marshal()
	req, err := UnmarshalRequest(withUnknown(b))
	if err != nil {
		t.Fatal(err)
	}
	if !equalRequest(req, jsRequest) {
		t.Errorf("got %+v, want %+v", req, jsRequest)
	}
	b, _ = jsResponse.Marshal()
	resp, err := UnmarshalResponse(withUnknown(b))
	if err != nil {
		t.Fatal(err)
	}
	if !equalResponse(resp, jsResponse) {
		t.Errorf("got %+v, want %+v", resp, jsResponse)
	}
}

func TestMetadataMerges(t *testing.T) {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, appendMetadata(nil, Metadata{ClientVersion: "a", Timestamp: 5}))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, appendMetadata(nil, Metadata{ClientVersion: "b"}))
	req, err := UnmarshalRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Metadata{ClientVersion: "b", Timestamp: 5}); req.Metadata == nil || *req.Metadata != want {
		t.Errorf("merged metadata %+v, want %+v", req.Metadata, want)
	}
}

// hostileFrames are the bodies of frames a hostile or broken peer might send,
// each with the error it must give.
var hostileFrames = []struct {
	name string
	body []byte
	want error
}{
	{"garbage", []byte{0xff, 0xff, 0xff}, ErrMalformed},
	{"field zero", []byte{0x00, 0x01}, ErrMalformed},
	{"truncated string", []byte{0x12, 0x05, 'h', 'i'}, ErrMalformed},
	{"string length overflows", []byte{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f}, ErrMalformed},
	{"truncated varint", []byte{0x10, 0x80}, ErrMalformed},
	{"unterminated group", []byte{0x1b, 0x08, 0x01}, ErrMalformed},
	{"stray end group", []byte{0x1c}, ErrMalformed},
	{"bad utf-8 content", []byte{0x12, 0x02, 0xc3, 0x28}, ErrMalformed},
	{"bad metadata", []byte{0x0a, 0x02, 0x0a, 0x05}, ErrMalformed},
	{"bad utf-8 client version", []byte{0x0a, 0x03, 0x0a, 0x01, 0xff}, ErrMalformed},
	{"oversized content", protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), strings.Repeat("a", MaxContentBytes+1)), ErrTooLarge},
	{"oversized type", protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), strings.Repeat("a", MaxFieldBytes+1)), ErrTooLarge},
}

func TestUnmarshalHostile(t *testing.T) {
	for _, tc := range hostileFrames {
		t.Run(tc.name, func(t *testing.T) {
			_, err := UnmarshalRequest(tc.body)
			if !errors.Is(err, tc.want) {
				t.Errorf("UnmarshalRequest: got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := UnmarshalResponse([]byte{0x1a, 0x01, 0xff}); !errors.Is(err, ErrMalformed) {
		t.Errorf("response with bad utf-8 status text: got %v", err)
	}
	if _, err := UnmarshalRequest(make([]byte, MaxMessageBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized message: got %v", err)
	}
}

func TestReadFrame(t *testing.T) {
	big := binary.AppendUvarint(nil, MaxMessageBytes+1)
	cases := []struct {
		name  string
		input []byte
		want  error
	}{
		{"empty stream", nil, io.EOF},
		{"prefix cut short", []byte{0x80}, ErrMalformed},
		{"prefix over ten bytes", bytes.Repeat([]byte{0xff}, 11), ErrMalformed},
		{"prefix overflows 64 bits", append(bytes.Repeat([]byte{0xff}, 9), 0x7f), ErrMalformed},
		{"prefix over the limit", big, ErrTooLarge},
		{"huge prefix", binary.AppendUvarint(nil, 1<<62), ErrTooLarge},
		{"body cut short", []byte{0x05, 'a', 'b'}, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tc.input), MaxMessageBytes)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	// A frame is read exactly: what follows it stays in the reader.
	r := bytes.NewReader([]byte{0x02, 'h', 'i', 0x01})
	b, err := ReadFrame(r, 10)
	if err != nil || string(b) != "hi" || r.Len() != 1 {
		t.Errorf("got %q, %v, %d left; want \"hi\", nil, 1 left", b, err, r.Len())
	}
}

func TestMarshalRefuses(t *testing.T) {
	if _, err := (Request{Content: strings.Repeat("a", MaxContentBytes+1)}).Marshal(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized content: got %v", err)
	}
	if _, err := (Request{Content: "\xff"}).Marshal(); !errors.Is(err, ErrMalformed) {
		t.Errorf("invalid UTF-8: got %v", err)
	}
	if _, err := (Response{StatusText: strings.Repeat("a", MaxFieldBytes+1)}).Marshal(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized status text: got %v", err)
	}
	if _, err := (Request{Metadata: &Metadata{ClientVersion: "\xff"}}).Marshal(); !errors.Is(err, ErrMalformed) {
		t.Errorf("invalid client version: got %v", err)
	}
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{StatusUnknown: "UNKNOWN", StatusOK: "OK", StatusError: "ERROR", 404: "Status(404)"} {
		if got := s.String(); got != want {
			t.Errorf("%d: got %q, want %q", int32(s), got, want)
		}
	}
}

func fuzzSeeds(f *testing.F) {
	f.Add(mustHex(f, jsRequestFrame)[1:])
	f.Add(mustHex(f, jsResponseFrame)[1:])
	b, _ := jsRequest.Marshal()
	f.Add(withUnknown(b))
	for _, tc := range hostileFrames {
		if len(tc.body) < 1024 {
			f.Add(tc.body)
		}
	}
	f.Add([]byte{})
}

// FuzzUnmarshalRequest checks that the request decoder never panics, that it
// accepts exactly what protobuf-go accepts (within this package's limits),
// with the same result, and that what it accepts survives a round trip.
func FuzzUnmarshalRequest(f *testing.F) {
	fuzzSeeds(f)
	fd := dmDescriptor(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecoder(t, b, UnmarshalRequest, func(b []byte) (Request, error) { return refDecodeRequest(fd, b) },
			equalRequest, Request.Marshal)
	})
}

// FuzzUnmarshalResponse is FuzzUnmarshalRequest for responses.
func FuzzUnmarshalResponse(f *testing.F) {
	fuzzSeeds(f)
	fd := dmDescriptor(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecoder(t, b, UnmarshalResponse, func(b []byte) (Response, error) { return refDecodeResponse(fd, b) },
			equalResponse, Response.Marshal)
	})
}

// checkDecoder holds one decoder of ours to protobuf-go's reading of the
// same bytes, and to a round trip through our encoder.
func checkDecoder[M any](t *testing.T, b []byte, decode, ref func([]byte) (M, error), equal func(a, b M) bool, encode func(M) ([]byte, error)) {
	t.Helper()
	got, err := decode(b)
	want, refErr := ref(b)
	if err != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error without a kind: %v", err)
		}
		if refErr == nil && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("we refuse what protobuf-go accepts: %v", err)
		}
		return
	}
	if refErr != nil {
		t.Fatalf("we accept what protobuf-go refuses (%v): %+v", refErr, got)
	}
	if !equal(got, want) {
		t.Fatalf("we decode %+v, protobuf-go %+v", got, want)
	}
	again, err := encode(got)
	if err != nil {
		t.Fatalf("cannot re-encode %+v: %v", got, err)
	}
	back, err := decode(again)
	if err != nil || !equal(back, got) {
		t.Fatalf("round trip: %+v, %v; want %+v", back, err, got)
	}
}

// FuzzReadRequest feeds raw stream bytes, length prefix included, to the
// reader a Handler uses: it must never panic, never allocate past its limit,
// and fail only with a classified error or io.EOF.
func FuzzReadRequest(f *testing.F) {
	f.Add(mustHex(f, jsRequestFrame))
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add(bytes.Repeat([]byte{0xff}, 11))
	f.Add(binary.AppendUvarint(nil, 1<<40))
	f.Add([]byte{0x05, 'a', 'b'})
	f.Add([]byte{0x03, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := ReadRequest(bytes.NewReader(b))
		if err != nil && err != io.EOF && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("unclassified error: %v", err)
		}
	})
}
