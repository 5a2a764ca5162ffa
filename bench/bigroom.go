package main

// bigroom.go: the room of 50 real processes (issue 8). The room on
// GossipSub and, beside it, the stream mesh of -gossip=false: N peers
// started together at one rendezvous, met (every peer has a joined event
// for every other), then lines written to every peer in turn, each timed
// from its write to the sender's stdin until each of the N-1 others prints
// it.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/e2e"
	"github.com/rendezvous-chat/rendezvous-chat/internal/event"
)

// A bigRoom is one room of the stage: its size and whether it runs on
// GossipSub (-gossip, the default) or on the stream mesh alone.
type bigRoom struct {
	gossip bool
	size   int
}

func (b bigRoom) mode() string {
	if b.gossip {
		return "GossipSub"
	}
	return "stream mesh (-gossip=false)"
}

// A bigRoomResult is what one room measured.
type bigRoomResult struct {
	room     bigRoom
	seq      int    // the room's number among those of its mode and size
	presence string // the -presence-interval given, "" for none
	lines    int    // lines written, over all peers
	gap      time.Duration

	// ready and meet are from the first start until every peer was ready,
	// and until every peer had joined every other; notMet counts the peers
	// that had not by the deadline (met: none).
	ready, meet time.Duration
	met         bool
	notMet      int
	// topicJoins counts joined events that came by the topic ("via":"topic"),
	// lefts the left events, over all peers, by the end of the run.
	topicJoins, lefts int

	// expected = lines × (size-1) deliveries; delivered are the unique ones,
	// dup those printed more than once, foreign message events that were not
	// one of our lines from its author; viaTopic the deliveries printed with
	// "via":"topic".
	expected, delivered, dup, foreign, viaTopic int
	// lat is the latency of every delivery, in ms.
	lat []float64
	// rss and anon are each peer's VmRSS and RssAnon after the lines, hwm
	// its VmHWM (peak), in MB.
	rss, anon, hwm []float64
	// pss is each peer's proportional set size (smaps_rollup), in MB: its
	// RSS with the pages it shares divided among their users.
	pss []float64
	// sessions is each peer's number of room peers it has a connection with
	// a chat session on (/conns); tcp its established TCP connections (any
	// peer, the server included).
	sessions, tcp []float64
	// meetCPU and linesCPU are the CPU time all peers used while meeting,
	// and from the first line written until the last delivery.
	meetCPU, linesCPU cpuSecs
	linesWall         time.Duration
	// restCores is the CPU the peers used between meeting and the first
	// line, in cores (NaN: unknown).
	restCores  float64
	errors     int // error events over all peers
	firstError string
	err        string // the run stopped early: why
}

