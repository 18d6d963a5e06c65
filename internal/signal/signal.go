// Package signal wakes goroutines that wait for "something changed".
package signal

import (
	"sync"
	"sync/atomic"
)

// Broadcast wakes every goroutine waiting on it at once: Wait returns a
// channel that the next Notify closes. The usual pattern is to check a
// condition and take Wait's channel under the same lock as the one the
// notifier holds when it changes the condition, so that no change is
// missed between the check and the wait.
//
// The channel is made only when somebody waits, so a Broadcast nobody
// waits on costs no allocation and no lock however often it is notified
// (queues notify on every item they take). The zero value is ready to
// use; it is safe for concurrent use.
type Broadcast struct {
	mu    sync.Mutex
	ch    chan struct{}
	armed atomic.Bool // ch is not nil
}

// Wait returns a channel that is closed by the next Notify.
func (b *Broadcast) Wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
		b.armed.Store(true)
	}
	return b.ch
}

// Notify wakes every goroutine waiting on a channel from Wait.
// A Wait that returned before Notify was called has set armed, which
// Notify sees; one that runs at the same time may take either side.
func (b *Broadcast) Notify() {
	if !b.armed.Load() {
		return
	}
	b.mu.Lock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
		b.armed.Store(false)
	}
	b.mu.Unlock()
}
