package privroom

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// recorder keeps what one side wrote.
type recorder struct {
	net.Conn
	wrote bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote.Write(b)
	return r.Conn.Write(b)
}

// pipe returns the two ends of a net.Pipe with a deadline, so that a test
// that goes wrong fails rather than hangs.
func pipe(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	deadline := time.Now().Add(10 * time.Second)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// admitPair runs an admission between an initiator and a responder, each
// with its own room and its own view of the IDs, and returns both errors
// and what each wrote.
func admitPair(t *testing.T, ri, rr *Room, initiator, responder peer.ID) (wroteI, wroteR []byte, errI, errR error) {
	t.Helper()
	ci, cr := pipe(t)
	recI, recR := &recorder{Conn: ci}, &recorder{Conn: cr}
	done := make(chan error, 1)
	go func() {
		err := rr.Admit(recR, responder, initiator, false)
		cr.Close() // as a caller resets the stream on error
		done <- err
	}()
	errI = ri.Admit(recI, initiator, responder, true)
	ci.Close()
	errR = <-done
	return recI.wrote.Bytes(), recR.wrote.Bytes(), errI, errR
}

func TestAdmitMembers(t *testing.T) {
	a, b := testID(t, 1), testID(t, 2)
	wroteI, wroteR, errI, errR := admitPair(t, testRoom(t), testRoom(t), a, b)
	if errI != nil || errR != nil {
		t.Fatalf("initiator: %v, responder: %v", errI, errR)
	}
	if len(wroteI) != helloSize+macSize || len(wroteR) != helloSize+1+macSize {
		t.Errorf("wrote %d and %d bytes, want %d and %d", len(wroteI), len(wroteR), helloSize+macSize, helloSize+1+macSize)
	}
	// And the other way round.
	if _, _, errI, errR := admitPair(t, testRoom(t), testRoom(t), b, a); errI != nil || errR != nil {
		t.Fatalf("b to a: initiator: %v, responder: %v", errI, errR)
	}
}

// TestAdmitWrongKey: a stranger fails both ways, and both sides know.
func TestAdmitWrongKey(t *testing.T) {
	a, b := testID(t, 1), testID(t, 2)
	for _, c := range []struct {
		name   string
		ri, rr *Room
	}{
		{"stranger dials member", otherRoom(t), testRoom(t)},
		{"member dials stranger", testRoom(t), otherRoom(t)},
	} {
		_, wroteR, errI, errR := admitPair(t, c.ri, c.rr, a, b)
		if !errors.Is(errI, ErrNotMember) || !errors.Is(errR, ErrNotMember) {
			t.Errorf("%s: initiator: %v, responder: %v; want ErrNotMember on both", c.name, errI, errR)
		}
		// The responder showed no proof: its hello and a refusal only.
		if len(wroteR) != helloSize+1 || wroteR[helloSize] != verdictRefuse {
			t.Errorf("%s: the responder wrote %x", c.name, wroteR)
		}
	}
}

// script runs the far side of an admission by hand: attack gets the
// stream and returns when done.
func script(t *testing.T, r *Room, local, remote peer.ID, initiator bool, attack func(c net.Conn)) error {
	t.Helper()
	mine, theirs := pipe(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		attack(theirs)
		theirs.Close()
	}()
	err := r.Admit(mine, local, remote, initiator)
	mine.Close()
	<-done
	return err
}

func readN(c net.Conn, n int) []byte {
	b := make([]byte, n)
	io.ReadFull(c, b)
	return b
}

// TestAdmitReplay: a recorded admission between A and B is good for that
// stream only. Replayed on a new stream between the same IDs, the fresh
// nonce of the other side refuses it; relayed live to C, the IDs do.
func TestAdmitReplay(t *testing.T) {
	a, b, c, m := testID(t, 1), testID(t, 2), testID(t, 3), testID(t, 4)
	if wroteA, wroteB, errI, errR := admitPair(t, testRoom(t), testRoom(t), a, b); errI != nil || errR != nil {
		t.Fatal(errI, errR)
	} else {
		helloA, proofA := wroteA[:helloSize], wroteA[helloSize:]
		helloB, verdictB := wroteB[:helloSize], wroteB[helloSize:]

		// A's recorded hello and proof, to B again (as if the attacker
		// could pass for A): B's new nonce makes the proof wrong.
		err := script(t, testRoom(t), b, a, false, func(conn net.Conn) {
			conn.Write(helloA)
			readN(conn, helloSize)
			conn.Write(proofA)
			readN(conn, 1)
		})
		if !errors.Is(err, ErrNotMember) {
			t.Errorf("A's proof replayed to B: %v, want ErrNotMember", err)
		}

		// A's recorded hello and proof, to C, by someone who passes for A.
		err = script(t, testRoom(t), c, a, false, func(conn net.Conn) {
			conn.Write(helloA)
			readN(conn, helloSize)
			conn.Write(proofA)
			readN(conn, 1)
		})
		if !errors.Is(err, ErrNotMember) {
			t.Errorf("A's proof replayed to C: %v, want ErrNotMember", err)
		}

		// B's recorded hello and proof, to A, when A dials someone who
		// passes for B: A's new nonce makes it wrong.
		err = script(t, testRoom(t), a, b, true, func(conn net.Conn) {
			readN(conn, helloSize)
			conn.Write(helloB)
			readN(conn, macSize)
			conn.Write(verdictB)
		})
		if !errors.Is(err, ErrNotMember) {
			t.Errorf("B's proof replayed to A: %v, want ErrNotMember", err)
		}

		// B's recorded proof, to C, who dials someone passing for B.
		err = script(t, testRoom(t), c, b, true, func(conn net.Conn) {
			readN(conn, helloSize)
			conn.Write(helloB)
			readN(conn, macSize)
			conn.Write(verdictB)
		})
		if !errors.Is(err, ErrNotMember) {
			t.Errorf("B's proof replayed to C: %v, want ErrNotMember", err)
		}
	}

	// Live relay: A dials M (a stranger), M dials C and passes every byte
	// both ways. The nonces are fresh, but A proves (A, M) and C wants
	// (M, C): both refuse.
	aSide, mFromA := pipe(t)
	mToC, cSide := pipe(t)
	go io.Copy(mToC, mFromA)
	go io.Copy(mFromA, mToC)
	done := make(chan error, 1)
	go func() {
		err := testRoom(t).Admit(cSide, c, m, false)
		cSide.Close()
		done <- err
	}()
	errA := testRoom(t).Admit(aSide, a, m, true)
	errC := <-done
	if !errors.Is(errA, ErrNotMember) || !errors.Is(errC, ErrNotMember) {
		t.Errorf("relayed: A: %v, C: %v; want ErrNotMember on both", errA, errC)
	}
}

// TestAdmitReflection: a proof sent back to its author, or made for the
// other role, fails.
func TestAdmitReflection(t *testing.T) {
	a, b := testID(t, 1), testID(t, 2)
	r := testRoom(t)

	// A dials someone without the key, who sends A's proof back as its own.
	err := script(t, r, a, b, true, func(conn net.Conn) {
		readN(conn, helloSize)
		conn.Write(hello(newNonce()))
		proof := readN(conn, macSize)
		conn.Write(append([]byte{verdictAdmit}, proof...))
	})
	if !errors.Is(err, ErrNotMember) {
		t.Errorf("reflected proof: %v, want ErrNotMember", err)
	}

	// A dials someone who sends A's hello back: refused before any proof.
	var sent []byte
	err = script(t, r, a, b, true, func(conn net.Conn) {
		h := readN(conn, helloSize)
		conn.Write(h)
		sent = readN(conn, macSize)
	})
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("reflected hello: %v, want ErrMalformed", err)
	}
	if !bytes.Equal(sent, make([]byte, macSize)) {
		t.Errorf("A sent a proof after a reflected hello: %x", sent)
	}

	// The roles are not interchangeable: a responder's proof for the very
	// transcript does not pass for the initiator's.
	nonceI := newNonce()
	err = script(t, r, b, a, false, func(conn net.Conn) {
		conn.Write(hello(nonceI))
		nonceR := readN(conn, helloSize)[1:]
		conn.Write(r.admissionMAC(roleResponder, a, b, nonceI, nonceR))
		readN(conn, 1)
	})
	if !errors.Is(err, ErrNotMember) {
		t.Errorf("responder's proof as the initiator's: %v, want ErrNotMember", err)
	}
	// Nor do swapped IDs.
	err = script(t, r, b, a, false, func(conn net.Conn) {
		conn.Write(hello(nonceI))
		nonceR := readN(conn, helloSize)[1:]
		conn.Write(r.admissionMAC(roleInitiator, b, a, nonceI, nonceR))
		readN(conn, 1)
	})
	if !errors.Is(err, ErrNotMember) {
		t.Errorf("IDs swapped: %v, want ErrNotMember", err)
	}
	// While the right one, written by hand, does: the script is sound.
	err = script(t, r, b, a, false, func(conn net.Conn) {
		conn.Write(hello(nonceI))
		nonceR := readN(conn, helloSize)[1:]
		conn.Write(r.admissionMAC(roleInitiator, a, b, nonceI, nonceR))
		readN(conn, 1+macSize)
	})
	if err != nil {
		t.Errorf("the right proof by hand: %v", err)
	}
}

