package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdentityFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	first, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %04o, want 0600", perm)
	}
	again, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Equals(again) {
		t.Error("the key file gave a different key the second time")
	}
}

func TestIdentityFileErrors(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.key")
	if _, err := LoadIdentity(open); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key readable by others: err = %v, want a refusal naming chmod 600", err)
	}

	corrupt := filepath.Join(dir, "corrupt.key")
	if err := os.WriteFile(corrupt, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(corrupt); err == nil || !strings.Contains(err.Error(), "not a libp2p private key") {
		t.Errorf("a corrupt key: err = %v", err)
	}

	if _, err := LoadIdentity(filepath.Join(dir, "no", "such", "dir", "x.key")); err == nil {
		t.Error("a key in a missing directory: no error")
	}
}
