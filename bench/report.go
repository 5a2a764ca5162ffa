package main

// report.go: statistics over the runs, the results table and the machine
// the figures come from.

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of vs by the
// nearest-rank method: a value that was actually measured. With few values
// the high percentiles are the maximum.
func percentile(vs []float64, p float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(rank, 1)-1]
}

func median(vs []float64) float64 { return percentile(vs, 50) }

// A unit says how a figure's values are printed.
type unit int

const (
	unitMS    unit = iota // durations, in milliseconds
	unitRate              // lines per second
	unitMB                // memory, in MB (10^6 bytes)
	unitCore              // CPU, in percent of one core
	unitCount             // a count
)

func (u unit) format(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	switch u {
	case unitMS:
		switch {
		case v < 1:
			return fmt.Sprintf("%.3f ms", v)
		case v < 10:
			return fmt.Sprintf("%.2f ms", v)
		case v < 100:
			return fmt.Sprintf("%.1f ms", v)
		default:
			return fmt.Sprintf("%s ms", thousands(int64(math.Round(v))))
		}
	case unitRate:
		return thousands(int64(math.Round(v))) + "/s"
	case unitMB:
		return fmt.Sprintf("%.1f MB", v)
	case unitCore:
		return fmt.Sprintf("%.3f %%", v)
	default:
		return thousands(int64(math.Round(v)))
	}
}

// thousands writes n with comma separators: 1,000,000.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// plural says "1 run", "2 runs".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return thousands(int64(n)) + " " + word + "s"
}

// A figure is one row of the results: values over runs (or lines, or
// peers), the floor they are compared with, and the target.
type figure struct {
	group int // the figure number, which orders the table
	name  string
	runs  string // what the values are over, e.g. "20 runs"; default len(values)
	unit  unit
	vals  []float64
	floor *figure // measured in the same suite run; ratio = median / floor's median
	// floor2 is a second floor beside the first (the libp2p stream beside
	// TCP); with it, the floor and ratio cells name each by its label.
	floor2 *figure
	label  string // a floor's short name in those cells: "TCP", "libp2p stream"

	// Either a custom cell replaces the statistics (counts such as "50 of 50").
	custom string

	target string
	// check says whether the target is met, and if not why; nil: no target.
	check func(f *figure) (bool, string)

	err string // the stage could not measure it
	// tail adds the ratio of the p99s to the ratio of the medians.
	tail bool
}

func (f *figure) median() float64 { return median(f.vals) }

// ratio is the ratio cell: against the floor, or against each of two.
func (f *figure) ratio() string {
	if f.floor2 == nil {
		return f.ratioTo(f.floor)
	}
	return joinCells(f.floor.label+": "+f.ratioTo(f.floor), f.floor2.label+": "+f.ratioTo(f.floor2))
}

func (f *figure) ratioTo(floor *figure) string {
	if floor == nil || len(f.vals) == 0 || len(floor.vals) == 0 {
		return ""
	}
	r := f.median() / floor.median()
	if f.tail {
		r99 := percentile(f.vals, 99) / percentile(floor.vals, 99)
		return fmt.Sprintf("%.2f× (p99 %.2f×)", r, r99)
	}
	return fmt.Sprintf("%.2f×", r)
}

// floorCell is the floor cell: the floor's median, or each floor's.
func (f *figure) floorCell() string {
	med := func(fl *figure) string {
		if fl == nil || len(fl.vals) == 0 {
			return "–"
		}
		return fl.unit.format(fl.median())
	}
	if f.floor == nil {
		return ""
	}
	if f.floor2 == nil {
		if len(f.floor.vals) == 0 {
			return ""
		}
		return med(f.floor)
	}
	return joinCells(f.floor.label+": "+med(f.floor), f.floor2.label+": "+med(f.floor2))
}

func joinCells(parts ...string) string { return strings.Join(parts, "; ") }

func (f *figure) met() string {
	if f.err != "" {
		return "error"
	}
	if f.check == nil {
		return ""
	}
	ok, why := f.check(f)
	switch {
	case ok && why != "":
		return "yes (" + why + ")"
	case ok:
		return "yes"
	case why != "":
		return "no (" + why + ")"
	default:
		return "no"
	}
}

// atMost and atLeast check the median against a bound.
func atMost(bound float64) func(*figure) (bool, string) {
	return func(f *figure) (bool, string) {
		if len(f.vals) == 0 {
			return false, "no values"
		}
		return f.median() <= bound, ""
	}
}

