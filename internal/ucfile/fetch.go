package ucfile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Fetch requests the file id from p and writes it to dstPath. It returns the
// number of bytes written.
//
// maxBytes bounds the file (zero or less means DefaultMaxBytes): a larger
// length prefix is refused before anything is written. The body must have
// exactly the length of its prefix. It is written to a temporary file in
// dstPath's directory, synced, and moved to dstPath only when complete, so
// that dstPath never holds a partial file; on any failure the temporary file
// is removed. An existing dstPath (even a dangling symbolic link) is never
// replaced unless overwrite is true, and the check is made atomically when
// the file is moved into place, so a file created meanwhile is not lost
// either.
//
// progress, when not nil, is called on the calling goroutine after the
// length prefix and after each chunk, with the bytes received so far and the
// total.
//
// Fetch does not use relayed (limited) connections: the js-peer does not
// serve files over them, and a relay's data limit would cut a transfer
// short. The exchange ends when ctx is done, when the peer makes no
// progress for IdleTimeout, and when it sends under the least rate (MinRate
// over RateWindow): so even without a deadline in ctx, a fetch of n bytes
// ends within about n/MinRate+RateWindow.
//
// The error wraps ErrUnavailable when p answered without a file (it does not
// know the ID, or will not serve it), ErrTooLarge, ErrLengthMismatch,
// ErrMalformed, ErrExists, ErrTooSlow, or the error of the stream, the file
// system or ctx.
func Fetch(ctx context.Context, h host.Host, p peer.ID, id string, maxBytes int64, dstPath string, overwrite bool, progress func(got, total int64)) (int64, error) {
	n, err := fetch(ctx, h, p, id, maxBytes, dstPath, overwrite, progress)
	if err != nil {
		return 0, fmt.Errorf("fetching file %q from %s: %w", id, p, err)
	}
	return n, nil
}

