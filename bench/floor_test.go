package bench_test

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
)

// benchRequestWSMux is the floor of a request-response library, built on
// a raw coder/websocket with nothing but the hand-offs between goroutines
// that any library offering what ours offers must have, and nothing else
// (no hub protocol, no typed decoding, no bounds, no timeouts):
//
//   - callers do not write to the socket themselves (a peer that stops
//     reading would hold them past their context): a writer goroutine,
//     woken per message, writes for them;
//   - the answering end runs each request in a goroutine of its own (a
//     handler may block; the reader must go on), which writes the answer
//     itself;
//   - any number of requests share the connection: one reader goroutine
//     takes every answer and wakes the caller it belongs to.
//
// Each message carries an 8-byte request id before the payload. Against
// it, the raw echo (benchRequestWS) has none of these hand-offs: the
// caller writes and reads the socket itself.
func benchRequestWSMux(b *testing.B, s2c bool, inflight int) {
	e := newWS(b)
	e.connect(b, 1)
	from, echo := e.clients[0], e.servers[0]
	if s2c {
		from, echo = echo, from
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() {
		cancel()
		_ = from.CloseNow()
		_ = echo.CloseNow()
		wg.Wait()
	})

	// The answering end: a goroutine per request, writing its answer.
	var echoMu sync.Mutex
	wg.Go(func() {
		for {
			_, data, err := echo.Read(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				echoMu.Lock()
				defer echoMu.Unlock()
				_ = echo.Write(ctx, websocket.MessageText, data)
			})
		}
	})

	// The asking end: a writer goroutine fed by the callers, a reader
	// goroutine waking them.
	out := make(chan []byte, inflight)
	wg.Go(func() {
		for {
			select {
			case m := <-out:
				if err := from.Write(ctx, websocket.MessageText, m); err != nil {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	})
	var (
		mu      sync.Mutex
		waiting = map[uint64]chan []byte{}
	)
	wg.Go(func() {
		for {
			_, data, err := from.Read(ctx)
			if err != nil {
				return
			}
			id := binary.BigEndian.Uint64(data)
			mu.Lock()
			ch := waiting[id]
			delete(waiting, id)
			mu.Unlock()
			if ch != nil {
				ch <- data
			}
		}
	})
	var next atomic.Uint64
	op := func(_, _ int) error {
		id := next.Add(1)
		msg := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(wsMessage)), id)
		msg = append(msg, wsMessage...)
		ch := make(chan []byte, 1)
		mu.Lock()
		waiting[id] = ch
		mu.Unlock()
		out <- msg
		select {
		case got := <-ch:
			if len(got) != len(msg) {
				return errors.New("wrong answer")
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	runRequests(b, inflight, op)
}
