// Package e2e is the one harness that runs the real binary as separate
// processes: for the end-to-end tests (e2e/) and for the benchmark suite
// (bench/). It builds the binary once, starts it (or a command that runs
// it, such as ip netns exec), reads its JSON events from stdout as
// event.Event, waits for them by kind, code and fields, reads the
// process's memory and CPU time from /proc, and makes sure that no child
// outlives the test or the suite: every child is started with Pdeathsig,
// in its own process group, and killed when its test ends or when KillAll
// is called.
//
//	func TestMain(m *testing.M) { e2e.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		p := e2e.Start(t, "a", "-json", "-mdns=false", ...) // skips under -short
//		id := p.Ready(t).ID
//		p.Send(t, "hello")
//		p.Wait(t, event.Info, e2e.Code(event.Held), 10*time.Second)
//	}
//
// Tests match an event's code and fields, never its words, which are for
// people and may change (internal/words).
//
// The package is Linux-only: Pdeathsig and /proc are.
package e2e
