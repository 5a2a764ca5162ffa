package ucfile

import (
	"fmt"
	"time"
)

// A pace holds one side of a transfer to the least rate (see MinRate): the
// bytes of a window, minRate×window of them, must be done within window of
// the moment the previous window's were; and no step may wait more than
// idle for progress. A transfer that keeps to it ends in a bounded time,
// about size/minRate at worst, however its peer trickles.
//
// Each window begins where the previous one was met, rather than on a fixed
// clock, so that a transfer well above the least rate may pause (up to idle)
// anywhere, and a burst early in a window does not excuse a stall in the
// next. A pace belongs to the goroutine of its transfer.
type pace struct {
	pacing
	need  int64     // the bytes of a window: rate × window
	done  int64     // bytes done so far
	mark  int64     // bytes done when the current window began
	start time.Time // when it began
}

// pacing is what a pace asks: IdleTimeout, MinRate and RateWindow, or
// shorter ones in tests.
type pacing struct {
	idle   time.Duration
	rate   int64 // bytes a second, averaged over window
	window time.Duration
}

// current returns the pacing of the package's variables, which tests may
// shorten.
func current() pacing {
	return pacing{idle: idleTimeout, rate: minRate, window: rateWindow}
}

// start starts a pace at now. A rate or a window of zero or less leaves
// only the idle timeout.
func (pg pacing) start(now time.Time) *pace {
	p := &pace{pacing: pg, start: now}
	if pg.rate > 0 && pg.window > 0 {
		p.need = max(1, int64(float64(pg.rate)*pg.window.Seconds()))
	}
	return p
}

// deadline returns when the next step must have made progress, and whether
// that is the end of the current window (too slow) rather than the idle
// timeout (stalled).
func (p *pace) deadline(now time.Time) (time.Time, bool) {
	idleAt := now.Add(p.idle)
	if p.need == 0 {
		return idleAt, false
	}
	if due := p.start.Add(p.window); due.Before(idleAt) {
		return due, true
	}
	return idleAt, false
}

// add counts n bytes done at now, and reports whether they met the current
// window's due; the next window then begins.
func (p *pace) add(n int, now time.Time) bool {
	p.done += int64(n)
	if p.need == 0 || p.done-p.mark < p.need {
		return false
	}
	p.mark, p.start = p.done, now
	return true
}

// rule says what the pace asks, for an error: "480 KiB every 30s".
func (p *pace) rule() string {
	if p.need%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB every %v", p.need>>10, p.window)
	}
	return fmt.Sprintf("%d bytes every %v", p.need, p.window)
}
