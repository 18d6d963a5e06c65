// Package serial runs functions one at a time, in the order they were
// queued, on a goroutine that exists only while there is work.
//
// It keeps the posts of one connection in order without a goroutine per
// idle connection: a connection that is quiet costs no goroutine at all.
package serial

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"

	"github.com/tharga/communication-go/internal/recovery"
	"github.com/tharga/communication-go/internal/signal"
	"github.com/tharga/communication-go/internal/stack"
)

// ErrClosed reports a Push after Close.
var ErrClosed = errors.New("queue closed")

// Queue is an ordered, bounded work queue. The zero value is not usable:
// call New.
type Queue struct {
	mu      sync.Mutex
	items   []func()
	head    int
	limit   int
	running bool
	closed  bool
	space   signal.Broadcast // notified when there may be room
	idle    chan struct{}    // closed when the drain goroutine exits

	log       *slog.Logger
	panicMsg  string
	panicArgs func() []any
}

// New returns a queue holding at most limit waiting functions. A panic in
// a function is logged to log (when not nil) as panicMsg with args, and
// the queue goes on with the next one.
func New(limit int, log *slog.Logger, panicMsg string, args ...any) *Queue {
	if limit < 1 {
		limit = 1
	}
	idle := make(chan struct{})
	close(idle)
	return &Queue{
		limit:     limit,
		idle:      idle,
		log:       log,
		panicMsg:  panicMsg,
		panicArgs: func() []any { return slices.Clip(args) },
	}
}

// Push queues fn. When the queue is full it waits for room until ctx ends:
// that is the backpressure on whoever produces the work.
func (q *Queue) Push(ctx context.Context, fn func()) error {
	q.mu.Lock()
	for {
		if q.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		if len(q.items)-q.head < q.limit {
			break
		}
		space := q.space.Wait()
		q.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
		q.mu.Lock()
	}
	q.items = append(q.items, fn)
	if !q.running {
		q.running = true
		q.idle = make(chan struct{})
		go q.drain(q.idle)
	}
	q.mu.Unlock()
	return nil
}

// TryPush queues fn if there is room. When the queue is full it returns
// false and a channel that is closed once there may be room: a producer
// that must not block (a connection's reader) waits on it on its own terms.
func (q *Queue) TryPush(fn func()) (bool, <-chan struct{}, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false, nil, ErrClosed
	}
	if len(q.items)-q.head >= q.limit {
		return false, q.space.Wait(), nil
	}
	q.items = append(q.items, fn)
	if !q.running {
		q.running = true
		q.idle = make(chan struct{})
		go q.drain(q.idle)
	}
	return true, nil, nil
}

func (q *Queue) drain(idle chan struct{}) {
	// The functions are handlers: they decode messages.
	stack.Grow()
	defer close(idle)
	for {
		q.mu.Lock()
		if q.head == len(q.items) {
			q.items = q.items[:0]
			q.head = 0
			q.running = false
			q.mu.Unlock()
			return
		}
		fn := q.items[q.head]
		q.items[q.head] = nil
		q.head++
		if q.head > 64 && q.head*2 > len(q.items) {
			n := copy(q.items, q.items[q.head:])
			clear(q.items[n:])
			q.items = q.items[:n]
			q.head = 0
		}
		q.space.Notify()
		q.mu.Unlock()
		q.run(fn)
	}
}

func (q *Queue) run(fn func()) {
	defer recovery.Log(q.log, q.panicMsg, q.panicArgs)
	fn()
}

// Close stops accepting work; queued functions still run. It wakes
// producers waiting for room.
func (q *Queue) Close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		q.space.Notify()
	}
	q.mu.Unlock()
}

// Wait blocks until the queue is empty and its goroutine has exited, or
// ctx ends.
func (q *Queue) Wait(ctx context.Context) error {
	for {
		q.mu.Lock()
		idle, running := q.idle, q.running
		q.mu.Unlock()
		if !running {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