// stageRoom50 runs each room of cfg.bigRooms in turn, then adds the
// GossipSub rooms' figures to the results table, over all rooms of a size.
func (s *suite) stageRoom50(ctx context.Context) error {
	s.rep.bigSettle, s.rep.bigPerPeer, s.rep.bigGap = s.cfg.bigSettle, s.cfg.bigLinesPerPeer, s.cfg.bigLineGap
	seq := make(map[bigRoom]int)
	defer func() {
		for _, size := range gossipSizes(s.rep.bigRooms) {
			s.bigRoomFigures(gossipRooms(s.rep.bigRooms, size))
		}
	}()
	for _, room := range s.cfg.bigRooms {
		seq[room]++
		res, err := s.bigRoomRun(ctx, room)
		res.seq = seq[room]
		if err != nil && ctx.Err() == nil {
			res.err = err.Error()
			s.fail(fmt.Sprintf("room of %d, %s, room %d: %v", room.size, room.mode(), res.seq, err))
		}
		s.rep.bigRooms = append(s.rep.bigRooms, res)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// gossipSizes returns the sizes of the GossipSub rooms, in order.
func gossipSizes(rs []*bigRoomResult) []int {
	var sizes []int
	for _, r := range rs {
		if r.room.gossip && !slices.Contains(sizes, r.room.size) {
			sizes = append(sizes, r.room.size)
		}
	}
	return sizes
}

// gossipRooms returns the GossipSub rooms of a size.
func gossipRooms(rs []*bigRoomResult, size int) []*bigRoomResult {
	var out []*bigRoomResult
	for _, r := range rs {
		if r.room.gossip && r.room.size == size {
			out = append(out, r)
		}
	}
	return out
}

// Issue 8's targets for a room of 50 on GossipSub, each judged per room.

// allOnce: every line reached every other peer, once (and the room met:
// a room that did not meet sent no lines).
func (r *bigRoomResult) allOnce() bool {
	return r.met && r.err == "" && r.expected > 0 && r.delivered == r.expected && r.dup == 0 && r.foreign == 0
}

// p99 is the room's p99 latency over its deliveries (NaN: none).
func (r *bigRoomResult) p99() float64 { return percentile(r.lat, 99) }

// p99Met: the p99 over the room's deliveries is at most 50 ms.
func (r *bigRoomResult) p99Met() bool { return len(r.lat) > 0 && r.p99() <= 50 }

// rssMet: every peer's RSS after the lines was read, and none is over 40 MB.
func (r *bigRoomResult) rssMet() bool {
	return len(r.rss) == r.room.size && percentile(r.rss, 100) <= 40
}

// A bigVerdict sums the targets over the rooms of one size.
type bigVerdict struct {
	rooms int
	// The rooms that met, and that met each target, and all three.
	metRooms, onceRooms, p99Rooms, rssRooms, allRooms int
	delivered, expected, dup                          int
	lat, rss                                          []float64 // over all rooms
	worstP99                                          float64   // the highest room p99 (NaN: none)
	worstRoom                                         int       // its number
	rssMax                                            float64
}

func verdictOf(rs []*bigRoomResult) bigVerdict {
	v := bigVerdict{rooms: len(rs), worstP99: math.NaN()}
	for _, r := range rs {
		if r.met {
			v.metRooms++
		}
		if r.allOnce() {
			v.onceRooms++
		}
		if r.p99Met() {
			v.p99Rooms++
		}
		if r.rssMet() {
			v.rssRooms++
		}
		if r.allOnce() && r.p99Met() && r.rssMet() {
			v.allRooms++
		}
		v.delivered += r.delivered
		v.expected += r.expected
		v.dup += r.dup
		v.lat = append(v.lat, r.lat...)
		v.rss = append(v.rss, r.rss...)
		if p := r.p99(); !math.IsNaN(p) && (math.IsNaN(v.worstP99) || p > v.worstP99) {
			v.worstP99, v.worstRoom = p, r.seq
		}
	}
	v.rssMax = percentile(v.rss, 100)
	return v
}

// inRooms says "met in 2 of 3 rooms".
func inRooms(n, of int) string {
	return fmt.Sprintf("met in %d of %s", n, plural(of, "room"))
}

// bigRoomFigures adds the GossipSub rooms' figures of one size, over all
// its rooms, with issue 8's targets, to the results table; each room's own
// figures, and the stream mesh's, are in the stage's table.
func (s *suite) bigRoomFigures(rs []*bigRoomResult) {
	if len(rs) == 0 {
		return
	}
	v := verdictOf(rs)
	size := rs[0].room.size
	name := fmt.Sprintf("Room of %d on GossipSub", size)
	rooms := plural(len(rs), "room")
	meet := s.figure(&figure{group: 4, name: name + ": every peer joined every other", unit: unitMS,
		runs: fmt.Sprintf("%d met of %s", v.metRooms, rooms), target: "≤ 3 s", check: atMost(3000)})
	for _, r := range rs {
		if r.met {
			meet.vals = append(meet.vals, ms(r.meet))
		}
	}
	if v.metRooms == 0 {
		meet.err = fmt.Sprintf("no room met within %v", s.cfg.bigMeetTimeout)
	}
	del := s.figure(&figure{group: 4, name: name + ": lines delivered (line × receiver) / duplicated", unit: unitCount,
		runs:   rooms,
		custom: fmt.Sprintf("%s of %s / %d", thousands(int64(v.delivered)), thousands(int64(v.expected)), v.dup),
		target: "all, once, in every room"})
	del.check = func(*figure) (bool, string) { return v.onceRooms == v.rooms, inRooms(v.onceRooms, v.rooms) }
	worst := "–"
	if !math.IsNaN(v.worstP99) {
		worst = fmt.Sprintf("%s (room %d)", unitMS.format(v.worstP99), v.worstRoom)
	}
	lat := s.figure(&figure{group: 4, tail: true, name: name + ": latency, line written to the sender until each receiver prints it",
		runs: fmt.Sprintf("%s deliveries in %s; the worst room's p99: %s", thousands(int64(len(v.lat))), rooms, worst),
		unit: unitMS, vals: v.lat, target: "p99 ≤ 50 ms in every room"})
	lat.check = func(*figure) (bool, string) { return v.p99Rooms == v.rooms, inRooms(v.p99Rooms, v.rooms) }
	rss := s.figure(&figure{group: 4, name: name + ": RSS per peer after the lines", runs: fmt.Sprintf("%s in %s", plural(len(v.rss), "peer"), rooms),
		unit: unitMB, vals: v.rss, target: "≤ 40 MB (max) in every room"})
	rss.check = func(*figure) (bool, string) { return v.rssRooms == v.rooms, inRooms(v.rssRooms, v.rooms) }
	for _, r := range rs {
		if r.err != "" {
			for _, f := range []*figure{meet, del, lat, rss} {
				if len(f.vals) == 0 && f.err == "" && f.custom == "" {
					f.err = "stage failed, see Failures"
				}
			}
		}
	}
}

// roomLog is what one peer printed of the room's lines. Its sink runs on
// the peer's reader goroutine.
type roomLog struct {
	mu       sync.Mutex
	seen     []bool
	at       []time.Time // when each line was first printed
	dup      int
	foreign  int
	viaTopic int // deliveries printed with "via":"topic"
}

// bigRoomRun starts the room, waits until it has met, sends the lines and
// measures. The peers are stopped before it returns.
func (s *suite) bigRoomRun(ctx context.Context, room bigRoom) (*bigRoomResult, error) {
	n := room.size
	res := &bigRoomResult{room: room, gap: s.cfg.bigLineGap}
	rv := s.rendezvous(fmt.Sprintf("room%d-gossip-%v", n, room.gossip))
	extra := []string{"-gossip=" + strconv.FormatBool(room.gossip)}
	if room.gossip && s.cfg.bigPresence > 0 {
		res.presence = s.cfg.bigPresence.String()
		extra = append(extra, "-presence-interval", res.presence)
	}
	tag := "g"
	if !room.gossip {
		tag = "s"
	}
	ps := make([]*e2e.Proc, 0, n)
	defer func() { stopAll(stopGrace, ps...) }()
	s.progress("room of %d, %s: starting %d peers", n, room.mode(), n)

	t0 := time.Now()
	for i := range n {
		p, err := s.startPeer(ctx, fmt.Sprintf("room%d%s-%02d", n, tag, i), rv, extra...)
		if err != nil {
			return res, err
		}
		ps = append(ps, p)
	}
	deadline := t0.Add(s.cfg.bigMeetTimeout)
	ids := make([]string, n)
	var lastReady time.Time
	for i, p := range ps {
		r, err := ready(ctx, p, time.Until(deadline))
		if err != nil {
			return res, err
		}
		ids[i] = r.ID
		if r.At.After(lastReady) {
			lastReady = r.At
		}
	}
	res.ready = lastReady.Sub(t0)
	index := make(map[string]int, n)
	for i, id := range ids {
		index[id] = i
	}

	// Meet: every peer has a joined event for every other. The peers'
	// CPU time from their start on is theirs to meet (start-up included).
	var lastJoin time.Time
	for i, p := range ps {
		var at time.Time
		complete := func(es []e2e.Event) bool {
			seen := make([]bool, n)
			count := 0
			for k := range es {
				if es[k].Kind != event.Joined {
					continue
				}
				if j, ok := index[es[k].Peer]; ok && j != i && !seen[j] {
					seen[j] = true
					if count++; count == n-1 {
						at = es[k].At
						return true
					}
				}
			}
			return false
		}
		err := p.WaitFor(ctx, deadline, "joined every other", complete)
		if errors.Is(err, e2e.ErrTimeout) {
			res.notMet++
			continue
		}
		if err != nil {
			return res, err
		}
		if at.After(lastJoin) {
			lastJoin = at
		}
	}
	res.meetCPU = sumCPU(ps)
	res.met = res.notMet == 0
	if !res.met {
		s.note(fmt.Sprintf("room of %d, %s: %d of %d peers had not joined every other %v after the first start; no lines sent",
			n, room.mode(), res.notMet, n, s.cfg.bigMeetTimeout))
		s.bigRoomState(ctx, res, ps)
		return res, nil
	}
	res.meet = lastJoin.Sub(t0)
	s.progress("room of %d, %s: all ready after %.0f ms, met after %.0f ms", n, room.mode(), ms(res.ready), ms(res.meet))
	c0, w0 := sumCPU(ps), time.Now()
	if !sleepCtx(ctx, s.cfg.bigSettle) {
		return res, ctx.Err()
	}
	res.restCores = math.NaN()
	if rest := sumCPU(ps).sub(c0); rest.ok {
		res.restCores = rest.d.Seconds() / time.Since(w0).Seconds()
	}
	s.progress("room of %d, %s: at rest after meeting, the peers use %.2f cores", n, room.mode(), res.restCores)

	// The lines: line k is written to peer k mod n, one every gap, so that
	// each peer writes linesPerPeer lines spread over the run.
	lines := n * s.cfg.bigLinesPerPeer
	res.lines = lines
	res.expected = lines * (n - 1)
	sender := func(k int) int { return k % n }
	sentAt := make([]time.Time, lines)
	logs := make([]*roomLog, n)
	var unique atomic.Int64
	for i, p := range ps {
		l := &roomLog{seen: make([]bool, lines), at: make([]time.Time, lines)}
		logs[i] = l
		p.SetSink(func(peer, text []byte, viaTopic bool, at time.Time) {
			k, ok := parseSeq(text, 'b')
			l.mu.Lock()
			defer l.mu.Unlock()
			if viaTopic {
				l.viaTopic++
			}
			switch {
			case !ok || k >= lines || sender(k) == i || string(peer) != ids[sender(k)]:
				l.foreign++
			case l.seen[k]:
				l.dup++
			default:
				l.seen[k] = true
				l.at[k] = at
				unique.Add(1)
			}
		})
	}
	cpu0 := sumCPU(ps)
	start := time.Now()
	for k := range lines {
		line := fmt.Appendf(nil, "b%06d\n", k)
		p := ps[sender(k)]
		sentAt[k] = time.Now()
		if _, err := p.Stdin.Write(line); err != nil {
			return res, fmt.Errorf("%s: write line %d: %w", p.Name, k, err)
		}
		if !sleepCtx(ctx, time.Until(start.Add(time.Duration(k+1)*s.cfg.bigLineGap))) {
			return res, ctx.Err()
		}
	}
	// Wait for every delivery, or until none has come for stallTimeout.
	last, lastChange := int64(-1), time.Now()
	for unique.Load() < int64(res.expected) && time.Since(lastChange) < s.cfg.stallTimeout {
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return res, ctx.Err()
		}
		if u := unique.Load(); u != last {
			last, lastChange = u, time.Now()
		}
	}
	var lastAt time.Time
	for _, l := range logs {
		l.mu.Lock()
		for k, ok := range l.seen {
			if ok && l.at[k].After(lastAt) {
				lastAt = l.at[k]
			}
		}
		l.mu.Unlock()
	}
	res.linesCPU = sumCPU(ps).sub(cpu0)
	res.linesWall = lastAt.Sub(start)
	// A moment more for late duplicates (a line by stream and by topic).
	if !sleepCtx(ctx, time.Second) {
		return res, ctx.Err()
	}
	for i, l := range logs {
		ps[i].SetSink(nil)
		l.mu.Lock()
		for k, ok := range l.seen {
			if ok {
				res.delivered++
				res.lat = append(res.lat, ms(l.at[k].Sub(sentAt[k])))
			}
		}
		res.dup += l.dup
		res.foreign += l.foreign
		res.viaTopic += l.viaTopic
		l.mu.Unlock()
	}
	s.bigRoomState(ctx, res, ps)
	s.progress("room of %d, %s: %d of %d delivered (%d duplicated, %d by topic), p50 %.2f ms, p99 %.2f ms, max %.1f ms; RSS max %.1f MB",
		n, room.mode(), res.delivered, res.expected, res.dup, res.viaTopic, median(res.lat), percentile(res.lat, 99),
		percentile(res.lat, 100), percentile(res.rss, 100))
	if res.delivered != res.expected || res.dup > 0 || res.foreign > 0 {
		lost := res.expected - res.delivered
		s.fail(fmt.Sprintf("room of %d, %s: %d of %d deliveries lost, %d duplicated, %d foreign or misattributed message events",
			n, room.mode(), lost, res.expected, res.dup, res.foreign))
	}
	if res.lefts > 0 {
		s.note(fmt.Sprintf("room of %d, %s: %d left events while the room ran", n, room.mode(), res.lefts))
	}
	if res.errors > 0 {
		s.note(fmt.Sprintf("room of %d, %s: %d error events, the first: %q", n, room.mode(), res.errors, res.firstError))
	}
	return res, nil
}

// bigRoomState reads what the peers hold at the end of a run: their
// memory, their connections (/conns, and TCP sockets) and event counts.
func (s *suite) bigRoomState(ctx context.Context, res *bigRoomResult, ps []*e2e.Proc) {
	for _, p := range ps {
		_, _ = p.Stdin.Write([]byte("/conns\n"))
	}
	deadline := time.Now().Add(s.cfg.readyTimeout)
	for _, p := range ps {
		if err := p.WaitFor(ctx, deadline, "conns", e2e.Has(event.Conns, nil)); err != nil {
			continue
		}
		e, _ := p.First(event.Conns, nil)
		peers := make(map[string]bool)
		for _, c := range e.Conns {
			peers[c.Peer] = true
		}
		res.sessions = append(res.sessions, float64(len(peers)))
	}
	established := establishedSockets()
	for _, p := range ps {
		if m, err := e2e.ReadMem(p.Pid()); err == nil {
			res.rss = append(res.rss, mb(m.RSS))
			res.hwm = append(res.hwm, mb(m.HWM))
			res.anon = append(res.anon, mb(m.Anon))
		}
		if kb, err := e2e.PSS(p.Pid()); err == nil {
			res.pss = append(res.pss, mb(kb))
		}
		if established != nil {
			res.tcp = append(res.tcp, float64(countSockets(p.Pid(), established)))
		}
		res.topicJoins += p.Count(event.Joined, func(e e2e.Event) bool { return e.Via == event.ViaTopic })
		res.lefts += p.Count(event.Left, nil)
		if n := p.Count(event.Error, nil); n > 0 {
			if res.errors == 0 {
				e, _ := p.First(event.Error, nil)
				res.firstError = string(e.Code) + ": " + e.Error
			}
			res.errors += n
		}
	}
}

// sumCPU returns the CPU time the processes have used so far: unknown if
// one of them cannot be read.
func sumCPU(ps []*e2e.Proc) cpuSecs {
	var sum time.Duration
	for _, p := range ps {
		c, err := e2e.CPUTime(p.Pid())
		if err != nil {
			return cpuSecs{}
		}
		sum += c
	}
	return cpuSecs{sum, true}
}

// establishedSockets returns the inodes of the established TCP sockets in
// our network namespace (nil if /proc/net/tcp cannot be read).
func establishedSockets() map[string]bool {
	m := make(map[string]bool)
	read := false
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		read = true
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
			if len(fs) >= 10 && fs[3] == "01" {
				m[fs[9]] = true
			}
		}
	}
	if !read {
		return nil
	}
	return m
}

