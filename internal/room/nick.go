package room

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rendezvous-chat/rendezvous-chat/internal/safetext"
)

// MaxNickRunes bounds a nickname, ours and the ones peers announce.
const MaxNickRunes = 32

// CheckNick says what is wrong with a nickname the user chose (-nick,
// /nick): it must be 1 to MaxNickRunes printable characters without spaces,
// so that it reads as one word in the chat and in /msg NAME.
func CheckNick(nick string) error {
	switch {
	case nick == "":
		return errors.New("a nickname cannot be empty")
	case !utf8.ValidString(nick):
		return errors.New("a nickname must be UTF-8 text")
	case utf8.RuneCountInString(nick) > MaxNickRunes:
		return fmt.Errorf("a nickname is at most %d characters", MaxNickRunes)
	case strings.HasPrefix(nick, "/"):
		return errors.New("a nickname cannot start with /")
	case strings.ContainsRune(nick, '~'):
		// "~" is how the view tells apart two peers with one nickname.
		return errors.New("a nickname cannot contain ~")
	}
	for _, r := range nick {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || safetext.UnsafeRune(r) {
			return fmt.Errorf("a nickname cannot contain %U: use letters, digits and punctuation", r)
		}
	}
	return nil
}

// CleanNick turns the nickname a peer announced into one that is safe to
// show: anything CheckNick refuses is replaced or cut, so a peer cannot
// drive the terminal, reorder text, pose as a command or a disambiguated
// name, or fill the screen. It returns "" when nothing usable is left, and
// the peer is then shown by its short ID.
func CleanNick(raw string) string {
	var b strings.Builder
	n := 0
	for _, r := range raw {
		if n == MaxNickRunes {
			break
		}
		switch {
		case r == utf8.RuneError, safetext.UnsafeRune(r), !unicode.IsPrint(r) && !unicode.IsSpace(r):
			continue
		case unicode.IsSpace(r), r == '~':
			r = '_'
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimRight(strings.TrimLeft(b.String(), "/_"), "_")
}
