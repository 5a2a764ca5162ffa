package room

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckNick(t *testing.T) {
	for _, ok := range []string{"alice", "zoë", "李雷", "bob_2", "x", strings.Repeat("n", MaxNickRunes), "o'neil"} {
		if err := CheckNick(ok); err != nil {
			t.Errorf("CheckNick(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "two words", "tab\there", "/op", "a~b", "\x1b[31mred", "rtl\u202e", strings.Repeat("n", MaxNickRunes+1), "\xff"} {
		if err := CheckNick(bad); err == nil {
			t.Errorf("CheckNick(%q) accepted", bad)
		}
	}
}

func TestCleanNick(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"alice", "alice"},
		{"  spaced  out ", "spaced__out"},
		{"\x1b[2J\u202eroot\x07", "[2Jroot"},
		{"/join #x", "join_#x"},
		{"sam~Qp3x", "sam_Qp3x"},
		{strings.Repeat("é", 100), strings.Repeat("é", MaxNickRunes)},
		{"\x00\x01\x02", ""},
		{"\xff\xfe", ""},
	} {
		if got := CleanNick(tc.raw); got != tc.want {
			t.Errorf("CleanNick(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

// FuzzCleanNick: whatever a peer announces, what we show is a valid
// nickname or nothing.
func FuzzCleanNick(f *testing.F) {
	for _, s := range []string{"alice", "\x1b]0;pwned\x07", "a b~c", "/quit", "\u202e\u2066x", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := CleanNick(raw)
		if got == "" {
			return
		}
		if err := CheckNick(got); err != nil || !utf8.ValidString(got) {
			t.Fatalf("CleanNick(%q) = %q, which CheckNick refuses: %v", raw, got, err)
		}
	})
}
