package main

import (
	"bufio"
	"encoding/json"
	"io"

	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
	"github.com/rendezvous-chat/rendezvous-chat/internal/words"
)

// jsonView prints one JSON object per event and line.
type jsonView struct {
	w   *bufio.Writer
	buf []byte
}

func newJSONView(w io.Writer) *jsonView {
	return &jsonView{w: bufio.NewWriterSize(w, 32<<10)}
}

// render writes the event, with its words for people in text, error or
// reason (see words.Fill). The encoder escapes control characters and
// replaces invalid UTF-8, so the output stays valid JSON whatever a peer
// sends.
func (v *jsonView) render(e *event.Event) error {
	words.Fill(e)
	if !event.Plain(e) {
		// Rare answers to commands, with fields event.AppendJSON does not
		// write: encoding/json is fast enough.
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		v.buf = append(append(v.buf[:0], b...), '\n')
	} else {
		v.buf = event.AppendJSON(v.buf[:0], e)
	}
	_, err := v.w.Write(v.buf)
	return err
}

func (v *jsonView) flush() error { return v.w.Flush() }
