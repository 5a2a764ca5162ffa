package main

// proc.go: the processes the suite starts (the chat binary and its own
// relays), the events they print on stdout, timed when the driver reads each
// line, and their clean-up on every path out: a normal end, an error, a
// signal, a crash of the suite (Pdeathsig).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// An event is one JSON line of a process's stdout: the chat's -json events
// (see the README), or the same shape printed by the suite's relays. at is
// when the driver read the line; the process's own "time" field is not used.
type event struct {
	Kind   string   `json:"event"`
	ID     string   `json:"id"`
	Addrs  []string `json:"addrs"`
	Server bool     `json:"server"`
	Peer   string   `json:"peer"`
	Text   string   `json:"text"`
	Error  string   `json:"error"`
	Reason string   `json:"reason"`
	Via    string   `json:"via"`
	// Conns answers /conns: one entry per connection to a room peer.
	Conns []struct {
		Peer string `json:"peer"`
	} `json:"conns"`
	at time.Time
}

// A messageSink takes the message events of a process while it is set,
// instead of the process's event list, so that a million lines cost no
// memory. peer and text are only valid during the call.
type messageSink func(peer, text []byte, at time.Time)

// A proc is one running child process. One goroutine reads its stdout.
type proc struct {
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	started time.Time // just before the process was started
	done    chan struct{}
	stderr  tailBuffer

	sink atomic.Pointer[messageSink]
	// sent and delivered count the receipts events skipped while a sink is
	// set.
	sent, delivered atomic.Int64
	// With watchVia set, viaTopic counts the message events handed to the
	// sink that came by the room's topic ("via":"topic"), not a stream.
	watchVia atomic.Bool
	viaTopic atomic.Int64

	mu        sync.Mutex
	events    []event
	changed   chan struct{} // closed and replaced when events or exited change
	exited    bool
	malformed []string // stdout lines that are not events (the first few)
}

// childEnv is the environment of every child: ours without go-log settings,
// which would add log lines, and with the race detector (when the chat
// binary is built with it) stopping at the first race.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOLOG_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	return append(env, "GORACE=halt_on_error=1 atexit_sleep_ms=0")
}

// The registry holds every process started and not yet reaped, so that
// killAll can end them all whatever path the suite leaves by.
var registry = struct {
	sync.Mutex
	procs map[*proc]struct{}
}{procs: make(map[*proc]struct{})}

// startProc starts path with args. The child gets its own process group
// (so that a Ctrl-C at the terminal reaches only the suite, which then ends
// the children itself) and SIGKILL when the suite dies (Pdeathsig).
func startProc(name, path string, args ...string) (*proc, error) {
	p := &proc{name: name, done: make(chan struct{}), changed: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = childEnv()
	p.cmd.Stderr = &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	registry.Lock()
	defer registry.Unlock()
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	registry.procs[p] = struct{}{}
	go func() {
		p.readLoop(stdout)
		_ = p.cmd.Wait() // after the last read of stdout, as exec requires
		registry.Lock()
		delete(registry.procs, p)
		registry.Unlock()
		p.mu.Lock()
		p.exited = true
		p.notifyLocked()
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// killAll kills every process still running and waits (bounded) until they
// are reaped.
func killAll() {
	registry.Lock()
	var ps []*proc
	for p := range registry.procs {
		ps = append(ps, p)
	}
	registry.Unlock()
	for _, p := range ps {
		p.kill()
	}
	for _, p := range ps {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// kill sends SIGKILL to the process's group.
func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
}

// stop ends the process as a user would: the end of its stdin. After grace
// it is killed. It returns once the process is reaped.
func (p *proc) stop(grace time.Duration) {
	_ = p.stdin.Close()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	p.kill()
	<-p.done
}

// terminate ends a process that does not read stdin (the server) with
// SIGTERM, and kills it after grace.
func (p *proc) terminate(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
		<-p.done
	}
}

// stopAll stops processes in parallel.
func stopAll(grace time.Duration, ps ...*proc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		if p == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop(grace)
		}()
	}
	wg.Wait()
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

var (
	messagePrefix = []byte(`{"event":"message",`)
	// Receipts: the sender's events for each line it sends. While a stage
	// measures (a sink is set) they are counted, not decoded or kept.
	sentPrefix      = []byte(`{"event":"sent",`)
	deliveredPrefix = []byte(`{"event":"delivered",`)
	peerKey         = []byte(`,"peer":"`)
	textKey         = []byte(`,"text":"`)
	viaTopicField   = []byte(`,"via":"topic"`)
)

// readLoop reads stdout line by line until it ends, timing each line as it
// is read. Message events take a fast path (no json.Unmarshal) when their
// text needs no unescaping, which is the case for every line the suite
// sends; the rest are decoded in full.
func (p *proc) readLoop(r io.Reader) {
	br := bufio.NewReaderSize(r, 1<<20)
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, line...)
			continue
		}
		if long != nil {
			line = append(long, line...)
			long = nil
		}
		if len(line) > 0 {
			p.handleLine(line, time.Now())
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				p.addMalformed("<stdout: " + err.Error() + ">")
				_, _ = io.Copy(io.Discard, r)
			}
			return
		}
	}
}

