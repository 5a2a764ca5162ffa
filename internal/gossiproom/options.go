package gossiproom

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	// DefaultMaxMessageBytes bounds a chat line on the topic: 64 KiB is far
	// more than anyone types, and small enough that a peer forwarding it to
	// its whole mesh (about D = 6 copies) costs little.
	DefaultMaxMessageBytes = 64 << 10

	// DefaultRate and DefaultBurst are the token bucket applied to each
	// author of chat lines: a burst of 50 lines (a pasted block) passes at
	// once, and after it 10 lines a second. No person types faster; a
	// program that does is flooding.
	DefaultRate  = 10.0
	DefaultBurst = 50

	// DefaultPresenceInterval is how often a peer says it is still here.
	// Each announcement is sent after the interval times a random factor
	// between 0.8 and 1.2, so that peers that started together do not
	// announce together.
	DefaultPresenceInterval = 30 * time.Second

	// DefaultSilentTTL is how long a peer that never speaks the presence
	// topic (a universal-connectivity peer) stays in the table after the
	// last sign of it: a chat line, a subscription seen on a direct
	// connection, or a browser peer-discovery record.
	DefaultSilentTTL = 5 * time.Minute

	// DefaultMaxPresencePeers bounds the presence table, and with it the
	// memory a crowd of made-up identities can make us spend.
	DefaultMaxPresencePeers = 4096

	// DefaultQueueSize is the length of the Messages and Presence channels
	// and of the pubsub subscription buffers behind them.
	DefaultQueueSize = 256

	// MaxNickBytes and MaxCapabilities bound what a presence message may
	// carry; MaxPresenceBytes bounds the whole message.
	MaxNickBytes       = 64
	MaxCapabilities    = 8
	MaxCapabilityBytes = 64
	MaxPresenceBytes   = 1024
)

// Options tunes a Room. The zero value means the defaults above.
type Options struct {
	// MaxMessageBytes bounds a chat line on the topic (DefaultMaxMessageBytes
	// if 0). The topic validator drops bigger lines, and Publish refuses them.
	MaxMessageBytes int

	// Rate (lines a second) and Burst form the token bucket each author's
	// lines must fit to be accepted (DefaultRate and DefaultBurst if 0).
	// Publish keeps our own lines within half of both, so that jitter on the
	// way never makes a receiver with the same settings refuse them.
	Rate  float64
	Burst int

	// Nick and Capabilities are announced on the presence topic. Nick is at
	// most MaxNickBytes of UTF-8; Capabilities (for example the protocol IDs
	// we speak besides the topic) at most MaxCapabilities strings of
	// MaxCapabilityBytes each.
	Nick         string
	Capabilities []string

	// PresenceInterval is the mean time between two presence announcements
	// (DefaultPresenceInterval if 0). Peers in a room should use the same
	// value: a receiver accepts about three announcements per interval of its
	// own from each peer.
	PresenceInterval time.Duration
	// SilentTTL is how long a peer that does not announce itself stays
	// present after its last sign (DefaultSilentTTL if 0).
	SilentTTL time.Duration
	// MaxPresencePeers bounds the presence table (DefaultMaxPresencePeers if 0).
	MaxPresencePeers int
	// DisablePresence turns the presence topic off: no announcements, no
	// table beyond what the chat topic shows. Benchmarks use it to measure
	// the chat alone.
	DisablePresence bool

	// QueueSize is the length of the Messages and Presence channels
	// (DefaultQueueSize if 0).
	QueueSize int

	// Sealer, when set, makes the room's topics private: every payload we
	// publish (lines, presence, side topics) is sealed with it, and every
	// payload we take is opened with it first; one it cannot open is
	// rejected, its author penalized. Relays that are not members carry
	// what they cannot read. The chat's private rooms set it.
	Sealer Sealer

	// Peers, when set, are the only peers the router exchanges anything
	// with, on every topic of the room: nothing of ours (lines, presence,
	// side topics) goes to another peer, and nothing from one is taken.
	// The chat's -allow-peer sets it.
	Peers func(peer.ID) bool

	// LeaveLinger bounds how long Close waits for the "bye" announcement to
	// be written to our neighbours before it stops the router (250 ms if 0).
	LeaveLinger time.Duration
}

// A Sealer seals and opens the payloads of a private room's topics.
type Sealer interface {
	// Seal returns data sealed by us, for all the room's members.
	Seal(data []byte) ([]byte, error)
	// Open returns what author sealed for topic, or an error when it
	// cannot be opened (not a member's, altered, moved to another author,
	// or played again).
	Open(topic string, author peer.ID, sealed []byte) ([]byte, error)
	// Overhead is how many bytes sealing adds.
	Overhead() int
}

// withDefaults fills in the defaults and checks what the caller set.
func (o Options) withDefaults() (Options, error) {
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.MaxMessageBytes < 0 || o.MaxMessageBytes > maxRPCBytes/2 {
		return o, fmt.Errorf("max message bytes %d: must be between 1 and %d", o.MaxMessageBytes, maxRPCBytes/2)
	}
	if o.Rate == 0 {
		o.Rate = DefaultRate
	}
	if o.Burst == 0 {
		o.Burst = DefaultBurst
	}
	if !(o.Rate > 0) || o.Burst < 2 {
		return o, fmt.Errorf("rate %v/s, burst %d: the rate must be positive and the burst at least 2", o.Rate, o.Burst)
	}
	if err := checkPresenceFields(o.Nick, o.Capabilities); err != nil {
		return o, err
	}
	if o.PresenceInterval == 0 {
		o.PresenceInterval = DefaultPresenceInterval
	}
	if o.PresenceInterval < 10*time.Millisecond {
		return o, fmt.Errorf("presence interval %v: must be at least 10ms", o.PresenceInterval)
	}
	if o.SilentTTL == 0 {
		o.SilentTTL = DefaultSilentTTL
	}
	if o.SilentTTL < 0 {
		return o, fmt.Errorf("silent TTL %v: must be positive", o.SilentTTL)
	}
	if o.MaxPresencePeers == 0 {
		o.MaxPresencePeers = DefaultMaxPresencePeers
	}
	if o.MaxPresencePeers < 0 {
		return o, fmt.Errorf("max presence peers %d: must be positive", o.MaxPresencePeers)
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.QueueSize < 0 {
		return o, fmt.Errorf("queue size %d: must be positive", o.QueueSize)
	}
	if o.LeaveLinger == 0 {
		o.LeaveLinger = 250 * time.Millisecond
	}
	if o.LeaveLinger < 0 {
		return o, fmt.Errorf("leave linger %v: must be positive", o.LeaveLinger)
	}
	o.Capabilities = append([]string(nil), o.Capabilities...)
	return o, nil
}

// errNick is wrapped by every error about a nickname or capability that
// cannot be announced.
var errNick = errors.New("cannot be announced")

// checkPresenceFields checks what we put in our own presence message, with
// the bounds a receiver applies to everyone else's.
func checkPresenceFields(nick string, caps []string) error {
	if len(nick) > MaxNickBytes || !utf8.ValidString(nick) {
		return fmt.Errorf("nickname %q %w: at most %d bytes of UTF-8", nick, errNick, MaxNickBytes)
	}
	if len(caps) > MaxCapabilities {
		return fmt.Errorf("%d capabilities %w: at most %d", len(caps), errNick, MaxCapabilities)
	}
	for _, c := range caps {
		if c == "" || len(c) > MaxCapabilityBytes || !utf8.ValidString(c) {
			return fmt.Errorf("capability %q %w: 1 to %d bytes of UTF-8", c, errNick, MaxCapabilityBytes)
		}
	}
	return nil
}
