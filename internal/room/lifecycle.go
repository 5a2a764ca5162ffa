package room

import "sync"

// lifecycle is the room's: whether it is closing, and the goroutines Close
// waits for. Every goroutine the room starts (a dial, a session's end, a
// ping, a fetch) is counted with add or Go, which refuse once Close has
// begun, so that Close's wait can never miss one that starts late.
type lifecycle struct {
	// mu makes close a barrier: add holds it for reading while it checks
	// and counts, so once close has returned no add can count a goroutine.
	mu      sync.RWMutex
	closing chan struct{}
	wg      sync.WaitGroup
}

func newLifecycle() *lifecycle {
	return &lifecycle{closing: make(chan struct{})}
}

// isClosing reports whether Close has begun.
func (l *lifecycle) isClosing() bool {
	select {
	case <-l.closing:
		return true
	default:
		return false
	}
}

// add counts a goroutine about to start, unless the room is closing; the
// goroutine calls done when it returns. Code that must decide something
// together with the check (the roster, adding a session) calls it under
// its own lock.
func (l *lifecycle) add() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.isClosing() {
		return false
	}
	l.wg.Add(1)
	return true
}

// done ends what add counted.
func (l *lifecycle) done() { l.wg.Done() }

// Go runs f as one of the room's goroutines, unless the room is closing.
func (l *lifecycle) Go(f func()) bool {
	if !l.add() {
		return false
	}
	go func() {
		defer l.wg.Done()
		f()
	}()
	return true
}

// close marks the room closing; it is called once.
func (l *lifecycle) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.closing)
}

// wait returns when every counted goroutine has returned.
func (l *lifecycle) wait() { l.wg.Wait() }
