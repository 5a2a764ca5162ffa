package wire

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Version is the version of the framed format this package speaks; a hello
// frame carries it. The protocol ID carries the major version, so a peer
// with a higher minor version adds frame types or fields, which older
// readers ignore.
const Version = 1

// Limits of the framed format. A frame is one line, so its limit leaves room
// for a message text of MaxTextBytes even when every byte is escaped (a
// control character is six bytes in JSON).
const (
	MaxFrameBytes = 6*MaxTextBytes + 4096
	MaxIDBytes    = 128
	// MaxAckIDs bounds the message IDs one ack frame acknowledges.
	MaxAckIDs = 512
	// MaxHelloBytes bounds the first frame, read before anything else.
	MaxHelloBytes = 4096
)

// Frame types. A reader passes on types it does not know, and sessions
// ignore them, so that a newer peer can add some.
const (
	// TypeHello opens every stream, in both directions: version and nickname.
	TypeHello = "hello"
	// TypeMsg is a chat message with the sender's ID for it.
	TypeMsg = "msg"
	// TypeAck acknowledges messages by their IDs.
	TypeAck = "ack"
	// TypeNick announces a new nickname.
	TypeNick = "nick"
	// TypeFile describes a file the sender shares with the room: ID is the
	// ID it announces on the room's file topic (universal-connectivity's
	// file protocol serves it), Text the file's name and Size its length.
	// The topic's announcement carries the ID alone; this tells the
	// sender's own peers what it is.
	TypeFile = "file"
)

// MaxFileNameBytes bounds a file's name in a file frame.
const MaxFileNameBytes = 255

// ErrMalformed is returned for a frame that is not valid JSON of a frame or
// breaks the format's rules (a message without an ID, too many IDs).
var ErrMalformed = errors.New("malformed frame")

// A Frame is one unit of the chat protocol. Fields that do not apply to its
// type are empty and are not sent.
type Frame struct {
	Type string `json:"type"`
	// V is the sender's format version (hello).
	V int `json:"v,omitempty"`
	// Nick is the sender's nickname (hello, nick). It is the peer's choice:
	// the receiver limits and sanitizes it before showing it.
	Nick string `json:"nick,omitempty"`
	// ID names a message (msg): unique for its sender, who keeps it when
	// sending the message again, so that the receiver can drop duplicates.
	ID string `json:"id,omitempty"`
	// Text is a message's text (msg): UTF-8, at most MaxTextBytes.
	Text string `json:"text,omitempty"`
	// Private marks a message sent to the receiver alone (msg).
	Private bool `json:"private,omitempty"`
	// IDs are the messages an ack frame acknowledges.
	IDs []string `json:"ids,omitempty"`
	// Size is a file's length in bytes (file).
	Size int64 `json:"size,omitempty"`
}

// Framed is this program's own wire format: one JSON object per line (UTF-8,
// ending in "\n"), each a Frame, at most MaxFrameBytes long.
type Framed struct{}

// NewReader returns a reader of frames.
func (Framed) NewReader(r io.Reader) Reader {
	return &framedReader{r: newLineScanner(r, MaxFrameBytes)}
}

// NewWriter returns a writer of frames.
func (Framed) NewWriter(w io.Writer) Writer {
	bw := bufio.NewWriterSize(w, 16<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false) // "<" is not special here; keep the frames readable
	return &framedWriter{w: bw, enc: enc}
}

// Framed reports true.
func (Framed) Framed() bool { return true }

type framedReader struct {
	r *lineScanner
}

