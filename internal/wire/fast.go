package wire

import (
	"bytes"
	"encoding/binary"
	"strings"
	"unicode/utf8"

	"github.com/rendezvous-chat/rendezvous-chat/internal/safetext"
)

// The frames sent for every line, messages and receipts, have a fast path
// each way, without reflection: a chat of many short lines spent most of
// its time in encoding/json. The encoder writes exactly what encoding/json
// would decode to the same frame; the decoder takes only the exact shapes
// the encoder writes, with no escapes in them, and leaves everything else
// to encoding/json, so the two paths cannot disagree on what a frame means.

var (
	msgPrefix     = []byte(`{"type":"msg","id":"`)
	msgTextKey    = []byte(`","text":"`)
	msgPrivateEnd = []byte(`","private":true}`)
	ackPrefix     = []byte(`{"type":"ack","ids":[`)
)

// appendFast appends a message or ack frame and a newline to b, and
// reports false for other frames.
func appendFast(b []byte, f Frame) ([]byte, bool) {
	switch {
	case f.Type == TypeMsg && f.V == 0 && f.Nick == "" && len(f.IDs) == 0:
		b = append(b, `{"type":"msg"`...)
		if f.ID != "" {
			b = append(b, `,"id":`...)
			b = safetext.AppendJSON(b, f.ID)
		}
		if f.Text != "" {
			b = append(b, `,"text":`...)
			b = safetext.AppendJSON(b, f.Text)
		}
		if f.Private {
			b = append(b, `,"private":true`...)
		}
		return append(b, '}', '\n'), true
	case f.Type == TypeAck && f.V == 0 && f.Nick == "" && f.ID == "" && f.Text == "" && !f.Private && len(f.IDs) > 0:
		b = append(b, ackPrefix...)
		for i, id := range f.IDs {
			if i > 0 {
				b = append(b, ',')
			}
			b = safetext.AppendJSON(b, id)
		}
		return append(b, ']', '}', '\n'), true
	}
	return b, false
}

// decodeFast decodes the message and ack frames that appendFast writes
// when they hold no escapes, and reports false for anything else.
func decodeFast(line []byte) (Frame, bool) {
	if !plain(line) {
		return Frame{}, false
	}
	switch {
	case bytes.HasPrefix(line, msgPrefix):
		rest := line[len(msgPrefix):]
		i := bytes.IndexByte(rest, '"')
		if i < 0 || !bytes.HasPrefix(rest[i:], msgTextKey) {
			return Frame{}, false
		}
		rest = rest[i+len(msgTextKey):]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			return Frame{}, false
		}
		end := rest[j:]
		// The ID and the text share one allocation: the frame is decoded
		// for every line received, and they live and die together.
		both := string(line[len(msgPrefix) : len(msgPrefix)+i+len(msgTextKey)+j])
		f := Frame{Type: TypeMsg, ID: both[:i], Text: both[i+len(msgTextKey):]}
		switch {
		case string(end) == `"}`:
		case bytes.Equal(end, msgPrivateEnd):
			f.Private = true
		default:
			return Frame{}, false
		}
		return f, true
	case bytes.HasPrefix(line, ackPrefix):
		// One string holds every ID of the receipt and one slice points into
		// it: a receipt comes for every batch of lines sent, with an ID per
		// line, and a string and a slice growth per ID were the sender's
		// largest cost after the lines themselves.
		all := string(line[len(ackPrefix):])
		rest := all
		ids := make([]string, 0, min(MaxAckIDs, strings.Count(all, `"`)/2))
		for {
			if len(rest) == 0 || rest[0] != '"' {
				return Frame{}, false
			}
			i := strings.IndexByte(rest[1:], '"')
			if i < 0 || len(ids) == MaxAckIDs {
				return Frame{}, false
			}
			ids = append(ids, rest[1:1+i])
			rest = rest[2+i:]
			if len(rest) > 0 && rest[0] == ',' {
				rest = rest[1:]
				continue
			}
			if rest != "]}" {
				return Frame{}, false
			}
			return Frame{Type: TypeAck, IDs: ids}, true
		}
	}
	return Frame{}, false
}

// plain reports whether line is valid UTF-8 with neither a backslash nor a
// control byte (U+0000 to U+001F) in it. A JSON string holds such a byte
// only escaped, so encoding/json refuses a line with one raw; and the exact
// shapes decodeFast takes have no place for one outside a string. So
// decodeFast, which does not unescape, takes only plain lines, and leaves
// the rest to encoding/json, which decodes or refuses them.
//
// It is on the path of every line received, so it is quick: the backslash
// is found by bytes.IndexByte (vectorized), the control bytes eight at a
// time, and utf8.Valid runs only for a line that is not all ASCII.
func plain(line []byte) bool {
	if bytes.IndexByte(line, '\\') >= 0 {
		return false
	}
	const (
		highs  = 0x8080808080808080
		spaces = 0x2020202020202020
	)
	// In each word, a byte under 0x20 borrows in w-spaces and has its high
	// bit clear in w, so it sets its high bit in (w-spaces)&^w. A borrow
	// can set the bits of bytes above a control byte too, but none where
	// there is no control byte: the test is exact for the word.
	p := line[:len(line):len(line)]
	var seen, ctl uint64 // every word or'ed, and their control marks
	for len(p) >= 32 {
		a, b := binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:])
		c, d := binary.LittleEndian.Uint64(p[16:]), binary.LittleEndian.Uint64(p[24:])
		seen |= a | b | c | d
		ctl |= (a-spaces)&^a | (b-spaces)&^b | (c-spaces)&^c | (d-spaces)&^d
		p = p[32:]
	}
	for len(p) >= 8 {
		a := binary.LittleEndian.Uint64(p)
		seen |= a
		ctl |= (a - spaces) &^ a
		p = p[8:]
	}
	if ctl&highs != 0 {
		return false
	}
	for _, c := range p {
		if c < 0x20 {
			return false
		}
		seen |= uint64(c)
	}
	return seen&highs == 0 || utf8.Valid(line)
}
