// Package timerpool reuses timers for waits that bound themselves: a
// timer from the pool costs no allocation and, unlike a context with a
// timeout, registers nothing with a parent context. Requests wait on one
// each, so it is on the path of every request.
package timerpool

import (
	"sync"
	"time"
)

// syncTimers tells whether this program has Go 1.23's timers (its go.mod
// names Go 1.23 or later), whose channel is unbuffered (capacity 0, as the
// release notes say): Stop leaves no tick in it, so a stopped timer can be
// reused. The timers before them can leave one; those are not reused.
var syncTimers = func() bool {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	return cap(t.C) == 0
}()

var timers sync.Pool

// Get returns a timer that fires after d: a reused one when that is safe.
func Get(d time.Duration) *time.Timer {
	if syncTimers {
		if t, ok := timers.Get().(*time.Timer); ok {
			t.Reset(d)
			return t
		}
	}
	return time.NewTimer(d)
}

// Put stops t and keeps it for the next Get when that is safe. t is not
// used again by the caller.
func Put(t *time.Timer) {
	t.Stop()
	if syncTimers {
		timers.Put(t)
	}
}
