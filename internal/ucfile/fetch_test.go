package ucfile

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// newHost starts a libp2p host that listens on loopback only. The tests dial
// nothing else: every peer address they use comes from such a host.
func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// pair starts two hosts and connects the first to the second.
func pair(t *testing.T) (host.Host, host.Host) {
	t.Helper()
	a, b := newHost(t), newHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// errLog collects what a handler reports.
type errLog struct{ ch chan error }

func newErrLog() *errLog { return &errLog{ch: make(chan error, 64)} }

func (l *errLog) report(_ peer.ID, err error) { l.ch <- err }

func (l *errLog) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-l.ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the handler reported no error")
		return nil
	}
}

func (l *errLog) none(t *testing.T) {
	t.Helper()
	select {
	case err := <-l.ch:
		t.Errorf("the handler reported %v", err)
	default:
	}
}

// writeRandom writes a file of n random bytes and returns its content.
func writeRandom(t *testing.T, path string, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	_, _ = r.Read(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

// entries lists the names in dir, to check that nothing is left behind.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// withTimeouts shortens the package's timeouts for one test. It must run
// before the test makes handlers or fetches.
func withTimeouts(t *testing.T, request, idle time.Duration) {
	oldRequest, oldIdle := requestTimeout, idleTimeout
	requestTimeout, idleTimeout = request, idle
	t.Cleanup(func() { requestTimeout, idleTimeout = oldRequest, oldIdle })
}

func TestShareAndFetch(t *testing.T) {
	a, b := pair(t)
	store := NewStore()
	log := newErrLog()
	b.SetStreamHandler(ProtocolID, HandlerWithErrors(store, 0, log.report))
	src, dst := t.TempDir(), t.TempDir()

	for _, size := range []int{0, 1, 1000, chunkSize - 1, chunkSize, chunkSize + 1, 1<<20 + 12345, 3 << 20} {
		path := filepath.Join(src, "file")
		want := writeRandom(t, path, size)
		id, err := store.Share(path)
		if err != nil {
			t.Fatal(err)
		}
		if f, ok := store.Lookup(id); !ok || f.Size != int64(size) || f.Path != path {
			t.Fatalf("Lookup(%q) = %+v, %v", id, f, ok)
		}

		out := filepath.Join(dst, "got")
		var last, calls int64
		n, err := Fetch(context.Background(), a, b.ID(), id, 0, out, false, func(got, total int64) {
			if total != int64(size) || got < last || got > total {
				t.Errorf("progress(%d, %d) after %d, for a file of %d", got, total, last, size)
			}
			last = got
			calls++
		})
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if n != int64(size) || last != int64(size) || calls == 0 {
			t.Errorf("size %d: returned %d, last progress %d after %d calls", size, n, last, calls)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("size %d: the fetched file differs", size)
		}
		if names := entries(t, dst); len(names) != 1 {
			t.Errorf("size %d: destination directory holds %v", size, names)
		}
		if err := os.Remove(out); err != nil {
			t.Fatal(err)
		}
		// Rewrite the source for the next size, which makes the old ID
		// unservable (it changed): forget it.
		store.Unshare(id)
	}
	log.none(t)
}

// TestWireBytes checks the server's answer byte for byte, as a fetcher of
// another implementation reads it: the length as an unsigned varint, the
// body, then the end of the stream.
func TestWireBytes(t *testing.T) {
	a, b := pair(t)
	store := NewStore()
	b.SetStreamHandler(ProtocolID, Handler(store, 0))
	path := filepath.Join(t.TempDir(), "hello.txt")
	if err := os.WriteFile(path, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := store.Share(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.NewStream(context.Background(), b.ID(), ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write(AppendRequest(nil, id)); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte("\x05hello"); !bytes.Equal(got, want) {
		t.Errorf("answer %x, want %x", got, want)
	}
}

func TestFetchUnknownID(t *testing.T) {
	a, b := pair(t)
	store := NewStore()
	log := newErrLog()
	b.SetStreamHandler(ProtocolID, HandlerWithErrors(store, 0, log.report))
	src, dst := t.TempDir(), t.TempDir()
	out := filepath.Join(dst, "got")

	for _, id := range []string{NewID(), "no such file", strings.Repeat("x", MaxIDBytes)} {
		start := time.Now()
		_, err := Fetch(context.Background(), a, b.ID(), id, 0, out, false, nil)
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%q: got %v, want ErrUnavailable", id, err)
		}
		if err != nil && !strings.Contains(err.Error(), "does not know the ID") {
			t.Errorf("%q: error %q does not say why", id, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
		if reported := log.next(t); !errors.Is(reported, ErrUnknownID) {
			t.Errorf("server reported %v, want ErrUnknownID", reported)
		}
	}
	// IDs that break the rules are refused before the network.
	for _, id := range []string{"", strings.Repeat("x", MaxIDBytes+1), "\xff"} {
		if _, err := Fetch(context.Background(), a, b.ID(), id, 0, out, false, nil); err == nil {
			t.Errorf("%q: no error", id)
		}
	}
	if names := entries(t, dst); len(names) != 0 {
		t.Errorf("failed fetches left %v", names)
	}

	// The server keeps serving.
	want := writeRandom(t, filepath.Join(src, "f"), 5000)
	id, err := store.Share(filepath.Join(src, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(context.Background(), a, b.ID(), id, 0, out, false, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Error("the fetched file differs")
	}
}

func TestFetchTooLarge(t *testing.T) {
	a, b := pair(t)
	store := NewStore()
	log := newErrLog()
	b.SetStreamHandler(ProtocolID, HandlerWithErrors(store, 0, log.report))
	src, dst := t.TempDir(), t.TempDir()
	path := filepath.Join(src, "big")
	writeRandom(t, path, 2<<20)
	id, err := store.Share(path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dst, "got")

	// Our limit: refused on the length prefix, before any file is made.
	_, err = Fetch(context.Background(), a, b.ID(), id, 1<<20, out, false, nil)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "2097152 bytes, over the limit of 1048576") {
		t.Errorf("error %q does not give the sizes", err)
	}
	if names := entries(t, dst); len(names) != 0 {
		t.Errorf("left %v", names)
	}

	// The server's limit: it refuses to serve.
	// (The first server saw the fetcher reset the stream.)
	if reported := log.next(t); !errors.Is(reported, network.ErrReset) {
		t.Errorf("first server reported %v, want a reset", reported)
	}
	c := newHost(t)
	c.SetStreamHandler(ProtocolID, HandlerWithErrors(store, 1<<20, log.report))
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: c.ID(), Addrs: c.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(context.Background(), a, c.ID(), id, 0, out, false, nil); !errors.Is(err, ErrUnavailable) {
		t.Errorf("got %v, want ErrUnavailable", err)
	}
	if reported := log.next(t); !errors.Is(reported, ErrTooLarge) {
		t.Errorf("server reported %v, want ErrTooLarge", reported)
	}
	if names := entries(t, dst); len(names) != 0 {
		t.Errorf("left %v", names)
	}
}

func TestFetchExistingDestination(t *testing.T) {
	a, b := pair(t)
	store := NewStore()
	b.SetStreamHandler(ProtocolID, Handler(store, 0))
	src, dst := t.TempDir(), t.TempDir()
	want := writeRandom(t, filepath.Join(src, "f"), 10000)
	id, err := store.Share(filepath.Join(src, "f"))
	if err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dst, "mine")
	if err := os.WriteFile(out, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Fetch(context.Background(), a, b.ID(), id, 0, out, false, nil)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "allow overwriting") {
		t.Fatalf("got %v, want ErrExists with advice", err)
	}
	if got, _ := os.ReadFile(out); string(got) != "keep me" {
		t.Errorf("the existing file was changed to %q", got)
	}

	// A dangling symbolic link is something too, and is not followed.
	link := filepath.Join(dst, "link")
	target := filepath.Join(dst, "target")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(context.Background(), a, b.ID(), id, 0, link, false, nil); !errors.Is(err, ErrExists) {
		t.Errorf("symlink: got %v, want ErrExists", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the link's target was created")
	}

	// With overwrite, the file is replaced.
	if _, err := Fetch(context.Background(), a, b.ID(), id, 0, out, true, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Error("not replaced")
	}
	if names := entries(t, dst); len(names) != 2 {
		t.Errorf("left %v", names)
	}
}

// TestFetchDestinationAppears covers a destination created while the file is
// on its way: it must not be replaced, and no temporary file may remain.
func TestFetchDestinationAppears(t *testing.T) {
	a, b := pair(t)
	dst := t.TempDir()
	out := filepath.Join(dst, "got")
	b.SetStreamHandler(ProtocolID, func(s network.Stream) {
		defer func() { _ = s.Close() }()
		if _, err := ReadRequest(s); err != nil {
			return
		}
		_ = os.WriteFile(out, []byte("someone else's"), 0o644)
		_, _ = s.Write([]byte("\x05hello"))
	})
	_, err := Fetch(context.Background(), a, b.ID(), "x", 0, out, false, nil)
	if !errors.Is(err, ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
	if got, _ := os.ReadFile(out); string(got) != "someone else's" {
		t.Errorf("the file was replaced: %q", got)
	}
	if names := entries(t, dst); len(names) != 1 {
		t.Errorf("left %v", names)
	}
}

func TestFetchChangedFile(t *testing.T) {
	a, b := pair(t)
	store := NewStore()
	log := newErrLog()
	b.SetStreamHandler(ProtocolID, HandlerWithErrors(store, 0, log.report))
	src, dst := t.TempDir(), t.TempDir()
	path := filepath.Join(src, "f")
	writeRandom(t, path, 1000)
	id, err := store.Share(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("a secret added later")
	_ = f.Close()
	if _, err := Fetch(context.Background(), a, b.ID(), id, 0, filepath.Join(dst, "got"), false, nil); !errors.Is(err, ErrUnavailable) {
		t.Errorf("got %v, want ErrUnavailable", err)
	}
	if reported := log.next(t); !errors.Is(reported, ErrChanged) {
		t.Errorf("server reported %v, want ErrChanged", reported)
	}
	if names := entries(t, dst); len(names) != 0 {
		t.Errorf("left %v", names)
	}
}

func TestFetchLyingServer(t *testing.T) {
	a, b := pair(t)
	dst := t.TempDir()
	cases := []struct {
		name  string
		reply []byte
		reset bool
		want  error
	}{
		{"short body", append(binary.AppendUvarint(nil, 1000), make([]byte, 500)...), false, ErrLengthMismatch},
		{"short body then reset", append(binary.AppendUvarint(nil, 1000), make([]byte, 500)...), true, nil},
		{"long body", append(binary.AppendUvarint(nil, 10), make([]byte, 20)...), false, ErrLengthMismatch},
		{"bad varint", bytes.Repeat([]byte{0xff}, 11), false, ErrMalformed},
		{"prefix cut short", []byte{0x80}, false, ErrMalformed},
		{"huge prefix", binary.AppendUvarint(nil, 1<<62), false, ErrTooLarge},
		{"nothing, clean close (nim-peer)", nil, false, ErrUnavailable},
		{"nothing, reset (js-peer)", nil, true, ErrUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b.SetStreamHandler(ProtocolID, func(s network.Stream) {
				if _, err := ReadRequest(s); err != nil {
					_ = s.Reset()
					return
				}
				_, _ = s.Write(tc.reply)
				if tc.reset {
					_ = s.Reset()
				} else {
					_ = s.Close()
				}
			})
			start := time.Now()
			_, err := Fetch(context.Background(), a, b.ID(), "x", 0, filepath.Join(dst, "got"), false, nil)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			if names := entries(t, dst); len(names) != 0 {
				t.Errorf("left %v", names)
			}
		})
	}
}

func TestFetchStalledServer(t *testing.T) {
	withTimeouts(t, RequestTimeout, 500*time.Millisecond)
	a, b := pair(t)
	dst := t.TempDir()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	b.SetStreamHandler(ProtocolID, func(s network.Stream) {
		// A length prefix and a little of the body, then nothing.
		_, _ = s.Write(append(binary.AppendUvarint(nil, 100000), "a little"...))
		<-release
		_ = s.Reset()
	})

	// The idle timeout ends it.
	start := time.Now()
	_, err := Fetch(context.Background(), a, b.ID(), "x", 0, filepath.Join(dst, "got"), false, nil)
	if err == nil || !strings.Contains(err.Error(), "after 8 of 100000 bytes") {
		t.Errorf("got %v, want a stalled-transfer error", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("took %v", d)
	}
	if names := entries(t, dst); len(names) != 0 {
		t.Errorf("left %v", names)
	}

	// A peer that takes the request and says nothing: the same.
	b.SetStreamHandler(ProtocolID, func(s network.Stream) {
		_, _ = ReadRequest(s)
		<-release
		_ = s.Reset()
	})
	start = time.Now()
	_, err = Fetch(context.Background(), a, b.ID(), "x", 0, filepath.Join(dst, "got"), false, nil)
	if err == nil || !strings.Contains(err.Error(), "did not answer within") {
		t.Errorf("got %v, want a no-answer error", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("took %v", d)
	}
	t.Log(err)

	// So does the caller's context, whichever comes first.
	withTimeouts(t, RequestTimeout, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = Fetch(ctx, a, b.ID(), "x", 0, filepath.Join(dst, "got"), false, nil)
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "deadline") {
		t.Errorf("got %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("took %v", d)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err = Fetch(ctx, a, b.ID(), "x", 0, filepath.Join(dst, "got"), false, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if names := entries(t, dst); len(names) != 0 {
		t.Errorf("left %v", names)
	}
}

// TestHandlerStalledClients covers peers that open a request and stall, or
// never read the answer: each costs the server a bounded time, and no more
// than MaxConcurrentTransfers run at once (from peers that each take their
// MaxTransfersPerPeer).
func TestHandlerStalledClients(t *testing.T) {
	withTimeouts(t, 500*time.Millisecond, 2*time.Second)
	a, b := pair(t)
	store := NewStore()
	log := newErrLog()
	b.SetStreamHandler(ProtocolID, HandlerWithErrors(store, 0, log.report))
	path := filepath.Join(t.TempDir(), "big")
	want := writeRandom(t, path, 8<<20)
	id, err := store.Share(path)
	if err != nil {
		t.Fatal(err)
	}

	open := func() network.Stream {
		s, err := a.NewStream(context.Background(), b.ID(), ProtocolID)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Reset() })
		return s
	}

	// Silence: the request timeout ends it. Without the protocol in the
	// peerstore, NewStream negotiates before returning, so the server's
	// handler runs although the client sends nothing.
	a.Peerstore().RemoveProtocols(b.ID(), ProtocolID)
	open()
	start := time.Now()
	if reported := log.next(t); !strings.Contains(reported.Error(), "deadline") {
		t.Errorf("server reported %v, want a deadline error", reported)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("the server held a silent stream for %v", d)
	}

	// A length prefix and part of an ID, then nothing: the same.
	s := open()
	_, _ = s.Write([]byte{0x24, 'a'})
	if reported := log.next(t); !strings.Contains(reported.Error(), "deadline") {
		t.Errorf("server reported %v, want a deadline error", reported)
	}

	// Part of a request and the end of the stream: malformed, at once.
	s = open()
	_, _ = s.Write([]byte{0x24, 'a'})
	_ = s.CloseWrite()
	if reported := log.next(t); !errors.Is(reported, ErrMalformed) {
		t.Errorf("server reported %v, want ErrMalformed", reported)
	}

	// Fill every transfer slot with readers that never read.
	var streams []network.Stream
	for _, c := range clients(t, b, MaxConcurrentTransfers/MaxTransfersPerPeer) {
		for range MaxTransfersPerPeer {
			streams = append(streams, hold(t, c, b.ID(), id))
		}
	}
	// Let the server take them all up; each then holds its slot until its
	// writes have stalled for the idle timeout, far longer.
	time.Sleep(500 * time.Millisecond)
	s = open()
	if _, err := s.Write(AppendRequest(nil, id)); err != nil {
		t.Fatal(err)
	}
	var busy, stalled int
	for range MaxConcurrentTransfers + 1 {
		switch err := log.next(t); {
		case errors.Is(err, ErrBusy):
			busy++
		default:
			stalled++
		}
	}
	if busy != 1 || stalled != MaxConcurrentTransfers {
		t.Errorf("%d refused as busy and %d dropped as stalled; want 1 and %d", busy, stalled, MaxConcurrentTransfers)
	}
	for _, s := range streams {
		_ = s.Reset()
	}

	// The slots are free again.
	withTimeouts(t, RequestTimeout, IdleTimeout)
	out := filepath.Join(t.TempDir(), "got")
	if _, err := Fetch(context.Background(), a, b.ID(), id, 0, out, false, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Error("the fetched file differs")
	}
}

// TestConcurrentFetches runs transfers side by side, for the race detector:
// from three peers, each at its MaxTransfersPerPeer.
func TestConcurrentFetches(t *testing.T) {
	_, b := pair(t)
	cs := clients(t, b, 3)
	store := NewStore()
	b.SetStreamHandler(ProtocolID, Handler(store, 0))
	src, dst := t.TempDir(), t.TempDir()
	type shared struct {
		id   string
		data []byte
	}
	var files []shared
	for i := range 6 {
		path := filepath.Join(src, string(rune('a'+i)))
		data := writeRandom(t, path, 100000*(i+1))
		id, err := store.Share(path)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, shared{id, data})
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(files))
	for i, f := range files {
		wg.Go(func() {
			out := filepath.Join(dst, string(rune('a'+i)))
			if _, err := Fetch(context.Background(), cs[i%len(cs)], b.ID(), f.id, 0, out, false, nil); err != nil {
				errs <- err
				return
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, f.data) {
				errs <- errors.New("fetched file differs: " + out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestShareRefuses(t *testing.T) {
	st := NewStore()
	if _, err := st.Share(t.TempDir()); err == nil {
		t.Error("a directory was shared")
	}
	if _, err := st.Share(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file was shared")
	}
	if len(st.Files()) != 0 {
		t.Error("the store is not empty")
	}
	var zero Store
	if _, ok := zero.Lookup("x"); ok {
		t.Error("the zero store holds something")
	}
}

func TestPlaceRefusesExisting(t *testing.T) {
	dir := t.TempDir()
	tmp, dst := filepath.Join(dir, ".tmp"), filepath.Join(dir, "dst")
	for _, p := range []string{tmp, dst} {
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := place(tmp, dst, false); !errors.Is(err, ErrExists) {
		t.Errorf("got %v, want ErrExists", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != dst {
		t.Error("replaced")
	}
	if err := place(tmp, dst, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); string(got) != tmp {
		t.Error("not replaced")
	}
}
