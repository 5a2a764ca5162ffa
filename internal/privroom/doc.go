// Package privroom is the cryptography of private rooms (issue 15): a
// passphrase that keeps strangers from finding, entering and reading a
// room. It composes kept libraries only (golang.org/x/crypto's argon2, hkdf
// and chacha20poly1305; crypto/hmac, crypto/sha256, crypto/rand): nothing
// here is cryptography of its own. The node, the room and the GossipSub
// topic use its pieces; it knows nothing of them.
//
// # One room key, and everything else from it
//
// Derive(passphrase, rendezvous) computes the room key
//
//	K = Argon2id(Normalize(passphrase), salt = lp("rendezvous-chat/private-room/v1") || lp(rendezvous),
//	             time ArgonTime = 24, memory 64 MiB, 2 lanes, 32 bytes)
//
// (lp: a 4-byte big-endian length, then the bytes), about 0.8 s on the
// project's 2-core machine (1 to 2 s when it is busy, or on a one-core
// machine; keys.go has the measurements), so that every offline
// guess of the passphrase costs about a second of a core. Derive then gives
// Argon2's 64 MiB back to the system (runtime/debug.FreeOSMemory): the
// resident size after it is what it was before, give or take a few hundred
// KiB. TestDeriveGivesMemoryBack measures it in a fresh process: VmRSS
// 9984 KiB before, peak (VmHWM) 75908 KiB, 10384 KiB after; Argon2 alone,
// without the release, leaves 76112 KiB resident.
//
// Everything else is HKDF-SHA256 of K, each with its own label (keys.go),
// and K itself is not kept:
//
//   - Rendezvous(): the string to advertise and find under in the DHT,
//     "rendezvous-chat/private/" and 64 hex digits;
//   - MDNSService(): the mDNS service name, "rc-" and 32 hex digits, a DNS
//     label of 35 characters;
//   - Topic(): the room's name on GossipSub, "rc-private-" and 64 hex
//     digits, used where the room's name is used today: the chat topic is
//     Topic(), presence gossiproom.PresenceTopic(Topic()), files
//     Topic()+"-file";
//   - the admission key (Admit) and the sealing key (Seal, Open).
//
// Without K nobody can compute these names, and they show neither the
// passphrase nor the rendezvous string. Rooms with the same passphrase and
// different rendezvous strings are different rooms.
//
// # Admission: a mutual proof on every chat stream
//
// Admit(rw, local, remote, initiator) runs, first thing on a stream, an
// exchange of fixed-size messages (admit.go): a hello with a 32-byte random
// nonce from each side, then the initiator's proof, then the responder's
// verdict with its proof. A proof is HMAC-SHA256 under the admission key
// of the label, the prover's role ('I' or 'R'), both peer IDs (the ones the
// secure channel authenticated: the stream's Conn().LocalPeer() and
// RemotePeer()) and both nonces. So a proof is good for one stream between
// two peer IDs only: it cannot be replayed on another stream (fresh
// nonces), relayed to a third peer (the IDs) or reflected back to its
// sender (the role). The responder checks the initiator's proof before it
// shows its own, so a stranger who dials a member learns nothing but a
// refusal; both sides of a failed admission get ErrNotMember. The caller
// sets a deadline on the stream and resets it on any error; the exchange
// reads at most 33 bytes at a time, in fixed sizes.
//
// # Sealed topics
//
// Seal(author, seq, plaintext) encrypts a payload with XChaCha20-Poly1305
// under the sealing key, with a random 24-byte nonce, and binds it to its
// author's peer ID and a seq (associated data); Open(author, sealed)
// returns the seq and the plaintext, or ErrOpen. The format is
//
//	0x01 (version) || seq (8 bytes, big-endian) || nonce (24) || ciphertext and tag (plaintext + 16)
//
// Overhead (49 bytes) on top of the plaintext, MaxSealed (1 MiB) at most.
//
// Why a seq of our own, carried in the payload, rather than GossipSub's:
// with StrictSign a message's From and Seqno are signed by its author, but
// Topic.Publish picks the Seqno itself, after we hand it the data, so the
// publisher cannot seal to it. Instead the publisher numbers its payloads
// with a Counter (one per process, for all the room's topics; its numbers
// rise and are at least the wall clock in nanoseconds) and the receiver,
// in the topic's validator:
//
//	seq, plain, err := room.Open(peer.ID(msg.GetFrom()), msg.GetData()) // reject on error
//	err = guard.Accept(peer.ID(msg.GetFrom()), seq)                     // ignore on ErrReplay
//
// with one ReplayGuard per topic (NewReplayGuard(maxAuthors, maxAge)). A
// member cannot re-attribute another member's payload: it would have to
// publish it under the other's From, which StrictSign refuses without the
// other's key, and under its own From the payload does not open. Someone
// who kept a signed message can publish it again once GossipSub's cache of
// seen messages has forgotten it; the guard refuses the seqs it has seen
// (the last 64 per author), those below them, and, with maxAge, those older
// than that by our clock, so that a replay reaches no one who joined since.
// The topic name itself is not in the associated data: GossipSub's
// signature covers the topic.
//
// # Passphrases
//
// Generate returns six words of the EFF long word list (7776 words, 12.92
// bits each, 77.5 bits in all), drawn with crypto/rand and joined by single
// spaces. The list is eff_large_wordlist.txt, byte for byte as the EFF
// publishes it at eff.org/files/2016/07/18/eff_large_wordlist.txt (108800
// bytes, SHA-256 addd35536511597a02fa0a9ff1e5284677b8883b83e986e43f15a3db996b903e,
// checked by a test), © 2016 Electronic Frontier Foundation, CC BY 3.0 US.
//
// Normalize trims the spaces around a passphrase and makes each run of
// spaces inside it one space; it changes nothing else (no case folding, no
// Unicode normalization). Derive, ReadPassphraseFile and
// WritePassphraseFile normalize. ReadPassphraseFile reads a file's first
// line and refuses a file that group or others may read or write, and an
// empty passphrase; WritePassphraseFile creates a file of mode 0600 and
// never replaces one.
//
// # For the wiring
//
//   - Derive once, at start, before the node: its names replace the
//     rendezvous string in the DHT (Rendezvous), in mDNS (MDNSService) and
//     on GossipSub (Topic).
//   - Run Admit on every chat stream, both ways, with a deadline of a few
//     seconds, before any byte of the chat; reset the stream on error. The
//     room does it first thing on its framed protocol's streams
//     (internal/room's private.go); a peer of an open room that dials a
//     member reads a hello that is not its protocol's and resets. Peers
//     that speak only the public protocols (/chat/1.1.0,
//     universal-connectivity) cannot be in a private room: the plain
//     protocol is not offered there.
//   - Seal every payload of the room's topics (chat, presence, files) and
//     open it in the topic's validator, as above; a topic's size limit grows
//     by Overhead.
//
// # What it protects, and what it does not
//
// Against someone without the passphrase, it keeps:
//
//   - the room from being found: the DHT key, the mDNS name and the topic
//     names are derived from K, and say nothing of the rendezvous string;
//   - the room from being entered: a chat stream carries nothing before
//     both sides have proved they hold K;
//   - the room from being read or written: topic payloads are sealed, and a
//     payload moved to another author or seq, changed or cut does not
//     open.
//
// It does not:
//
//   - stop offline guessing: the DHT key, the names and any proof are
//     checks of a guess. Each guess costs one Argon2id derivation (64 MiB,
//     about 1 s of one core here), so a generated passphrase (77.5 bits) is
//     out of reach; a short or common one typed by a person is not;
//   - protect against members: every member holds K and can read
//     everything, admit anyone, and seal anything under its own ID. There is
//     no forward secrecy: whoever learns the passphrase later reads
//     recorded payloads. To remove a member, change the passphrase;
//   - hide who talks to whom: peer IDs, addresses, topic subscriptions,
//     sizes and timing of messages stay visible to the network. Peers in
//     the same room can be linked through its names, which stay the same as
//     long as the passphrase and rendezvous string do;
//   - bind a proof to a stream by itself: the caller runs Admit on the
//     stream whose secure channel authenticated local and remote, and sends
//     nothing of the room on it before Admit returns nil;
//   - wipe every secret from memory: K is cleared once the keys are
//     derived, and Argon2's memory goes back to the kernel, but the derived
//     keys stay for the life of the Room, and Go may keep copies of the
//     passphrase (a string) in freed memory until it reuses it.
package privroom
