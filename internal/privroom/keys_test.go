package privroom

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

// TestVectorRoomKey derives K at the real parameters, the one test that
// pays for them (≈ 0.8 s; more under load or -race).
func TestVectorRoomKey(t *testing.T) {
	start := time.Now()
	k := roomKey(realParams, Normalize(vectorPassphrase), vectorRendezvous)
	t.Logf("Argon2id t=%d m=%d KiB p=%d: %v", ArgonTime, ArgonMemoryKiB, ArgonThreads, time.Since(start))
	if got := hex.EncodeToString(k); got != vectorK {
		t.Fatalf("K = %s, want %s", got, vectorK)
	}
}

// TestVectorSalt: the salt is the label and the rendezvous, each with its
// length.
func TestVectorSalt(t *testing.T) {
	want := "0000001f" + hex.EncodeToString([]byte("rendezvous-chat/private-room/v1")) +
		"0000000c" + hex.EncodeToString([]byte("meet me here"))
	if got := hex.EncodeToString(roomSalt(vectorRendezvous)); got != want {
		t.Fatalf("salt = %s, want %s", got, want)
	}
	// No two (label, rendezvous) pairs share a salt: "ab" + "" is not "a" + "b".
	if string(roomSalt("")) == string(roomSalt("\x00")) {
		t.Fatal("salts collide")
	}
}

