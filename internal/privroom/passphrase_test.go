package privroom

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestWordList: the embedded list is the EFF long list byte for byte, as
// published: its size and SHA-256, 7776 lines numbered by the dice.
func TestWordList(t *testing.T) {
	const (
		effSHA256 = "addd35536511597a02fa0a9ff1e5284677b8883b83e986e43f15a3db996b903e"
		effSize   = 108800
	)
	sum := sha256.Sum256([]byte(effLargeWordlist))
	if got := hex.EncodeToString(sum[:]); got != effSHA256 || len(effLargeWordlist) != effSize {
		t.Fatalf("word list: SHA-256 %s, %d bytes; want %s, %d", got, len(effLargeWordlist), effSHA256, effSize)
	}
	lines := strings.Split(strings.TrimSuffix(effLargeWordlist, "\n"), "\n")
	words := wordList()
	if len(lines) != 7776 || len(words) != 7776 {
		t.Fatalf("%d lines, %d words", len(lines), len(words))
	}
	seen := map[string]bool{}
	i := 0
	for d1 := 1; d1 <= 6; d1++ {
		for d2 := 1; d2 <= 6; d2++ {
			for d3 := 1; d3 <= 6; d3++ {
				for d4 := 1; d4 <= 6; d4++ {
					for d5 := 1; d5 <= 6; d5++ {
						want := fmt.Sprintf("%d%d%d%d%d\t%s", d1, d2, d3, d4, d5, words[i])
						if lines[i] != want {
							t.Fatalf("line %d = %q, want %q", i+1, lines[i], want)
						}
						w := words[i]
						if seen[w] || w == "" || strings.ContainsAny(w, " \t\r") || strings.ToLower(w) != w {
							t.Fatalf("word %q", w)
						}
						seen[w] = true
						i++
					}
				}
			}
		}
	}
	if words[0] != "abacus" || words[7775] != "zoom" {
		t.Errorf("first and last words: %q, %q", words[0], words[7775])
	}
}

func TestGenerate(t *testing.T) {
	if bits := GenerateWords * math.Log2(float64(len(wordList()))); bits < 64 {
		t.Fatalf("%d words of %d: %.1f bits, under 64", GenerateWords, len(wordList()), bits)
	}
	inList := map[string]bool{}
	for _, w := range wordList() {
		inList[w] = true
	}
	seen := map[string]bool{}
	for range 50 {
		p, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		words := strings.Split(p, " ")
		if len(words) != GenerateWords || Normalize(p) != p {
			t.Fatalf("%q: %d words, or not normal", p, len(words))
		}
		for _, w := range words {
			if !inList[w] {
				t.Fatalf("%q: %q is not in the list", p, w)
			}
		}
		if seen[p] {
			t.Fatalf("%q twice", p)
		}
		seen[p] = true
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"correct horse":              "correct horse",
		"  correct \t\n horse  \r\n": "correct horse",
		"\u00a0correct\u00a0horse":   "correct horse",
		"Correct Horse":              "Correct Horse",
		"   ":                        "",
		"e\u0301":                    "e\u0301", // no Unicode normalization
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func writeFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadPassphraseFile(t *testing.T) {
	for _, c := range []struct{ content, want string }{
		{"correct horse\n", "correct horse"},
		{"correct horse", "correct horse"},
		{"  correct  horse \r\nsecond line\n", "correct horse"},
		{"correct horse\nsecond line", "correct horse"},
		{strings.Repeat("x", maxPassphraseLine) + "\r\n", strings.Repeat("x", maxPassphraseLine)},
	} {
		got, err := ReadPassphraseFile(writeFile(t, c.content, 0o600))
		if err != nil || got != c.want {
			t.Errorf("%q: %q, %v; want %q", c.content, got, err, c.want)
		}
	}
	for _, content := range []string{"", "\n", "   \nsecond line\n", "\r\n"} {
		if _, err := ReadPassphraseFile(writeFile(t, content, 0o600)); !errors.Is(err, ErrEmptyPassphrase) {
			t.Errorf("%q: %v, want ErrEmptyPassphrase", content, err)
		}
	}
	if _, err := ReadPassphraseFile(writeFile(t, strings.Repeat("x", maxPassphraseLine+1)+"\n", 0o600)); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("a long line: %v", err)
	}
	if _, err := ReadPassphraseFile(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no file: %v", err)
	}
	if _, err := ReadPassphraseFile(t.TempDir()); err == nil {
		t.Error("a directory was read")
	}
}

func TestReadPassphraseFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no mode bits")
	}
	if _, err := ReadPassphraseFile(writeFile(t, "correct horse\n", 0o400)); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o620, 0o602, 0o611} {
		path := writeFile(t, "correct horse\n", mode)
		_, err := ReadPassphraseFile(path)
		if err == nil {
			t.Errorf("mode %04o: read", mode)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("(mode %04o): run chmod 600 %s", mode, path)) {
			t.Errorf("mode %04o: %v", mode, err)
		}
		if mode&0o044 != 0 && !strings.Contains(err.Error(), "readable by others") {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
}

func TestWritePassphraseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pass")
	pass, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePassphraseFile(path, "  "+pass+" "); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	if got, err := ReadPassphraseFile(path); err != nil || got != pass {
		t.Errorf("read back %q, %v; want %q", got, err, pass)
	}
	// Never replaces a file.
	if err := WritePassphraseFile(path, "another one"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("over an existing file: %v, want fs.ErrExist", err)
	}
	if got, _ := ReadPassphraseFile(path); got != pass {
		t.Errorf("the file changed to %q", got)
	}
	if err := WritePassphraseFile(filepath.Join(t.TempDir(), "empty"), " "); !errors.Is(err, ErrEmptyPassphrase) {
		t.Errorf("empty: %v", err)
	}
}