// atLeastOfFloor2 says whether the median is at least share of the second
// floor's (the libp2p stream relay's), measured in the same run.
func atLeastOfFloor2(share float64) func(*figure) (bool, string) {
	return func(f *figure) (bool, string) {
		if len(f.vals) == 0 || f.floor2 == nil || len(f.floor2.vals) == 0 {
			return false, "no values"
		}
		return f.median() >= share*f.floor2.median(), ""
	}
}

func below(bound float64) func(*figure) (bool, string) {
	return func(f *figure) (bool, string) {
		if len(f.vals) == 0 {
			return false, "no values"
		}
		return f.median() < bound, ""
	}
}

// table returns the figures as a Markdown table, which reads as well in a
// terminal as in results.md.
func table(figs []*figure) string {
	var b strings.Builder
	b.WriteString("| Figure | Over | Median | p90 | p99 | Max | Floor (median) | Ratio | Target (median) | Met |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|---|---|\n")
	for _, f := range figs {
		runs := f.runs
		if runs == "" {
			runs = plural(len(f.vals), "run")
		}
		cells := []string{f.name, runs}
		switch {
		case f.err != "":
			cells = append(cells, "error: "+f.err, "", "", "")
		case f.custom != "":
			cells = append(cells, f.custom, "", "", "")
		default:
			cells = append(cells,
				f.unit.format(f.median()),
				f.unit.format(percentile(f.vals, 90)),
				f.unit.format(percentile(f.vals, 99)),
				f.unit.format(percentile(f.vals, 100)))
		}
		cells = append(cells, f.floorCell(), f.ratio(), f.target, f.met())
		b.WriteString("| " + strings.Join(escapeCells(cells), " | ") + " |\n")
	}
	return b.String()
}

// floorTable lists the floors in full.
func floorTable(floors []*figure) string {
	var b strings.Builder
	b.WriteString("| Floor | Over | Median | p90 | p99 | Max |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|\n")
	for _, f := range floors {
		runs := f.runs
		if runs == "" {
			runs = plural(len(f.vals), "run")
		}
		cells := []string{f.name, runs}
		if len(f.vals) == 0 {
			cells = append(cells, "–", "–", "–", "–")
		} else {
			cells = append(cells,
				f.unit.format(f.median()),
				f.unit.format(percentile(f.vals, 90)),
				f.unit.format(percentile(f.vals, 99)),
				f.unit.format(percentile(f.vals, 100)))
		}
		b.WriteString("| " + strings.Join(escapeCells(cells), " | ") + " |\n")
	}
	return b.String()
}

func escapeCells(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = strings.ReplaceAll(strings.ReplaceAll(c, "|", `\|`), "\n", " ")
	}
	return out
}

// machine describes where the suite ran.
type machine struct {
	cpu     string
	cpus    int
	memory  string
	kernel  string
	goVer   string
	binary  string // the chat binary's -version
	date    time.Time
	hostEnv string
	// loadStart and loadEnd are /proc/loadavg when the suite began and
	// ended: other work on the machine skews the figures.
	loadStart, loadEnd string
}

// loadavg returns the 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func describeMachine(bin string) machine {
	m := machine{loadStart: loadavg(), cpus: runtime.NumCPU(), goVer: runtime.Version(), date: time.Now().UTC(), cpu: "unknown", memory: "unknown", kernel: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
				var kb int64
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
					m.memory = fmt.Sprintf("%.1f GB", float64(kb)*1024/1e9)
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if out, err := exec.Command(bin, "-version").Output(); err == nil {
		m.binary = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/sys/class/dmi/id/product_name"); err == nil {
		m.hostEnv = strings.TrimSpace(string(b))
	}
	return m
}

func (m machine) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "- CPU: %s, %d logical CPUs (nproc)\n", m.cpu, m.cpus)
	fmt.Fprintf(&b, "- Memory: %s; %s", m.memory, m.kernel)
	if m.hostEnv != "" {
		fmt.Fprintf(&b, " (%s)", m.hostEnv)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "- Go: %s (the suite); binary: %s\n", m.goVer, m.binary)
	fmt.Fprintf(&b, "- Date: %s; load average (1, 5, 15 min) %s at the start, %s at the end\n",
		m.date.Format("2006-01-02 15:04 MST"), m.loadStart, m.loadEnd)
	return b.String()
}

// report is everything the suite found, ready to print.
type report struct {
	prov     provenance
	quick    bool
	only     []string // the stages run, when not all
	machine  machine
	figures  []*figure
	floors   []*figure
	notes    []string // what the reader should know about this run
	failures []string // correctness or harness failures: a non-zero exit
	elapsed  time.Duration
	// cpu is what the machine's CPUs did in each stage, then over the
	// whole run (see cpuSpan).
	cpu []cpuSpan
	// mocknet is the mocknet stage's section; nil when it did not run.
	mocknet *mocknetResult

	// The rooms of the room50 stage, and how their lines were sent.
	bigRooms   []*bigRoomResult
	bigSettle  time.Duration
	bigPerPeer int
	bigGap     time.Duration
}

