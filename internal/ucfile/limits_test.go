package ucfile

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// clients starts n hosts, each a peer of its own, connected to b.
func clients(t *testing.T, b host.Host, n int) []host.Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hs := make([]host.Host, n)
	for i := range hs {
		hs[i] = newHost(t)
		if err := hs[i].Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	return hs
}

// hold opens a stream from c to p, requests id and reads nothing: once its
// flow-control window is full, the server's writes wait.
func hold(t *testing.T, c host.Host, p peer.ID, id string) network.Stream {
	t.Helper()
	s, err := c.NewStream(context.Background(), p, ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Reset() })
	if _, err := s.Write(AppendRequest(nil, id)); err != nil {
		t.Fatal(err)
	}
	return s
}

// served reports whether the server answered the request on s: a length
// prefix arrives. A refused request is reset without one.
func served(t *testing.T, s network.Stream) bool {
	t.Helper()
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := readLength(s)
	if isTimeout(err) {
		t.Fatalf("no answer and no reset within 5s")
	}
	return err == nil
}

// withPace sets the least rate for one test. It must run before the test
// makes handlers or fetches.
func withPace(t *testing.T, rate int64, window time.Duration) {
	oldRate, oldWindow := minRate, rateWindow
	minRate, rateWindow = rate, window
	t.Cleanup(func() { minRate, rateWindow = oldRate, oldWindow })
}

// waitIdle waits until the handler has no transfer under way, and fails
// the test if that takes long.
func waitIdle(t *testing.T, tr *transfers) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		total, peers := tr.counts()
		if total == 0 && peers == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d transfers to %d peers still counted", total, peers)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// shareRandom shares a new file of n random bytes.
func shareRandom(t *testing.T, store *Store, n int) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	data := writeRandom(t, path, n)
	id, err := store.Share(path)
	if err != nil {
		t.Fatal(err)
	}
	return id, data
}

// fetchOK fetches id from p through c and checks what arrived.
func fetchOK(t *testing.T, c host.Host, p peer.ID, id string, want []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "got")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := Fetch(ctx, c, p, id, 0, out, false, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatal("the fetched file differs")
	}
}

// TestPerPeerLimit: a peer that opens 5 transfers at once is served
// MaxTransfersPerPeer of them, the others are refused as busy, and another
// peer is still served meanwhile. When its transfers end, its entry leaves
// the table.
func TestPerPeerLimit(t *testing.T) {
	a, b := pair(t)
	store := NewStore()
	log := newErrLog()
	h, tr := newHandler(store, 0, log.report)
	b.SetStreamHandler(ProtocolID, h)
	id, want := shareRandom(t, store, 8<<20) // far more than a stream's window

	var streams []network.Stream
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			s := hold(t, a, b.ID(), id)
			mu.Lock()
			streams = append(streams, s)
			mu.Unlock()
		})
	}
	wg.Wait()
	n := 0
	for _, s := range streams {
		if served(t, s) {
			n++
		}
	}
	if n != MaxTransfersPerPeer {
		t.Errorf("%d of 5 transfers served to one peer, want %d", n, MaxTransfersPerPeer)
	}
	for range 5 - n {
		if err := log.next(t); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "to this peer") {
			t.Errorf("server reported %v, want ErrBusy for the peer", err)
		}
	}
	if total, peers := tr.counts(); total != n || peers != 1 {
		t.Errorf("table counts %d transfers to %d peers, want %d to 1", total, peers, n)
	}

	// Another peer is served, in full, while a holds its slots.
	c := clients(t, b, 1)[0]
	fetchOK(t, c, b.ID(), id, want)
	log.none(t)

	// a lets go: its slots are given back and its entry removed.
	for _, s := range streams {
		_ = s.Reset()
	}
	for range n {
		if err := log.next(t); !errors.Is(err, network.ErrReset) {
			t.Errorf("server reported %v, want a reset", err)
		}
	}
	waitIdle(t, tr)
	fetchOK(t, a, b.ID(), id, want)
}

