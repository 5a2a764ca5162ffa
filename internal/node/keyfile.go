package node

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/libp2p/go-libp2p/core/pnet"
)

// readKeyFile reads a secret key file, refusing one that others can read,
// as ssh refuses such a private key: whoever can read it can impersonate
// this peer or join this private network. what names the file in errors.
func readKeyFile(path, what string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file", what, path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s %s is readable by others (mode %04o): run chmod 600 %s", what, path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	return data, nil
}

// writeKeyFile creates a secret key file with mode 0600, never replacing
// an existing one.
func writeKeyFile(path, what string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s %s: the file exists; remove it first to replace it", what, path)
		}
		return fmt.Errorf("create %s %s: %w", what, path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s %s: %w", what, path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s %s: %w", what, path, err)
	}
	return nil
}

// LoadPSK reads a swarm key file in the format IPFS uses:
//
//	/key/swarm/psk/1.0.0/
//	/base16/
//	<64 hex digits>
func LoadPSK(path string) (pnet.PSK, error) {
	data, err := readKeyFile(path, "swarm key")
	if err != nil {
		return nil, err
	}
	psk, err := pnet.DecodeV1PSK(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("swarm key %s is not a /key/swarm/psk/1.0.0/ key: %v", path, err)
	}
	return psk, nil
}

// GeneratePSK writes a new random swarm key file at path.
func GeneratePSK(path string) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	data := "/key/swarm/psk/1.0.0/\n/base16/\n" + hex.EncodeToString(key) + "\n"
	return writeKeyFile(path, "swarm key", []byte(data))
}
