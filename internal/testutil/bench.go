package testutil

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Counter counts deliveries and lets one waiter wait for a total.
type Counter struct {
	mu     sync.Mutex
	n      int64
	target int64
	ch     chan struct{}
}

// Add counts one delivery.
func (c *Counter) Add() {
	c.mu.Lock()
	c.n++
	if c.ch != nil && c.n >= c.target {
		close(c.ch)
		c.ch = nil
	}
	c.mu.Unlock()
}

// Load returns the deliveries so far.
func (c *Counter) Load() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// WaitFor waits until the count reaches target, failing tb after timeout.
func (c *Counter) WaitFor(tb testing.TB, target int64, timeout time.Duration) {
	tb.Helper()
	c.mu.Lock()
	if c.n >= target {
		c.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	c.ch, c.target = ch, target
	c.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
		tb.Fatalf("timed out: %d of %d delivered", c.Load(), target)
	}
}

// Parallel runs operations 1..n on workers goroutines, each taking the
// next number, and returns the first error. op is told which worker runs
// it (0..workers-1).
func Parallel(n, workers int, op func(worker, i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for w := range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if err := op(w, int(i)); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
