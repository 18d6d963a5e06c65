package bench_test

import (
	"context"
	"testing"

	"github.com/coder/websocket"
)

// warmup is how many messages go through before the timer starts, so that
// first-use costs (type names, buffers) stay out of the measurement.
const warmup = 100

// BenchmarkPost measures fire-and-forget messages on one connection: the
// time from the first post until the last one has reached the receiving
// handler. Allocations are those of the whole process (sender and
// receiver).
//
//   - ours: Client.Post / Server.Post, a PostHandler on the other side.
//   - signalr: the raw client's Send (not waited for, through the gate:
//     see gateConn) to a hub method; the raw server's
//     HubClients().Client(id).Send to a receiver method.
//   - websocket: one raw WebSocket message per post.
func BenchmarkPost(b *testing.B) {
	for _, dir := range []string{"client-to-server", "server-to-client"} {
		s2c := dir == "server-to-client"
		for _, p := range protocols {
			b.Run(dir+"/"+p.name+"/ours", func(b *testing.B) { benchPostOurs(b, p, s2c) })
			b.Run(dir+"/"+p.name+"/signalr", func(b *testing.B) { benchPostRaw(b, p, s2c) })
		}
		b.Run(dir+"/json/websocket", func(b *testing.B) { benchPostWS(b, s2c) })
	}
}

func benchPostOurs(b *testing.B, p protocol, s2c bool) {
	e := newOurs(b)
	e.connect(b, 1, p)
	c := e.clients[0]
	id := c.ConnectionID()
	ctx := context.Background()
	post := func(i int) error {
		if s2c {
			return e.srv.Post(ctx, id, note(i))
		}
		return c.Post(ctx, note(i))
	}
	for i := range warmup {
		if err := post(i); err != nil {
			b.Fatal(err)
		}
	}
	e.got.WaitFor(b, warmup, waitTimeout)

	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := post(i); err != nil {
			b.Fatal(err)
		}
	}
	e.got.WaitFor(b, int64(warmup+b.N), waitTimeout)
	b.StopTimer()
	report(b, b.N)
}

func benchPostRaw(b *testing.B, p protocol, s2c bool) {
	e := newRaw(b)
	e.connect(b, 1, p)
	c := e.clients[0]
	c.gated.Store(true)
	to := e.srv.HubClients().Client(e.st.connIDs[0])
	post := func(i int) {
		if s2c {
			to.Send("Post", note(i))
		} else {
			c.send("Post", note(i))
		}
	}
	for i := range warmup {
		post(i)
	}
	e.st.got.WaitFor(b, warmup, waitTimeout)

	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		post(i)
	}
	e.st.got.WaitFor(b, int64(warmup+b.N), waitTimeout)
	b.StopTimer()
	report(b, b.N)
}

func benchPostWS(b *testing.B, s2c bool) {
	e := newWS(b)
	e.connect(b, 1)
	from, to := e.clients[0], e.servers[0]
	if s2c {
		from, to = to, from
	}
	var got counter
	go func() {
		for {
			if _, _, err := to.Read(context.Background()); err != nil {
				return
			}
			got.Add()
		}
	}()
	ctx := context.Background()
	post := func() {
		if err := from.Write(ctx, websocket.MessageText, wsMessage); err != nil {
			b.Fatal(err)
		}
	}
	for range warmup {
		post()
	}
	got.WaitFor(b, warmup, waitTimeout)

	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		post()
	}
	got.WaitFor(b, int64(warmup+b.N), waitTimeout)
	b.StopTimer()
	report(b, b.N)
}
