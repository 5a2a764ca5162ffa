//go:build !unix

package gossiproom

import "time"

// cpuTime is not measured here; the benchmark's CPU columns read 0.
func cpuTime() time.Duration { return 0 }

// machineBusy cannot be read here; the benchmark says so.
func machineBusy() (time.Duration, bool) { return 0, false }
