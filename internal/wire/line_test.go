package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func readAll(t *testing.T, input string) ([]string, error) {
	t.Helper()
	r := Line{}.NewReader(strings.NewReader(input))
	var lines []string
	for {
		f, err := r.Read()
		if err != nil {
			return lines, err
		}
		lines = append(lines, f.Text)
	}
}

func TestLineReader(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		want        []string
	}{
		{"plain", "a\nb\n", []string{"a", "b"}},
		// go-libp2p's chat example sends every line followed by an empty one.
		{"upstream example", "hello\n\nworld\n\n", []string{"hello", "world"}},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}},
		{"last line without newline", "a\nb", []string{"a", "b"}},
		{"only empty lines", "\n\n\r\n", nil},
		{"utf-8", "héllo ✓\n", []string{"héllo ✓"}},
		{"tabs kept", "a\tb\n", []string{"a\tb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(t, tc.input)
			if err != io.EOF {
				t.Fatalf("err = %v, want io.EOF", err)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLineReaderLimit(t *testing.T) {
	exact := strings.Repeat("x", MaxTextBytes)
	got, err := readAll(t, exact+"\n")
	if err != io.EOF || len(got) != 1 || len(got[0]) != MaxTextBytes {
		t.Fatalf("a line of exactly the limit: %d lines, err %v", len(got), err)
	}
	got, err = readAll(t, "ok\n"+exact+"x\nnever\n")
	if !errors.Is(err, ErrTooLong) || len(got) != 1 {
		t.Fatalf("a line over the limit: got %d lines, err %v; want 1 line, ErrTooLong", len(got), err)
	}
}

// endless never ends and never sends a newline.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	e.n += int64(len(p))
	return len(p), nil
}

func TestLineReaderStopsEndlessLine(t *testing.T) {
	src := &endless{}
	_, err := Line{}.NewReader(src).Read()
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("err = %v, want ErrTooLong", err)
	}
	if src.n > 2*MaxTextBytes {
		t.Errorf("read %d bytes before giving up, want about %d", src.n, MaxTextBytes)
	}
}

func TestLineWriter(t *testing.T) {
	var buf bytes.Buffer
	w := Line{}.NewWriter(&buf)
	for _, line := range []string{"hello", "wörld"} {
		if err := w.Write(Frame{Type: TypeMsg, Text: line}); err != nil {
			t.Fatal(err)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("wrote before Flush: %q", buf.String())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "hello\nwörld\n" {
		t.Errorf("wire = %q", buf.String())
	}
	if err := w.Write(Frame{Type: TypeMsg, Text: "two\nlines"}); err == nil {
		t.Error("a line break inside a message was accepted")
	}
}

func FuzzLineReader(f *testing.F) {
	for _, s := range []string{"a\nb\n", "hello\n\n", "\r\n", "\xff\xfe\n", strings.Repeat("y", 100)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := Line{}.NewReader(bytes.NewReader(data))
		for {
			f, err := r.Read()
			if err != nil {
				return
			}
			line := f.Text
			if line == "" || strings.ContainsAny(line, "\n") || len(line) > MaxTextBytes {
				t.Fatalf("bad line %q", line)
			}
		}
	})
}
