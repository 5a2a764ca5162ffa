package main

// stages.go: what the suite measures, one stage per figure group of issue 5.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// stopGrace is how long a process may take to end after its stdin closed.
const stopGrace = 5 * time.Second

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rendezvous returns a rendezvous string no other run uses.
func (s *suite) rendezvous(stage string) string {
	return fmt.Sprintf("bench %d %s %d", os.Getpid(), stage, s.seq.Add(1))
}

// start starts a process and keeps it for the final checks.
func (s *suite) start(ctx context.Context, name, path string, args ...string) (*e2e.Proc, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := e2e.Launch(name, e2e.Options{Path: path}, args...)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// startPeer starts a chat peer on loopback that bootstraps from the local
// server only, with mDNS off, and with extra flags after those.
func (s *suite) startPeer(ctx context.Context, name, rendezvous string, extra ...string) (*e2e.Proc, error) {
	args := append([]string{"-json", "-mdns=false", "-peer", s.server,
		"-listen", "/ip4/127.0.0.1/tcp/0", "-rendezvous", rendezvous}, extra...)
	return s.start(ctx, name, s.cfg.bin, args...)
}

// startServer starts the local bootstrap server.
func (s *suite) startServer(ctx context.Context) error {
	p, err := s.start(ctx, "server", s.cfg.bin, "-server", "-json", "-listen", "/ip4/127.0.0.1/tcp/0")
	if err != nil {
		return err
	}
	r, err := ready(ctx, p, s.cfg.readyTimeout)
	if err != nil {
		return err
	}
	if !r.Server || !strings.HasPrefix(r.Addrs[0], "/ip4/127.0.0.1/tcp/") {
		return fmt.Errorf("server: unexpected ready event %+v", r)
	}
	s.serverProc, s.server = p, r.Addrs[0]
	return nil
}

// meetPair starts two peers at a fresh rendezvous, the second once the
// first has advertised, and waits until they have joined each other.
func (s *suite) meetPair(ctx context.Context, stage string) (a, b *e2e.Proc, err error) {
	rv := s.rendezvous(stage)
	if a, err = s.startPeer(ctx, stage+"-a", rv); err != nil {
		return nil, nil, err
	}
	ra, err := ready(ctx, a, s.cfg.readyTimeout)
	if err != nil {
		return a, nil, err
	}
	if err := a.WaitFor(ctx, time.Now().Add(s.cfg.meetTimeout), "advertising", advertised); err != nil {
		return a, nil, err
	}
	if b, err = s.startPeer(ctx, stage+"-b", rv); err != nil {
		return a, nil, err
	}
	rb, err := ready(ctx, b, s.cfg.readyTimeout)
	if err != nil {
		return a, b, err
	}
	deadline := time.Now().Add(s.cfg.meetTimeout)
	if err := a.WaitFor(ctx, deadline, "joined", e2e.Has(event.Joined, e2e.Peer(rb.ID))); err != nil {
		return a, b, err
	}
	if err := b.WaitFor(ctx, deadline, "joined", e2e.Has(event.Joined, e2e.Peer(ra.ID))); err != nil {
		return a, b, err
	}
	return a, b, nil
}

// advertised holds once a peer has said that its record is at the
// rendezvous.
var advertised = e2e.Has(event.Info, e2e.Code(event.Advertising))

// A relayKind is one of the floors' relay pairs (relay.go).
type relayKind struct {
	label      string // in the figures: "TCP", "libp2p stream"
	name       string // in the floors' names
	recv, send string // the processes' names
	p2p        bool   // bench/p2prelay (recv, send), not the suite's own relay-recv, relay-send
	listen     string
}

var (
	tcpRelay = relayKind{label: "TCP", name: "the TCP relay pair", recv: "relay-recv", send: "relay-send", listen: "127.0.0.1:0"}
	p2pRelay = relayKind{label: "libp2p stream", name: "the libp2p stream relay pair", recv: "p2p-recv", send: "p2p-send", p2p: true,
		listen: "/ip4/127.0.0.1/tcp/0"}
)

// relayPair starts a floor's pair: the receiver, then the sender connected
// to it, and waits until the connection is up.
func (s *suite) relayPair(ctx context.Context, k relayKind) (send, recv *e2e.Proc, err error) {
	bin, recvMode, sendMode := s.self, k.recv, k.send
	if k.p2p {
		if bin, err = s.p2pRelayBin(); err != nil {
			return nil, nil, err
		}
		recvMode, sendMode = "recv", "send"
	}
	if recv, err = s.start(ctx, k.recv, bin, recvMode, "-listen", k.listen); err != nil {
		return nil, nil, err
	}
	r, err := ready(ctx, recv, s.cfg.readyTimeout)
	if err != nil {
		return nil, recv, err
	}
	if send, err = s.start(ctx, k.send, bin, sendMode, "-to", r.Addrs[0]); err != nil {
		return nil, recv, err
	}
	if _, err := ready(ctx, send, s.cfg.readyTimeout); err != nil {
		return send, recv, err
	}
	err = recv.WaitFor(ctx, time.Now().Add(s.cfg.readyTimeout), "connection", e2e.Has(event.Joined, nil))
	return send, recv, err
}

// --- 5. Start-up -------------------------------------------------------------

func (s *suite) stageStartup(ctx context.Context) error {
	chatF := s.figure(&figure{group: 5, name: "Start-up: process start to `ready`", unit: unitMS})
	floorF := s.floor(&figure{name: "Start-up of relay-recv (a minimal Go process): start to `ready`", unit: unitMS})
	chatF.floor = floorF
	s.rssFloor = s.floor(&figure{name: "Peak RSS of relay-recv once ready", unit: unitMB})

	for i := range s.cfg.startupRuns {
		p, err := s.startPeer(ctx, "startup", s.rendezvous("startup"))
		if err != nil {
			return err
		}
		r, err := ready(ctx, p, s.cfg.readyTimeout)
		p.Stop(stopGrace)
		if err != nil {
			return err
		}
		chatF.vals = append(chatF.vals, ms(r.At.Sub(p.Started)))

		rr, err := s.start(ctx, "relay-recv", s.self, "relay-recv", "-listen", "127.0.0.1:0")
		if err != nil {
			return err
		}
		r, err = ready(ctx, rr, s.cfg.readyTimeout)
		if err == nil {
			floorF.vals = append(floorF.vals, ms(r.At.Sub(rr.Started)))
			if m, err := e2e.ReadMem(rr.Pid()); err == nil {
				s.rssFloor.vals = append(s.rssFloor.vals, mb(m.HWM))
			}
		}
		rr.Stop(stopGrace)
		if err != nil {
			return err
		}
		s.progress("start-up %d/%d: chat %.1f ms, relay-recv %.1f ms", i+1, s.cfg.startupRuns, chatF.vals[i], floorF.vals[i])
	}
	return nil
}

func mb(kb int64) float64 { return float64(kb) * 1024 / 1e6 }

// --- 1. Time to meet -----------------------------------------------------------

func (s *suite) stageLate(ctx context.Context) error {
	f := s.figure(&figure{group: 1, name: "Time to meet, late second peer", unit: unitMS,
		target: "≤ 60 ms", check: atMost(60)})
	f.floor = s.floor(&figure{name: "Second peer's start to `ready` (late-peer runs)", unit: unitMS})
	missed := 0
	for i := range s.cfg.lateRuns {
		rv := s.rendezvous("late")
		a, err := s.startPeer(ctx, "late-a", rv)
		if err != nil {
			return err
		}
		err = func() error {
			ra, err := ready(ctx, a, s.cfg.readyTimeout)
			if err != nil {
				return err
			}
			if err := a.WaitFor(ctx, time.Now().Add(s.cfg.meetTimeout), "advertising", advertised); err != nil {
				return err
			}
			b, err := s.startPeer(ctx, "late-b", rv)
			if err != nil {
				return err
			}
			defer stopAll(stopGrace, b)
			rb, err := ready(ctx, b, s.cfg.readyTimeout)
			if err != nil {
				return err
			}
			d, ok, err := s.waitMeet(ctx, a, b, ra.ID, rb.ID, b.Started.Add(s.cfg.meetTimeout))
			if err != nil {
				return err
			}
			if !ok {
				missed++
				s.progress("late %d/%d: not met within %v", i+1, s.cfg.lateRuns, s.cfg.meetTimeout)
				return nil
			}
			f.vals = append(f.vals, ms(d))
			f.floor.vals = append(f.floor.vals, ms(rb.At.Sub(b.Started)))
			s.progress("late %d/%d: met in %.1f ms (ready after %.1f ms)", i+1, s.cfg.lateRuns, ms(d), ms(rb.At.Sub(b.Started)))
			return nil
		}()
		stopAll(stopGrace, a)
		if err != nil {
			return err
		}
	}
	if missed > 0 {
		s.note(fmt.Sprintf("late second peer: %d of %d pairs did not meet within %v", missed, s.cfg.lateRuns, s.cfg.meetTimeout))
	}
	f.runs = fmt.Sprintf("%d of %s", len(f.vals), plural(s.cfg.lateRuns, "run"))
	return nil
}

// waitMeet waits until a and b have joined each other, at most until
// deadline, and returns the time from b's start to the later joined event.
func (s *suite) waitMeet(ctx context.Context, a, b *e2e.Proc, aID, bID string, deadline time.Time) (time.Duration, bool, error) {
	for _, w := range []struct {
		p  *e2e.Proc
		id string
	}{{a, bID}, {b, aID}} {
		err := w.p.WaitFor(ctx, deadline, "joined", e2e.Has(event.Joined, e2e.Peer(w.id)))
		if errors.Is(err, e2e.ErrTimeout) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, err
		}
	}
	ja, _ := a.First(event.Joined, e2e.Peer(bID))
	jb, _ := b.First(event.Joined, e2e.Peer(aID))
	later := ja.At
	if jb.At.After(later) {
		later = jb.At
	}
	for _, p := range []*e2e.Proc{a, b} {
		if n := p.Count(event.Joined, nil); n != 1 {
			s.note(fmt.Sprintf("%s: %d joined events in a room of two", p.Name, n))
		}
	}
	return later.Sub(b.Started), true, nil
}

