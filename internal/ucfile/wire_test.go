package ucfile

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
)

// The request vector is what the Rust peer's write_length_prefixed writes
// for this ID (rust-peer/src/file_exchange.rs, lines 111-134): the ID's
// length as an unsigned varint (36 = 0x24, one byte because it is under
// 128), then its bytes. The Go peer (go-peer/chatroom.go, lines 186-192,
// binary.AppendUvarint then the ID) and the js-peer (it-length-prefixed's
// encode) write the same bytes. The ID has the js-peer's form, a UUID v4.
const (
	vectorID      = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"
	vectorRequest = "24" + "31623964366263642d626266642d346232642d396235642d616238646662626434626564"
)

func TestRequestVector(t *testing.T) {
	if got := hex.EncodeToString(AppendRequest(nil, vectorID)); got != vectorRequest {
		t.Errorf("request\n got %s\nwant %s", got, vectorRequest)
	}
	raw, _ := hex.DecodeString(vectorRequest)
	id, err := ReadRequest(bytes.NewReader(raw))
	if err != nil || id != vectorID {
		t.Errorf("got %q, %v; want %q", id, err, vectorID)
	}
	// An ID of 128 bytes or more takes a two-byte prefix.
	long := strings.Repeat("a", 300)
	if got := AppendRequest(nil, long)[:2]; !bytes.Equal(got, []byte{0xac, 0x02}) {
		t.Errorf("prefix of 300: %x, want ac02", got)
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewID(t *testing.T) {
	if !uuidV4.MatchString(vectorID) {
		t.Fatal("the pattern does not match the js-peer's example")
	}
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !uuidV4.MatchString(id) {
			t.Fatalf("%q is not a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("%q twice", id)
		}
		seen[id] = true
	}
}

func TestTopicAndAnnouncement(t *testing.T) {
	if got := Topic("universal-connectivity"); got != "universal-connectivity-file" {
		t.Errorf("Topic: got %q", got)
	}
	id, err := ParseAnnouncement(Announcement(vectorID))
	if err != nil || id != vectorID {
		t.Errorf("got %q, %v", id, err)
	}
	for _, bad := range [][]byte{nil, {0xff}, bytes.Repeat([]byte{'a'}, MaxIDBytes+1)} {
		if _, err := ParseAnnouncement(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReadRequestHostile(t *testing.T) {
	cases := []struct {
		name  string
		input []byte
		want  error
	}{
		{"empty stream", nil, ErrMalformed},
		{"empty ID", []byte{0x00}, ErrMalformed},
		{"prefix cut short", []byte{0x80}, ErrMalformed},
		{"varint over ten bytes", bytes.Repeat([]byte{0xff}, 11), ErrMalformed},
		{"varint overflows", append(bytes.Repeat([]byte{0xff}, 9), 0x02), ErrMalformed},
		{"ID over the limit", binary.AppendUvarint(nil, MaxIDBytes+1), ErrTooLarge},
		{"huge prefix", binary.AppendUvarint(nil, 1<<63), ErrTooLarge},
		{"ID cut short", []byte{0x05, 'a', 'b'}, ErrMalformed},
		{"ID not UTF-8", []byte{0x02, 0xc3, 0x28}, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadRequest(bytes.NewReader(tc.input))
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	// The longest ID allowed is read.
	long := strings.Repeat("é", MaxIDBytes/2)
	if id, err := ReadRequest(bytes.NewReader(AppendRequest(nil, long))); err != nil || id != long {
		t.Errorf("ID of %d bytes: %v", len(long), err)
	}
}

// FuzzReadRequest feeds raw stream bytes to the request reader a Handler
// uses: it must never panic or allocate past MaxIDBytes, must fail only with
// a classified error, and what it accepts must be a valid ID that encodes
// back to a prefix of the input.
func FuzzReadRequest(f *testing.F) {
	raw, _ := hex.DecodeString(vectorRequest)
	f.Add(raw)
	f.Add([]byte{})
	f.Add([]byte{0x00})
	f.Add([]byte{0x80})
	f.Add(bytes.Repeat([]byte{0xff}, 11))
	f.Add(binary.AppendUvarint(nil, MaxIDBytes+1))
	f.Add([]byte{0x02, 0xc3, 0x28})
	f.Add([]byte{0x81, 0x00, 'a'}) // a non-minimal prefix of 1
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		id, err := ReadRequest(r)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if checkID([]byte(id)) != nil {
			t.Fatalf("accepted an invalid ID %q", id)
		}
		consumed := b[:len(b)-r.Len()]
		if !bytes.HasSuffix(consumed, []byte(id)) {
			t.Fatalf("ID %q is not what was read: %x", id, consumed)
		}
	})
}
