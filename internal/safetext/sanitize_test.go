package safetext

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hello, wörld ✓", "hello, wörld ✓"},
		{"tab\tkept", "tab\tkept"},
		{"\x1b[2J\x1b[H", `\x1b[2J\x1b[H`},           // clear screen, cursor home
		{"\x1b]0;title\x07", `\x1b]0;title\x07`},     // window title, bell
		{"\x1b]52;c;Zm9v\x07", `\x1b]52;c;Zm9v\x07`}, // clipboard write
		{"a\rb", `a\x0db`},                           // carriage return overwrites
		{"\u009b31m", `\u009b31m`},                   // C1 CSI
		{"abc\u202edcba", `abc\u202edcba`},           // right-to-left override
		{"\u2066x\u2069", `\u2066x\u2069`},           // isolates
		{"bad \xff\xfe utf8", `bad \xff\xfe utf8`},   // invalid UTF-8
		{"del\x7f", `del\x7f`},
	} {
		if got := Sanitize(tc.in); got != tc.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"plain", "\x1b[31mred", "\u202e", "\xff", "\x00\x07\x08"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Sanitize(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Sanitize(%q) = %q is not valid UTF-8", s, out)
		}
		for _, r := range out {
			if UnsafeRune(r) {
				t.Fatalf("Sanitize(%q) = %q keeps %U", s, out, r)
			}
		}
		if utf8.ValidString(s) && !strings.ContainsFunc(s, UnsafeRune) && out != s {
			t.Fatalf("sanitize changed safe text %q to %q", s, out)
		}
		// Whatever a peer sends, its text in JSON stays valid JSON.
		b := AppendJSON(nil, s)
		if !json.Valid(b) || strings.Contains(string(b), "\n") {
			t.Fatalf("json for %q: %s", s, b)
		}
	})
}
