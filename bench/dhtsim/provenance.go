package main

// provenance.go: the run's ID and commit, named as bench/provenance.go
// names them for `make bench`, and what the machine did meanwhile.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/stat and /proc/PID/stat.
const clockTicks = 100

type provenance struct {
	runID   string
	commit  string
	started time.Time
}

func newProvenance() provenance {
	p := provenance{started: time.Now().UTC(), commit: "unknown"}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	p.runID = p.started.Format("20060102T150405Z") + "-" + hex.EncodeToString(rnd[:])
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		p.commit = strings.TrimSpace(string(out))
		st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
		switch {
		case err != nil:
			p.commit += " (clean or not: unknown)"
		case len(bytes.TrimSpace(st)) > 0:
			p.commit += "+dirty"
		}
	}
	return p
}

func (p provenance) line() string {
	return fmt.Sprintf("_Run `%s`, commit `%s`._\n\n", p.runID, p.commit)
}

// A loadSnap is the machine's CPU counters and this process's.
type loadSnap struct {
	at          time.Time
	busy, steal time.Duration // the machine's, from /proc/stat
	ours        time.Duration // this process's user + system time
	ok          bool
}

func snapLoad() loadSnap {
	l := loadSnap{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return l
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return l
	}
	tick := func(i int) time.Duration {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(n) * time.Second / clockTicks
	}
	// cpu user nice system idle iowait irq softirq steal
	l.busy = tick(1) + tick(2) + tick(3) + tick(6) + tick(7)
	l.steal = tick(8)
	sb, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return l
	}
	i := bytes.LastIndexByte(sb, ')')
	if i < 0 {
		return l
	}
	// After the name: utime and stime are fields 14 and 15.
	sf := strings.Fields(string(sb[i+1:]))
	if len(sf) < 13 {
		return l
	}
	ut, err1 := strconv.ParseInt(sf[11], 10, 64)
	st, err2 := strconv.ParseInt(sf[12], 10, 64)
	if err1 != nil || err2 != nil {
		return l
	}
	l.ours, l.ok = time.Duration(ut+st)*time.Second/clockTicks, true
	return l
}

// A load is what the CPUs did between two snapshots.
type load struct {
	wall, busy, steal, ours time.Duration
	ok                      bool
	cpus                    int
	maxRSS                  string
}

func (b loadSnap) since(a loadSnap) load {
	l := load{wall: b.at.Sub(a.at), busy: b.busy - a.busy, steal: b.steal - a.steal, ours: b.ours - a.ours,
		ok: a.ok && b.ok, cpus: runtime.NumCPU(), maxRSS: "unknown"}
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
					l.maxRSS = fmt.Sprintf("%.0f MB", float64(kb)/1000)
				}
			}
		}
	}
	return l
}
