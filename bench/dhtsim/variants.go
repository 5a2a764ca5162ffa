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
		about = append(about, "the settings before issue 18 (kad-dht's defaults; searches 100 ms apart at first, then doubling up to 20 s; 30 s per search)")
	case "defaults":
		d = node.DefaultDiscovery()
		about = append(about, "internal/node's defaults (node.DefaultDiscovery)")
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
	return variant{
		name:  name,
		about: strings.Join(about, "; "),
		configure: func(c *node.Config) {
			dd := d
			c.Discovery = &dd
		},
	}, nil
}
