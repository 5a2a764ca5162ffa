package safetext

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sanitize makes text that a peer chose safe to print on a terminal. Control
// characters (C0, DEL and C1, tab aside), bidirectional overrides and
// invalid UTF-8 are shown in a visible escaped form, so a peer cannot move
// the cursor, clear the screen, set the title, ring the bell or reorder text.
func Sanitize(text string) string {
	clean := true
	for _, r := range text {
		if r == utf8.RuneError || UnsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, text[i])
		case r < 0x80 && UnsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case UnsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(text[i : i+size])
		}
		i += size
	}
	return b.String()
}
