package safetext

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestUnsafeRune(t *testing.T) {
	for _, r := range []rune{0, 0x07, 0x1b, '\n', '\r', 0x7f, 0x85, 0x9b, 0x202e, 0x2066, 0x200f, 0x061c} {
		if !UnsafeRune(r) {
			t.Errorf("UnsafeRune(%U) = false", r)
		}
	}
	for _, r := range []rune{'\t', ' ', 'a', 'é', '✓', '李', 0x2028, 0xfffd} {
		if UnsafeRune(r) {
			t.Errorf("UnsafeRune(%U) = true", r)
		}
	}
}

// FuzzAppendJSON: the output is one valid JSON string that decodes to the
// input (invalid UTF-8 replaced, as encoding/json does), and has no raw
// rune a terminal would act on.
func FuzzAppendJSON(f *testing.F) {
	for _, s := range []string{"hello", "\x1b[2J\x07\r\n", "\xff\xfe", "\u2028\u2029", "\u202e\u009b\x7f", `"\`, "tab\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendJSON(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("AppendJSON(%q) = %s: %v", s, b, err)
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); !utf8.ValidString(s) {
			// encoding/json replaces each invalid byte; compare with it.
			var std string
			ref, _ := json.Marshal(s)
			_ = json.Unmarshal(ref, &std)
			if got != std {
				t.Fatalf("decodes to %q, encoding/json's to %q", got, std)
			}
		} else if got != want {
			t.Fatalf("decodes to %q, want %q", got, want)
		}
		for _, r := range string(b) {
			if UnsafeRune(r) || r == '\t' || r == '\u2028' || r == '\u2029' {
				t.Fatalf("raw %U in %q", r, b)
			}
		}
	})
}
