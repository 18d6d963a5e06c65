package bench_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	communication "github.com/tharga/communication-go"
)

// BenchmarkRequest measures request-response round trips on one
// connection, with 1 or 64 requests in flight (as many goroutines, each
// sending its next request once its answer is in).
//
//   - ours: communication.Send to the Client (client to server) or to
//     Server.To(id) (server to client), a SendHandler echoing on the other
//     side.
//   - signalr, client to server: the raw client's Invoke of a hub method
//     returning the answer. With 64 in flight each Invoke starts through
//     the gate (see gateConn): the raw client's concurrent Invokes can take
//     the same invocation id and hang.
//   - signalr, server to client: philippseith has no server-to-client call
//     with a result, so the server Sends "Req" to the client, whose
//     receiver Sends "Resp" back (through the gate with 64 in flight) to a
//     hub method that wakes the waiting goroutine.
//   - websocket: one raw WebSocket message each way, echoed by a read-write
//     loop on the other side.
//   - websocket-mux: the same with the hand-offs between goroutines that a
//     library with many requests per connection needs (benchRequestWSMux):
//     the floor this library's rows are measured against too.
func BenchmarkRequest(b *testing.B) {
	for _, dir := range []string{"client-to-server", "server-to-client"} {
		s2c := dir == "server-to-client"
		for _, inflight := range []int{1, 64} {
			name := fmt.Sprintf("%s/inflight=%d/", dir, inflight)
			for _, p := range protocols {
				b.Run(name+p.name+"/ours", func(b *testing.B) { benchRequestOurs(b, p, s2c, inflight) })
				b.Run(name+p.name+"/signalr", func(b *testing.B) { benchRequestRaw(b, p, s2c, inflight) })
			}
			b.Run(name+"json/websocket", func(b *testing.B) { benchRequestWS(b, s2c, inflight) })
			b.Run(name+"json/websocket-mux", func(b *testing.B) { benchRequestWSMux(b, s2c, inflight) })
		}
	}
}

func benchRequestOurs(b *testing.B, p protocol, s2c bool, inflight int) {
	op := oursRequestOp(b, p, s2c)
	runRequests(b, inflight, op)
}

// runRequests runs op warmup times, then b.N times timed, with inflight
// of them outstanding, and reports the rate.
func runRequests(b *testing.B, inflight int, op func(worker, i int) error) {
	if err := parallel(warmup, inflight, op); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := parallel(b.N, inflight, op); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	report(b, b.N)
}

// oursRequestOp connects one client and returns a request-response round
// trip through this library in the given direction.
func oursRequestOp(b *testing.B, p protocol, s2c bool) func(worker, i int) error {
	e := newOurs(b)
	e.connect(b, 1, p)
	var to communication.Endpoint = e.clients[0]
	if s2c {
		to = e.srv.To(e.clients[0].ConnectionID())
	}
	ctx := context.Background()
	return func(_, i int) error {
		pong, err := communication.Send[Pong](ctx, to, ping(i))
		if err == nil && pong.Seq != i {
			err = fmt.Errorf("answer %d to request %d", pong.Seq, i)
		}
		return err
	}
}

func benchRequestRaw(b *testing.B, p protocol, s2c bool, inflight int) {
	op := rawRequestOp(b, p, s2c, inflight)
	runRequests(b, inflight, op)
}

// rawRequestOp connects one raw philippseith client and returns a round
// trip in the given direction, for inflight workers.
func rawRequestOp(b *testing.B, p protocol, s2c bool, inflight int) func(worker, i int) error {
	e := newRaw(b)
	e.connect(b, 1, p)
	c := e.clients[0]
	c.gated.Store(inflight > 1)
	var op func(worker, i int) error
	if !s2c {
		op = func(_, i int) error {
			r := c.invoke("Echo", ping(i))
			if r.Error != nil {
				return r.Error
			}
			return nil
		}
	} else {
		to := e.srv.HubClients().Client(e.st.connIDs[0])
		e.st.replies = make([]chan struct{}, inflight)
		for i := range e.st.replies {
			e.st.replies[i] = make(chan struct{}, 1)
		}
		op = func(w, i int) error {
			to.Send("Req", w, ping(i))
			t := time.NewTimer(waitTimeout)
			defer t.Stop()
			select {
			case <-e.st.replies[w]:
				return nil
			case <-t.C:
				return errors.New("timed out waiting for an answer")
			}
		}
	}
	return op
}

func benchRequestWS(b *testing.B, s2c bool, inflight int) {
	from := wsEchoPair(b, s2c)
	ctx := context.Background()
	run := func(n int) error {
		if inflight == 1 {
			for range n {
				if err := from.Write(ctx, websocket.MessageText, wsMessage); err != nil {
					return err
				}
				if _, _, err := from.Read(ctx); err != nil {
					return err
				}
			}
			return nil
		}
		// A writer keeps inflight messages outstanding; this goroutine
		// reads the echoes.
		slots := make(chan struct{}, inflight)
		werr := make(chan error, 1)
		go func() {
			for range n {
				slots <- struct{}{}
				if err := from.Write(ctx, websocket.MessageText, wsMessage); err != nil {
					werr <- err
					return
				}
			}
			werr <- nil
		}()
		for range n {
			if _, _, err := from.Read(ctx); err != nil {
				return err
			}
			<-slots
		}
		return <-werr
	}
	if err := run(warmup); err != nil {
		b.Fatal(err)
	}

	b.ReportAllocs()
	b.ResetTimer()
	if err := run(b.N); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	report(b, b.N)
}

// wsEchoPair connects one raw WebSocket whose other end echoes every
// message, and returns the end that sends: the client's, or the server's
// when s2c.
func wsEchoPair(b *testing.B, s2c bool) *websocket.Conn {
	e := newWS(b)
	e.connect(b, 1)
	from, echo := e.clients[0], e.servers[0]
	if s2c {
		from, echo = echo, from
	}
	go func() {
		ctx := context.Background()
		for {
			typ, data, err := echo.Read(ctx)
			if err != nil {
				return
			}
			if err := echo.Write(ctx, typ, data); err != nil {
				return
			}
		}
	}()
	return from
}