func (p *proc) handleLine(line []byte, at time.Time) {
	line = bytes.TrimRight(line, "\r\n")
	if sink := p.sink.Load(); sink != nil {
		switch {
		case bytes.HasPrefix(line, messagePrefix):
			if peer, text, ok := fastMessage(line); ok {
				if p.watchVia.Load() && bytes.Contains(line, viaTopicField) {
					p.viaTopic.Add(1)
				}
				(*sink)(peer, text, at)
				return
			}
		case bytes.HasPrefix(line, sentPrefix):
			p.sent.Add(1)
			return
		case bytes.HasPrefix(line, deliveredPrefix):
			p.delivered.Add(1)
			return
		}
	}
	var e event
	if err := json.Unmarshal(line, &e); err != nil || e.Kind == "" {
		p.addMalformed(string(line))
		return
	}
	e.at = at
	if e.Kind == "message" {
		if sink := p.sink.Load(); sink != nil {
			if p.watchVia.Load() && e.Via == "topic" {
				p.viaTopic.Add(1)
			}
			(*sink)([]byte(e.Peer), []byte(e.Text), at)
			return
		}
	}
	p.mu.Lock()
	p.events = append(p.events, e)
	p.notifyLocked()
	p.mu.Unlock()
}

// fastMessage takes the peer and text out of a message event as the chat's
// encoder writes it: {"event":"message","time":"…","peer":"…","text":"…",…}
// (the fields after text, such as the nickname and message ID, are
// skipped). It reports false when the text has escapes or the line another
// shape.
func fastMessage(line []byte) (peer, text []byte, ok bool) {
	i := bytes.Index(line, peerKey)
	if i < 0 {
		return nil, nil, false
	}
	rest := line[i+len(peerKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil, nil, false
	}
	peer, rest = rest[:j], rest[j+1:]
	if !bytes.HasPrefix(rest, textKey) {
		return nil, nil, false
	}
	rest = rest[len(textKey):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil, nil, false
	}
	text, rest = rest[:end], rest[end+1:]
	if bytes.IndexByte(text, '\\') >= 0 || (len(rest) > 0 && rest[0] != ',' && rest[0] != '}') {
		return nil, nil, false
	}
	return peer, text, true
}

func (p *proc) addMalformed(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.malformed) < 5 {
		p.malformed = append(p.malformed, s)
	}
}

func (p *proc) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// ignoreMessages is the sink of a sending peer while a stage measures: it
// gets no messages, and its receipt events (a sent and a delivered event
// for every line) are then counted, not decoded and kept.
func ignoreMessages(_, _ []byte, _ time.Time) {}

// setSink routes the process's message events to sink; nil routes them
// back to the event list.
func (p *proc) setSink(sink messageSink) {
	if sink == nil {
		p.sink.Store(nil)
		return
	}
	p.sink.Store(&sink)
}

var errTimeout = errors.New("timed out")

// until waits until cond, called with every event so far, holds; it fails
// at the deadline, when ctx ends or when the process exits first.
func (p *proc) until(ctx context.Context, deadline time.Time, what string, cond func([]event) bool) error {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		p.mu.Lock()
		ok := cond(p.events)
		changed, exited := p.changed, p.exited
		p.mu.Unlock()
		if ok {
			return nil
		}
		if exited {
			return fmt.Errorf("%s: exited (%v) before %s%s", p.name, p.cmd.ProcessState, what, p.stderrNote())
		}
		select {
		case <-changed:
		case <-t.C:
			return fmt.Errorf("%s: %s: %w", p.name, what, errTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// first returns the first event that pred accepts.
func (p *proc) first(pred func(*event) bool) (event, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.events {
		if pred(&p.events[i]) {
			return p.events[i], true
		}
	}
	return event{}, false
}

// count returns how many events pred accepts.
func (p *proc) count(pred func(*event) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for i := range p.events {
		if pred(&p.events[i]) {
			n++
		}
	}
	return n
}

func isKind(kind string) func(*event) bool {
	return func(e *event) bool { return e.Kind == kind }
}

func joinedWith(id string) func(*event) bool {
	return func(e *event) bool { return e.Kind == "joined" && e.Peer == id }
}

func hasEvent(pred func(*event) bool) func([]event) bool {
	return func(es []event) bool {
		for i := range es {
			if pred(&es[i]) {
				return true
			}
		}
		return false
	}
}

// ready waits for the ready event and returns it.
func (p *proc) ready(ctx context.Context, timeout time.Duration) (event, error) {
	if err := p.until(ctx, time.Now().Add(timeout), "ready", hasEvent(isKind("ready"))); err != nil {
		return event{}, err
	}
	e, _ := p.first(isKind("ready"))
	if e.ID == "" || len(e.Addrs) == 0 {
		return e, fmt.Errorf("%s: ready event without id or addrs", p.name)
	}
	return e, nil
}

func (p *proc) stderrNote() string {
	s := strings.TrimSpace(p.stderr.String())
	if s == "" {
		return ""
	}
	return "; stderr: " + s
}

// problems lists what the process did that it should not have: stdout lines
// that are not events, a data race.
func (p *proc) problems() []string {
	var out []string
	p.mu.Lock()
	for _, m := range p.malformed {
		out = append(out, fmt.Sprintf("%s: stdout line that is not an event: %.200q", p.name, m))
	}
	p.mu.Unlock()
	if strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
		out = append(out, fmt.Sprintf("%s: the race detector found a data race:\n%s", p.name, p.stderr.String()))
	}
	return out
}

// tailBuffer keeps the last 64 KiB written to it; the exec package's
// stderr copier and the suite may use it at once.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - 64<<10; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// memKB returns the process's VmRSS and VmHWM (peak RSS) in KiB.
func memKB(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmRSS or VmHWM", pid)
	}
	return rss, hwm, nil
}

// statusKB returns fields of /proc/PID/status given in kB, such as
// RssAnon and RssFile.
func statusKB(pid int, keys ...string) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := make(map[string]int64)
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !slices.Contains(keys, k) {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
		m[k] = n
	}
	return m, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// cpuTime returns the CPU time the process has used (utime + stime of all
// its threads).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}