// countSockets counts the process's file descriptors that are sockets in
// established.
func countSockets(pid int, established map[string]bool) int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if inode, ok := strings.CutPrefix(target, "socket:["); ok && established[strings.TrimSuffix(inode, "]")] {
			n++
		}
	}
	return n
}

// cpuCell prints CPU seconds with one decimal, or "unknown".
func cpuCell(c cpuSecs) string {
	if !c.ok {
		return "unknown"
	}
	return fmt.Sprintf("%.1f", c.d.Seconds())
}

func mean(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	sum := 0.0
	for _, v := range vs {
		sum += v
	}
	return sum / float64(len(vs))
}

// bigRoomTable returns the stage's table, one row per room.
func bigRoomTable(rs []*bigRoomResult) string {
	var b strings.Builder
	b.WriteString("| Mode | Room | Peers | -presence-interval | All ready | Time to meet | Joined via topic | Deliveries (line × receiver) | Dup | By topic | p50 | p90 | p99 | Max | RSS max / mean | Peak RSS max | RssAnon mean | PSS mean | Room peers with a session, mean / max | TCP conns, mean / max | Cores used at rest | CPU-s meeting / lines |\n")
	b.WriteString("|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rs {
		presence := r.presence
		if presence == "" {
			presence = "–"
			if r.room.gossip {
				presence = "default (30s)"
			}
		}
		meet := unitMS.format(ms(r.meet))
		if !r.met {
			meet = fmt.Sprintf("not met (%d of %d peers short)", r.notMet, r.room.size)
		}
		if r.err != "" {
			meet = "error: " + r.err
		}
		lat := []string{"–", "–", "–", "–"}
		if len(r.lat) > 0 {
			lat = []string{unitMS.format(median(r.lat)), unitMS.format(percentile(r.lat, 90)),
				unitMS.format(percentile(r.lat, 99)), unitMS.format(percentile(r.lat, 100))}
		}
		deliveries := "–"
		if r.lines > 0 {
			deliveries = fmt.Sprintf("%s of %s (%s)", thousands(int64(r.delivered)), thousands(int64(r.expected)), plural(r.lines, "line"))
		}
		mbs := func(vs []float64, f func([]float64) float64) string {
			if len(vs) == 0 {
				return "–"
			}
			return unitMB.format(f(vs))
		}
		pair := func(vs []float64, format string) string {
			if len(vs) == 0 {
				return "–"
			}
			return fmt.Sprintf(format, mean(vs), percentile(vs, 100))
		}
		maxOf := func(vs []float64) float64 { return percentile(vs, 100) }
		cells := []string{r.room.mode(), strconv.Itoa(r.seq), strconv.Itoa(r.room.size), presence, unitMS.format(ms(r.ready)), meet,
			strconv.Itoa(r.topicJoins), deliveries, strconv.Itoa(r.dup), strconv.Itoa(r.viaTopic)}
		cells = append(cells, lat...)
		linesCPU := "–"
		if r.lines > 0 {
			linesCPU = cpuCell(r.linesCPU)
		}
		rest := "–"
		if r.met {
			rest = "unknown"
			if !math.IsNaN(r.restCores) {
				rest = fmt.Sprintf("%.2f", r.restCores)
			}
		}
		cells = append(cells,
			mbs(r.rss, maxOf)+" / "+mbs(r.rss, mean), mbs(r.hwm, maxOf),
			mbs(r.anon, mean), mbs(r.pss, mean),
			pair(r.sessions, "%.1f / %.0f"), pair(r.tcp, "%.1f / %.0f"), rest,
			cpuCell(r.meetCPU)+" / "+linesCPU)
		b.WriteString("| " + strings.Join(escapeCells(cells), " | ") + " |\n")
	}
	return b.String()
}