// TestAdmitGarbage: short reads, wrong versions and wrong verdicts are
// errors that say so, on both sides.
func TestAdmitGarbage(t *testing.T) {
	a, b := testID(t, 1), testID(t, 2)
	r := testRoom(t)
	for _, c := range []struct {
		name      string
		initiator bool
		attack    func(net.Conn)
		want      error
	}{
		{"responder: nothing", false, func(net.Conn) {}, io.EOF},
		{"responder: short hello", false, func(c net.Conn) { c.Write([]byte{1, 2, 3}) }, io.ErrUnexpectedEOF},
		{"responder: version 2", false, func(c net.Conn) { c.Write(append([]byte{2}, newNonce()...)) }, ErrMalformed},
		{"responder: short proof", false, func(c net.Conn) {
			c.Write(hello(newNonce()))
			readN(c, helloSize)
			c.Write([]byte("short"))
		}, io.ErrUnexpectedEOF},
		{"initiator: nothing", true, func(c net.Conn) { readN(c, helloSize) }, io.EOF},
		{"initiator: version 0", true, func(c net.Conn) {
			readN(c, helloSize)
			c.Write(make([]byte, helloSize))
		}, ErrMalformed},
		{"initiator: verdict 7", true, func(c net.Conn) {
			readN(c, helloSize)
			c.Write(hello(newNonce()))
			readN(c, macSize)
			c.Write([]byte{7})
		}, ErrMalformed},
		{"initiator: short verdict", true, func(c net.Conn) {
			readN(c, helloSize)
			c.Write(hello(newNonce()))
			readN(c, macSize)
			c.Write([]byte{verdictAdmit, 1, 2})
		}, io.ErrUnexpectedEOF},
	} {
		err := script(t, r, a, b, c.initiator, c.attack)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if err := r.Admit(&bytes.Buffer{}, "", b, true); err == nil {
		t.Error("admission without a local ID")
	}
}

// TestVectorAdmissionMAC: a proof of fixed inputs.
func TestVectorAdmissionMAC(t *testing.T) {
	r := testRoom(t)
	a, b := testID(t, 1), testID(t, 2)
	if a.String() != "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5" || b.String() != "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq" {
		t.Fatalf("test IDs %s %s changed", a, b)
	}
	nonceI, nonceR := bytes.Repeat([]byte{0xaa}, nonceSize), bytes.Repeat([]byte{0xbb}, nonceSize)
	for _, c := range []struct {
		role byte
		want string
	}{
		{roleInitiator, "1809bba92f5af522f034b1a587804172f8f126242ae9bd633881f04d0d340111"},
		{roleResponder, "09b6e0d975ed04d65cc493df82b229f70c6e0df22d3b055ed7c221b93600b507"},
	} {
		if got := hex.EncodeToString(r.admissionMAC(c.role, a, b, nonceI, nonceR)); got != c.want {
			t.Errorf("MAC(%c) = %s, want %s", c.role, got, c.want)
		}
	}
}
