package event

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/safetext"
)

// stdEventJSON is what encoding/json writes for e.
func stdEventJSON(e Event) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(e)
	return buf.Bytes()
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	when := time.Date(2026, 11, 27, 3, 4, 5, 123456789, time.UTC)
	for _, e := range []Event{
		{Kind: Ready, Time: when, ID: "12D3KooW", Addrs: []string{"/ip4/127.0.0.1/tcp/1/p2p/x", "/ip6/::1/tcp/2"}, Rendezvous: "meet me here"},
		{Kind: Ready, Time: when, ID: "x", Server: true},
		{Kind: Joined, Time: when, Peer: "p", Protocol: "/chat/1.1.0", Direction: "inbound", Addr: "/ip4/1.2.3.4/tcp/5"},
		{Kind: Message, Time: when.In(time.FixedZone("x", 3600)), Peer: "p", Text: `quote " back \ tab	<&> ✓`},
		{Kind: Left, Time: when, Peer: "p", Reason: "closed the chat"},
		{Kind: Error, Time: when, Error: "line not sent"},
		{Kind: Message, Time: when, Peer: "p", Nick: "zoë", Name: "zoë~Qp3x", MsgID: "k3-1", Private: true, Text: "hi"},
		{Kind: Sent, Time: when, MsgIDs: []string{"k3-2"}, Text: "yo", To: "p", Private: true, Peers: []string{"p"}},
		{Kind: Delivered, Time: when, MsgIDs: []string{"k3-2", "k3-3"}, Peers: []string{"p", "q"}, NoReceipt: []string{"r"}, Names: []string{"bob", "sam~Qp3x"}},
		{Kind: Nick, Time: when, Peer: "p", Nick: "bob", Name: "bob", Was: "alice"},
		{Kind: Message, Time: when, Peer: "p", Name: "q", MsgID: "12D3/0a", Text: "hi", Via: "topic"},
		{Kind: Sent, Time: when, MsgIDs: []string{"a"}, Topic: "room"},
		{Kind: Delivered, Time: when, Private: true, Peers: []string{"p"}, Status: "OK", Via: "dm"},
		{Kind: Transfer, Time: when, FileID: "f\x01", Path: "/tmp/x", Bytes: 3, Total: -7, Done: true},
		{Kind: Info, Time: when, Code: Held, Text: "nobody is here", MsgIDs: []string{"a"}, Count: 3},
		{Kind: Error, Time: when, Code: NotDelivered, Peer: "p", MsgID: "m", Text: "hi", Error: "not delivered", Why: WhySessionEnded,
			Cause: "x\ny", Limit: 4096, WaitMS: 10000, Command: "/msg"},
		{Kind: Joined, Time: when, Peer: "p", Protocol: "/chat/1.1.0", Plain: true},
		{Kind: Info, Time: when, Code: PathMoved, Relayed: true, Forced: true},
		{Kind: Left, Time: when, Code: LeftRefused, Reason: "reset the chat"},
	} {
		if !Plain(&e) {
			t.Fatalf("%+v is not plain", e)
		}
		if got, want := AppendJSON(nil, &e), stdEventJSON(e); !bytes.Equal(got, want) {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	for _, s := range []string{"hello", "\x1b[2J\x07\r\n", "\xff\xfe", "\u2028\u2029", "\u202e\u009b\x7f", `"\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		e := Event{Kind: Message, Time: time.Unix(1700000000, 5).UTC(), Peer: text, Text: text, Addrs: []string{text},
			Nick: text, Name: text, MsgID: text, Peers: []string{text, text}, NoReceipt: []string{text}}
		got := AppendJSON(nil, &e)
		if !json.Valid(got) || bytes.Count(got, []byte("\n")) != 1 {
			t.Fatalf("not one line of valid JSON: %q", got)
		}
		// The same data as encoding/json's output, whatever the escapes.
		var a, b Event
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(stdEventJSON(e), &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("decodes to %+v, encoding/json's to %+v", a, b)
		}
		// Nothing that could drive a terminal is written raw.
		for _, r := range string(got[:len(got)-1]) {
			if safetext.UnsafeRune(r) || r == '\u2028' || r == '\u2029' {
				t.Fatalf("raw %U in %q", r, got)
			}
		}
		if strings.ContainsRune(string(got), 0x1b) {
			t.Fatal("raw ESC")
		}
	})
}

func BenchmarkEventJSON(b *testing.B) {
	e := Event{Kind: Message, Time: time.Now(), Peer: "12D3KooWJXdGwzsv2LosFoqQDZaQc5jFwfrAjkXwQJ2gF3xQwWbS", Text: "l0000001"}
	b.Run("AppendJSON", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = AppendJSON(buf[:0], &e)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		enc := json.NewEncoder(&bytes.Buffer{})
		for b.Loop() {
			_ = enc.Encode(e)
		}
	})
}
