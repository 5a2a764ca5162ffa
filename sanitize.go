package main

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
)

// sanitize makes text that a peer chose safe to print on a terminal. Control
// characters (C0, DEL and C1, tab aside), bidirectional overrides and
// invalid UTF-8 are shown in a visible escaped form, so a peer cannot move
// the cursor, clear the screen, set the title, ring the bell or reorder text.
func sanitize(text string) string {
	clean := true
	for _, r := range text {
		if r == utf8.RuneError || unsafeRune(r) {
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
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(text[i : i+size])
		}
		i += size
	}
	return b.String()
}

// unsafeRune reports whether printing r could change the terminal's state
// or the order in which text is displayed.
func unsafeRune(r rune) bool {
	switch {
	case r == '\t':
		return false
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		// Bidirectional embeddings, overrides, isolates and marks.
		return true
	}
	return false
}

// shortID is the short form of a peer ID shown to people: its last eight
// characters, which differ between peers (the first ones rarely do).
func shortID(id peer.ID) string {
	s := id.String()
	if len(s) <= 8 {
		return s
	}
	return s[len(s)-8:]
}