func (r *report) write(w io.Writer) {
	mode := "the full suite, `make bench`"
	if len(r.only) > 0 {
		mode = "only the stages " + strings.Join(r.only, ", ") + ": `go run ./bench -only " + strings.Join(r.only, ",") + "`"
	}
	if r.quick {
		mode = "the smoke run, `go run ./bench -quick`: tiny counts, so the figures mean nothing"
		if len(r.only) > 0 {
			mode += "; only the stages " + strings.Join(r.only, ", ")
		}
	}
	fmt.Fprintf(w, "# Benchmark results\n\n")
	fmt.Fprintf(w, "Run `%s` of the benchmark suite in `bench/` (%s), on commit `%s`:\n", r.prov.runID, mode, r.prov.commit)
	fmt.Fprintf(w, "started %s, %s long. Every section below comes from this one run and\n", r.prov.started.Format("2006-01-02 15:04:05 MST"), r.elapsed.Round(time.Second))
	fmt.Fprintf(w, "names it. Every figure is measured on the real binary, on loopback, with a\n")
	fmt.Fprintf(w, "local `-server` as the only bootstrap peer and mDNS off, through `-json`\n")
	fmt.Fprintf(w, "(the mocknet section: in one process, in memory). Medians, p90, p99 and max\n")
	fmt.Fprintf(w, "are nearest-rank over the values counted in \"Over\"; ratios are median ÷ the\n")
	fmt.Fprintf(w, "floor's median, the floor measured in the same run. Targets are those of\n")
	fmt.Fprintf(w, "issues 5, 8 and 17 (17's where they overlap). A reading that could not be taken says \"unknown\".\n\n")
	section := func(title string) {
		fmt.Fprintf(w, "## %s\n\n%s", title, r.prov.line())
	}
	section("Machine")
	fmt.Fprintf(w, "%s\n", r.machine.markdown())
	if len(r.cpu) > 0 {
		fmt.Fprintf(w, "What the machine's CPUs did while the suite ran, per stage and over the whole\n")
		fmt.Fprintf(w, "run: **machine busy** is /proc/stat's user + nice + system + irq + softirq\n")
		fmt.Fprintf(w, "(not idle, iowait or steal); **our processes** is the CPU time of the suite\n")
		fmt.Fprintf(w, "and every process it started (utime + stime + cutime + cstime of\n")
		fmt.Fprintf(w, "/proc/self/stat, the ended children being in cutime and cstime with their\n")
		fmt.Fprintf(w, "final figures, plus the same of each child still running, from\n")
		fmt.Fprintf(w, "/proc/PID/stat); **other processes** is the difference, \"unknown\" when an\n")
		fmt.Fprintf(w, "input is missing or the difference is negative (the two counters then\n")
		fmt.Fprintf(w, "disagree by more than the others used); **steal** is /proc/stat's steal,\n")
		fmt.Fprintf(w, "time the hypervisor did not give this VM's CPUs although they wanted to run.\n\n")
		fmt.Fprintf(w, "%s\n", cpuTable(r.cpu, r.machine.cpus))
	}
	if len(r.figures) > 0 {
		section("Figures")
		fmt.Fprintf(w, "%s\n", table(r.figures))
	}
	if s := r.bigRoomSection(); s != "" {
		fmt.Fprint(w, s)
	}
	if len(r.floors) > 0 {
		section("Floors")
		fmt.Fprintf(w, "%s\n", floorTable(r.floors))
	}
	fmt.Fprint(w, r.mocknetSection())
	section("How each figure is measured")
	fmt.Fprintf(w, "%s\n", methodology)
	fmt.Fprintf(w, "## Other result files\n\n%s\n", otherResults)
	if len(r.notes) > 0 {
		section("Notes from this run")
		for _, n := range r.notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
		fmt.Fprintln(w)
	}
	if len(r.failures) > 0 {
		section("Failures")
		for _, f := range r.failures {
			fmt.Fprintf(w, "- %s\n", strings.ReplaceAll(f, "\n", "\n  "))
		}
		fmt.Fprintln(w)
	}
}

// otherResults names the benchmarks that write files of their own, each
// headed with its own run: this file is one run throughout.
const otherResults = `- [results-dht.md](results-dht.md): meeting through a public-sized DHT,
  simulated in one process (` + "`make bench-dht`" + `, about 8 minutes and 2.5 GB:
  500 kad-dht servers on mocknet, round trips of 20 to 300 ms, a fifth of
  them gone, 50 pairs), today's discovery settings beside the node's
  defaults; [results-dht-stress.md](results-dht-stress.md), the same with
  1,000 servers and 40 % gone.
`

