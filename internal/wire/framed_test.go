package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestFramedRoundTrip(t *testing.T) {
	frames := []Frame{
		{Type: TypeMsg, ID: "a1-1", Text: "hello <world> & \"you\""},
		{Type: TypeMsg, ID: "a1-2", Text: "tab\tand \x1b[31m escapes \u202e kept", Private: true},
		{Type: TypeAck, IDs: []string{"b-1", "b-2"}},
		{Type: TypeNick, Nick: "zoë"},
		{Type: "future-type", Text: "ignored by old readers"},
	}
	var buf bytes.Buffer
	w := Framed{}.NewWriter(&buf)
	for _, f := range frames {
		if err := w.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n") != len(frames) {
		t.Fatalf("want one frame a line, got %q", buf.String())
	}
	if !strings.Contains(buf.String(), `"text":"hello <world> & \"you\""`) {
		t.Errorf("frames should stay readable (no HTML escaping): %q", buf.String())
	}
	r := Framed{}.NewReader(&buf)
	for i, want := range frames {
		got, err := r.Read()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Type != want.Type || got.ID != want.ID || got.Text != want.Text || got.Private != want.Private ||
			got.Nick != want.Nick || strings.Join(got.IDs, ",") != strings.Join(want.IDs, ",") {
			t.Errorf("frame %d = %+v, want %+v", i, got, want)
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
}

func TestFramedRejectsMalformed(t *testing.T) {
	for _, tc := range []struct{ name, line string }{
		{"not json", "hello there"},
		{"no type", `{"id":"x","text":"t"}`},
		{"message without id", `{"type":"msg","text":"t"}`},
		{"message without text", `{"type":"msg","id":"x"}`},
		{"long id", `{"type":"msg","id":"` + strings.Repeat("i", MaxIDBytes+1) + `","text":"t"}`},
		{"empty ack", `{"type":"ack"}`},
		{"huge ack", `{"type":"ack","ids":["` + strings.Repeat(`x","`, MaxAckIDs) + `x"]}`},
		{"wrong field type", `{"type":"msg","id":7,"text":"t"}`},
		// Not JSON: a control byte in a string must be escaped.
		{"raw control byte in text", "{\"type\":\"msg\",\"id\":\"x\",\"text\":\"a\x1b[31m\"}"},
		{"raw NUL in id", "{\"type\":\"msg\",\"id\":\"x\x00\",\"text\":\"t\",\"private\":true}"},
		{"raw control byte in ack", "{\"type\":\"ack\",\"ids\":[\"a\",\"b\x01\"]}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Framed{}.NewReader(strings.NewReader(tc.line + "\n")).Read()
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestFramedLimits(t *testing.T) {
	// The longest text, every byte escaped, still fits in a frame.
	var buf bytes.Buffer
	w := Framed{}.NewWriter(&buf)
	worst := Frame{Type: TypeMsg, ID: strings.Repeat("i", MaxIDBytes), Text: strings.Repeat("\x01", MaxTextBytes), Private: true}
	if err := w.Write(worst); err != nil {
		t.Fatal(err)
	}
	_ = w.Flush()
	if f, err := (Framed{}).NewReader(&buf).Read(); err != nil || f.Text != worst.Text {
		t.Fatalf("the largest escaped message: err %v", err)
	}
	// A text over the limit is refused even when the frame fits.
	long := `{"type":"msg","id":"x","text":"` + strings.Repeat("y", MaxTextBytes+1) + `"}` + "\n"
	if _, err := (Framed{}).NewReader(strings.NewReader(long)).Read(); !errors.Is(err, ErrMalformed) {
		t.Errorf("text over the limit: err = %v, want ErrMalformed", err)
	}
	// A frame that never ends is stopped at the limit.
	src := io.MultiReader(strings.NewReader(`{"type":"msg","text":"`), &endless{})
	if _, err := (Framed{}).NewReader(src).Read(); !errors.Is(err, ErrTooLong) {
		t.Errorf("endless frame: err = %v, want ErrTooLong", err)
	}
}

func TestExchangeHello(t *testing.T) {
	// A loopback TCP pair, which buffers as a libp2p stream does (net.Pipe
	// does not, and two writers would wait for each other).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_ = a.SetDeadline(time.Now().Add(5 * time.Second))
	_ = b.SetDeadline(time.Now().Add(5 * time.Second))
	type result struct {
		f   Frame
		err error
	}
	fromB := make(chan result, 1)
	go func() {
		f, err := ExchangeHello(b, "bob")
		if err == nil {
			// A message right behind the hello must be left for the reader.
			w := Framed{}.NewWriter(b)
			if err = w.Write(Frame{Type: TypeMsg, ID: "1", Text: "first"}); err == nil {
				err = w.Flush()
			}
		}
		fromB <- result{f, err}
	}()
	f, err := ExchangeHello(a, "alice")
	if err != nil || f.Nick != "bob" || f.V != Version {
		t.Fatalf("a got %+v, %v", f, err)
	}
	if r := <-fromB; r.err != nil || r.f.Nick != "alice" {
		t.Fatalf("b got %+v, %v", r.f, r.err)
	}
	if m, err := (Framed{}).NewReader(a).Read(); err != nil || m.Text != "first" {
		t.Fatalf("the frame behind the hello: %+v, %v", m, err)
	}
}

func TestExchangeHelloRefusesOtherFirstFrames(t *testing.T) {
	for _, peerSends := range []string{
		`{"type":"msg","id":"1","text":"hi"}` + "\n",
		"plain text\n",
		strings.Repeat("x", MaxHelloBytes+10),
		`{"type":"hello"`, // then the stream ends
	} {
		rw := struct {
			io.Reader
			io.Writer
		}{strings.NewReader(peerSends), io.Discard}
		if f, err := ExchangeHello(rw, "me"); err == nil {
			t.Errorf("peer sent %.40q: accepted %+v", peerSends, f)
		}
	}
}

func FuzzFramedReader(f *testing.F) {
	for _, s := range []string{
		`{"type":"msg","id":"a","text":"hi"}` + "\n",
		`{"type":"ack","ids":["a","b"]}` + "\n\n",
		`{"type":"hello","v":1,"nick":"\u202e"}` + "\n",
		"{\"type\":\"msg\",\"id\":\"\xff\",\"text\":\"\xfe\"}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := Framed{}.NewReader(bytes.NewReader(data))
		for {
			fr, err := r.Read()
			if err != nil {
				return
			}
			if fr.Type == "" || len(fr.Text) > MaxTextBytes || len(fr.IDs) > MaxAckIDs {
				t.Fatalf("a frame that breaks the rules was accepted: %+v", fr)
			}
			if fr.Type == TypeMsg && (fr.ID == "" || len(fr.ID) > MaxIDBytes) {
				t.Fatalf("a message with a bad ID was accepted: %+v", fr)
			}
		}
	})
}

// FuzzFastPath: the hand-written encoder and decoder agree with
// encoding/json: a frame encoded by hand decodes, by encoding/json, to the
// same frame, and whatever the fast decoder takes, encoding/json decodes
// to the same.
func FuzzFastPath(f *testing.F) {
	f.Add("id-1", "hello", false, []byte(`{"type":"msg","id":"a","text":"b"}`))
	f.Add("\x00\u202e", "\xff\"\\", true, []byte(`{"type":"ack","ids":["a","b"]}`))
	f.Add("x", "", false, []byte(`{"type":"msg","id":"a","text":"b","private":true}`))
	// Raw control bytes inside strings: encoding/json refuses them, so the
	// fast decoder must leave them to it (it once took them).
	f.Add("x", "y", false, []byte("{\"type\":\"msg\",\"id\":\"a\",\"text\":\"b\x01\"}"))
	f.Add("x", "y", false, []byte("{\"type\":\"msg\",\"id\":\"\x00\",\"text\":\"tab\there\",\"private\":true}"))
	f.Add("x", "y", false, []byte("{\"type\":\"ack\",\"ids\":[\"a\",\"\x1f\"]}"))
	f.Fuzz(func(t *testing.T, id, text string, private bool, line []byte) {
		for _, fr := range []Frame{
			{Type: TypeMsg, ID: id, Text: text, Private: private},
			{Type: TypeAck, IDs: []string{id, text}},
		} {
			b, ok := appendFast(nil, fr)
			if !ok || b[len(b)-1] != '\n' || bytes.Count(b, []byte("\n")) != 1 {
				t.Fatalf("appendFast(%+v) = %q, %v", fr, b, ok)
			}
			var std, want Frame
			if err := json.Unmarshal(b, &std); err != nil {
				t.Fatalf("encoding/json cannot read %q: %v", b, err)
			}
			// What encoding/json makes of the frame's own encoding.
			ref, _ := json.Marshal(fr)
			_ = json.Unmarshal(ref, &want)
			if !reflect.DeepEqual(std, want) {
				t.Fatalf("hand-encoded %q decodes to %+v, encoding/json's to %+v", b, std, want)
			}
		}
		if fast, ok := decodeFast(line); ok {
			var std Frame
			if err := json.Unmarshal(line, &std); err != nil {
				t.Fatalf("decodeFast took %q, which encoding/json refuses: %v", line, err)
			}
			if !reflect.DeepEqual(fast, std) {
				t.Fatalf("decodeFast(%q) = %+v, encoding/json: %+v", line, fast, std)
			}
		}
	})
}

// BenchmarkDecodeFrame measures the fast path on the frames it is for: a
// short message, a long one, one with non-ASCII text, and a receipt.
func BenchmarkDecodeFrame(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{"short", `{"type":"msg","id":"12D3KooW-42","text":"hello there, how are you?"}`},
		{"long", `{"type":"msg","id":"12D3KooW-43","text":"` + strings.Repeat("lorem ipsum dolor sit amet ", 150) + `"}`},
		{"utf8", `{"type":"msg","id":"12D3KooW-44","text":"` + strings.Repeat("zoë à la fenêtre, 日本語 ", 20) + `","private":true}`},
		{"ack", `{"type":"ack","ids":["` + strings.Repeat(`12D3KooW-45","`, 15) + `12D3KooW-46"]}`},
	} {
		line := []byte(bc.line)
		if _, ok := decodeFast(line); !ok {
			b.Fatalf("%s: not on the fast path", bc.name)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeFrame(line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPlain checks plain, which reads 32 and 8 bytes at a time, against the
// rule it implements, for every byte value at every place of every length
// up to past 40 (a step of 32, one of 8, a tail), next to ASCII and next to
// longer UTF-8.
func TestPlain(t *testing.T) {
	want := func(line []byte) bool {
		for _, c := range line {
			if c < 0x20 || c == '\\' {
				return false
			}
		}
		return utf8.Valid(line)
	}
	for _, fill := range []string{"a", "~", "\x7f", "é", "日"} {
		for n := 0; n <= 43; n++ {
			base := []byte(strings.Repeat(fill, 48))[:n]
			for i := range n {
				for c := range 256 {
					line := bytes.Clone(base)
					line[i] = byte(c)
					if got := plain(line); got != want(line) {
						t.Fatalf("plain(%q) = %v", line, got)
					}
				}
			}
		}
	}
}
