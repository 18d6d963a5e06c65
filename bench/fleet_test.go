package bench_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// fleetSize is how many clients BenchmarkClients connects in one process.
const fleetSize = 1000

// BenchmarkClients connects fleetSize clients to one server in this
// process and measures
//
//   - what each idle connected client costs: heap bytes (live heap after a
//     GC), goroutine stack bytes and goroutines, per client, both ends of
//     the connection together (the client and its connection on the
//     server), as the metrics heap-B/client, stack-B/client and
//     goroutines/client;
//   - a broadcast: one op is one message sent to every client and the wait
//     until all fleetSize have received it (msgs/s counts deliveries;
//     allocs/op and B/op are per broadcast).
//
// ours broadcasts with Server.PostAll, signalr with the raw server's
// HubClients().All().Send, websocket by writing the message to each
// connection in turn, websocket-mux through a writer goroutine per
// connection to a handler goroutine per client (wsMuxFleet). Each raw
// WebSocket has a reading goroutine on both ends, as a real peer would.
func BenchmarkClients(b *testing.B) {
	name := fmt.Sprintf("n=%d/json/", fleetSize)
	p := protocols[0]
	b.Run(name+"ours", func(b *testing.B) {
		fleet(b, func() (func(int), *counter) {
			e := newOurs(b)
			e.connect(b, fleetSize, p)
			ctx := context.Background()
			return func(i int) {
				if err := e.srv.PostAll(ctx, note(i)); err != nil {
					b.Fatal(err)
				}
			}, &e.got
		})
	})
	b.Run(name+"signalr", func(b *testing.B) {
		fleet(b, func() (func(int), *counter) {
			e := newRaw(b)
			e.connect(b, fleetSize, p)
			all := e.srv.HubClients().All()
			return func(i int) { all.Send("Post", note(i)) }, &e.st.got
		})
	})
	b.Run(name+"websocket", func(b *testing.B) {
		fleet(b, func() (func(int), *counter) {
			e := newWS(b)
			e.connect(b, fleetSize)
			got := &counter{}
			ctx := context.Background()
			for _, c := range e.clients {
				go func() {
					for {
						if _, _, err := c.Read(ctx); err != nil {
							return
						}
						got.Add()
					}
				}()
			}
			for _, c := range e.servers {
				go func() {
					for {
						if _, _, err := c.Read(ctx); err != nil {
							return
						}
					}
				}()
			}
			return func(int) {
				for _, c := range e.servers {
					if err := c.Write(ctx, websocket.MessageText, wsMessage); err != nil {
						b.Fatal(err)
					}
				}
			}, got
		})
	})
	b.Run(name+"websocket-mux", func(b *testing.B) {
		fleet(b, func() (func(int), *counter) { return wsMuxFleet(b) })
	})
}

// wsMuxFleet is the floor of a broadcast for a library that, like ours,
// never lets one slow client hold up the others and runs each client's
// messages in a handler of its own (see benchRequestWSMux): raw
// coder/websocket connections, each with a writer goroutine on the
// server that the broadcast hands the message to, and on the client a
// reader that hands each message to a handler goroutine, which counts it.
// No hub protocol, no decoding, no bounds.
func wsMuxFleet(b *testing.B) (func(int), *counter) {
	e := newWS(b)
	e.connect(b, fleetSize)
	got := &counter{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	outs := make([]chan []byte, len(e.servers))
	for i, c := range e.servers {
		out := make(chan []byte, 64)
		outs[i] = out
		wg.Go(func() {
			for {
				select {
				case m := <-out:
					if err := c.Write(ctx, websocket.MessageText, m); err != nil {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		})
		wg.Go(func() {
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		})
	}
	for _, c := range e.clients {
		in := make(chan []byte, 64)
		wg.Go(func() {
			for {
				select {
				case <-in:
					got.Add()
				case <-ctx.Done():
					return
				}
			}
		})
		wg.Go(func() {
			for {
				_, data, err := c.Read(ctx)
				if err != nil {
					return
				}
				select {
				case in <- data:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	return func(int) {
		for _, out := range outs {
			out <- wsMessage
		}
	}, got
}

// fleet runs one BenchmarkClients measurement. build connects the fleet
// (closed as a cleanup of the benchmark) and returns how to broadcast
// message i and the count of deliveries.
func fleet(b *testing.B, build func() (broadcast func(int), delivered *counter)) {
	settle()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()

	broadcast, delivered := build()
	// Let connection set-up finish (handshake answers, first pings).
	time.Sleep(500 * time.Millisecond)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	g1 := runtime.NumGoroutine()

	b.ReportAllocs()
	round := 0
	start := delivered.Load()
	for b.Loop() {
		round++
		broadcast(round)
		delivered.WaitFor(b, start+int64(round*fleetSize), waitTimeout)
	}
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(round*fleetSize)/s, "msgs/s")
	}
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/fleetSize, "heap-B/client")
	b.ReportMetric(float64(int64(after.StackInuse)-int64(before.StackInuse))/fleetSize, "stack-B/client")
	b.ReportMetric(float64(g1-g0)/fleetSize, "goroutines/client")
}
