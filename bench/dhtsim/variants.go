package main

// variants.go: the configurations of the chat peers' node compared side by
// side. A variant is named by what it changes: a base, "today" (the
// settings before issue 18, spelled out here so that they stay what they
// were) or "defaults" (node.DefaultDiscovery, whatever it is now), and
// then changes joined by "+": "today+dial=2s+opt".

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rendezvous-chat/rendezvous-chat/internal/node"
)

// today is internal/node's discovery before issue 18: kad-dht's defaults
// (alpha 10, beta 3, classic provide, libp2p's dial timeouts), a search
// 100 ms after the last one ended, the pause doubling up to 20 s, each
// search bounded by 30 s.
func today() node.Discovery {
	return node.Discovery{
		FindFirstInterval: 100 * time.Millisecond,
		FindMaxInterval:   20 * time.Second,
		FindTimeout:       30 * time.Second,
	}
}

// defaultVariants are those `make bench-dht` runs: today's settings, each
// of kad-dht's own knobs alone, the polls and early store alone, the new
// mechanisms on kad-dht's walk settings, and the node's defaults.
var defaultVariants = []string{
	"today",
	"today+opt",
	"today+dial=2s",
	"today+alpha=3+beta=2",
	"today+poll=3+early",
	"today+dial=2s+poll=3+early",
	"defaults",
}

const variantSyntax = `a base, "today" or "defaults", then changes joined by "+": ` +
	`dial=DURATION (DialTimeout), alpha=N (Concurrency), beta=N (Resiliency), opt (OptimisticProvide), ` +
	`first=DURATION, max=DURATION, timeout=DURATION (the find loop's intervals and timeout), ` +
	`poll=N, pollint=DURATION, pollfor=DURATION (polls of the closest servers), early (EarlyStore)`

// parseVariant builds the variant a name describes.
func parseVariant(name string) (variant, error) {
	parts := strings.Split(name, "+")
	var d node.Discovery
	var about []string
	switch parts[0] {
	case "today":
		d = today()
		if len(parts) == 1 {
			about = append(about, "the settings before issue 18: kad-dht's defaults (alpha 10, beta 3, classic provide, libp2p's dial timeouts); "+
				"a walk 100 ms after the last one ended, the pause doubling up to 20 s; 30 s per walk")
		} else {
			about = append(about, "today's, with")
		}
	case "defaults":
		d = node.DefaultDiscovery()
		about = append(about, "internal/node's defaults (node.DefaultDiscovery): "+describe(d))
	default:
		return variant{}, fmt.Errorf("variant %q: starts with neither today nor defaults", name)
	}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		dur := func() (time.Duration, error) { return time.ParseDuration(v) }
		var err error
		switch k {
		case "dial":
			d.DialTimeout, err = dur()
			about = append(about, "dials bounded by "+v)
		case "alpha":
			d.Concurrency, err = strconv.Atoi(v)
			about = append(about, "Concurrency "+v)
		case "beta":
			d.Resiliency, err = strconv.Atoi(v)
			about = append(about, "Resiliency "+v)
		case "opt":
			d.OptimisticProvide = true
			about = append(about, "optimistic provide")
		case "first":
			d.FindFirstInterval, err = dur()
			about = append(about, "first search interval "+v)
		case "max":
			d.FindMaxInterval, err = dur()
			about = append(about, "search interval at most "+v)
		case "poll":
			d.PollPeers, err = strconv.Atoi(v)
			about = append(about, "polls the "+v+" closest servers between walks")
			if d.PollInterval == 0 {
				d.PollInterval, d.PollFor = time.Second, 2*time.Minute
			}
		case "pollint":
			d.PollInterval, err = dur()
			about = append(about, "poll interval "+v)
		case "pollfor":
			d.PollFor, err = dur()
			about = append(about, "polls often for "+v)
		case "early":
			d.EarlyStore = true
			about = append(about, "early store with the closest servers")
		case "timeout":
			d.FindTimeout, err = dur()
			about = append(about, "search timeout "+v)
		default:
			err = fmt.Errorf("unknown change %q", p)
		}
		if err != nil {
			return variant{}, fmt.Errorf("variant %q: %v", name, err)
		}
	}
	text := strings.Join(about, "; ")
	text = strings.Replace(text, "with; ", "with ", 1)
	return variant{
		name:  name,
		about: text,
		configure: func(c *node.Config) {
			dd := d
			c.Discovery = &dd
		},
	}, nil
}

// describe says what d sets, in the words of the variants' changes.
func describe(d node.Discovery) string {
	var out []string
	if d.DialTimeout > 0 {
		out = append(out, "dials bounded by "+d.DialTimeout.String())
	}
	if d.Concurrency > 0 {
		out = append(out, fmt.Sprintf("Concurrency %d", d.Concurrency))
	}
	if d.Resiliency > 0 {
		out = append(out, fmt.Sprintf("Resiliency %d", d.Resiliency))
	}
	if d.OptimisticProvide {
		out = append(out, "optimistic provide")
	}
	if d.PollPeers > 0 {
		first := ""
		if d.PollFirstInterval > 0 && d.PollFirstInterval < d.PollInterval {
			first = fmt.Sprintf("first after %s, doubling to ", d.PollFirstInterval)
		}
		out = append(out, fmt.Sprintf("polls the %d closest servers between walks, %severy %s while alone for the first %s",
			d.PollPeers, first, d.PollInterval, d.PollFor))
	}
	if d.EarlyStore {
		out = append(out, "early store with the closest servers")
	}
	out = append(out, fmt.Sprintf("a walk %s after the last one ended, the pause doubling up to %s; %s per walk",
		d.FindFirstInterval, d.FindMaxInterval, d.FindTimeout))
	return strings.Join(out, "; ")
}
