package main

// report.go: the results, as markdown.

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

type report struct {
	cfg      config
	prov     provenance
	variants []variant
	results  []pairResult
	built    time.Duration
	took     time.Duration
	entries  int
	stale    int
	live     int
	load     load
	lag      *lagMonitor
	rtts     []float64 // ms, between random pairs of servers
}

// lagBad is a scheduling latency that can move a pair's figures: a
// request and its answer cross a dozen goroutines. (At 60 pairs at once
// the simulation's own bursts reach a p99 of 25 to 100 ms in some seconds.)
const lagBad = 100 * time.Millisecond

// othersBad is how many cores other processes may use in a second before a
// pair that ran through it is counted as disturbed.
const othersBad = 1.0

// percentile is the nearest-rank percentile: a value that was measured.
// +Inf stands for "never".
func percentile(vs []float64, p float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(rank, 1)-1]
}

func mean(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	t := 0.0
	for _, v := range vs {
		t += v
	}
	return t / float64(len(vs))
}

// fs prints seconds; +Inf is "never".
func fs(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.IsInf(v, 1):
		return "never"
	case v < 10:
		return fmt.Sprintf("%.2f s", v)
	default:
		return fmt.Sprintf("%.1f s", v)
	}
}

// dist is p50 / p90 / p99 / max of vs in seconds.
func dist(vs []float64) []string {
	return []string{fs(percentile(vs, 50)), fs(percentile(vs, 90)), fs(percentile(vs, 99)), fs(percentile(vs, 100))}
}

// secsOr is d in seconds, or +Inf when d < 0 (never).
func secsOr(d time.Duration) float64 {
	if d < 0 {
		return math.Inf(1)
	}
	return d.Seconds()
}

func row(cells ...string) string { return "| " + strings.Join(cells, " | ") + " |\n" }

func (r *report) byVariant(name string) []pairResult {
	var out []pairResult
	for _, p := range r.results {
		if p.variant == name {
			out = append(out, p)
		}
	}
	return out
}