// Read returns the next frame; empty lines between frames are skipped.
func (fr *framedReader) Read() (Frame, error) {
	for {
		line, err := fr.r.next()
		if err != nil {
			if errors.Is(err, ErrTooLong) {
				return Frame{}, fmt.Errorf("frame %w of %d KiB", ErrTooLong, MaxFrameBytes>>10)
			}
			return Frame{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		return DecodeFrame(line)
	}
}

// DecodeFrame decodes one frame and checks it against the format's rules.
func DecodeFrame(line []byte) (Frame, error) {
	f, ok := decodeFast(line)
	if !ok {
		// A frame of its own for encoding/json: taking f's address there
		// would move f to the heap on every call, fast path included.
		slow := new(Frame)
		if err := json.Unmarshal(line, slow); err != nil {
			return Frame{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		f = *slow
	}
	if err := f.check(); err != nil {
		return Frame{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return f, nil
}

// check enforces what a frame of a known type must hold.
func (f *Frame) check() error {
	switch f.Type {
	case "":
		return errors.New(`no "type"`)
	case TypeMsg:
		if err := checkID(f.ID); err != nil {
			return err
		}
		if len(f.Text) > MaxTextBytes {
			return fmt.Errorf("message text over %d KiB", MaxTextBytes>>10)
		}
		if f.Text == "" {
			return errors.New("empty message text")
		}
	case TypeFile:
		if err := checkID(f.ID); err != nil {
			return err
		}
		if len(f.Text) > MaxFileNameBytes || !utf8.ValidString(f.Text) || f.Size < 0 {
			return fmt.Errorf("a file frame needs a name of at most %d bytes of UTF-8 and a size of 0 or more", MaxFileNameBytes)
		}
	case TypeAck:
		if len(f.IDs) == 0 || len(f.IDs) > MaxAckIDs {
			return fmt.Errorf("an ack must name 1 to %d IDs, not %d", MaxAckIDs, len(f.IDs))
		}
		for _, id := range f.IDs {
			if err := checkID(id); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkID(id string) error {
	if id == "" || len(id) > MaxIDBytes || !utf8.ValidString(id) {
		return fmt.Errorf("a message ID must be 1 to %d bytes of UTF-8", MaxIDBytes)
	}
	return nil
}

type framedWriter struct {
	w   *bufio.Writer
	enc *json.Encoder
	buf []byte
}

// Write buffers one frame, ending in "\n". Messages and receipts, one or
// more per line sent, are encoded by hand (see appendFast); other frames
// by encoding/json.
func (fw *framedWriter) Write(f Frame) error {
	if b, ok := appendFast(fw.buf[:0], f); ok {
		fw.buf = b
		_, err := fw.w.Write(b)
		return err
	}
	return fw.enc.Encode(f)
}

func (fw *framedWriter) Flush() error { return fw.w.Flush() }

// ExchangeHello opens a framed stream: it sends our hello, then reads the
// peer's. Both sides write before they read, so neither waits for the
// other. The peer's hello is read a byte at a time so that nothing after it
// is consumed: the session's reader takes over the stream from there. The
// caller bounds it with a deadline on the stream.
func ExchangeHello(rw io.ReadWriter, nick string) (Frame, error) {
	b, err := json.Marshal(Frame{Type: TypeHello, V: Version, Nick: nick})
	if err != nil {
		return Frame{}, err
	}
	if _, err := rw.Write(append(b, '\n')); err != nil {
		return Frame{}, fmt.Errorf("send hello: %w", err)
	}
	line := make([]byte, 0, 128)
	var one [1]byte
	for {
		n, err := rw.Read(one[:])
		if n == 1 {
			if one[0] == '\n' {
				break
			}
			if len(line) >= MaxHelloBytes {
				return Frame{}, fmt.Errorf("hello %w of %d bytes", ErrTooLong, MaxHelloBytes)
			}
			line = append(line, one[0])
			continue
		}
		if err != nil {
			return Frame{}, fmt.Errorf("read hello: %w", err)
		}
	}
	f, err := DecodeFrame(line)
	if err != nil {
		return Frame{}, err
	}
	if f.Type != TypeHello {
		return Frame{}, fmt.Errorf("%w: the first frame is %q, not a hello", ErrMalformed, f.Type)
	}
	return f, nil
}
