package privroom

import (
	"bufio"
	"bytes"
	"crypto/rand"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"runtime"
	"strings"
	"sync"
)

// ErrEmptyPassphrase: a passphrase with nothing but spaces, or none.
var ErrEmptyPassphrase = errors.New("privroom: the passphrase is empty")

// GenerateWords is how many words Generate draws: six, as the EFF
// recommends for its long list, log2(7776) ≈ 12.92 bits each, 77.5 bits
// in all.
const GenerateWords = 6

// maxPassphraseLine bounds the first line ReadPassphraseFile reads.
const maxPassphraseLine = 4096

// effLargeWordlist is the EFF long word list, byte for byte as the EFF
// publishes it (eff.org/files/2016/07/18/eff_large_wordlist.txt, 108800
// bytes, SHA-256 addd3553…b903e): 7776 lines "ddddd<TAB>word", the dice
// rolls 11111 to 66666 in order.
//
//go:embed eff_large_wordlist.txt
var effLargeWordlist string

// wordList returns the 7776 words of the list, in its order.
var wordList = sync.OnceValue(func() []string {
	lines := strings.Split(strings.TrimSuffix(effLargeWordlist, "\n"), "\n")
	words := make([]string, len(lines))
	for i, line := range lines {
		_, word, ok := strings.Cut(line, "\t")
		if !ok {
			panic("privroom: malformed word list line " + fmt.Sprint(i+1))
		}
		words[i] = word
	}
	return words
})

// Generate returns a new random passphrase: GenerateWords words of the
// EFF long list, drawn uniformly with crypto/rand, joined by single spaces
// (four words of the list have a hyphen of their own: t-shirt, yo-yo,
// drop-down, felt-tip).
func Generate() (string, error) {
	words := wordList()
	n := big.NewInt(int64(len(words)))
	picked := make([]string, GenerateWords)
	for i := range picked {
		j, err := rand.Int(rand.Reader, n)
		if err != nil {
			return "", fmt.Errorf("privroom: generate passphrase: %w", err)
		}
		picked[i] = words[j.Int64()]
	}
	return strings.Join(picked, " "), nil
}

// Normalize returns the passphrase as the room key is derived from it:
// without the spaces around it, and with every run of spaces inside it
// (Unicode white space: tabs, no-break spaces…) made one ASCII space, so
// that "correct  horse " and "correct horse" are the same passphrase.
// Nothing else changes: letters keep their case, and there is no Unicode
// normalization (an é typed as one code point and one typed as e and an
// accent are different passphrases; generated passphrases are plain
// lowercase ASCII).
func Normalize(passphrase string) string {
	return strings.Join(strings.Fields(passphrase), " ")
}

// ReadPassphraseFile returns the first line of the file at path,
// normalized. It refuses a file that its group or others may read or
// write (run chmod 600 on it), one that is not a regular file, a first
// line longer than 4096 bytes, and an empty passphrase. The mode check is
// skipped on Windows, which has no such bits.
func ReadPassphraseFile(path string) (string, error) {
	fi, err := os.Stat(path) // before opening: opening a FIFO would block
	if err != nil {
		return "", fmt.Errorf("passphrase file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("passphrase file %s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("passphrase file: %w", err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil { // the mode of what we read, not of what was there
		return "", fmt.Errorf("passphrase file: %w", err)
	}
	if err := checkMode(path, fi.Mode()); err != nil {
		return "", err
	}
	line, err := firstLine(f)
	if err != nil {
		return "", fmt.Errorf("passphrase file %s: %w", path, err)
	}
	pass := Normalize(line)
	if pass == "" {
		return "", fmt.Errorf("passphrase file %s: its first line is empty: %w", path, ErrEmptyPassphrase)
	}
	return pass, nil
}

func checkMode(path string, mode os.FileMode) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	perm := mode.Perm()
	switch {
	case perm&0o044 != 0:
		return fmt.Errorf("passphrase file %s is readable by others (mode %04o): run chmod 600 %s", path, perm, path)
	case perm&0o077 != 0:
		return fmt.Errorf("passphrase file %s is open to others (mode %04o): run chmod 600 %s", path, perm, path)
	}
	return nil
}

// firstLine reads up to the first newline (LF or CRLF), at most
// maxPassphraseLine bytes.
func firstLine(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxPassphraseLine+2), maxPassphraseLine+2)
	line, err := br.ReadSlice('\n')
	switch {
	case err == nil, err == io.EOF:
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("its first line is longer than %d bytes", maxPassphraseLine)
	default:
		return "", err
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if len(line) > maxPassphraseLine {
		return "", fmt.Errorf("its first line is longer than %d bytes", maxPassphraseLine)
	}
	return string(line), nil
}

// WritePassphraseFile writes a passphrase, normalized, and a newline to a
// new file at path, of mode 0600. It never replaces a file: an existing
// path is an error (wrapping fs.ErrExist).
func WritePassphraseFile(path, passphrase string) error {
	pass := Normalize(passphrase)
	if pass == "" {
		return ErrEmptyPassphrase
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("passphrase file: %w", err)
	}
	_, err = f.WriteString(pass + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("passphrase file %s: %w", path, err)
	}
	return nil
}