func (r *report) markdown() string {
	var b strings.Builder
	b.WriteString("## Meeting through a public-sized DHT (simulated, `make bench-dht`)\n\n")
	b.WriteString(r.prov.line())
	r.model(&b)

	b.WriteString("### Time to meet\n\n")
	b.WriteString("From the second peer's start until each peer's find loop has handed the other to its callback\n")
	fmt.Fprintf(&b, "(the room's dial is not part of it); a pair that has not met %s after the second start is unmet,\n", r.cfg.window)
	b.WriteString("and counts as \"never\" in the percentiles.\n\n")
	b.WriteString(row("Variant", "Pairs", "Met", "p50", "p90", "p99", "max"))
	b.WriteString(row("---", "--:", "--:", "--:", "--:", "--:", "--:"))
	for _, v := range r.variants {
		ps := r.byVariant(v.name)
		var meet []float64
		met := 0
		for _, p := range ps {
			if p.met {
				met++
				meet = append(meet, p.meet.Seconds())
			} else {
				meet = append(meet, math.Inf(1))
			}
		}
		b.WriteString(row(append([]string{"`" + v.name + "`", fmt.Sprint(len(ps)), fmt.Sprintf("%d (%d unmet)", met, len(ps)-met)}, dist(meet)...)...))
	}
	if quiet := r.quietCount(); quiet == 0 {
		fmt.Fprintf(&b, "\nEvery pair ran through a second in which other processes used more than %.1f of the %d cores (see the run).\n", othersBad, r.load.cpus)
	} else if quiet < len(r.results) {
		fmt.Fprintf(&b, "\nOnly the pairs during which other processes never used more than %.1f of the %d cores in a second\n", othersBad, r.load.cpus)
		fmt.Fprintf(&b, "(%d of the %d pairs; see the run):\n\n", quiet, len(r.results))
		b.WriteString(row("Variant", "Pairs", "Met", "p50", "p90", "p99", "max"))
		b.WriteString(row("---", "--:", "--:", "--:", "--:", "--:", "--:"))
		for _, v := range r.variants {
			var meet []float64
			met, n := 0, 0
			for _, p := range r.byVariant(v.name) {
				if r.lag.busiestOthers(p.from, p.to) > othersBad {
					continue
				}
				n++
				if p.met {
					met++
					meet = append(meet, p.meet.Seconds())
				} else {
					meet = append(meet, math.Inf(1))
				}
			}
			b.WriteString(row(append([]string{"`" + v.name + "`", fmt.Sprint(n), fmt.Sprintf("%d (%d unmet)", met, n-met)}, dist(meet)...)...))
		}
	}
	b.WriteString("\nEach direction on its own, after the second start (B is the second peer):\n\n")
	b.WriteString(row("Variant", "B found A: p50", "p90", "max", "A found B: p50", "p90", "max"))
	b.WriteString(row("---", "--:", "--:", "--:", "--:", "--:", "--:"))
	for _, v := range r.variants {
		var af, bf []float64
		for _, p := range r.byVariant(v.name) {
			af = append(af, secsOr(p.aFound))
			bf = append(bf, secsOr(p.bFound))
		}
		b.WriteString(row("`"+v.name+"`", fs(percentile(bf, 50)), fs(percentile(bf, 90)), fs(percentile(bf, 100)),
			fs(percentile(af, 50)), fs(percentile(af, 90)), fs(percentile(af, 100))))
	}

	b.WriteString("\n### Our advertisement\n\n")
	b.WriteString("From a peer's start (both peers of every pair): until the first server got its ADD_PROVIDER\n")
	b.WriteString("(the record is stored there, and a search that reaches that server finds it), and until the\n")
	b.WriteString("node's `Advertise` returned (every ADD_PROVIDER sent; the node then says `advertising`).\n\n")
	b.WriteString(row("Variant", "first stored: p50", "p90", "p99", "max", "Advertise returned: p50", "p90", "p99", "max"))
	b.WriteString(row("---", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:"))
	for _, v := range r.variants {
		var st, ad []float64
		for _, p := range r.byVariant(v.name) {
			for k := range 2 {
				st = append(st, secsOr(p.stored[k]))
				ad = append(ad, secsOr(p.advert[k]))
			}
		}
		b.WriteString(row(append(append([]string{"`" + v.name + "`"}, dist(st)...), dist(ad)...)...))
	}

	b.WriteString("\n### DHT messages per chat peer\n\n")
	fmt.Fprintf(&b, "Requests the live servers got from each chat peer (kad-dht's `OnRequestHook` on every server), in the\n")
	fmt.Fprintf(&b, "peer's first %s (the same window for every variant), and the dials it made: to live servers (each\n", r.cfg.window)
	b.WriteString("a new connection) and to gone ones (each a dial that fails, see the model). \"Until met\" counts both\n")
	b.WriteString("peers' requests until the pair met (met pairs only).\n\n")
	b.WriteString(row("Variant", "Requests: mean", "× today", "p50", "p90", "max", "FIND_NODE: refresh / check / advertise", "GET_PROVIDERS", "ADD_PROVIDER", "Dials live / gone", "Until met (mean)"))
	b.WriteString(row("---", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:", "--:"))
	todayMean := math.NaN()
	for _, p := range r.byVariant("today") {
		if math.IsNaN(todayMean) {
			todayMean = 0
		}
		todayMean += float64(p.at60[0].total() + p.at60[1].total())
	}
	todayMean /= float64(2 * len(r.byVariant("today")))
	for _, v := range r.variants {
		var tot, fo, fc, fk, gp, ap, dl, dg, um []float64
		for _, p := range r.byVariant(v.name) {
			for k := range 2 {
				c := p.at60[k]
				tot = append(tot, float64(c.total()))
				fo = append(fo, float64(c.findOther))
				fc = append(fc, float64(c.findCheck))
				fk = append(fk, float64(c.findKey))
				gp = append(gp, float64(c.byType[3]))
				ap = append(ap, float64(c.byType[2]))
				dl = append(dl, float64(c.dials))
				dg = append(dg, float64(c.goneDials))
				if p.met {
					um = append(um, float64(p.atMet[k].total()))
				}
			}
		}
		n := func(x float64) string {
			if math.IsNaN(x) {
				return "–"
			}
			return fmt.Sprintf("%.0f", x)
		}
		ratio := "–"
		if !math.IsNaN(todayMean) && todayMean > 0 {
			ratio = fmt.Sprintf("%.2f", mean(tot)/todayMean)
		}
		b.WriteString(row("`"+v.name+"`", n(mean(tot)), ratio, n(percentile(tot, 50)), n(percentile(tot, 90)), n(percentile(tot, 100)),
			n(mean(fo))+" / "+n(mean(fc))+" / "+n(mean(fk)), n(mean(gp)), n(mean(ap)), n(mean(dl))+" / "+n(mean(dg)), n(mean(um))))
	}
	b.WriteString("\nThe message columns by type are means; other types (PING, values) were ")
	var other int64
	for _, p := range r.results {
		for k := range 2 {
			c := p.at60[k]
			other += c.byType[0] + c.byType[1] + c.byType[5] + c.byType[6]
		}
	}
	fmt.Fprintf(&b, "%d in all.\n\n", other)

	b.WriteString("### Variants\n\n")
	for _, v := range r.variants {
		fmt.Fprintf(&b, "- `%s`: %s\n", v.name, v.about)
	}
	b.WriteString("\n### The run\n\n")
	l := r.load
	fmt.Fprintf(&b, "%d pairs per variant, %d running at once (all variants together); building the network took %s,\n",
		r.cfg.pairs, r.cfg.parallel, r.built.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "the whole run %s, seed %d. ", r.took.Round(time.Second), r.cfg.seed)
	if l.ok {
		others := l.busy - l.ours
		fmt.Fprintf(&b, "This process used %.0f CPU-s (%.0f %% of the %d CPUs over the run), other processes %.0f CPU-s\n",
			l.ours.Seconds(), 100*l.ours.Seconds()/(l.wall.Seconds()*float64(l.cpus)), l.cpus, max(others, 0).Seconds())
		fmt.Fprintf(&b, "(%.0f %%), steal %.1f CPU-s; peak RSS %s.\n\n", 100*max(others, 0).Seconds()/(l.wall.Seconds()*float64(l.cpus)), l.steal.Seconds(), l.maxRSS)
	} else {
		fmt.Fprintf(&b, "The CPU counters could not be read; peak RSS %s.\n\n", l.maxRSS)
	}
	lags := r.lag.all()
	late := 0
	for _, p := range r.results {
		if r.lag.worst(p.from, p.to) > lagBad {
			late++
		}
	}
	fmt.Fprintf(&b, "Time here is the wall clock, so a starved process stretches every figure. Goroutines waited to run\n")
	fmt.Fprintf(&b, "(the Go runtime's %s, p99 of each second) p50 %.1f ms, p99 %.1f ms, worst %.0f ms over the\n",
		"`"+schedName+"`", percentile(lags, 50), percentile(lags, 99), percentile(lags, 100))
	fmt.Fprintf(&b, "run's seconds; %d of the %d pairs ran through a second whose p99 was over %s. Other processes\n", late, len(r.results), lagBad)
	others := r.lag.othersCores()
	fmt.Fprintf(&b, "used p50 %.2f, p90 %.2f, max %.2f of the %d cores in a second; %d of the %d pairs ran through a second in\n",
		percentile(others, 50), percentile(others, 90), percentile(others, 100), r.load.cpus, len(r.results)-r.quietCount(), len(r.results))
	fmt.Fprintf(&b, "which they used more than %.1f.\n", othersBad)
	return b.String()
}

func (r *report) model(b *strings.Builder) {
	b.WriteString("### The model\n\n")
	fmt.Fprintf(b, "- %d DHT servers (go-libp2p-kad-dht in server mode, its defaults) in one process on go-libp2p's mocknet;\n", r.cfg.servers)
	b.WriteString("  their routing tables filled as a settled network's are (every server offered all the others in a\n")
	b.WriteString("  random order; kad-dht kept up to 20 per bucket), and no refresh during the run.\n")
	gone := r.cfg.servers - r.live
	fmt.Fprintf(b, "- %d of them (%.0f %%) gone after that: %d of the live servers' %d routing-table entries (%.1f %%) are gone\n",
		gone, 100*float64(gone)/float64(r.cfg.servers), r.stale, r.entries, 100*float64(r.stale)/float64(max(r.entries, 1)))
	b.WriteString("  nodes. A dial to one ")
	var kinds []string
	for _, g := range goneKinds {
		kinds = append(kinds, fmt.Sprintf("%s (%.0f %%)", g.name, 100*g.share))
	}
	b.WriteString(strings.Join(kinds, "; ") + ".\n")
	b.WriteString("- Round trips: each node is in a region (")
	var rs []string
	for _, g := range regions {
		rs = append(rs, fmt.Sprintf("%s %.0f %%", g.name, 100*g.share))
	}
	b.WriteString(strings.Join(rs, ", "))
	fmt.Fprintf(b, "); a link's round trip is its regions' typical figure times a factor from 0.8 to 1.3 drawn per pair,\n")
	fmt.Fprintf(b, "  within %d–%d ms. Between random servers: p10 %.0f ms, p50 %.0f ms, p90 %.0f ms, max %.0f ms. Mocknet\n",
		minRTT.Milliseconds(), maxRTT.Milliseconds(), percentile(r.rtts, 10), percentile(r.rtts, 50), percentile(r.rtts, 90), percentile(r.rtts, 100))
	b.WriteString("  delays every write by half the round trip; a new connection first costs one round trip (a QUIC\n")
	b.WriteString("  handshake); identify then runs over the link as on a real connection.\n")
	fmt.Fprintf(b, "- Each pair: two chat peers built with internal/node (`node.NewOnHost` on a mocknet host: its DHT options,\n")
	fmt.Fprintf(b, "  bootstrap, advertise and find loops), DHT clients (kad-dht's auto mode), each bootstrapping from a different\n")
	fmt.Fprintf(b, "  random live server, on a fresh rendezvous string; the second starts 0 to %s after the first (uniform, the\n", r.cfg.maxDelay)
	b.WriteString("  same offsets for every variant).\n\n")
}

// quietCount is how many pairs ran while other processes never used more
// than othersBad cores in a second.
func (r *report) quietCount() int {
	n := 0
	for _, p := range r.results {
		if r.lag.busiestOthers(p.from, p.to) <= othersBad {
			n++
		}
	}
	return n
}