const methodology = `Times are taken by the driver (the suite) when it writes a line to a
process's stdin and when it reads a line of its stdout, one reader goroutine
per process; the events' own "time" fields are not used. Every peer runs
` + "`-json -mdns=false -peer <the local server> -listen /ip4/127.0.0.1/tcp/0`" + `
with a rendezvous of its own run; the processes of a run are stopped (end of
stdin) before the next starts, and the stages run one after the other.

- **Start-up**: from starting a chat peer (the server up, nothing else
  running) to its ` + "`ready`" + ` event. Floor: the same for the suite's
  relay-recv, a small Go program that listens on loopback and prints one JSON
  line.
- **Time to meet, late second peer**: the first peer is started and has
  advertised at the rendezvous; then the second is started. From the second
  peer's start to the later of the two ` + "`joined`" + ` events. Floor: the second
  peer's start to its ` + "`ready`" + ` (it cannot meet anyone before it listens).
- **Time to meet, started together**: both peers started back to back (about
  a millisecond apart); from the second start to the later ` + "`joined`" + `, over
  the pairs that met within 10 s; the pairs that did not are counted. Floor:
  from the second start until both are ready.
- **Latency**: one line at a time, written to one peer's stdin; the time until
  the other prints it. Lines are spaced (the next is written a moment after
  the previous arrived), after a warm-up of lines that are not counted.
  Two floors, each a pair of small processes of the suite that mirror the
  chat's buffering (a 64 KiB stdin reader, a 16 KiB writer to the
  connection, a 4 KiB reader from it, a 32 KiB stdout writer, each flushed
  when no more input waits) and print each line as the chat's JSON message
  event through the chat's own encoder (event.AppendJSON): **TCP**,
  relay-send → one loopback TCP connection → relay-recv; and **libp2p
  stream**, p2p-send → one stream of a go-libp2p host (TCP on loopback,
  Noise, yamux; go-libp2p's defaults otherwise) → p2p-recv. The chat pair
  and both relay pairs are up together and each line goes through all three
  in turn, the first of them rotating, so all see the same conditions. The
  ratios are against each floor: over TCP, what libp2p and the chat add;
  over the libp2p stream, what the chat adds (frames, message IDs, receipts,
  the sent and delivered events).
- **Throughput**: N short lines (` + "`l00000001`" + ` …) written as fast as the pipe
  takes them to one peer's stdin; lines per second = N ÷ (last line read at
  the other peer − first line written). Every line is checked by its sequence
  number: lost, duplicated or out of order must all be zero. A fresh pair per
  run. Floors: the same through the TCP relay pair and through the libp2p
  stream relay pair, each run just before the chat's.
- **Room**: N peers started back to back at one rendezvous; from the first
  start until every peer has a ` + "`joined`" + ` event for every other. Floor: from
  the first start until all N are ready. Peak RSS per peer is VmHWM of each
  peer once the room is complete (over every peer of every run); its floor is
  the VmHWM of relay-recv once ready (the Go runtime's own share). Anonymous
  RSS (RssAnon, read at the same moment) is a peer's private memory; the rest
  of its RSS is pages of the binary file, which all peers share through the
  page cache.
- **Room of 50 on GossipSub** (issue 8): three rooms of 50 processes, one
  after the other; the figures here are over all three (time to meet: one
  value per room; latency: every delivery of every room; RSS: every peer of
  every room), and each target is judged per room ("met in 3 of 3 rooms").
  The section "Room of 50 real processes" has each room's figures, and the
  stream mesh (` + "`-gossip=false`" + `) beside them.
- **Big rooms in one process** (the stage mocknet, last): internal/gossiproom's
  TestBenchRoom, run by ` + "`go test`" + ` as a child of the suite; its table heads
  itself with this run's ID, which the suite checks before using it.
- **Idle**: a room of two, met and left alone 2 s to settle; then CPU time
  (utime + stime from /proc/PID/stat) of each peer over the next interval, as
  a percentage of one core, and its VmRSS sampled every second.
`

// writeRaw writes each figure's values, one a line, to a file named after
// the figure in dir, for a closer look (a histogram, a time series).
func writeRaw(dir string, figs []*figure) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range figs {
		if len(f.vals) == 0 {
			continue
		}
		name := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				return r
			}
			return '-'
		}, f.name)
		var b strings.Builder
		for _, v := range f.vals {
			fmt.Fprintf(&b, "%g\n", v)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".txt"), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}