// TestVectorsFromK: every HKDF output of the vectors' K.
func TestVectorsFromK(t *testing.T) {
	k := mustHex(t, vectorK)
	for _, c := range []struct {
		label string
		n     int
		want  string
	}{
		{labelDHT, 32, "827a0b42fa98cd7bcda7e8317da5e88fc377d53c9cc128f27e5b060001abf4c4"},
		{labelMDNS, 16, "7a0a021de01f811ba64b5979c0775d9f"},
		{labelTopic, 32, "4418e9ee99f5d56f30804ea5155226a6e0f19b1045f792fd147bf19e25c0689d"},
		{labelAdmission, 32, "6296f4a0299f179aa7f42ac3d615ae7151ed597624549a5954803ecd3d04f80e"},
		{labelSeal, 32, "ac511e2e23eae1b1201d11ac2b90b66343fad558c4403c2b3ff1201ac3f49f25"},
	} {
		if got := hex.EncodeToString(expand(k, c.label, c.n)); got != c.want {
			t.Errorf("HKDF(K, %q) = %s, want %s", c.label, got, c.want)
		}
	}
	r := testRoom(t)
	for _, c := range []struct{ what, got, want string }{
		{"Rendezvous", r.Rendezvous(), "rendezvous-chat/private/827a0b42fa98cd7bcda7e8317da5e88fc377d53c9cc128f27e5b060001abf4c4"},
		{"MDNSService", r.MDNSService(), "rc-7a0a021de01f811ba64b5979c0775d9f"},
		{"Topic", r.Topic(), "rc-private-4418e9ee99f5d56f30804ea5155226a6e0f19b1045f792fd147bf19e25c0689d"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
}

// TestNames: the names have the shapes their users need, and say nothing
// of the inputs.
func TestNames(t *testing.T) {
	dnsLabel := regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	for _, r := range []*Room{testRoom(t), otherRoom(t)} {
		if !dnsLabel.MatchString(r.MDNSService()) || len(r.MDNSService()) > 63 {
			t.Errorf("MDNSService %q is not a DNS label", r.MDNSService())
		}
		if !regexp.MustCompile(`^rendezvous-chat/private/[0-9a-f]{64}$`).MatchString(r.Rendezvous()) {
			t.Errorf("Rendezvous %q", r.Rendezvous())
		}
		if !regexp.MustCompile(`^rc-private-[0-9a-f]{64}$`).MatchString(r.Topic()) {
			t.Errorf("Topic %q", r.Topic())
		}
		for _, name := range []string{r.Rendezvous(), r.MDNSService(), r.Topic()} {
			for _, secret := range []string{"horse", "meet", vectorRendezvous} {
				if strings.Contains(name, secret) {
					t.Errorf("%q shows %q", name, secret)
				}
			}
		}
	}
	a, b := testRoom(t), otherRoom(t)
	if a.Rendezvous() == b.Rendezvous() || a.MDNSService() == b.MDNSService() || a.Topic() == b.Topic() {
		t.Error("two keys share a name")
	}
}

// TestDerive: the passphrase is normalized; the rendezvous string is not;
// an empty passphrase is refused. (Cheap parameters.)
func TestDerive(t *testing.T) {
	derive := func(pass, rv string) *Room {
		t.Helper()
		r, err := deriveWith(cheapParams, pass, rv)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	base := derive("correct horse", "meet me here")
	if derive("  correct \t horse\n", "meet me here").Topic() != base.Topic() {
		t.Error("spaces change the room")
	}
	for _, other := range []*Room{derive("Correct horse", "meet me here"), derive("correct horse", "meet me there"), derive("correct horse", "meet me here ")} {
		if other.Topic() == base.Topic() {
			t.Error("another passphrase or rendezvous gives the same room")
		}
	}
	for _, pass := range []string{"", "   ", "\t\n"} {
		if _, err := deriveWith(cheapParams, pass, "x"); !errors.Is(err, ErrEmptyPassphrase) {
			t.Errorf("passphrase %q: %v, want ErrEmptyPassphrase", pass, err)
		}
	}
	if _, err := fromKey(make([]byte, 16)); err == nil {
		t.Error("a 16-byte K was taken")
	}
}

// TestRoomPrintsNoKey: %v, %+v, %#v and %s show no key material.
func TestRoomPrintsNoKey(t *testing.T) {
	r := testRoom(t)
	adm := hex.EncodeToString(r.admKey)
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		s := fmt.Sprintf(f, r)
		if strings.Contains(s, adm) || strings.Contains(s, "admKey") || strings.Contains(s, string(r.admKey)) {
			t.Errorf("%s shows a key: %s", f, s)
		}
	}
}

// rssChildEnv runs TestDeriveGivesMemoryBack's measurement in a fresh
// process: "release" derives as Derive does, "keep" runs Argon2 alone.
const rssChildEnv = "PRIVROOM_RSS_CHILD"

// TestDeriveGivesMemoryBack measures, in a fresh process, the resident
// size (VmRSS) before and after a derivation at the real parameters, and
// its peak (VmHWM); and, for comparison, after Argon2 without the release.
func TestDeriveGivesMemoryBack(t *testing.T) {
	if mode := os.Getenv(rssChildEnv); mode != "" {
		rssChild(mode)
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/status")
	}
	if testing.Short() {
		t.Skip("-short: two derivations at the real parameters")
	}
	measure := func(mode string) (before, peak, after int) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDeriveGivesMemoryBack$", "-test.count=1")
		cmd.Env = append(os.Environ(), rssChildEnv+"="+mode)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, out)
		}
		m := regexp.MustCompile(`RSS before=(\d+) peak=(\d+) after=(\d+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("%s: no measurement in\n%s", mode, out)
		}
		before, _ = strconv.Atoi(string(m[1]))
		peak, _ = strconv.Atoi(string(m[2]))
		after, _ = strconv.Atoi(string(m[3]))
		t.Logf("%-7s VmRSS before %6d KiB, VmHWM %6d KiB, VmRSS after %6d KiB", mode, before, peak, after)
		return before, peak, after
	}
	before, peak, after := measure("release")
	_, _, kept := measure("keep")
	if peak-before < ArgonMemoryKiB*3/4 {
		t.Errorf("the peak (%d KiB over %d) does not show Argon2's %d KiB: not measuring what we think", peak, before, ArgonMemoryKiB)
	}
	if raceEnabled {
		t.Log("-race: the race detector's shadow memory stays; sizes logged, not checked")
		return
	}
	if after-before > 8*1024 {
		t.Errorf("after Derive the process keeps %d KiB more than before", after-before)
	}
	if kept-after < ArgonMemoryKiB/2 {
		t.Logf("without the release the process kept %d KiB: the runtime gave the memory back by itself this time", kept)
	}
}

func rssChild(mode string) {
	runtime.GC()
	debug.FreeOSMemory()
	before := procStatus("VmRSS")
	switch mode {
	case "release":
		roomKey(realParams, "correct horse battery staple", "meet me here")
	default:
		argon2.IDKey([]byte("correct horse battery staple"), roomSalt("meet me here"), ArgonTime, ArgonMemoryKiB, ArgonThreads, KeySize)
	}
	fmt.Printf("RSS before=%d peak=%d after=%d\n", before, procStatus("VmHWM"), procStatus("VmRSS"))
}

// procStatus returns a field of /proc/self/status, in KiB.
func procStatus(field string) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				panic(err)
			}
			return n
		}
	}
	panic("no " + field + " in /proc/self/status")
}

// BenchmarkDerive: the real cost of Derive, release included.
func BenchmarkDerive(b *testing.B) {
	for b.Loop() {
		if _, err := Derive("correct horse battery staple", "meet me here"); err != nil {
			b.Fatal(err)
		}
	}
}
