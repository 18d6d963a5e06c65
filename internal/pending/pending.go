// Package pending is the correlation map of one connection: the requests
// sent on it that wait for an answer.
//
// Answers are matched by the correlation id the peer echoes. A .NET Tharga
// peer echoes nothing, so an answer without an id is matched by what is safe
// with that kind of peer:
//
//   - InOrder (the peer is a .NET server, which runs one connection's hub
//     calls one at a time and so answers in request order): the oldest
//     outstanding request takes the answer. A request whose caller gave up
//     stays in line as a tombstone until its answer arrives and is dropped,
//     so a late answer never reaches the next request.
//   - AnyOrder (the peer is a .NET client, which answers each request on its
//     own task): requests whose possible answer types (the response type,
//     or the request type for an error answer) overlap are not in flight at
//     the same time: a later one waits. The answer's type then names its
//     request.
//
// Once the peer is known to echo ids (it said so when it connected, or an
// answer carried one), every request goes out at once and tombstones are
// dropped.
package pending

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/tharga/communication-go/internal/signal"
	"github.com/tharga/communication-go/internal/timerpool"
	"github.com/tharga/communication-go/internal/wire"
)

// Order is how a peer that does not echo correlation ids orders its answers.
type Order uint8

// The orders of a non-echoing peer.
const (
	InOrder Order = iota + 1
	AnyOrder
)

// Result is the outcome of a request.
type Result struct {
	Wrapper wire.Wrapper
	Err     error
}

// Info describes one outstanding request.
type Info struct {
	ID      string
	Type    string // the request's type name
	Started time.Time
}

// Call is one outstanding request.
type Call struct {
	t         *Table
	id        string
	reqType   string // full names
	respType  string
	started   time.Time
	ch        chan Result
	abandoned bool
	done      bool
}

// ID returns the call's correlation id.
func (c *Call) ID() string { return c.id }

// Table holds the outstanding requests of one connection. It is safe for
// concurrent use.
type Table struct {
	mu      sync.Mutex
	order   Order
	echo    bool
	next    uint64
	byID    map[string]*Call
	line    []*Call // outstanding in send order, tombstones included
	closed  error
	changed signal.Broadcast // notified when the line shrinks
	onEvent func(Info, bool)
	// turn is closed once the latest send that must keep its place in
	// line (an InOrder peer that does not echo) is done: the next such
	// send waits for it, so that sends leave in line order without the
	// lock being held while one waits for the connection.
	turn chan struct{}
}

// New returns an empty table. order says how answers without an id are
// matched; echo says whether the peer is already known to echo ids. onEvent,
// when not nil, is called (outside the lock) when a request is added (true)
// or leaves (false).
func New(order Order, echo bool, onEvent func(info Info, added bool)) *Table {
	return &Table{
		order:   order,
		echo:    echo,
		byID:    make(map[string]*Call),
		onEvent: onEvent,
	}
}

// Add registers a request and sends it with send(id), never under the
// table's lock: a send that waits for a slow connection holds up neither
// the answers nor the other requests' callers. When the send order
// matters (an InOrder peer that does not echo), send waits for the sends
// of the requests before it in line to finish. Add waits, until ctx ends,
// while an AnyOrder peer that does not echo has an overlapping request
// outstanding.
func (t *Table) Add(ctx context.Context, reqType, respType string, send func(id string) error) (*Call, error) {
	reqType, respType = wire.MatchKey(reqType), wire.MatchKey(respType)
	t.mu.Lock()
	for {
		if t.closed != nil {
			err := t.closed
			t.mu.Unlock()
			return nil, err
		}
		if t.echo || t.order != AnyOrder || !t.overlaps(reqType, respType) {
			break
		}
		changed := t.changed.Wait()
		t.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		t.mu.Lock()
	}
	t.next++
	c := &Call{
		t:        t,
		id:       strconv.FormatUint(t.next, 36),
		reqType:  reqType,
		respType: respType,
		started:  time.Now(),
		ch:       make(chan Result, 1),
	}
	t.byID[c.id] = c
	if !t.echo {
		t.line = append(t.line, c)
	}
	var prev, mine chan struct{}
	if !t.echo && t.order == InOrder {
		prev, mine = t.turn, make(chan struct{})
		t.turn = mine
	}
	t.mu.Unlock()
	if prev != nil {
		select {
		case <-prev:
		case <-ctx.Done():
			t.drop(c)
			// The requests behind this one still wait for the one
			// before it.
			go func() {
				<-prev
				close(mine)
			}()
			return nil, ctx.Err()
		}
	}
	err := send(c.id)
	if err != nil {
		// Out of line before the next send, which the peer would
		// otherwise answer as this one.
		t.drop(c)
	}
	if mine != nil {
		close(mine)
	}
	if err != nil {
		return nil, err
	}
	t.event(c, true)
	return c, nil
}

// drop forgets a request that was not sent.
func (t *Table) drop(c *Call) {
	t.mu.Lock()
	t.remove(c)
	t.mu.Unlock()
}

func (t *Table) overlaps(reqType, respType string) bool {
	for _, o := range t.line {
		if o.reqType == reqType || o.respType == respType || o.reqType == respType || o.respType == reqType {
			return true
		}
	}
	return false
}