// TestUnknownIDCostsNoSlot: a request for an ID the store does not hold is
// answered as unknown even when every slot is taken, by all peers and by
// the asking one: it takes none.
func TestUnknownIDCostsNoSlot(t *testing.T) {
	_, b := pair(t)
	store := NewStore()
	log := newErrLog()
	h, tr := newHandler(store, 0, log.report)
	b.SetStreamHandler(ProtocolID, h)
	id, want := shareRandom(t, store, 8<<20)

	cs := clients(t, b, MaxConcurrentTransfers/MaxTransfersPerPeer+1)
	fillers, other := cs[:len(cs)-1], cs[len(cs)-1]
	var held []network.Stream
	for _, c := range fillers {
		for range MaxTransfersPerPeer {
			s := hold(t, c, b.ID(), id)
			if !served(t, s) {
				t.Fatal("a transfer within the limits was refused")
			}
			held = append(held, s)
		}
	}
	if total, peers := tr.counts(); total != MaxConcurrentTransfers || peers != len(fillers) {
		t.Fatalf("table counts %d transfers to %d peers, want %d to %d", total, peers, MaxConcurrentTransfers, len(fillers))
	}

	// Every slot is taken, and fillers[0] has all of its own.
	for _, c := range []host.Host{fillers[0], other} {
		_, err := Fetch(context.Background(), c, b.ID(), NewID(), 0, filepath.Join(t.TempDir(), "x"), false, nil)
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("got %v, want ErrUnavailable", err)
		}
		if err := log.next(t); !errors.Is(err, ErrUnknownID) {
			t.Errorf("server reported %v, want ErrUnknownID", err)
		}
	}
	// A known ID is refused: the slots are indeed all taken.
	if served(t, hold(t, other, b.ID(), id)) {
		t.Error("a transfer beyond MaxConcurrentTransfers was served")
	}
	if err := log.next(t); !errors.Is(err, ErrBusy) {
		t.Errorf("server reported %v, want ErrBusy", err)
	}

	for _, s := range held {
		_ = s.Reset()
	}
	for range held {
		_ = log.next(t)
	}
	waitIdle(t, tr)
	fetchOK(t, other, b.ID(), id, want)
}

