package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// LoadIdentity returns the node's private key: a new Ed25519 key when path
// is empty, otherwise the key in the file at path, which is created (mode
// 0600) when missing.
func LoadIdentity(path string) (crypto.PrivKey, error) {
	if path == "" {
		key, _, err := crypto.GenerateEd25519Key(nil)
		return key, err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return createIdentity(path)
	}
	data, err := readKeyFile(path, "identity")
	if err != nil {
		return nil, err
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("identity %s is not a libp2p private key: %w", path, err)
	}
	return key, nil
}

func createIdentity(path string) (crypto.PrivKey, error) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	data, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := writeKeyFile(path, "identity", data); err != nil {
		return nil, err
	}
	return key, nil
}
