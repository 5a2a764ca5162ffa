//go:build linux

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Mem is a process's memory, in KiB, from /proc/PID/status.
type Mem struct {
	RSS int64 // VmRSS: resident now
	HWM int64 // VmHWM: the peak of VmRSS (see ResetPeak)
	// The parts of RSS: anonymous (heap, stacks, runtime), file-backed
	// (the binary's pages) and shared memory.
	Anon, File, Shmem int64
	Threads           int64 // not KiB: the number of threads
}

// ReadMem reads the memory of the process pid.
func ReadMem(pid int) (Mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, err
	}
	var m Mem
	fields := map[string]*int64{"VmRSS": &m.RSS, "VmHWM": &m.HWM, "RssAnon": &m.Anon,
		"RssFile": &m.File, "RssShmem": &m.Shmem, "Threads": &m.Threads}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		dst := fields[k]
		if !ok || dst == nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
		*dst = n
	}
	if m.RSS == 0 || m.HWM == 0 {
		return Mem{}, fmt.Errorf("/proc/%d/status: no VmRSS or VmHWM", pid)
	}
	return m, nil
}

// Mem reads the process's memory, failing the test if it cannot.
func (p *Proc) Mem(t testing.TB) Mem {
	t.Helper()
	m, err := ReadMem(p.Pid())
	if err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
	return m
}

// PSS returns the proportional set size of the process pid in KiB: its
// RSS with each shared page divided among the processes that share it
// (from /proc/PID/smaps_rollup, which costs more to read than status).
func PSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/smaps_rollup: no Pss", pid)
}

// ResetPeak sets the process's VmHWM back to its current VmRSS (Linux
// clear_refs 5), so that the next reading of HWM is the peak since now.
func ResetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// ClockTicks is USER_HZ, the unit of the times in /proc/PID/stat and
// /proc/stat: 100 on every Linux architecture Go supports.
const ClockTicks = 100

// stat returns the fields of /proc/PID/stat after the command name: [0] is
// field 3, the state.
func stat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
}

// CPUTime returns the CPU time the process pid has used (utime + stime of
// all its threads).
func CPUTime(pid int) (time.Duration, error) {
	f, err := stat(pid)
	if err != nil {
		return 0, err
	}
	// utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / ClockTicks, nil
}

// WaitStopped waits until the process is stopped (state T), after a
// SIGSTOP: kill returns before the process has stopped.
func (p *Proc) WaitStopped(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		f, err := stat(p.Pid())
		if err != nil {
			t.Fatalf("%s: cannot read the process state: %v", p.Name, err)
		}
		if len(f) > 0 && (f[0] == "T" || f[0] == "t") {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s: not stopped 5 s after SIGSTOP", p.Name)
}