// Echoes reports whether the peer is known to echo correlation ids: then
// Add never waits on its context.
func (t *Table) Echoes() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.echo
}

// Wait blocks until the answer arrives, the table closes or ctx ends. When
// ctx ends first, the request is abandoned: its late answer is dropped.
func (c *Call) Wait(ctx context.Context) Result {
	select {
	case r := <-c.ch:
		return r
	case <-ctx.Done():
	}
	return c.abandon(ctx.Err())
}

// WaitFor is Wait, giving up after d too (with
// context.DeadlineExceeded): cheaper than a context with a timeout of its
// own (a timer alone, no cancellation to register with a parent) for a
// caller whose ctx has none.
func (c *Call) WaitFor(ctx context.Context, d time.Duration) Result {
	select {
	case r := <-c.ch:
		return r
	default:
	}
	t := timerpool.Get(d)
	defer timerpool.Put(t)
	select {
	case r := <-c.ch:
		return r
	case <-ctx.Done():
		return c.abandon(ctx.Err())
	case <-t.C:
		return c.abandon(context.DeadlineExceeded)
	}
}

// abandon gives up on the answer with err, unless it arrived meanwhile.
func (c *Call) abandon(err error) Result {
	t := c.t
	t.mu.Lock()
	select {
	case r := <-c.ch: // answered while we were giving up
		t.mu.Unlock()
		return r
	default:
	}
	left := !c.done
	if left {
		c.done = true
		delete(t.byID, c.id)
		if t.echo {
			t.removeFromLine(c)
		} else {
			// Keep its place in line: its answer may still come.
			c.abandoned = true
		}
	}
	t.mu.Unlock()
	if left {
		t.event(c, false)
	}
	return Result{Err: err}
}

// Resolve matches an answer to its request and reports whether one took it.
// An answer that matches nothing, or an abandoned request, is dropped.
func (t *Table) Resolve(w *wire.Wrapper) bool {
	t.mu.Lock()
	var c *Call
	if w.CorrelationID != "" {
		if !t.echo {
			t.echo = true
			t.dropTombstones()
		}
		c = t.byID[w.CorrelationID]
		if c != nil {
			t.remove(c)
		}
	} else {
		c = t.matchUncorrelated(wire.MatchKey(w.Type))
	}
	if c == nil || c.abandoned {
		t.mu.Unlock()
		return false
	}
	c.done = true
	c.ch <- Result{Wrapper: *w}
	t.mu.Unlock()
	t.event(c, false)
	return true
}

// Fail ends the request with correlation id id with err, at once: its
// answer arrived but could not be read. It reports whether one was waiting.
func (t *Table) Fail(id string, err error) bool {
	t.mu.Lock()
	c := t.byID[id]
	if c == nil || c.abandoned {
		t.mu.Unlock()
		return false
	}
	t.remove(c)
	c.done = true
	c.ch <- Result{Err: err}
	t.mu.Unlock()
	t.event(c, false)
	return true
}

func (t *Table) matchUncorrelated(answerType string) *Call {
	switch t.order {
	case InOrder:
		if len(t.line) == 0 {
			return nil
		}
		c := t.line[0]
		t.remove(c)
		return c
	default:
		for _, c := range t.line {
			if c.respType == answerType || c.reqType == answerType {
				t.remove(c)
				return c
			}
		}
		return nil
	}
}

// Close fails every outstanding request with err and every later Add too.
func (t *Table) Close(err error) {
	if err == nil {
		err = errors.New("closed")
	}
	t.mu.Lock()
	if t.closed != nil {
		t.mu.Unlock()
		return
	}
	t.closed = err
	var failed []*Call
	for _, c := range t.byID {
		if !c.done {
			c.done = true
			c.ch <- Result{Err: err}
			failed = append(failed, c)
		}
	}
	t.line = nil
	t.byID = make(map[string]*Call)
	t.changed.Notify()
	t.mu.Unlock()
	for _, c := range failed {
		t.event(c, false)
	}
}

// List returns the outstanding requests whose callers still wait.
func (t *Table) List() []Info {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Info, 0, len(t.byID))
	for _, c := range t.byID {
		out = append(out, c.info())
	}
	return out
}

func (c *Call) info() Info { return Info{ID: c.id, Type: c.reqType, Started: c.started} }

func (t *Table) event(c *Call, added bool) {
	if t.onEvent != nil {
		t.onEvent(c.info(), added)
	}
}

// remove takes c out of the map and the line; t.mu is held.
func (t *Table) remove(c *Call) {
	delete(t.byID, c.id)
	t.removeFromLine(c)
}

func (t *Table) removeFromLine(c *Call) {
	if len(t.line) == 0 {
		return
	}
	for i, o := range t.line {
		if o == c {
			copy(t.line[i:], t.line[i+1:])
			t.line[len(t.line)-1] = nil
			t.line = t.line[:len(t.line)-1]
			break
		}
	}
	t.changed.Notify()
}

func (t *Table) dropTombstones() {
	kept := t.line[:0]
	for _, c := range t.line {
		if !c.abandoned {
			kept = append(kept, c)
		}
	}
	for i := len(kept); i < len(t.line); i++ {
		t.line[i] = nil
	}
	t.line = kept
	t.changed.Notify()
}
