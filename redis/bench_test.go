package redis_test

// Benchmarks of what crossing nodes through Redis costs, each beside the
// same operation on one node, in the same run, over real loopback HTTP
// servers and a real redis-server (started by redistest; without it they
// are skipped). They are named as in ../bench,
// Benchmark<Operation>/.../<protocol>/<impl>, with impl
//
//   - ours: one Server without a Backplane, the sender and the clients on
//     it (what ../bench measures as ours);
//   - redis: Servers joined by a Backplane over Redis, the sender on one
//     node and the clients on others;
//   - direct: the same with WithDirect: what one node sends another goes
//     on a TCP link between them (broadcasts still cross Redis).
//
// They report msgs/s (round trips per second for requests, deliveries per
// second for broadcasts); allocations are those of the whole process, all
// nodes and clients together. ../bench/cmd/benchtable runs them (make
// bench) and prints each redis row beside its ours row with the ratio.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	communication "github.com/tharga/communication-go"
	"github.com/tharga/communication-go/internal/testutil"
	"github.com/tharga/communication-go/redis"
	"github.com/tharga/communication-go/redis/internal/redistest"
)

// The messages: each encodes to about 100 bytes of JSON, as in ../bench.
type (
	BenchNote struct {
		Seq  int
		Text string
	}
	BenchPing struct {
		Seq  int
		Text string
	}
	BenchPong struct {
		Seq  int
		Text string
	}
)

const (
	benchText = "the quick brown fox jumps over the lazy dog, again and again, 0123456789"
	// benchWarmup messages go through before the timer starts.
	benchWarmup = 100
	// benchWait bounds every wait: a stuck benchmark fails instead of
	// hanging.
	benchWait = 60 * time.Second
	// benchFleet is the clients a broadcast reaches: on one node, or
	// spread evenly over benchFleetNodes nodes.
	benchFleet      = 3000
	benchFleetNodes = 3
)

// BenchmarkClusterPost measures posts from a Server to one client: the
// time from the first post until the last one has reached the client's
// handler. ours posts to a client of the same Server; redis posts from
// one node to a client of another (Server.Post locates the connection in
// Redis and publishes the message to its node).
func BenchmarkClusterPost(b *testing.B) {
	single, cross, direct := newBenchPair(b)
	b.Run("server-to-client/json/ours", func(b *testing.B) { benchPost(b, single) })
	b.Run("server-to-client/json/redis", func(b *testing.B) { benchPost(b, cross) })
	b.Run("server-to-client/json/direct", func(b *testing.B) { benchPost(b, direct) })
}

// BenchmarkClusterRequest measures request-response round trips from a
// Server to one client with 64 in flight (as many goroutines, each sending
// its next request once its answer is in): communication.Send to
// Server.To(id), a SendHandler echoing on the client. For redis the node
// holding the connection runs the request and publishes the answer back.
func BenchmarkClusterRequest(b *testing.B) {
	single, cross, direct := newBenchPair(b)
	b.Run("server-to-client/inflight=64/json/ours", func(b *testing.B) { benchRequest(b, single, 64) })
	b.Run("server-to-client/inflight=64/json/redis", func(b *testing.B) { benchRequest(b, cross, 64) })
	b.Run("server-to-client/inflight=64/json/direct", func(b *testing.B) { benchRequest(b, direct, 64) })
}

// BenchmarkClusterBroadcast measures Server.PostAll to benchFleet clients:
// one op is one broadcast and the wait until every client has received it
// (msgs/s counts deliveries; allocs/op and B/op are per broadcast). ours
// has every client on one Server; redis has them spread over
// benchFleetNodes nodes, the broadcast published once to the others.
func BenchmarkClusterBroadcast(b *testing.B) {
	rs := redistest.Start(b)
	name := fmt.Sprintf("clients=%d/json/", benchFleet)
	b.Run(name+"ours", func(b *testing.B) { benchBroadcast(b, "", 1) })
	b.Run(name+"redis", func(b *testing.B) { benchBroadcast(b, rs.Addr, benchFleetNodes) })
}

// benchTarget is a sender and the connection id of the client it posts to
// and asks.
type benchTarget struct {
	from *communication.Server
	to   string
	got  *testutil.Counter
}

