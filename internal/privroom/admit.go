package privroom

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrNotMember: the peer did not prove that it holds the room key, or
// refused our proof. Either way, it is not in this room with us.
var ErrNotMember = errors.New("privroom: the peer is not a member of this private room")

// ErrMalformed: the peer sent something that is not the admission
// exchange (a wrong version, a verdict byte that is none, our own nonce).
var ErrMalformed = errors.New("privroom: malformed admission message")

// The admission exchange, all sizes fixed:
//
//	initiator → responder  hello:   0x01 || nonceI (32 random bytes)
//	responder → initiator  hello:   0x01 || nonceR (32 random bytes)
//	initiator → responder  proof:   MAC("I") (32 bytes)
//	responder → initiator  verdict: 0x01 || MAC("R") (33 bytes) when the
//	                                initiator's proof is right, else 0x00
//
// MAC(role) = HMAC-SHA256(admission key, lp(admissionLabel) || role ||
// lp(initiator ID) || lp(responder ID) || nonceI || nonceR), role being
// the byte 'I' or 'R'. The responder checks the initiator's proof before it
// shows its own, so a stranger who dials a member gets no proof at all.
const (
	admissionVersion = 0x01
	admissionLabel   = "rendezvous-chat/admission/v1"
	nonceSize        = 32
	macSize          = sha256.Size
	helloSize        = 1 + nonceSize
	verdictAdmit     = 0x01
	verdictRefuse    = 0x00
	roleInitiator    = 'I'
	roleResponder    = 'R'
)

// Admit runs the admission exchange on a fresh stream, before anything
// else is sent on it: both sides prove that they hold the room key, bound
// to both peer IDs and to a fresh nonce from each side. local and remote
// are the IDs that the secure channel authenticated (the stream's
// Conn().LocalPeer() and RemotePeer()); initiator is true on the side that
// opened the stream. It returns nil once both proofs are right;
// ErrNotMember when the peer's proof is wrong or the peer refused ours;
// ErrMalformed, or an error wrapping io.ErrUnexpectedEOF or io.EOF, for a
// peer that does not speak the exchange. It reads fixed sizes only
// (33 + 33 bytes at most) and sets no deadline: the caller sets one on the
// stream. On any error the caller resets the stream.
func (r *Room) Admit(rw io.ReadWriter, local, remote peer.ID, initiator bool) error {
	if local == "" || remote == "" {
		return errors.New("privroom: admission needs both peer IDs")
	}
	if initiator {
		return r.admitInitiator(rw, local, remote)
	}
	return r.admitResponder(rw, local, remote)
}

func (r *Room) admitInitiator(rw io.ReadWriter, local, remote peer.ID) error {
	nonceI := newNonce()
	if err := writeAll(rw, hello(nonceI), "hello"); err != nil {
		return err
	}
	nonceR, err := readHello(rw, nonceI)
	if err != nil {
		return err
	}
	if err := writeAll(rw, r.admissionMAC(roleInitiator, local, remote, nonceI, nonceR), "proof"); err != nil {
		return err
	}
	var verdict [1 + macSize]byte
	if err := readFull(rw, verdict[:1], "verdict"); err != nil {
		return err
	}
	switch verdict[0] {
	case verdictRefuse:
		return fmt.Errorf("%w: it refused our proof", ErrNotMember)
	case verdictAdmit:
	default:
		return fmt.Errorf("%w: verdict byte %#02x", ErrMalformed, verdict[0])
	}
	if err := readFull(rw, verdict[1:], "proof"); err != nil {
		return err
	}
	if !hmac.Equal(verdict[1:], r.admissionMAC(roleResponder, local, remote, nonceI, nonceR)) {
		return fmt.Errorf("%w: its proof is wrong", ErrNotMember)
	}
	return nil
}

func (r *Room) admitResponder(rw io.ReadWriter, local, remote peer.ID) error {
	var helloI [helloSize]byte
	if err := readFull(rw, helloI[:], "hello"); err != nil {
		return err
	}
	if helloI[0] != admissionVersion {
		return fmt.Errorf("%w: version %#02x", ErrMalformed, helloI[0])
	}
	nonceI := helloI[1:]
	nonceR := newNonce()
	if err := writeAll(rw, hello(nonceR), "hello"); err != nil {
		return err
	}
	var proof [macSize]byte
	if err := readFull(rw, proof[:], "proof"); err != nil {
		return err
	}
	// Here the initiator is remote.
	if !hmac.Equal(proof[:], r.admissionMAC(roleInitiator, remote, local, nonceI, nonceR)) {
		_, _ = rw.Write([]byte{verdictRefuse}) // a courtesy; the error stands whatever
		return fmt.Errorf("%w: its proof is wrong", ErrNotMember)
	}
	verdict := append([]byte{verdictAdmit}, r.admissionMAC(roleResponder, remote, local, nonceI, nonceR)...)
	return writeAll(rw, verdict, "proof")
}

// admissionMAC is the proof of one role, on one transcript.
func (r *Room) admissionMAC(role byte, initiator, responder peer.ID, nonceI, nonceR []byte) []byte {
	m := hmac.New(sha256.New, r.admKey)
	m.Write(appendLP(nil, []byte(admissionLabel)))
	m.Write([]byte{role})
	m.Write(appendLP(nil, []byte(initiator)))
	m.Write(appendLP(nil, []byte(responder)))
	m.Write(nonceI)
	m.Write(nonceR)
	return m.Sum(nil)
}

func newNonce() []byte {
	n := make([]byte, nonceSize)
	_, _ = rand.Read(n) // never fails: crypto/rand.Read crashes the program rather than return an error
	return n
}

func hello(nonce []byte) []byte { return append([]byte{admissionVersion}, nonce...) }

// readHello reads the responder's hello and returns its nonce.
func readHello(r io.Reader, ours []byte) ([]byte, error) {
	var h [helloSize]byte
	if err := readFull(r, h[:], "hello"); err != nil {
		return nil, err
	}
	if h[0] != admissionVersion {
		return nil, fmt.Errorf("%w: version %#02x", ErrMalformed, h[0])
	}
	if hmac.Equal(h[1:], ours) {
		return nil, fmt.Errorf("%w: the peer sent our nonce back", ErrMalformed)
	}
	return h[1:], nil
}

func readFull(r io.Reader, b []byte, what string) error {
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("privroom: admission: read %s: %w", what, err)
	}
	return nil
}

func writeAll(w io.Writer, b []byte, what string) error {
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("privroom: admission: write %s: %w", what, err)
	}
	return nil
}