func (s *suite) stageTogether(ctx context.Context) error {
	f := s.figure(&figure{group: 1, name: "Time to meet, started together", unit: unitMS,
		target: "≤ 250 ms", check: atMost(250)})
	f.floor = s.floor(&figure{name: "Both peers ready, from the second start (together runs)", unit: unitMS})
	count := s.figure(&figure{group: 1, name: fmt.Sprintf("Pairs started together that met within %v", s.cfg.meetTimeout), unit: unitCount})
	runs := s.cfg.togetherRuns
	met := 0
	for i := range runs {
		rv := s.rendezvous("together")
		a, err := s.startPeer(ctx, "together-a", rv)
		if err != nil {
			return err
		}
		b, err := s.startPeer(ctx, "together-b", rv)
		if err != nil {
			stopAll(stopGrace, a)
			return err
		}
		err = func() error {
			ra, err := ready(ctx, a, s.cfg.readyTimeout)
			if err != nil {
				return err
			}
			rb, err := ready(ctx, b, s.cfg.readyTimeout)
			if err != nil {
				return err
			}
			d, ok, err := s.waitMeet(ctx, a, b, ra.ID, rb.ID, b.Started.Add(s.cfg.meetTimeout))
			if err != nil {
				return err
			}
			if !ok {
				s.progress("together %d/%d: NOT met within %v", i+1, runs, s.cfg.meetTimeout)
				return nil
			}
			met++
			bothReady := rb.At
			if ra.At.After(bothReady) {
				bothReady = ra.At
			}
			f.vals = append(f.vals, ms(d))
			f.floor.vals = append(f.floor.vals, ms(bothReady.Sub(b.Started)))
			s.progress("together %d/%d: met in %.1f ms (both ready after %.1f ms)", i+1, runs, ms(d), ms(bothReady.Sub(b.Started)))
			return nil
		}()
		stopAll(stopGrace, a, b)
		if err != nil {
			return err
		}
	}
	f.runs = fmt.Sprintf("%d met of %s", met, plural(runs, "run"))
	count.runs = plural(runs, "run")
	count.custom = fmt.Sprintf("%d of %d", met, runs)
	count.target = fmt.Sprintf("%d of %d", runs, runs)
	count.check = func(*figure) (bool, string) { return met == runs, "" }
	return nil
}

