package event

import (
	"strconv"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/safetext"
)

// AppendJSON appends e as one line of JSON, the same object that
// encoding/json would write for it (field names, omitted empty fields,
// RFC 3339 time), at a fraction of the cost: the JSON view writes one per
// message, and reflection made it a large part of the receiver's work. It
// writes only events for which Plain reports true; the others, rare
// answers to commands, go through encoding/json.
func AppendJSON(b []byte, e *Event) []byte {
	b = append(b, `{"event":`...)
	b = safetext.AppendJSON(b, string(e.Kind))
	b = append(b, `,"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendJSONField(b, "code", string(e.Code))
	b = appendJSONField(b, "id", e.ID)
	b = appendJSONList(b, "addrs", e.Addrs)
	b = appendJSONField(b, "rendezvous", e.Rendezvous)
	b = appendJSONBool(b, "server", e.Server)
	b = appendJSONField(b, "peer", e.Peer)
	b = appendJSONField(b, "text", e.Text)
	b = appendJSONField(b, "error", e.Error)
	b = appendJSONField(b, "protocol", e.Protocol)
	b = appendJSONField(b, "direction", e.Direction)
	b = appendJSONField(b, "addr", e.Addr)
	b = appendJSONBool(b, "plain", e.Plain)
	b = appendJSONField(b, "reason", e.Reason)
	b = appendJSONField(b, "nick", e.Nick)
	b = appendJSONField(b, "name", e.Name)
	b = appendJSONField(b, "was", e.Was)
	b = appendJSONField(b, "msg_id", e.MsgID)
	b = appendJSONList(b, "msg_ids", e.MsgIDs)
	b = appendJSONBool(b, "private", e.Private)
	b = appendJSONField(b, "to", e.To)
	b = appendJSONList(b, "peers", e.Peers)
	b = appendJSONList(b, "no_receipt", e.NoReceipt)
	b = appendJSONList(b, "names", e.Names)
	b = appendJSONField(b, "via", e.Via)
	b = appendJSONField(b, "topic", e.Topic)
	b = appendJSONField(b, "status", e.Status)
	b = appendJSONField(b, "file_id", e.FileID)
	b = appendJSONField(b, "path", e.Path)
	b = appendJSONInt(b, "bytes", e.Bytes)
	b = appendJSONInt(b, "total", e.Total)
	b = appendJSONBool(b, "done", e.Done)
	b = appendJSONField(b, "why", e.Why)
	b = appendJSONField(b, "cause", e.Cause)
	b = appendJSONInt(b, "count", int64(e.Count))
	b = appendJSONInt(b, "limit", e.Limit)
	b = appendJSONInt(b, "wait_ms", e.WaitMS)
	b = appendJSONBool(b, "relayed", e.Relayed)
	b = appendJSONBool(b, "forced", e.Forced)
	b = appendJSONField(b, "command", e.Command)
	return append(b, '}', '\n')
}

func appendJSONBool(b []byte, name string, value bool) []byte {
	if !value {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	return append(b, `":true`...)
}

func appendJSONInt(b []byte, name string, value int64) []byte {
	if value == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, value, 10)
}

func appendJSONList(b []byte, name string, values []string) []byte {
	if len(values) == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':', '[')
	for i, v := range values {
		if i > 0 {
			b = append(b, ',')
		}
		b = safetext.AppendJSON(b, v)
	}
	return append(b, ']')
}

func appendJSONField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return safetext.AppendJSON(b, value)
}

// Plain reports whether AppendJSON can write e: it has none of the fields
// of the rare events (the answers to /conns, /peers, /pending, /ping and
// /help, the bootstrap report, the topic's rate).
func Plain(e *Event) bool {
	return e.Conns == nil && e.Room == nil && e.Pending == nil && e.RTTMS == 0 && e.Rate == 0 &&
		e.Bootstrap == nil && e.Kind != Help
}
