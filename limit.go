package communication

import (
	"context"
	"sync/atomic"

	"github.com/tharga/communication-go/internal/signal"
)

// limiter bounds how many handlers run at once: per connection, and across
// the server. A reader that finds no slot does not block: it gets a channel
// to wait on (the connection stops reading meanwhile, see
// transport.Inbound), which is closed when a slot frees.
type limiter struct {
	sem     chan struct{}
	waiters atomic.Bool // somebody holds a channel from freed.Wait
	freed   signal.Broadcast
}

func newLimiter(n int) *limiter {
	return &limiter{sem: make(chan struct{}, n)}
}

// tryAcquire takes a slot, or returns the channel to wait on for one.
func (l *limiter) tryAcquire() (bool, <-chan struct{}) {
	select {
	case l.sem <- struct{}{}:
		return true, nil
	default:
	}
	// Take the channel before the second try, so that a release between
	// the two cannot be missed.
	ch := l.freed.Wait()
	l.waiters.Store(true)
	select {
	case l.sem <- struct{}{}:
		return true, nil
	default:
		return false, ch
	}
}

// acquire takes a slot, waiting until ctx ends.
func (l *limiter) acquire(ctx context.Context) error {
	for {
		ok, ch := l.tryAcquire()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *limiter) release() {
	<-l.sem
	if l.waiters.Swap(false) {
		l.freed.Notify()
	}
}

// running reports how many slots are taken.
func (l *limiter) running() int { return len(l.sem) }