// --- 2. Latency ----------------------------------------------------------------

// A path is one way through which the driver sends lines: the stdin of the
// sending process and the arrivals at the receiving one.
type path struct {
	name     string
	w        io.Writer
	arrivals chan arrival
}

type arrival struct {
	seq int
	at  time.Time
}

// newPath routes recv's messages that carry sequence numbers to the path.
func newPath(name string, send, recv *e2e.Proc) *path {
	p := &path{name: name, w: send.Stdin, arrivals: make(chan arrival, 1024)}
	send.SetSink(ignoreMessages)
	recv.SetSink(func(_, text []byte, _ bool, at time.Time) {
		seq, ok := parseSeq(text, 'p')
		if !ok {
			seq = -1
		}
		select {
		case p.arrivals <- arrival{seq, at}:
		default: // the driver only waits for one line at a time
		}
	})
	return p
}

// parseSeq reads a sequence number from a line such as l00000042.
func parseSeq(text []byte, prefix byte) (int, bool) {
	if len(text) < 2 || text[0] != prefix {
		return 0, false
	}
	n := 0
	for _, c := range text[1:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// once writes line seq and waits for it to arrive.
func (p *path) once(ctx context.Context, seq int, timeout time.Duration) (time.Duration, error) {
	line := fmt.Appendf(nil, "p%08d\n", seq)
	sent := time.Now()
	if _, err := p.w.Write(line); err != nil {
		return 0, fmt.Errorf("%s: write line %d: %w", p.name, seq, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case a := <-p.arrivals:
			if a.seq == seq {
				return a.at.Sub(sent), nil
			}
			return 0, fmt.Errorf("%s: line %d arrived while waiting for line %d", p.name, a.seq, seq)
		case <-t.C:
			return 0, fmt.Errorf("%s: line %d did not arrive within %v", p.name, seq, timeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (s *suite) stageLatency(ctx context.Context) error {
	n := s.cfg.latencyLines
	f := s.figure(&figure{group: 2, tail: true, name: "Latency, one-way", runs: fmt.Sprintf("%s lines", thousands(int64(n))), unit: unitMS,
		target: "p50 ≤ 1.2×, p99 ≤ 2× the libp2p stream's"})
	f.floor = s.floor(&figure{name: "Latency through the TCP relay pair", label: tcpRelay.label, runs: f.runs, unit: unitMS})
	f.floor2 = s.floor(&figure{name: "Latency through the libp2p stream relay pair", label: p2pRelay.label, runs: f.runs, unit: unitMS})
	f.check = func(f *figure) (bool, string) {
		if len(f.vals) == 0 || len(f.floor2.vals) == 0 {
			return false, "no values"
		}
		var missed []string
		if f.median() > 1.2*f.floor2.median() {
			missed = append(missed, "p50")
		}
		if percentile(f.vals, 99) > 2*percentile(f.floor2.vals, 99) {
			missed = append(missed, "p99")
		}
		return len(missed) == 0, strings.Join(missed, ", ")
	}

	a, b, err := s.meetPair(ctx, "latency")
	defer stopAll(stopGrace, a, b)
	if err != nil {
		return err
	}
	rs, rr, err := s.relayPair(ctx, tcpRelay)
	defer stopAll(stopGrace, rs, rr)
	if err != nil {
		return err
	}
	ps, pr, err := s.relayPair(ctx, p2pRelay)
	defer stopAll(stopGrace, ps, pr)
	if err != nil {
		return err
	}
	chat, tcp, p2p := newPath("chat", a, b), newPath("TCP relay", rs, rr), newPath("libp2p stream relay", ps, pr)
	into := map[*path]*figure{chat: f, tcp: f.floor, p2p: f.floor2}
	paths := []*path{chat, tcp, p2p}
	const lineTimeout = 5 * time.Second
	for i := -s.cfg.latencyWarmup; i < n; i++ {
		// Rotate which path goes first, so none always follows another's
		// wake-ups.
		k := (i + s.cfg.latencyWarmup) % len(paths)
		order := append(slices.Clone(paths[k:]), paths[:k]...)
		for _, p := range order {
			d, err := p.once(ctx, i+s.cfg.latencyWarmup, lineTimeout)
			if err != nil {
				return err // a lost line: run records the failure
			}
			if i >= 0 {
				into[p].vals = append(into[p].vals, ms(d))
			}
			time.Sleep(s.cfg.latencyGap)
		}
	}
	s.progress("latency: chat p50 %.3f ms p99 %.3f ms; TCP relay p50 %.3f ms p99 %.3f ms; libp2p stream relay p50 %.3f ms p99 %.3f ms",
		f.median(), percentile(f.vals, 99), f.floor.median(), percentile(f.floor.vals, 99), f.floor2.median(), percentile(f.floor2.vals, 99))
	return nil
}

// --- 3. Throughput -------------------------------------------------------------

// A pumpResult is one throughput run.
type pumpResult struct {
	n                      int
	received               int // unique lines
	lost, dup, reordered   int
	bad                    int // lines that are not ours
	elapsed                time.Duration
	senderHWM, receiverHWM int64 // KiB
	// CPU time used during the run by the sender, the receiver and the
	// driver (this process).
	senderCPU, receiverCPU, driverCPU cpuSecs
	senderErrors, firstError          string
}

func (r pumpResult) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

// pump writes n numbered lines to send's stdin as fast as it takes them and
// checks each line that recv prints. It stops both processes.
func (s *suite) pump(ctx context.Context, send, recv *e2e.Proc, n int) (pumpResult, error) {
	res := pumpResult{n: n}
	seen := make([]bool, n)
	hi := -1
	var unique, lastAt atomic.Int64
	// The sink runs on recv's reader goroutine only; the counters it keeps
	// are read after recv has been reaped.
	send.SetSink(ignoreMessages)
	recv.SetSink(func(_, text []byte, _ bool, at time.Time) {
		seq, ok := parseSeq(text, 'l')
		if !ok || seq >= n {
			res.bad++
			return
		}
		if seen[seq] {
			res.dup++
			return
		}
		seen[seq] = true
		if seq < hi {
			res.reordered++
		}
		hi = max(hi, seq)
		lastAt.Store(at.UnixNano())
		unique.Add(1)
	})

	pids := []int{send.Pid(), recv.Pid(), os.Getpid()}
	cpu0 := cpuTimes(pids)
	first := make(chan time.Time, 1)
	wrote := make(chan error, 1)
	go func() {
		bw := bufio.NewWriterSize(send.Stdin, 64<<10)
		line := []byte("l00000000\n")
		first <- time.Now()
		for i := range n {
			v := i
			for j := 8; j >= 1; j-- {
				line[j] = byte('0' + v%10)
				v /= 10
			}
			if _, err := bw.Write(line); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- bw.Flush()
	}()
	start := <-first

	// Wait for every line, or until nothing has arrived for stallTimeout
	// (the chat waits up to 10 s for room in a peer's queue).
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last, lastChange := int64(-1), time.Now()
	var werr error
	writing := true
	for unique.Load() < int64(n) {
		select {
		case <-ctx.Done():
			stopAll(0, send, recv)
			return res, ctx.Err()
		case werr = <-wrote:
			writing = false
			if werr != nil {
				werr = fmt.Errorf("write to %s: %w", send.Name, werr)
			}
		case <-tick.C:
		}
		if werr != nil {
			break
		}
		if u := unique.Load(); u != last {
			last, lastChange = u, time.Now()
		} else if time.Since(lastChange) > s.cfg.stallTimeout {
			break
		}
	}
	cpu1 := cpuTimes(pids)
	res.senderCPU, res.receiverCPU, res.driverCPU = cpu1[0].sub(cpu0[0]), cpu1[1].sub(cpu0[1]), cpu1[2].sub(cpu0[2])
	if m, err := e2e.ReadMem(send.Pid()); err == nil {
		res.senderHWM = m.HWM
	}
	if m, err := e2e.ReadMem(recv.Pid()); err == nil {
		res.receiverHWM = m.HWM
	}
	if errs := send.Count(event.Error, nil); errs > 0 {
		e, _ := send.First(event.Error, nil)
		res.senderErrors, res.firstError = fmt.Sprint(errs), string(e.Code)+": "+e.Error
	}
	// Stop the sender first (the end of its stdin), then the receiver, and
	// count only after the receiver's stdout has ended: a late duplicate
	// still counts.
	_ = send.Stdin.Close()
	if writing {
		<-wrote // the writer returns once stdin is closed
	}
	stopAll(stopGrace, send)
	stopAll(stopGrace, recv)
	if werr != nil {
		return res, werr
	}
	res.received = int(unique.Load())
	res.lost = n - res.received
	res.elapsed = time.Unix(0, lastAt.Load()).Sub(start)
	return res, nil
}

// cpuTimes returns the CPU time each process has used so far (unknown for
// one that cannot be read, such as one that has ended).
func cpuTimes(pids []int) []cpuSecs {
	ts := make([]cpuSecs, len(pids))
	for i, pid := range pids {
		d, err := e2e.CPUTime(pid)
		ts[i] = cpuSecs{d, err == nil}
	}
	return ts
}

// cpuSecs is a reading of CPU time that may be unknown: it prints as
// "unknown", never as 0.
type cpuSecs struct {
	d  time.Duration
	ok bool
}

// sub is the CPU used between two readings: unknown if either is, or if
// the difference is negative (the process was not the same one).
func (c cpuSecs) sub(before cpuSecs) cpuSecs {
	if !c.ok || !before.ok || c.d < before.d {
		return cpuSecs{}
	}
	return cpuSecs{c.d - before.d, true}
}

func (c cpuSecs) String() string {
	if !c.ok {
		return "unknown"
	}
	return fmt.Sprintf("%.2f s", c.d.Seconds())
}

// kbMB prints a memory reading in KiB as MB, or "unknown" when it was not
// read (0).
func kbMB(kb int64) string {
	if kb <= 0 {
		return "unknown"
	}
	return unitMB.format(mb(kb))
}

func (s *suite) stageThroughput(ctx context.Context) error {
	integrity := &figure{group: 3, name: "Throughput: lines lost / duplicated / reordered", unit: unitCount, target: "0 / 0 / 0"}
	defer s.figure(integrity) // after the throughput figures
	var lost, dup, reord, lines, runs int
	for i, n := range s.cfg.throughput {
		f := s.figure(&figure{group: 3, name: fmt.Sprintf("Throughput, %s lines", thousands(int64(n))), unit: unitRate,
			target: "≥ 0.3× the libp2p stream's", check: atLeastOfFloor2(0.3)})
		f.floor = s.floor(&figure{name: fmt.Sprintf("Throughput through %s, %s lines", tcpRelay.name, thousands(int64(n))), label: tcpRelay.label, unit: unitRate})
		f.floor2 = s.floor(&figure{name: fmt.Sprintf("Throughput through %s, %s lines", p2pRelay.name, thousands(int64(n))), label: p2pRelay.label, unit: unitRate})
		for run := range s.cfg.throughputRuns[i] {
			floors := make(map[*figure]pumpResult)
			for _, fl := range []struct {
				k relayKind
				f *figure
			}{{tcpRelay, f.floor}, {p2pRelay, f.floor2}} {
				rs, rr, err := s.relayPair(ctx, fl.k)
				if err != nil {
					stopAll(0, rs, rr)
					return err
				}
				fr, err := s.pump(ctx, rs, rr, n)
				if err != nil {
					return err
				}
				if fr.lost+fr.dup+fr.reordered+fr.bad > 0 {
					s.fail(fmt.Sprintf("%s (a floor) lost %d, duplicated %d, reordered %d of %d lines: a harness bug", fl.k.name, fr.lost, fr.dup, fr.reordered, n))
				} else {
					fl.f.vals = append(fl.f.vals, fr.rate())
				}
				floors[fl.f] = fr
			}

			a, b, err := s.meetPair(ctx, "throughput")
			if err != nil {
				stopAll(0, a, b)
				return err
			}
			cr, err := s.pump(ctx, a, b, n)
			if err != nil {
				return err
			}
			runs++
			lines += n
			lost, dup, reord = lost+cr.lost, dup+cr.dup, reord+cr.reordered
			if cr.lost+cr.dup+cr.reordered+cr.bad > 0 {
				s.fail(fmt.Sprintf("throughput, %d lines: the chat lost %d, duplicated %d, reordered %d lines, and printed %d foreign ones (sender's error events: %s %q)",
					n, cr.lost, cr.dup, cr.reordered, cr.bad, cr.senderErrors, cr.firstError))
			}
			if cr.lost == 0 {
				f.vals = append(f.vals, cr.rate())
			}
			tr, pr := floors[f.floor], floors[f.floor2]
			s.note(fmt.Sprintf("throughput, %s lines, run %d: %.2f s; CPU time: sending peer %s, receiving peer %s, driver %s; "+
				"peak RSS: sending peer %s, receiving peer %s. TCP relay: %.2f s; CPU send %s, receive %s, driver %s. "+
				"libp2p stream relay: %.2f s; CPU send %s, receive %s, driver %s; peak RSS send %s, receive %s",
				thousands(int64(n)), run+1, cr.elapsed.Seconds(), cr.senderCPU, cr.receiverCPU, cr.driverCPU,
				kbMB(cr.senderHWM), kbMB(cr.receiverHWM),
				tr.elapsed.Seconds(), tr.senderCPU, tr.receiverCPU, tr.driverCPU,
				pr.elapsed.Seconds(), pr.senderCPU, pr.receiverCPU, pr.driverCPU, kbMB(pr.senderHWM), kbMB(pr.receiverHWM)))
			s.progress("throughput %s lines, run %d/%d: chat %s lines/s, TCP relay %s lines/s, libp2p stream relay %s lines/s; lost %d dup %d reordered %d",
				thousands(int64(n)), run+1, s.cfg.throughputRuns[i], thousands(int64(cr.rate())), thousands(int64(tr.rate())), thousands(int64(pr.rate())),
				cr.lost, cr.dup, cr.reordered)
		}
		f.runs = plural(len(f.vals), "run")
		f.floor.runs = plural(len(f.floor.vals), "run")
		f.floor2.runs = plural(len(f.floor2.vals), "run")
	}
	integrity.runs = fmt.Sprintf("%s, %s lines", plural(runs, "run"), thousands(int64(lines)))
	integrity.custom = fmt.Sprintf("%d / %d / %d", lost, dup, reord)
	integrity.check = func(*figure) (bool, string) { return lost+dup+reord == 0, "" }
	return nil
}

// driverAlone measures how fast the driver reads message lines: the same
// reader and throughput sink, fed from a pipe by a writer in this process.
func (s *suite) driverAlone(n int) error {
	f := s.floor(&figure{name: fmt.Sprintf("Driver alone: reads %s chat message lines from a pipe (a ceiling, not a floor)", thousands(int64(n))), unit: unitRate})
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	reader := e2e.NewLog("driver-alone")
	var count int
	var last time.Time
	reader.SetSink(func(_, text []byte, _ bool, at time.Time) {
		if _, ok := parseSeq(text, 'l'); ok {
			count++
			last = at
		}
	})
	line := []byte(`{"event":"message","time":"2026-11-27T03:08:17.370629076Z","peer":"` + relayPeer + `","text":"l00000000"}` + "\n")
	digits := len(line) - 11
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		for i := range n {
			v := i
			for j := 7; j >= 0; j-- {
				line[digits+j] = byte('0' + v%10)
				v /= 10
			}
			if _, err := bw.Write(line); err != nil {
				break
			}
		}
		_ = bw.Flush()
		_ = pw.Close()
	}()
	start := time.Now()
	err = reader.ReadEvents(pr)
	pr.Close()
	if err != nil {
		return fmt.Errorf("driver alone: %w", err)
	}
	if count != n {
		return fmt.Errorf("driver alone: read %d of %d lines", count, n)
	}
	f.vals = append(f.vals, float64(n)/last.Sub(start).Seconds())
	s.progress("driver alone: %s lines/s", thousands(int64(f.vals[0])))
	return nil
}

// --- 4. A room -----------------------------------------------------------------

func (s *suite) stageRoom(ctx context.Context) error {
	for _, size := range s.cfg.roomSizes {
		f := s.figure(&figure{group: 4, name: fmt.Sprintf("Room of %d: every peer joined every other", size), unit: unitMS})
		if size >= 30 {
			f.target = "≤ 2 s, max ≤ 3 s"
			f.check = func(f *figure) (bool, string) {
				if len(f.vals) == 0 {
					return false, "no values"
				}
				var missed []string
				if f.median() > 2000 {
					missed = append(missed, "median")
				}
				if slices.Max(f.vals) > 3000 {
					missed = append(missed, "max")
				}
				return len(missed) == 0, strings.Join(missed, ", ")
			}
		}
		f.floor = s.floor(&figure{name: fmt.Sprintf("Room of %d: all peers ready, from the first start", size), unit: unitMS})
		rss := s.figure(&figure{group: 4, name: fmt.Sprintf("Room of %d: peak RSS per peer", size), unit: unitMB,
			target: "≤ 30 MB", check: atMost(30), floor: s.rssFloor})
		anon := s.figure(&figure{group: 4, name: fmt.Sprintf("Room of %d: anonymous RSS per peer (heap, stacks; the rest of RSS is the binary's shared file pages)", size), unit: unitMB})
		full := 0
		for run := range s.cfg.roomRuns {
			rr, err := s.roomRun(ctx, size)
			if err != nil {
				return err
			}
			d, ready, hwm := rr.complete, rr.ready, rr.hwm
			rss.vals = append(rss.vals, hwm...)
			anon.vals = append(anon.vals, rr.anon...)
			if !rr.ok {
				s.progress("room of %d, run %d/%d: NOT complete within %v", size, run+1, s.cfg.roomRuns, s.cfg.roomTimeout)
				continue
			}
			full++
			f.vals = append(f.vals, ms(d))
			f.floor.vals = append(f.floor.vals, ms(ready))
			share := "unknown"
			if rr.peersCPU.ok && rr.serverCPU.ok {
				share = fmt.Sprintf("%.0f %%", 100*(rr.peersCPU.d+rr.serverCPU.d).Seconds()/(d.Seconds()*float64(runtime.NumCPU())))
			}
			s.note(fmt.Sprintf("room of %d, run %d: complete after %.2f s; until then the peers used %s of CPU and the server %s (%s of %d CPUs)",
				size, run+1, d.Seconds(), rr.peersCPU, rr.serverCPU, share, runtime.NumCPU()))
			s.progress("room of %d, run %d/%d: complete after %.0f ms (all ready after %.0f ms); peak RSS median %.1f MB",
				size, run+1, s.cfg.roomRuns, ms(d), ms(ready), median(hwm))
		}
		f.runs = fmt.Sprintf("%d complete of %s", full, plural(s.cfg.roomRuns, "run"))
		if full < s.cfg.roomRuns {
			s.note(fmt.Sprintf("room of %d: %d of %d rooms did not complete within %v", size, s.cfg.roomRuns-full, s.cfg.roomRuns, s.cfg.roomTimeout))
			if f.check != nil {
				f.check = func(*figure) (bool, string) { return false, "rooms not complete" }
			}
		}
		rss.runs = plural(len(rss.vals), "peer")
		anon.runs = plural(len(anon.vals), "peer")
	}
	return nil
}

// A roomResult is one room: from the first start until every peer had
// joined every other (ok: within the timeout), and until all were ready;
// each peer's peak RSS in MB; the CPU time the peers and the server used
// until the room was complete.
type roomResult struct {
	complete, ready     time.Duration
	hwm, anon           []float64
	ok                  bool
	peersCPU, serverCPU cpuSecs
}

// roomRun starts size peers together at one rendezvous.
func (s *suite) roomRun(ctx context.Context, size int) (roomResult, error) {
	var res roomResult
	rv := s.rendezvous(fmt.Sprintf("room%d", size))
	ps := make([]*e2e.Proc, 0, size)
	defer func() { stopAll(stopGrace, ps...) }()
	server0 := cpuTimes([]int{s.serverProc.Pid()})[0]
	t0 := time.Now()
	for i := range size {
		p, err := s.startPeer(ctx, fmt.Sprintf("room%d-%02d", size, i), rv)
		if err != nil {
			return res, err
		}
		ps = append(ps, p)
	}
	ids := make([]string, size)
	var lastReady time.Time
	for i, p := range ps {
		r, err := ready(ctx, p, s.cfg.roomTimeout)
		if err != nil {
			return res, err
		}
		ids[i] = r.ID
		if r.At.After(lastReady) {
			lastReady = r.At
		}
	}
	deadline := t0.Add(s.cfg.roomTimeout)
	ok := true
	var lastJoin time.Time
	for i, p := range ps {
		others := make(map[string]bool, size-1)
		for j, id := range ids {
			if j != i {
				others[id] = true
			}
		}
		var at time.Time
		complete := func(es []e2e.Event) bool {
			seen := make(map[string]bool, size-1)
			for k := range es {
				if es[k].Kind == event.Joined && others[es[k].Peer] && !seen[es[k].Peer] {
					seen[es[k].Peer] = true
					if len(seen) == len(others) {
						at = es[k].At
						return true
					}
				}
			}
			return false
		}
		err := p.WaitFor(ctx, deadline, "joined every other", complete)
		if errors.Is(err, e2e.ErrTimeout) {
			ok = false
			break
		}
		if err != nil {
			return res, err
		}
		if at.After(lastJoin) {
			lastJoin = at
		}
	}
	res.peersCPU = sumCPU(ps)
	res.serverCPU = cpuTimes([]int{s.serverProc.Pid()})[0].sub(server0)
	// Peaks are read a moment after the room completed.
	time.Sleep(200 * time.Millisecond)
	joins, lefts := 0, 0
	for _, p := range ps {
		if m, err := e2e.ReadMem(p.Pid()); err == nil {
			res.hwm = append(res.hwm, mb(m.HWM))
			res.anon = append(res.anon, mb(m.Anon))
		}
		joins += p.Count(event.Joined, nil)
		lefts += p.Count(event.Left, nil)
	}
	if ok && (joins != size*(size-1) || lefts > 0) {
		s.note(fmt.Sprintf("room of %d: %d joined events (a complete room has %d) and %d left events", size, joins, size*(size-1), lefts))
	}
	res.complete, res.ready, res.ok = lastJoin.Sub(t0), lastReady.Sub(t0), ok
	return res, nil
}

// --- 5. Idle -------------------------------------------------------------------

func (s *suite) stageIdle(ctx context.Context) error {
	over := fmt.Sprintf("2 peers × %v", s.cfg.idle)
	cpu := s.figure(&figure{group: 5, name: fmt.Sprintf("Idle peer in a room of two: CPU over %v", s.cfg.idle), runs: over, unit: unitCore,
		target: "< 0.5 % of a core", check: below(0.5)})
	rss := s.figure(&figure{group: 5, name: "Idle peer in a room of two: RSS", unit: unitMB})
	a, b, err := s.meetPair(ctx, "idle")
	defer stopAll(stopGrace, a, b)
	if err != nil {
		return err
	}
	if !sleepCtx(ctx, s.cfg.idleSettle) {
		return ctx.Err()
	}
	ps := []*e2e.Proc{a, b}
	c0 := make([]time.Duration, len(ps))
	for i, p := range ps {
		if c0[i], err = e2e.CPUTime(p.Pid()); err != nil {
			return err
		}
	}
	t0 := time.Now()
	for time.Since(t0) < s.cfg.idle {
		if !sleepCtx(ctx, min(time.Second, s.cfg.idle-time.Since(t0))) {
			return ctx.Err()
		}
		for _, p := range ps {
			m, err := e2e.ReadMem(p.Pid())
			if err != nil {
				return err
			}
			rss.vals = append(rss.vals, mb(m.RSS))
		}
	}
	for _, p := range ps {
		if m, err := e2e.ReadMem(p.Pid()); err == nil {
			s.note(fmt.Sprintf("idle: %s's RSS is %.1f MB anonymous (Go heap, stacks, runtime) and %.1f MB file-backed (the binary's pages); %d threads",
				p.Name, mb(m.Anon), mb(m.File+m.Shmem), m.Threads))
		}
	}
	elapsed := time.Since(t0)
	for i, p := range ps {
		c1, err := e2e.CPUTime(p.Pid())
		if err != nil {
			return err
		}
		cpu.vals = append(cpu.vals, 100*float64(c1-c0[i])/float64(elapsed))
	}
	for _, p := range ps {
		if n := p.Count(event.Left, nil) + p.Count(event.Error, nil); n > 0 {
			s.note(fmt.Sprintf("idle: %s printed %d left or error events", p.Name, n))
		}
	}
	rss.runs = fmt.Sprintf("%d samples (2 peers, every second)", len(rss.vals))
	s.progress("idle: CPU %.3f %% and %.3f %% of a core; RSS median %.1f MB", cpu.vals[0], cpu.vals[1], median(rss.vals))
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