// newBenchPair starts, for the life of b, one Server with one client, and
// twice two nodes over Redis (without and with direct links) with one
// client on the second; the sender of each pair is its first node. They
// serve every run of b's sub-benchmarks.
func newBenchPair(b *testing.B) (single, cross, direct benchTarget) {
	rs := redistest.Start(b)
	one := newBenchCluster(b, "", 1)
	one.connect(b, 0, 1)
	single = benchTarget{from: one.nodes[0].srv, to: one.nodes[0].clients[0].ConnectionID(), got: &one.got}
	pair := func(opts ...redis.BackplaneOption) benchTarget {
		two := newBenchCluster(b, rs.Addr, 2, opts...)
		two.connect(b, 1, 1)
		t := benchTarget{from: two.nodes[0].srv, to: two.nodes[1].clients[0].ConnectionID(), got: &two.got}
		// The second node claims the connection in Redis a moment after
		// the client's Start returns: wait until the first node finds it.
		deadline := time.Now().Add(benchWait)
		for {
			_, err := communication.Send[BenchPong](context.Background(), t.from.To(t.to), benchPing(0))
			if err == nil {
				return t
			}
			if !errors.Is(err, communication.ErrNotConnected) || time.Now().After(deadline) {
				b.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return single, pair(redis.WithPrefix("bench-redis")), pair(redis.WithPrefix("bench-direct"), redis.WithDirect("127.0.0.1:0", ""))
}

func benchPost(b *testing.B, t benchTarget) {
	ctx := context.Background()
	start := t.got.Load()
	for i := range benchWarmup {
		if err := t.from.Post(ctx, t.to, benchNote(i)); err != nil {
			b.Fatal(err)
		}
	}
	t.got.WaitFor(b, start+benchWarmup, benchWait)

	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := t.from.Post(ctx, t.to, benchNote(i)); err != nil {
			b.Fatal(err)
		}
	}
	t.got.WaitFor(b, start+benchWarmup+int64(b.N), benchWait)
	b.StopTimer()
	benchReport(b, b.N)
}

func benchRequest(b *testing.B, t benchTarget, inflight int) {
	ctx := context.Background()
	to := t.from.To(t.to)
	op := func(_, i int) error {
		pong, err := communication.Send[BenchPong](ctx, to, benchPing(i))
		if err == nil && pong.Seq != i {
			err = fmt.Errorf("answer %d to request %d", pong.Seq, i)
		}
		return err
	}
	if err := testutil.Parallel(benchWarmup, inflight, op); err != nil {
		b.Fatal(err)
	}

	b.ReportAllocs()
	b.ResetTimer()
	if err := testutil.Parallel(b.N, inflight, op); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	benchReport(b, b.N)
}

func benchBroadcast(b *testing.B, redisAddr string, nodes int) {
	benchSettle()
	c := newBenchCluster(b, redisAddr, nodes)
	for i := range nodes {
		c.connect(b, i, benchFleet/nodes)
	}
	// Let connection set-up finish (handshake answers, claims in Redis).
	time.Sleep(500 * time.Millisecond)
	from := c.nodes[0].srv
	ctx := context.Background()
	// A few broadcasts before the timer starts: the first write on each
	// connection costs more than the others (buffers, type names).
	round := 0
	for range 3 {
		round++
		if err := from.PostAll(ctx, benchNote(round)); err != nil {
			b.Fatal(err)
		}
		c.got.WaitFor(b, int64(round*benchFleet), benchWait)
	}

	b.ReportAllocs()
	start, done := c.got.Load(), 0
	for b.Loop() {
		round++
		done++
		if err := from.PostAll(ctx, benchNote(round)); err != nil {
			b.Fatal(err)
		}
		c.got.WaitFor(b, start+int64(done*benchFleet), benchWait)
	}
	benchReport(b, done*benchFleet)
}

// benchCluster is Servers on loopback httptest servers, joined by a
// Backplane over Redis when there is a Redis address, and their clients.
// Every client counts the BenchNotes it receives and echoes a BenchPing
// with a BenchPong.
type benchCluster struct {
	nodes []*benchNode
	got   testutil.Counter
}

type benchNode struct {
	srv     *communication.Server
	hs      *httptest.Server
	rdb     *goredis.Client
	clients []*communication.Client
}

// newBenchCluster starts the nodes; they stop when tb ends. Each node has
// its own Redis client, as separate processes would, with go-redis's and
// the Backplane's defaults but opts.
func newBenchCluster(tb testing.TB, redisAddr string, nodes int, opts ...redis.BackplaneOption) *benchCluster {
	tb.Helper()
	c := &benchCluster{}
	tb.Cleanup(c.close)
	for range nodes {
		n := &benchNode{}
		var sopts []communication.ServerOption
		if redisAddr != "" {
			n.rdb = goredis.NewClient(&goredis.Options{Addr: redisAddr})
			bp, err := redis.NewBackplane(n.rdb, opts...)
			if err != nil {
				tb.Fatal(err)
			}
			sopts = append(sopts, communication.WithBackplane(bp))
		}
		srv, err := communication.AddServer(sopts...)
		if err != nil {
			if n.rdb != nil {
				_ = n.rdb.Close()
			}
			tb.Fatal(err)
		}
		n.srv = srv
		mux := http.NewServeMux()
		srv.Mount(mux)
		n.hs = httptest.NewServer(mux)
		c.nodes = append(c.nodes, n)
	}
	return c
}

// connect starts n clients on node i, at most 32 connecting at a time, and
// waits until the node lists them all.
func (c *benchCluster) connect(tb testing.TB, i, n int) {
	tb.Helper()
	node := c.nodes[i]
	clients := make([]*communication.Client, n)
	for k := range clients {
		cl, err := communication.AddClient(communication.WithServerAddress(node.hs.URL))
		if err != nil {
			tb.Fatal(err)
		}
		h := cl.Handlers()
		err = errors.Join(
			communication.HandlePost(h, communication.PostHandlerFunc[BenchNote](func(context.Context, BenchNote) error {
				c.got.Add()
				return nil
			})),
			communication.HandleSend(h, communication.SendHandlerFunc[BenchPing, BenchPong](func(_ context.Context, p BenchPing) (BenchPong, error) {
				return BenchPong(p), nil
			})),
		)
		if err != nil {
			tb.Fatal(err)
		}
		clients[k] = cl
	}
	node.clients = append(node.clients, clients...)
	err := testutil.Parallel(n, 32, func(_, k int) error {
		ctx, cancel := context.WithTimeout(context.Background(), benchWait)
		defer cancel()
		return clients[k-1].Start(ctx)
	})
	if err != nil {
		tb.Fatal(err)
	}
	want := len(node.clients)
	deadline := time.Now().Add(benchWait)
	for len(node.srv.ConnectionIDs()) < want {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out: %d of %d clients connected", len(node.srv.ConnectionIDs()), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// close stops the clients, then the nodes.
func (c *benchCluster) close() {
	for _, n := range c.nodes {
		cs := n.clients
		_ = testutil.Parallel(len(cs), 32, func(_, k int) error { return cs[k-1].Close() })
	}
	for _, n := range c.nodes {
		_ = n.srv.Close()
		n.hs.CloseClientConnections()
		n.hs.Close()
		if n.rdb != nil {
			_ = n.rdb.Close()
		}
	}
}

// benchReport adds the msgs/s metric: n operations over the benchmark's
// time.
func benchReport(b *testing.B, n int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(n)/s, "msgs/s")
	}
}

// benchSettle waits (up to 15 s) until the number of goroutines stops
// falling, so that what an earlier benchmark left behind does not end
// inside a measurement.
func benchSettle() {
	deadline := time.Now().Add(15 * time.Second)
	last, same := runtime.NumGoroutine(), 0
	for time.Now().Before(deadline) && same < 5 {
		time.Sleep(50 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n < last {
			last, same = n, 0
		} else {
			same++
		}
	}
}

func benchNote(i int) BenchNote { return BenchNote{Seq: i, Text: benchText} }
func benchPing(i int) BenchPing { return BenchPing{Seq: i, Text: benchText} }