// TestSlowReaderCut: a peer that reads a little, then trickles, never idle
// long enough for the idle timeout, is cut for reading under the least
// rate, and its slot is freed.
func TestSlowReaderCut(t *testing.T) {
	const window = 500 * time.Millisecond
	withTimeouts(t, RequestTimeout, 5*time.Second) // longer than the trickle's pauses
	withPace(t, 256<<10, window)                   // 128 KiB each 500ms
	a, b := pair(t)
	store := NewStore()
	log := newErrLog()
	h, tr := newHandler(store, 0, log.report)
	b.SetStreamHandler(ProtocolID, h)
	id, want := shareRandom(t, store, 8<<20)

	s := hold(t, a, b.ID(), id)
	start := time.Now()
	trickled := make(chan error, 1)
	go func() {
		// A little at once, then 8 KiB every 100ms: 80 KiB/s, under
		// the least rate, and the server waits at most a couple of
		// seconds for each window update.
		if _, err := io.ReadFull(s, make([]byte, 64<<10)); err != nil {
			trickled <- err
			return
		}
		buf := make([]byte, 8<<10)
		for time.Since(start) < 15*time.Second {
			_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(s, buf); err != nil {
				trickled <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		trickled <- nil
	}()

	select {
	case err := <-log.ch:
		if !errors.Is(err, ErrTooSlow) {
			t.Fatalf("server reported %v, want ErrTooSlow", err)
		}
		t.Logf("cut after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(8 * time.Second):
		t.Fatal("the server did not cut the slow reader within 8s")
	}
	// Cut within a few windows: the server's writes run ahead of the
	// reader by the stream's window, then wait.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the slow reader held its slot for %v", d)
	}
	if err := <-trickled; err == nil || !errors.Is(err, network.ErrReset) {
		t.Errorf("the reader saw %v, want a reset", err)
	}
	waitIdle(t, tr)

	// Its slots are free: it is served again, both of them.
	for range MaxTransfersPerPeer {
		if !served(t, hold(t, a, b.ID(), id)) {
			t.Error("refused after the cut")
		}
	}
	fetchOK(t, clients(t, b, 1)[0], b.ID(), id, want)
}

// TestFetchSlowServer: a server that sends, but under the least rate, is
// cut by Fetch with ErrTooSlow; one at the rate, pauses and all, is not.
func TestFetchSlowServer(t *testing.T) {
	const window = 500 * time.Millisecond
	withTimeouts(t, RequestTimeout, 5*time.Second)
	withPace(t, 64<<10, window) // 32 KiB each 500ms
	a, b := pair(t)
	dst := t.TempDir()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	// trickle serves size bytes, step bytes every 50ms, after a pause of
	// pause at the start of the body.
	trickle := func(size, step int, pause time.Duration) network.StreamHandler {
		return func(s network.Stream) {
			defer func() { _ = s.Close() }()
			if _, err := ReadRequest(s); err != nil {
				_ = s.Reset()
				return
			}
			if _, err := s.Write(binary.AppendUvarint(nil, uint64(size))); err != nil {
				return
			}
			chunk := bytes.Repeat([]byte{'x'}, step)
			for sent := 0; sent < size; sent += step {
				select {
				case <-release:
					_ = s.Reset()
					return
				case <-time.After(50 * time.Millisecond):
				}
				if sent == 0 {
					time.Sleep(pause)
				}
				if _, err := s.Write(chunk[:min(step, size-sent)]); err != nil {
					return
				}
			}
		}
	}

	// 1 KiB every 50ms is 20 KiB/s: cut at the end of the first window.
	b.SetStreamHandler(ProtocolID, trickle(1<<20, 1<<10, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := Fetch(ctx, a, b.ID(), "x", 0, filepath.Join(dst, "got"), false, nil)
	if !errors.Is(err, ErrTooSlow) {
		t.Fatalf("got %v, want ErrTooSlow", err)
	}
	if !strings.Contains(err.Error(), "under the least rate of 32 KiB every 500ms") {
		t.Errorf("error %q does not give the rule", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cut after %v, want about %v", d, window)
	}
	t.Log(err)
	if names := entries(t, dst); len(names) != 0 {
		t.Errorf("left %v", names)
	}

	// 16 KiB every 50ms, after a pause of 300ms: above the rate, and no
	// window short.
	b.SetStreamHandler(ProtocolID, trickle(256<<10, 16<<10, 300*time.Millisecond))
	n, err := Fetch(ctx, a, b.ID(), "x", 0, filepath.Join(dst, "got"), false, nil)
	if err != nil || n != 256<<10 {
		t.Fatalf("a server at the rate: %d bytes, %v", n, err)
	}
}

// TestTransfersTable: the counts by peer are bounded by the total, and a
// peer's entry goes with its last transfer, however many peers come and go.
func TestTransfersTable(t *testing.T) {
	tr := newTransfers(4, 2)
	p := func(i int) peer.ID { return peer.ID(fmt.Sprintf("peer-%d", i)) }
	for i := range 1000 {
		if err := tr.take(p(i)); err != nil {
			t.Fatal(err)
		}
		if err := tr.take(p(i)); err != nil {
			t.Fatal(err)
		}
		if err := tr.take(p(i)); !errors.Is(err, ErrBusy) {
			t.Fatalf("a third transfer to one peer: %v", err)
		}
		if err := tr.take(p(i + 1)); err != nil {
			t.Fatal(err)
		}
		if err := tr.take(p(i + 2)); err != nil {
			t.Fatal(err)
		}
		if err := tr.take(p(i + 3)); !errors.Is(err, ErrBusy) {
			t.Fatalf("a fifth transfer in all: %v", err)
		}
		if total, peers := tr.counts(); total != 4 || peers != 3 {
			t.Fatalf("%d transfers to %d peers, want 4 to 3", total, peers)
		}
		tr.give(p(i + 2))
		tr.give(p(i + 1))
		tr.give(p(i))
		tr.give(p(i))
		if total, peers := tr.counts(); total != 0 || peers != 0 {
			t.Fatalf("%d transfers to %d peers, want none", total, peers)
		}
	}
}

// TestPace covers the rule itself, on a clock of its own.
func TestPace(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	pc := pacing{idle: 30 * time.Second, rate: 16 << 10, window: 30 * time.Second}.start(t0)
	if pc.need != 480<<10 {
		t.Fatalf("need %d", pc.need)
	}
	// The window's end comes before the idle timeout: it is the deadline.
	if dl, rated := pc.deadline(at(10 * time.Second)); !dl.Equal(at(30*time.Second)) || !rated {
		t.Errorf("deadline %v, %v", dl.Sub(t0), rated)
	}
	// Early in a window, the idle timeout comes first.
	if dl, rated := pc.deadline(at(0)); !dl.Equal(at(30*time.Second)) || rated {
		// equal times: the idle timeout, not the rate, is blamed
		t.Errorf("deadline %v, %v", dl.Sub(t0), rated)
	}
	if pc.add(400<<10, at(20*time.Second)) {
		t.Error("400 KiB met the window of 480")
	}
	if !pc.add(80<<10, at(25*time.Second)) {
		t.Error("480 KiB did not meet the window")
	}
	// The next window begins where this one was met.
	if dl, rated := pc.deadline(at(40 * time.Second)); !dl.Equal(at(55*time.Second)) || !rated {
		t.Errorf("deadline %v, %v", dl.Sub(t0), rated)
	}
	if got := pc.rule(); got != "480 KiB every 30s" {
		t.Errorf("rule %q", got)
	}
	// No rate: only the idle timeout.
	pc = pacing{idle: time.Second}.start(t0)
	if dl, rated := pc.deadline(at(time.Hour)); !dl.Equal(at(time.Hour+time.Second)) || rated {
		t.Errorf("deadline %v, %v", dl.Sub(t0), rated)
	}
}