// bigVerdictText is issue 8's verdict over the GossipSub rooms of one
// size: each target met in how many rooms, and each room's figures.
func bigVerdictText(rs []*bigRoomResult) string {
	v := verdictOf(rs)
	size := rs[0].room.size
	var b strings.Builder
	fmt.Fprintf(&b, "Issue 8's targets for a room of %d on GossipSub, over %s of %d processes run one after another: "+
		"all three %s.\n\n", size, plural(v.rooms, "room"), size, inRooms(v.allRooms, v.rooms))
	fmt.Fprintf(&b, "- Every line to all %d others, once: %s (%s of %s deliveries over all rooms, %d duplicated).\n",
		size-1, inRooms(v.onceRooms, v.rooms), thousands(int64(v.delivered)), thousands(int64(v.expected)), v.dup)
	worst := "none"
	if !math.IsNaN(v.worstP99) {
		worst = fmt.Sprintf("%s, room %d", unitMS.format(v.worstP99), v.worstRoom)
	}
	fmt.Fprintf(&b, "- p99 ≤ 50 ms: %s (p99 over all %s deliveries: %s; the worst room's p99: %s).\n",
		inRooms(v.p99Rooms, v.rooms), thousands(int64(len(v.lat))), unitMS.format(percentile(v.lat, 99)), worst)
	fmt.Fprintf(&b, "- RSS per process ≤ 40 MB: %s (max %s over %s).\n",
		inRooms(v.rssRooms, v.rooms), unitMB.format(v.rssMax), plural(len(v.rss), "peer"))
	yes := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	for _, r := range rs {
		meet := "met after " + unitMS.format(ms(r.meet))
		if !r.met {
			meet = fmt.Sprintf("NOT met (%d of %d peers short; no lines sent)", r.notMet, size)
		}
		if r.err != "" {
			meet = "error: " + r.err
		}
		fmt.Fprintf(&b, "- Room %d: %s; every line once: %s (%s of %s, %d duplicated); p99 %s: %s; RSS max %s: %s.\n",
			r.seq, meet, yes(r.allOnce()), thousands(int64(r.delivered)), thousands(int64(r.expected)), r.dup,
			unitMS.format(r.p99()), yes(r.p99Met()), unitMB.format(percentile(r.rss, 100)), yes(r.rssMet()))
	}
	b.WriteString("\n")
	return b.String()
}

