package main

import (
	"time"
	"unicode/utf8"
)

// appendEventJSON appends e as one line of JSON, the same object that
// encoding/json would write for it (field names, omitted empty fields,
// RFC 3339 time), at a fraction of the cost: the JSON view writes one per
// message, and reflection made it a large part of the receiver's work.
func appendEventJSON(b []byte, e Event) []byte {
	b = append(b, `{"event":`...)
	b = appendJSONString(b, string(e.Kind))
	b = append(b, `,"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendJSONField(b, "id", e.ID)
	if len(e.Addrs) > 0 {
		b = append(b, `,"addrs":[`...)
		for i, a := range e.Addrs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, a)
		}
		b = append(b, ']')
	}
	b = appendJSONField(b, "rendezvous", e.Rendezvous)
	if e.Server {
		b = append(b, `,"server":true`...)
	}
	b = appendJSONField(b, "peer", e.Peer)
	b = appendJSONField(b, "text", e.Text)
	b = appendJSONField(b, "error", e.Error)
	b = appendJSONField(b, "protocol", e.Protocol)
	b = appendJSONField(b, "direction", e.Direction)
	b = appendJSONField(b, "addr", e.Addr)
	b = appendJSONField(b, "reason", e.Reason)
	return append(b, '}', '\n')
}

func appendJSONField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, value)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as with encoding/json. Every character that sanitize would escape on a
// terminal (control characters, DEL, C1, bidirectional controls) and U+2028
// and U+2029 are written as \u escapes, so that a JSON stream viewed raw on
// a terminal is safe too; the decoded text is unchanged.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029' || unsafeRune(r):
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
