package main

// provenance.go: what a run is (its ID, the commit it measured) and what
// else the machine did meanwhile (CPU used by other processes, steal).

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
)

// modulePath is this module's path, by which moduleRoot knows its go.mod.
const modulePath = "github.com/rendezvous-chat/rendezvous-chat"

// A provenance names one run of the suite: every section of the results
// file says it.
type provenance struct {
	runID   string    // unique per run: the start time and 4 random bytes
	commit  string    // git HEAD of the module, "+dirty" with changes to tracked files; "unknown" outside git
	started time.Time // UTC
}

func newProvenance(root string) provenance {
	p := provenance{started: time.Now().UTC(), commit: "unknown"}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	p.runID = p.started.Format("20060102T150405Z") + "-" + hex.EncodeToString(rnd[:])
	if root != "" {
		p.commit = gitCommit(root)
	}
	return p
}

// line is the provenance line under each section's heading.
func (p provenance) line() string {
	return fmt.Sprintf("_Run `%s`, commit `%s`._\n\n", p.runID, p.commit)
}

// gitCommit returns the short HEAD commit of the work tree at root, with
// "+dirty" when tracked files differ from it (untracked ones do not count,
// as for `git describe --dirty`, which names the binary's version).
func gitCommit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	switch {
	case err != nil:
		c += " (clean or not: unknown)"
	case len(bytes.TrimSpace(st)) > 0:
		c += "+dirty"
	}
	return c
}

// moduleRoot returns the directory of this module's go.mod, found from the
// working directory upwards.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if strings.TrimSpace(first) == "module "+modulePath {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not run inside the module " + modulePath + " (its go.mod not found above the working directory)")
		}
		dir = parent
	}
}

// A cpuSnap is the machine's CPU counters and ours at one moment. Each
// reading carries whether it could be taken.
type cpuSnap struct {
	at time.Time
	// busy is the machine's busy CPU time from /proc/stat's first line:
	// user + nice + system + irq + softirq (guest time is inside user);
	// not idle, iowait or steal.
	busy   time.Duration
	busyOK bool
	// steal is /proc/stat's steal: time the hypervisor ran something else
	// while our virtual CPUs wanted to run.
	steal   time.Duration
	stealOK bool
	// ours is the CPU time of the suite and all its children: utime,
	// stime, cutime and cstime from /proc/self/stat (cutime and cstime
	// hold every child that has ended and been reaped, with its final
	// figures, and its own reaped children), plus the same fields of each
	// child still running, from /proc/PID/stat.
	ours   time.Duration
	oursOK bool
	why    string // what could not be read
}

// snapCPU reads the counters. live lists the children not yet reaped.
func snapCPU(live func() []*e2e.Proc) cpuSnap {
	c := cpuSnap{at: time.Now()}
	var whys []string
	if busy, steal, stealOK, err := procStat(); err != nil {
		whys = append(whys, err.Error())
	} else {
		c.busy, c.busyOK, c.steal, c.stealOK = busy, true, steal, stealOK
		if !stealOK {
			whys = append(whys, "/proc/stat has no steal field")
		}
	}
	self, err := procCPU("self")
	if err != nil {
		whys = append(whys, err.Error())
	} else {
		c.ours, c.oursOK = self, true
		for _, p := range live() {
			t, err := procCPU(strconv.Itoa(p.Pid()))
			if err != nil {
				// It ended between the two readings: its time is in
				// neither or (once reaped) counted late.
				c.oursOK = false
				whys = append(whys, fmt.Sprintf("%s ended while being read", p.Name))
				break
			}
			c.ours += t
		}
	}
	c.why = strings.Join(whys, "; ")
	return c
}

// procStat returns the machine's busy and steal time from /proc/stat.
func procStat() (busy, steal time.Duration, stealOK bool, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, false, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	tick := func(i int) (time.Duration, error) {
		n, err := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(n) * time.Second / e2e.ClockTicks, err
	}
	// cpu user nice system idle iowait irq softirq steal guest guest_nice
	for _, i := range []int{1, 2, 3, 6, 7} {
		t, err := tick(i)
		if err != nil {
			return 0, 0, false, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += t
	}
	if len(f) > 8 {
		if steal, err = tick(8); err == nil {
			stealOK = true
		}
	}
	return busy, steal, stealOK, nil
}

// procCPU returns utime + stime + cutime + cstime of /proc/PID/stat.
func procCPU(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: no command name", pid)
	}
	// After the name: state is field 3; utime, stime, cutime, cstime are
	// fields 14 to 17.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, fmt.Errorf("/proc/%s/stat: too few fields", pid)
	}
	var sum int64
	for _, s := range f[11:15] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%s/stat: %w", pid, err)
		}
		sum += n
	}
	return time.Duration(sum) * time.Second / e2e.ClockTicks, nil
}

// A cpuSpan is what the machine's CPUs did between two snapshots.
type cpuSpan struct {
	name              string // the stage, or "whole run"
	wall              time.Duration
	busy, ours, steal cpuSecs
	// others is busy − ours: unknown when an input is, or when the
	// difference is negative (the two kinds of counters disagree by more
	// than other processes used; a 0 would hide that).
	others cpuSecs
	why    string
}

func spanOf(name string, a, b cpuSnap) cpuSpan {
	sp := cpuSpan{name: name, wall: b.at.Sub(a.at)}
	sp.busy = cpuSecs{b.busy - a.busy, a.busyOK && b.busyOK}
	sp.ours = cpuSecs{b.ours - a.ours, a.oursOK && b.oursOK}
	sp.steal = cpuSecs{b.steal - a.steal, a.stealOK && b.stealOK}
	var whys []string
	for _, w := range []string{a.why, b.why} {
		if w != "" {
			whys = append(whys, w)
		}
	}
	if sp.busy.ok && sp.ours.ok {
		if d := sp.busy.d - sp.ours.d; d >= 0 {
			sp.others = cpuSecs{d, true}
		} else {
			whys = append(whys, fmt.Sprintf("the machine's busy time (%.2f CPU-s) is less than our processes' (%.2f CPU-s)",
				sp.busy.d.Seconds(), sp.ours.d.Seconds()))
		}
	}
	sp.why = strings.Join(whys, "; ")
	return sp
}

// cpuS prints CPU-seconds, or "unknown".
func cpuS(c cpuSecs) string {
	if !c.ok {
		return "unknown"
	}
	return fmt.Sprintf("%.1f CPU-s", c.d.Seconds())
}

// cpuTable is the Machine section's table of what the CPUs did, per stage
// and over the whole run.
func cpuTable(spans []cpuSpan, cpus int) string {
	var b strings.Builder
	b.WriteString("| Span | Wall | Machine busy | Our processes | Other processes | Steal | Why unknown |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|---|\n")
	for _, sp := range spans {
		others := cpuS(sp.others)
		if sp.others.ok && sp.wall > 0 {
			others += fmt.Sprintf(" (%.1f %% of %d CPUs)", 100*sp.others.d.Seconds()/(sp.wall.Seconds()*float64(cpus)), cpus)
		}
		why := ""
		if !sp.others.ok || !sp.steal.ok {
			why = sp.why
		}
		cells := []string{sp.name, sp.wall.Round(100 * time.Millisecond).String(), cpuS(sp.busy), cpuS(sp.ours), others, cpuS(sp.steal), why}
		b.WriteString("| " + strings.Join(escapeCells(cells), " | ") + " |\n")
	}
	return b.String()
}