func fetch(ctx context.Context, h host.Host, p peer.ID, id string, maxBytes int64, dstPath string, overwrite bool, progress func(got, total int64)) (int64, error) {
	if err := checkID([]byte(id)); err != nil {
		return 0, err
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}
	if dstPath == "" {
		return 0, errors.New("no destination path")
	}
	// Refuse an existing destination before using the network, so that the
	// user learns at once; place checks again, atomically, at the end.
	if !overwrite {
		if err := checkAbsent(dstPath); err != nil {
			return 0, err
		}
	}
	pg := current()

	s, err := h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return 0, fmt.Errorf("opening stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	n, err := receive(ctx, s, id, maxBytes, dstPath, overwrite, progress, pg)
	stop()
	if err != nil {
		_ = s.Reset()
		if cause := ctxCause(ctx); cause != nil {
			// The deadline or the reset is what made the transfer fail;
			// say why it happened.
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		return 0, err
	}
	_ = s.Close()
	return n, nil
}

// ctxCause returns why ctx is done, or is about to be: the stream deadline
// can be the context's, and the stream can notice it a moment before the
// context does.
func ctxCause(ctx context.Context) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// isTimeout reports whether err is a stream deadline passing; the muxers
// report it as a net.Error with Timeout.
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// deadline returns the earlier of now+d and the deadline of ctx.
func deadline(ctx context.Context, d time.Duration) time.Time {
	return within(ctx, time.Now().Add(d))
}

// within returns the earlier of t and the deadline of ctx.
func within(ctx context.Context, t time.Time) time.Time {
	if dl, ok := ctx.Deadline(); ok && dl.Before(t) {
		return dl
	}
	return t
}

// receive sends the request and receives the answer. pg bounds the wait
// for the length prefix (its idle timeout) and then the body (a pace, whose
// clock starts with the prefix).
func receive(ctx context.Context, s network.Stream, id string, maxBytes int64, dstPath string, overwrite bool, progress func(got, total int64), pg pacing) (int64, error) {
	idle := pg.idle
	if err := s.SetDeadline(deadline(ctx, idle)); err != nil {
		return 0, fmt.Errorf("setting stream deadline: %w", err)
	}
	// Until the length prefix arrives, a stream the peer ends or resets is
	// its answer that it has no file for us, which it may give as soon as
	// it has read the request, while we still write or half-close.
	unavailable := func(err error) bool {
		return ctx.Err() == nil && (err == io.EOF || errors.Is(err, network.ErrReset))
	}
	const refused = "%w: the peer ended the stream without sending the file; it does not know the ID or will not serve it (%w)"
	if _, err := s.Write(AppendRequest(nil, id)); err != nil {
		if unavailable(err) {
			return 0, fmt.Errorf(refused, ErrUnavailable, err)
		}
		return 0, fmt.Errorf("writing request: %w", err)
	}
	// Half-closing says that no other request follows. The js-peer's server
	// answers requests until the stream's end, so without it that server
	// would not end the stream after its answer. Its error is not checked:
	// it fails when the peer has already reset the stream, and the read
	// below then reports that in the transport-independent form that
	// unavailable recognizes; otherwise the request is out anyway.
	_ = s.CloseWrite()

	size, err := readLength(s)
	switch {
	case unavailable(err):
		return 0, fmt.Errorf(refused, ErrUnavailable, err)
	case isTimeout(err) && ctxCause(ctx) == nil:
		return 0, fmt.Errorf("the peer did not answer within %v: %w", idle, err)
	case err != nil:
		return 0, fmt.Errorf("reading length prefix: %w", err)
	case size > uint64(maxBytes):
		return 0, fmt.Errorf("%w: the file is %d bytes, over the limit of %d", ErrTooLarge, size, maxBytes)
	}
	total := int64(size)
	pc := pg.start(time.Now())
	progress(0, total)

	tmp, err := createTemp(dstPath)
	if err != nil {
		return 0, err
	}
	done := false
	defer func() {
		if !done {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()

	buf := make([]byte, chunkSize)
	var got int64
	for got < total {
		dl, rated := pc.deadline(time.Now())
		if err := s.SetReadDeadline(within(ctx, dl)); err != nil {
			return 0, fmt.Errorf("setting read deadline: %w", err)
		}
		want := buf
		if left := total - got; int64(len(want)) > left {
			want = want[:left]
		}
		n, err := s.Read(want)
		met := pc.add(n, time.Now())
		if n > 0 {
			if _, werr := tmp.Write(want[:n]); werr != nil {
				return 0, fmt.Errorf("writing %s: %w", tmp.Name(), werr)
			}
			got += int64(n)
			progress(got, total)
		}
		if err == io.EOF {
			if got < total {
				return 0, fmt.Errorf("%w: the stream ended after %d of %d bytes", ErrLengthMismatch, got, total)
			}
			break
		}
		if isTimeout(err) && ctxCause(ctx) == nil {
			switch {
			case rated && !met:
				return 0, fmt.Errorf("%w: the peer sent under the least rate of %s, %d of %d bytes so far: %w", ErrTooSlow, pc.rule(), got, total, err)
			case !rated && n == 0:
				return 0, fmt.Errorf("the transfer stalled, no data for %v after %d of %d bytes: %w", idle, got, total, err)
			}
			continue // it made the progress asked, just in time
		}
		if err != nil {
			return 0, fmt.Errorf("the transfer broke after %d of %d bytes: %w", got, total, err)
		}
	}
	if err := checkEnd(ctx, s); err != nil {
		return 0, err
	}

	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := place(tmp.Name(), dstPath, overwrite); err != nil {
		return 0, err // the deferred cleanup removes the temporary file
	}
	done = true
	syncDir(filepath.Dir(dstPath))
	return got, nil
}

// checkEnd makes sure nothing follows the body: the peer should end the
// stream right after it. More bytes mean the peer and we disagree about the
// length. A peer that neither sends nor ends is not held against the file,
// which is whole, after trailerWait.
func checkEnd(ctx context.Context, s network.Stream) error {
	if err := s.SetReadDeadline(deadline(ctx, trailerWait)); err != nil {
		return fmt.Errorf("setting read deadline: %w", err)
	}
	var one [1]byte
	n, _ := s.Read(one[:])
	if n > 0 {
		return fmt.Errorf("%w: the peer sent more bytes than its length prefix announced", ErrLengthMismatch)
	}
	return nil
}

// checkAbsent returns an ErrExists error when something is at path.
func checkAbsent(path string) error {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return fmt.Errorf("%w: %s (choose another path, or allow overwriting it)", ErrExists, path)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return fmt.Errorf("checking destination: %w", err)
	}
}

// createTemp creates the temporary file for dstPath in the same directory,
// so that the final rename stays within one file system and is atomic. Its
// name starts with a dot and ends in ".part", so that it is hidden and
// recognizable if the process dies mid-transfer. It is created with mode
// 0666 minus the umask, like any new file, so the result gets the
// permissions the user expects.
func createTemp(dstPath string) (*os.File, error) {
	dir, base := filepath.Split(dstPath)
	if dir == "" {
		dir = "."
	}
	const maxBase = 100 // keeps the name under every file system's limit
	if len(base) > maxBase {
		base = base[:maxBase]
	}
	for range 10 {
		var r [6]byte
		_, _ = rand.Read(r[:])
		name := filepath.Join(dir, "."+base+"."+hex.EncodeToString(r[:])+".part")
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("creating temporary file: %w", err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("creating temporary file in %s: too many name collisions", dir)
}

// place moves the complete temporary file to dst. Without overwrite it
// makes a hard link, which fails if dst exists, and then removes the
// temporary name: unlike a check followed by a rename, nothing created at dst
// in between is replaced. Where the file system has no hard links, it falls
// back to that check and rename.
func place(tmp, dst string, overwrite bool) error {
	if overwrite {
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("moving the file into place: %w", err)
		}
		return nil
	}
	err := os.Link(tmp, dst)
	switch {
	case err == nil:
		_ = os.Remove(tmp)
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%w: %s (created while the file was being fetched; choose another path, or allow overwriting it)", ErrExists, dst)
	}
	if err := checkAbsent(dst); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("moving the file into place: %w", err)
	}
	return nil
}

// syncDir makes the new directory entry durable. It is best effort: some
// systems cannot sync a directory, and the file itself is already synced.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
