package wire

import (
	"bytes"
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
	if bytes.IndexByte(line, '\\') >= 0 || !utf8.Valid(line) {
		return Frame{}, false
	}
	switch {
	case bytes.HasPrefix(line, msgPrefix):
		rest := line[len(msgPrefix):]
		i := bytes.IndexByte(rest, '"')
		if i < 0 || !bytes.HasPrefix(rest[i:], msgTextKey) {
			return Frame{}, false
		}
		id, rest := rest[:i], rest[i+len(msgTextKey):]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			return Frame{}, false
		}
		text, end := rest[:j], rest[j:]
		f := Frame{Type: TypeMsg, ID: string(id), Text: string(text)}
		switch {
		case string(end) == `"}`:
		case bytes.Equal(end, msgPrivateEnd):
			f.Private = true
		default:
			return Frame{}, false
		}
		return f, true
	case bytes.HasPrefix(line, ackPrefix):
		rest := line[len(ackPrefix):]
		var ids []string
		for {
			if len(rest) == 0 || rest[0] != '"' {
				return Frame{}, false
			}
			i := bytes.IndexByte(rest[1:], '"')
			if i < 0 || len(ids) == MaxAckIDs {
				return Frame{}, false
			}
			ids = append(ids, string(rest[1:1+i]))
			rest = rest[2+i:]
			if len(rest) > 0 && rest[0] == ',' {
				rest = rest[1:]
				continue
			}
			if string(rest) != "]}" {
				return Frame{}, false
			}
			return Frame{Type: TypeAck, IDs: ids}, true
		}
	}
	return Frame{}, false
}
