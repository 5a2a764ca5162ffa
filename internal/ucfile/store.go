package ucfile

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// File is a file shared in this run, as the Store knows it.
type File struct {
	// ID is the ID under which it is announced and served.
	ID string
	// Path is the absolute path it was shared from.
	Path string
	// Size is its size in bytes when it was shared.
	Size int64
}

type entry struct {
	file File
	info os.FileInfo // as it was when shared
}

// Store holds the files the user shared in this run, and nothing else: it is
// never filled from disk or from the network, so a Handler serving it cannot
// be made to read anything the user did not share. The zero Store is empty
// and ready to use; a Store is safe for concurrent use.
type Store struct {
	mu    sync.RWMutex
	files map[string]entry
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{}
}

// Share adds the regular file at path and returns its new ID, to announce on
// the room's file topic. Sharing a file again gives it another ID, as the
// js-peer does. The file is read only when a peer requests it, and served
// only while it is the same, unchanged file (same inode, size and
// modification time), so that what peers get is what the user shared.
func (st *Store) Share(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("sharing %s: %w", path, err)
	}
	info, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("sharing %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("sharing %s: not a regular file", path)
	}
	// Open it once, so that a file the user cannot read is refused now
	// rather than failing for every peer later.
	f, err := os.Open(abs)
	if err != nil {
		return "", fmt.Errorf("sharing %s: %w", path, err)
	}
	_ = f.Close()

	id := NewID()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.files == nil {
		st.files = make(map[string]entry)
	}
	st.files[id] = entry{
		file: File{ID: id, Path: abs, Size: info.Size()},
		info: info,
	}
	return id, nil
}

// Lookup returns the file shared under id.
func (st *Store) Lookup(id string) (File, bool) {
	e, ok := st.lookup(id)
	return e.file, ok
}

func (st *Store) lookup(id string) (entry, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	e, ok := st.files[id]
	return e, ok
}

// Unshare stops serving the file shared under id and reports whether there
// was one. Transfers already under way finish.
func (st *Store) Unshare(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.files[id]
	delete(st.files, id)
	return ok
}

// Files returns the shared files, in no particular order.
func (st *Store) Files() []File {
	st.mu.RLock()
	defer st.mu.RUnlock()
	out := make([]File, 0, len(st.files))
	for _, e := range st.files {
		out = append(out, e.file)
	}
	return out
}

// open opens the file of e and checks that it is still the file that was
// shared. The check and the read use the same open file, so the file cannot
// be swapped in between.
func (e entry) open() (*os.File, int64, error) {
	f, err := os.Open(e.file.Path)
	if err != nil {
		return nil, 0, fmt.Errorf("opening shared file: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("opening shared file: %w", err)
	}
	if !os.SameFile(info, e.info) || info.Size() != e.file.Size || !info.ModTime().Equal(e.info.ModTime()) {
		_ = f.Close()
		return nil, 0, fmt.Errorf("%w: %s", ErrChanged, e.file.Path)
	}
	return f, info.Size(), nil
}
