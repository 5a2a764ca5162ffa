package gossiproom

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"
)

// TestBenchRoom measures a room of N peers in one process, on go-libp2p's
// mocknet (in-memory connections, no sockets), twice: as a GossipSub room
// built by this package, its connections chosen by DialPolicy, and as the
// full mesh of direct streams the chat uses today (one stream per pair of
// peers, each line written N-1 times). It is skipped unless
// GOSSIPROOM_BENCH=1, and prints a Markdown table:
//
//	GOSSIPROOM_BENCH=1 go test -count=1 -run TestBenchRoom -v -timeout 60m ./internal/gossiproom/
//
// Knobs: GOSSIPROOM_BENCH_SIZES (default "50,100,200,500"),
// GOSSIPROOM_BENCH_MSGS (lines per size, default 100),
// GOSSIPROOM_BENCH_RATE (lines a second, default 20, each from a random
// peer), GOSSIPROOM_BENCH_MESH_MAX (the largest full mesh to try, default
// 200: at 500 it would take 124,750 connections).
//
// Sizes run one after the other in one process; between runs the benchmark
// waits for the previous run's goroutines to end and collects its garbage.
// All N peers share the process's cores and one garbage-collected heap,
// which real peers, one process each, do not: GC cycles over hundreds of MB
// of in-process hosts account for most of the latency tail at 200-500 peers
// (GOGC=400 shortens it).
//
// Each line is 100 bytes. Latency is from just before Publish (or the first
// write) to the moment the receiving peer's reader has the line, for every
// (line, receiver) pair. Bytes are counted where the peer hands them to the
// stream: for GossipSub every RPC the router writes (messages, gossip and
// control, with the length prefix), for the mesh every line written; a
// GossipSub message carries a signature, the author and a sequence number
// on top of the line, the mesh's only a newline.
func TestBenchRoom(t *testing.T) {
	if os.Getenv("GOSSIPROOM_BENCH") != "1" {
		t.Skip("set GOSSIPROOM_BENCH=1 to run the room benchmark")
	}
	sizes := envInts(t, "GOSSIPROOM_BENCH_SIZES", []int{50, 100, 200, 500})
	msgs := envInts(t, "GOSSIPROOM_BENCH_MSGS", []int{100})[0]
	rate := envInts(t, "GOSSIPROOM_BENCH_RATE", []int{20})[0]
	meshMax := envInts(t, "GOSSIPROOM_BENCH_MESH_MAX", []int{200})[0]

	var rows []benchResult
	baseline := runtime.NumGoroutine()
	for _, n := range sizes {
		r := benchGossip(t, n, msgs, rate)
		t.Log(r.row())
		rows = append(rows, r)
		settle(baseline)
		if n <= meshMax {
			r := benchMesh(t, n, msgs, rate)
			t.Log(r.row())
			rows = append(rows, r)
			settle(baseline)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d lines of 100 bytes per size, %d a second from random peers; GOMAXPROCS=%d\n\n", msgs, rate, runtime.GOMAXPROCS(0))
	b.WriteString("| room | N | delivered | p50 ms | p99 ms | max ms | conns/peer (mean, max) | bytes sent/line, publisher | bytes sent/line, per peer (mean) | CPU µs/delivery | idle CPU (cores) | shed | setup s |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		b.WriteString(r.row() + "\n")
	}
	fmt.Print(b.String())
	if path := os.Getenv("GOSSIPROOM_BENCH_OUT"); path != "" {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// settle waits for the previous run's goroutines to end and collects its
// garbage, so that one run's leftovers (tens of thousands of goroutines and
// hundreds of MB after a big mesh) do not slow the next one down.
func settle(baseline int) {
	deadline := time.Now().Add(time.Minute)
	for runtime.NumGoroutine() > baseline+100 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	runtime.GC()
	debug.FreeOSMemory()
}

type benchResult struct {
	kind               string
	n                  int
	delivered, want    int
	p50, p99, maxLat   time.Duration
	connsMean          float64
	connsMax           int
	pubBytes, peerByte float64
	setup              time.Duration
	// cpuPerDelivery is the process's CPU time while lines were sent and
	// delivered, divided by the deliveries; dropped counts messages the
	// routers shed (full outbound or validation queues, slow readers).
	cpuPerDelivery time.Duration
	dropped        int64
	// idleCPU is the CPU the whole room used per second before any line
	// was sent: heartbeats, gossip bookkeeping, score upkeep.
	idleCPU float64
}

func (r benchResult) row() string {
	return fmt.Sprintf("| %s | %d | %.2f%% (%d/%d) | %.1f | %.1f | %.1f | %.1f, %d | %.0f | %.0f | %.0f | %.2f | %d | %.1f |",
		r.kind, r.n, 100*float64(r.delivered)/float64(max(r.want, 1)), r.delivered, r.want,
		ms(r.p50), ms(r.p99), ms(r.maxLat), r.connsMean, r.connsMax, r.pubBytes, r.peerByte,
		float64(r.cpuPerDelivery)/float64(time.Microsecond), r.idleCPU, r.dropped, r.setup.Seconds())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func envInts(t *testing.T, name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want positive integers", name, v)
		}
		out = append(out, n)
	}
	return out
}

// benchHosts adds n hosts to a new mocknet, with Ed25519 keys (as
// go-libp2p's defaults) and one made-up IPv4 address each, so that
// GossipSub's IP colocation score sees n addresses. Nothing is dialed
// outside the process: mocknet connects hosts in memory.
func benchHosts(t *testing.T, n int) (mocknet.Mocknet, []host.Host) {
	mn := mocknet.New()
	hosts := make([]host.Host, n)
	for i := range n {
		sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		addr := ma.StringCast(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", i>>16&255, i>>8&255, i&255))
		if hosts[i], err = mn.AddPeer(sk, addr); err != nil {
			t.Fatal(err)
		}
	}
	return mn, hosts
}

// latencies records, for each line, when it was sent, and for each
// delivery how long it took.
type latencies struct {
	sent      []atomic.Int64 // unix nanos
	mu        sync.Mutex
	samples   []time.Duration
	delivered int
}

func newLatencies(msgs int) *latencies {
	return &latencies{sent: make([]atomic.Int64, msgs)}
}

// line makes line i: "bench <i> " padded to 100 bytes.
func benchLine(i int) string {
	s := "bench " + strconv.Itoa(i) + " "
	return s + strings.Repeat(".", 100-len(s))
}

func (l *latencies) received(text string, at time.Time) {
	f := strings.Fields(text)
	if len(f) < 2 || f[0] != "bench" {
		return
	}
	i, err := strconv.Atoi(f[1])
	if err != nil || i < 0 || i >= len(l.sent) {
		return
	}
	d := time.Duration(at.UnixNano() - l.sent[i].Load())
	l.mu.Lock()
	l.samples = append(l.samples, d)
	l.delivered++
	l.mu.Unlock()
}

func (l *latencies) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.delivered
}

func (l *latencies) fill(r *benchResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.delivered = l.delivered
	if len(l.samples) == 0 {
		return
	}
	s := slices.Clone(l.samples)
	slices.Sort(s)
	r.p50 = s[len(s)/2]
	r.p99 = s[min(len(s)-1, len(s)*99/100)]
	r.maxLat = s[len(s)-1]
}

// publishAll sends msgs lines at rate a second, each from a random peer.
func publishAll(t *testing.T, n, msgs, rate int, lat *latencies, send func(from, i int)) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	rng := mrand.New(mrand.NewPCG(1, 2))
	var wg sync.WaitGroup
	for i := range msgs {
		<-tick.C
		from := rng.IntN(n)
		lat.sent[i].Store(time.Now().UnixNano())
		wg.Add(1)
		go func() {
			defer wg.Done()
			send(from, i)
		}()
	}
	wg.Wait()
}

// waitDelivered waits until want deliveries arrived, or the time is up.
func waitDelivered(lat *latencies, want int, d time.Duration) {
	deadline := time.Now().Add(d)
	for lat.count() < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// byteTracer counts what one router writes to its streams.
type byteTracer struct {
	self               peer.ID
	sent, own, dropped atomic.Int64
}

func (b *byteTracer) SendRPCCompleted(rpc *pubsub.RPC, _ peer.ID, _ time.Duration) {
	size := proto.Size(&rpc.RPC)
	b.sent.Add(int64(size + uvarintLen(uint64(size))))
	for _, m := range rpc.GetPublish() {
		if peer.ID(m.GetFrom()) == b.self {
			b.own.Add(int64(proto.Size(m)))
		}
	}
}

func uvarintLen(x uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], x)
}

func (b *byteTracer) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (b *byteTracer) OnClosedOutboundStream(peer.ID)           {}
func (b *byteTracer) Join(string)                              {}
func (b *byteTracer) Leave(string)                             {}
func (b *byteTracer) Graft(peer.ID, string)                    {}
func (b *byteTracer) Prune(peer.ID, string)                    {}
func (b *byteTracer) ValidateMessage(*pubsub.Message)          {}
func (b *byteTracer) DeliverMessage(*pubsub.Message)           {}
func (b *byteTracer) RejectMessage(*pubsub.Message, string)    {}
func (b *byteTracer) DuplicateMessage(*pubsub.Message)         {}
func (b *byteTracer) ThrottlePeer(peer.ID)                     {}
func (b *byteTracer) RecvRPC(*pubsub.RPC)                      {}
func (b *byteTracer) SendRPC(*pubsub.RPC, peer.ID)             {}
func (b *byteTracer) DropRPC(*pubsub.RPC, peer.ID)             {}
func (b *byteTracer) UndeliverableMessage(*pubsub.Message)     {}

// benchGossip runs one size as a GossipSub room.
func benchGossip(t *testing.T, n, msgs, rate int) benchResult {
	res := benchResult{kind: "gossipsub", n: n, want: msgs * (n - 1)}
	start := time.Now()
	mn, hosts := benchHosts(t, n)
	defer func() { _ = mn.Close() }()

	tracers := make([]*byteTracer, n)
	rooms := make([]*Room, n)
	for i, h := range hosts {
		tracers[i] = &byteTracer{self: h.ID()}
		extraPubSubOptions = []pubsub.Option{pubsub.WithRawTracer(tracers[i])}
		r, err := New(context.Background(), h, "bench", Options{DisablePresence: true})
		if err != nil {
			t.Fatal(err)
		}
		rooms[i] = r
	}
	extraPubSubOptions = nil
	defer func() {
		var wg sync.WaitGroup
		for _, r := range rooms {
			wg.Add(1)
			go func() { defer wg.Done(); _ = r.Close() }()
		}
		wg.Wait()
	}()

	// Each peer, in random order, dials random others (as if found at the
	// rendezvous) while the dial policy wants more; the peers it dials are
	// then connected to it too.
	policy := DefaultDialPolicy()
	rng := mrand.New(mrand.NewPCG(3, 4))
	conns := make([]map[int]bool, n)
	outbound := make([]int, n)
	for i := range conns {
		conns[i] = make(map[int]bool)
	}
	for _, i := range rng.Perm(n) {
		for _, j := range rng.Perm(n) {
			if !policy.WantDial(len(conns[i]), outbound[i]) {
				break
			}
			if j == i || conns[i][j] {
				continue
			}
			if _, err := mn.LinkPeers(hosts[i].ID(), hosts[j].ID()); err != nil {
				t.Fatal(err)
			}
			if _, err := mn.ConnectPeers(hosts[i].ID(), hosts[j].ID()); err != nil {
				t.Fatal(err)
			}
			conns[i][j], conns[j][i] = true, true
			outbound[i]++
		}
	}
	// Wait until every router knows its neighbours' subscriptions, then
	// for three heartbeats to build the meshes (measuring the idle CPU
	// during the last two).
	deadline := time.Now().Add(2 * time.Minute)
	for i, r := range rooms {
		for len(r.TopicPeers()) < len(conns[i]) {
			if time.Now().After(deadline) {
				t.Fatalf("N=%d: peer %d sees %d of its %d neighbours", n, i, len(r.TopicPeers()), len(conns[i]))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(time.Second)
	res.setup = time.Since(start)
	idle0 := cpuTime()
	time.Sleep(2 * time.Second)
	res.idleCPU = (cpuTime() - idle0).Seconds() / 2

	lat := newLatencies(msgs)
	for _, r := range rooms {
		// Each reader ends when Close closes its channel.
		go func() {
			for m := range r.Messages() {
				lat.received(m.Text, time.Now())
			}
		}()
	}
	sent0, own0 := sumBytes(tracers)
	cpu0 := cpuTime()
	publishAll(t, n, msgs, rate, lat, func(from, i int) {
		if _, err := rooms[from].Publish(context.Background(), benchLine(i)); err != nil {
			t.Error(err)
		}
	})
	waitDelivered(lat, res.want, 60*time.Second)
	cpu := cpuTime() - cpu0
	sent1, own1 := sumBytes(tracers)
	lat.fill(&res)
	res.cpuPerDelivery = cpu / time.Duration(max(res.delivered, 1))
	for i, r := range rooms {
		s := r.Stats()
		res.dropped += int64(s.QueueFull+s.SlowConsumer) + tracers[i].dropped.Load()
	}
	// Scores tell whether overload made routers penalize each other
	// (broken gossip promises, P7), which thins the meshes.
	negative, minScore := 0, 0.0
	for i, r := range rooms {
		for j := range conns[i] {
			if s, ok := r.PeerScore(hosts[j].ID()); ok && s < 0 {
				negative++
				minScore = min(minScore, s)
			}
		}
	}
	t.Logf("N=%d: %d of %d neighbour scores negative, lowest %.0f", n, negative, sumLen(conns), minScore)
	res.pubBytes = float64(own1-own0) / float64(msgs)
	res.peerByte = float64(sent1-sent0) / float64(msgs) / float64(n)
	connStats(hosts, &res)
	return res
}

func sumLen(m []map[int]bool) int {
	n := 0
	for _, x := range m {
		n += len(x)
	}
	return n
}

func sumBytes(ts []*byteTracer) (sent, own int64) {
	for _, t := range ts {
		sent += t.sent.Load()
		own += t.own.Load()
	}
	return sent, own
}

func connStats(hosts []host.Host, res *benchResult) {
	total := 0
	for _, h := range hosts {
		c := len(h.Network().Conns())
		total += c
		res.connsMax = max(res.connsMax, c)
	}
	res.connsMean = float64(total) / float64(len(hosts))
}

const meshProtocol = protocol.ID("/gossiproom-bench/mesh/1")

// meshPeer is one peer of the stream mesh: one stream with every other
// peer, lines written to each in turn, as the chat's room sends a line to
// each session.
type meshPeer struct {
	mu      sync.Mutex
	streams []network.Stream
	written atomic.Int64
}

func (p *meshPeer) add(s network.Stream) {
	p.mu.Lock()
	p.streams = append(p.streams, s)
	p.mu.Unlock()
}

func (p *meshPeer) send(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := []byte(line + "\n")
	for _, s := range p.streams {
		if n, err := s.Write(b); err == nil {
			p.written.Add(int64(n))
		}
	}
}

// benchMesh runs one size as a full mesh of direct streams.
func benchMesh(t *testing.T, n, msgs, rate int) benchResult {
	res := benchResult{kind: "stream mesh", n: n, want: msgs * (n - 1)}
	start := time.Now()
	mn, hosts := benchHosts(t, n)
	defer func() { _ = mn.Close() }()
	lat := newLatencies(msgs)
	peers := make([]*meshPeer, n)
	// Each reader ends when mocknet closes its stream.
	read := func(s network.Stream) {
		sc := bufio.NewScanner(s)
		for sc.Scan() {
			lat.received(sc.Text(), time.Now())
		}
	}
	for i, h := range hosts {
		p := &meshPeer{}
		peers[i] = p
		h.SetStreamHandler(meshProtocol, func(s network.Stream) {
			p.add(s)
			read(s)
		})
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	// One stream per pair, opened by the lower index (as the chat keeps
	// one session per peer).
	ctx := context.Background()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range n {
		for j := i + 1; j < n; j++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if _, err := mn.ConnectPeers(hosts[i].ID(), hosts[j].ID()); err != nil {
					failed.Add(1)
					return
				}
				s, err := hosts[i].NewStream(ctx, hosts[j].ID(), meshProtocol)
				if err != nil {
					failed.Add(1)
					return
				}
				// Make the stream exist on the other side now.
				if _, err := s.Write([]byte("hello\n")); err != nil {
					failed.Add(1)
					return
				}
				peers[i].add(s)
				go read(s)
			}()
		}
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("N=%d: %d mesh streams failed", n, f)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for i, p := range peers {
		for {
			p.mu.Lock()
			c := len(p.streams)
			p.mu.Unlock()
			if c == n-1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("N=%d: peer %d has %d streams", n, i, c)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	res.setup = time.Since(start)
	idle0 := cpuTime()
	time.Sleep(2 * time.Second)
	res.idleCPU = (cpuTime() - idle0).Seconds() / 2

	var w0 int64
	for _, p := range peers {
		w0 += p.written.Load()
	}
	cpu0 := cpuTime()
	publishAll(t, n, msgs, rate, lat, func(from, i int) { peers[from].send(benchLine(i)) })
	waitDelivered(lat, res.want, 60*time.Second)
	cpu := cpuTime() - cpu0
	var w1 int64
	for _, p := range peers {
		w1 += p.written.Load()
	}
	lat.fill(&res)
	res.pubBytes = float64(w1-w0) / float64(msgs)
	res.peerByte = float64(w1-w0) / float64(msgs) / float64(n)
	res.cpuPerDelivery = cpu / time.Duration(max(res.delivered, 1))
	connStats(hosts, &res)
	for _, h := range hosts {
		h.RemoveStreamHandler(meshProtocol)
	}
	return res
}
