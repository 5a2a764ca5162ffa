package privroom

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"runtime/debug"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// The room key K = Argon2id(passphrase, salt), salt = lp(saltLabel) ||
// lp(rendezvous), lp being a 4-byte big-endian length and the bytes.
//
// Measured on the project's machine (2 cores, amd64, go1.26, x/crypto
// v0.54.0, 64 MiB, three runs each, fastest to slowest, over fourteen rounds
// with other work running, load average 3 to 20):
//
//	threads 1, time 16: 0.62-0.72 s when a core is free, up to 1.2-1.6 s at load 20
//	threads 2, time 16: 0.32-0.34 s when both cores are free, 0.67-1.4 s when not
//	threads 2, time 24: 0.49-0.59 s mostly, 0.65-0.72 s in other rounds
//	                    (BenchmarkDerive, release included), 1.05-1.33 s at worst
//
// Measured again later (BenchmarkDerive, same machine and costs): 0.75 to
// 0.80 s a derivation with the cores mostly free, and 1.05 to 2.0 s at a
// load average of 6. The first figures were the low end; 0.8 s is what to
// expect, still within the 0.5 to 1 s that issue 15 set.
//
// The release after it (debug.FreeOSMemory) takes 5 to 11 ms.
//
// Two lanes: the work of a guess is time × memory whatever the lanes, and an
// attacker spreads guesses over all its cores anyway; with two lanes the
// two cores we have do 24 passes in the time one does 12, so each guess
// costs an attacker 1.5 times what one lane of time 16 would, for the same
// wait or less. When the other core is busy, or on a one-core machine, the
// two lanes run one after the other: about 1.0 to 1.3 s, once, at start.
const (
	ArgonTime      = 24        // passes over the memory: about 0.8 s here, 1 to 2 s under load
	ArgonMemoryKiB = 64 * 1024 // 64 MiB, given back to the system after
	ArgonThreads   = 2         // lanes; see above
	KeySize        = 32        // bytes of K and of every key derived from it
)

// Labels. Each is versioned: a change of derivation is a new label, and
// then a new room for everyone, never a silent mismatch.
const (
	saltLabel      = "rendezvous-chat/private-room/v1"
	labelDHT       = "rendezvous-chat/private-room/v1 dht rendezvous"
	labelMDNS      = "rendezvous-chat/private-room/v1 mdns service"
	labelTopic     = "rendezvous-chat/private-room/v1 topic name"
	labelAdmission = "rendezvous-chat/private-room/v1 admission key"
	labelSeal      = "rendezvous-chat/private-room/v1 seal key"
)

// Prefixes of the derived names, so that a reader can tell what a name
// is for; what follows them is the hex of an HKDF output.
const (
	dhtPrefix   = "rendezvous-chat/private/" // + hex of 32 bytes
	mdnsPrefix  = "rc-"                      // + hex of 16 bytes: 35 characters
	topicPrefix = "rc-private-"              // + hex of 32 bytes
)

// argonParams are Argon2id's costs; tests derive with cheap ones, and one
// test with the real ones.
type argonParams struct {
	time, memoryKiB uint32
	threads         uint8
}

var realParams = argonParams{time: ArgonTime, memoryKiB: ArgonMemoryKiB, threads: ArgonThreads}

// Room holds what a private room's members derive from its passphrase and
// rendezvous string: the names to meet under, the admission key and the
// sealing key. K itself is not kept. Its methods are safe for concurrent
// use; it prints as its topic name only, never a key.
type Room struct {
	rendezvous string // DHT
	mdns       string
	topic      string
	admKey     []byte
	aead       cipher.AEAD
}

// Derive computes a private room's keys from its passphrase and the
// rendezvous string. It is slow on purpose (about 0.8 s on two free cores,
// 1 to 2 s on a busy machine, and 64 MiB; see ArgonTime): call it once, at
// start, off any goroutine that must stay responsive. It gives the Argon2 memory back to the system before it
// returns. The passphrase is normalized first (Normalize); an empty one is
// ErrEmptyPassphrase. The rendezvous string is used byte for byte.
func Derive(passphrase, rendezvous string) (*Room, error) {
	return deriveWith(realParams, passphrase, rendezvous)
}

func deriveWith(p argonParams, passphrase, rendezvous string) (*Room, error) {
	pass := Normalize(passphrase)
	if pass == "" {
		return nil, ErrEmptyPassphrase
	}
	k := roomKey(p, pass, rendezvous)
	defer clear(k)
	return fromKey(k)
}

// roomKey is K: Argon2id over the normalized passphrase. It then returns
// Argon2's 64 MiB to the system, which the runtime would otherwise give
// back only slowly (right after Argon2 alone, they are all still
// resident): a garbage collection and a scavenge, 5 to 11 ms, once per
// process.
func roomKey(p argonParams, pass, rendezvous string) []byte {
	k := argon2.IDKey([]byte(pass), roomSalt(rendezvous), p.time, p.memoryKiB, p.threads, KeySize)
	debug.FreeOSMemory()
	return k
}

// roomSalt encodes the label and the rendezvous string unambiguously.
func roomSalt(rendezvous string) []byte {
	b := appendLP(nil, []byte(saltLabel))
	return appendLP(b, []byte(rendezvous))
}

// appendLP appends b with its length, 4 bytes big-endian.
func appendLP(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// fromKey derives everything else from K, each with its own HKDF label.
func fromKey(k []byte) (*Room, error) {
	if len(k) != KeySize {
		return nil, fmt.Errorf("privroom: room key of %d bytes, want %d", len(k), KeySize)
	}
	sealKey := expand(k, labelSeal, chacha20poly1305.KeySize)
	defer clear(sealKey)
	aead, err := chacha20poly1305.NewX(sealKey)
	if err != nil {
		return nil, err
	}
	return &Room{
		rendezvous: dhtPrefix + hex.EncodeToString(expand(k, labelDHT, 32)),
		mdns:       mdnsPrefix + hex.EncodeToString(expand(k, labelMDNS, 16)),
		topic:      topicPrefix + hex.EncodeToString(expand(k, labelTopic, 32)),
		admKey:     expand(k, labelAdmission, KeySize),
		aead:       aead,
	}, nil
}

// expand is HKDF-SHA256 of K with info = label and no salt (K is already
// uniformly random), n bytes.
func expand(k []byte, label string, n int) []byte {
	out := make([]byte, n)
	if _, err := io.ReadFull(hkdf.New(sha256.New, k, nil, []byte(label)), out); err != nil {
		panic("privroom: hkdf: " + err.Error()) // n ≤ 255×32: never
	}
	return out
}

// Rendezvous returns the string to advertise and find the room under in
// the DHT, in place of the rendezvous string: "rendezvous-chat/private/"
// and 64 hex digits.
func (r *Room) Rendezvous() string { return r.rendezvous }

// MDNSService returns the mDNS service name of the room: "rc-" and 32 hex
// digits, a valid DNS label of 35 characters.
func (r *Room) MDNSService() string { return r.mdns }

// Topic returns the room's name on GossipSub, to use where the room's name
// is used today: the chat topic is Topic(), the presence topic
// gossiproom.PresenceTopic(Topic()) and the file topic Topic()+"-file".
// It is "rc-private-" and 64 hex digits.
func (r *Room) Topic() string { return r.topic }

// String names the room by its topic; it never shows a key.
func (r *Room) String() string { return "private room " + r.topic }

// GoString is String, so that %#v shows no key either.
func (r *Room) GoString() string { return r.String() }
