package privroom

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The fixed inputs of the vectors. Every vector of these tests (K, the
// HKDF outputs, the admission MACs, the sealed payload) was computed once
// here and checked against other implementations: Argon2id of Python's
// cryptography (OpenSSL), HKDF and HMAC written over Python's hmac, and
// libsodium's XChaCha20-Poly1305 (PyNaCl).
const (
	vectorPassphrase = "  correct   horse battery staple\t"
	vectorRendezvous = "meet me here"
	// vectorK is K for them at the real parameters (TestVectorRoomKey).
	vectorK = "5948789b051d418c57a19625743c61e431930bb2637ba4481baca4b4941ccd55"
)

// cheapParams derive fast, for tests that need Derive's path but not its
// cost.
var cheapParams = argonParams{time: 1, memoryKiB: 64, threads: 1}

// testID returns the peer ID of the Ed25519 key whose seed is 32 times
// seed: stable across runs, for the vectors.
func testID(t testing.TB, seed byte) peer.ID {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	pub, err := crypto.UnmarshalEd25519PublicKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// roomFromHex returns the room of a given K.
func roomFromHex(t testing.TB, k string) *Room {
	t.Helper()
	r, err := fromKey(mustHex(t, k))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testRoom is the room of the vectors' K; otherRoom another.
func testRoom(t testing.TB) *Room { return roomFromHex(t, vectorK) }

func otherRoom(t testing.TB) *Room {
	return roomFromHex(t, "0101010101010101010101010101010101010101010101010101010101010101")
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