// bigRoomSection is the results file's section on the stage.
func (r *report) bigRoomSection() string {
	if len(r.bigRooms) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("## Room of 50 real processes\n\n")
	b.WriteString(r.prov.line())
	if r.quick {
		b.WriteString("(The smoke run: small rooms, so the figures mean nothing.)\n\n")
	}
	b.WriteString(bigRoomTable(r.bigRooms))
	b.WriteString("\n")
	for _, size := range gossipSizes(r.bigRooms) {
		rs := gossipRooms(r.bigRooms, size)
		b.WriteString(bigVerdictText(rs))
	}
	fmt.Fprintf(&b, `Each room: one process of the binary per peer (and the suite's one
local -server), all started back to back at one rendezvous with
`+"`-json -mdns=false -peer <server> -listen /ip4/127.0.0.1/tcp/0`"+` and the
mode's `+"`-gossip`"+` flag (and `+"`-presence-interval`"+` when one is given;
"default" is the binary's own), on %d CPUs. **Time to meet**: from the
first start until every peer has printed a `+"`joined`"+` event for each of the
others, by a session or "via":"topic" (**Joined via topic** counts the
latter, over all peers). Then the room is left alone %v (**Cores used at
rest**: the peers' CPU time over that pause, in CPUs), and the lines come:
each peer writes %s, one line every %v over the room in turn (line k to
peer k mod N), so %d × N lines in a room of N. **Latency** is per delivery
(line × receiver): from the driver's write of the line to the sender's
stdin until the driver reads the receiver's `+"`message`"+` event, over every
delivery; **By topic** counts the deliveries printed with "via":"topic"
(the line came by the GossipSub topic first, not by a chat stream).
**RSS** is VmRSS of each peer after the last delivery; **Peak RSS** is
VmHWM; **RssAnon** is the private part of RSS, the rest being the binary's
file pages, which every peer counts in full although all share them;
**PSS** divides the shared pages among the processes that share them.
**Room peers with a session**: distinct peers in each peer's `+"`/conns`"+`
answer; **TCP conns**: each peer's established TCP sockets (to the server
and to room peers). **CPU-s**: CPU time of all the room's peers from their
start until the room had met, and from the first line written until the
last delivery.
`, runtime.NumCPU(), r.bigSettle, plural(r.bigPerPeer, "line"), r.bigGap, r.bigPerPeer)
	b.WriteString("\n")
	return b.String()
}
