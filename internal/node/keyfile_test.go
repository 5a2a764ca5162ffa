package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPSKFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "swarm.key")
	if err := GeneratePSK(path); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("swarm key mode %04o, want 0600", perm)
	}
	psk, err := LoadPSK(path)
	if err != nil || len(psk) != 32 {
		t.Fatalf("LoadPSK: %d bytes, %v", len(psk), err)
	}
	if err := GeneratePSK(path); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("generating over an existing key: err = %v, want a refusal", err)
	}

	// The format IPFS writes, base64 variant included, loads.
	b64 := filepath.Join(dir, "b64.key")
	if err := os.WriteFile(b64, []byte("/key/swarm/psk/1.0.0/\n/base64/\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPSK(b64); err != nil {
		t.Errorf("base64 key: %v", err)
	}

	for name, tc := range map[string]struct {
		data string
		mode os.FileMode
		want string
	}{
		"readable by others": {"/key/swarm/psk/1.0.0/\n/base16/\n" + strings.Repeat("ab", 32) + "\n", 0o644, "chmod 600"},
		"wrong header":       {"/key/swarm/psk/2.0.0/\n/base16/\n00\n", 0o600, "not a /key/swarm/psk/1.0.0/ key"},
		"short key":          {"/key/swarm/psk/1.0.0/\n/base16/\nabcd\n", 0o600, "not a /key/swarm/psk/1.0.0/ key"},
		"bad encoding":       {"/key/swarm/psk/1.0.0/\n/base99/\nabcd\n", 0o600, "not a /key/swarm/psk/1.0.0/ key"},
		"empty":              {"", 0o600, "not a /key/swarm/psk/1.0.0/ key"},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			if err := os.WriteFile(p, []byte(tc.data), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadPSK(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v, want one line containing %q", err, tc.want)
			}
		})
	}
	if _, err := LoadPSK(filepath.Join(dir, "missing.key")); err == nil {
		t.Error("a missing key file: no error")
	}
}

func FuzzIdentityFile(f *testing.F) {
	f.Add([]byte("not a key"))
	f.Add([]byte{0x08, 0x01, 0x12, 0x40})
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		// Whatever a key file holds, loading it gives a key or an error,
		// never a panic.
		p := filepath.Join(dir, "fuzz.key")
		_ = os.Remove(p)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = LoadIdentity(p)
		_, _ = LoadPSK(p)
	})
}
