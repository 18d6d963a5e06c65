package redis_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	communication "github.com/tharga/communication-go"
	"github.com/tharga/communication-go/backplanetest"
	"github.com/tharga/communication-go/redis"
	"github.com/tharga/communication-go/redis/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type (
	Note     struct{ Text string }
	Echo     struct{ N int }
	EchoBack struct{ N int }
	Hang     struct{}
	HangBack struct{}
)

// node is one Server of a test cluster, with its own Redis client and
// listener, so that a test can cut either.
type node struct {
	*communication.Server
	rdb  *goredis.Client
	http *httptest.Server
	name string
}

type fleetClient struct {
	*communication.Client
	node  int
	notes chan Note
	hang  chan struct{}
}

// testLogger logs to the test output when COMM_LOG is set.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("COMM_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// linkMode is how a test's nodes send to one other node: through Redis,
// or on direct links (WithDirect).
type linkMode []redis.BackplaneOption

var (
	viaRedis  linkMode
	viaDirect = linkMode{redis.WithDirect("127.0.0.1:0", "")}
)

// eachMode runs test with the nodes sending to one another through Redis,
// then on direct links.
func eachMode(t *testing.T, test func(t *testing.T, m linkMode)) {
	t.Run("redis", func(t *testing.T) { test(t, viaRedis) })
	t.Run("direct", func(t *testing.T) { test(t, viaDirect) })
}

func newNode(t *testing.T, addr, name string, m linkMode, opts ...communication.ServerOption) *node {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	bpOpts := append([]redis.BackplaneOption{redis.WithHeartbeat(200 * time.Millisecond), redis.WithNodeTimeout(2 * time.Second), redis.WithLogger(testLogger(t))}, m...)
	bp, err := redis.NewBackplane(rdb, bpOpts...)
	require.NoError(t, err)
	opts = append([]communication.ServerOption{communication.WithBackplane(bp), communication.WithNodeName(name)}, opts...)
	srv, err := communication.AddServer(opts...)
	require.NoError(t, err)
	mux := http.NewServeMux()
	srv.Mount(mux)
	hs := httptest.NewServer(mux)
	n := &node{Server: srv, rdb: rdb, http: hs, name: name}
	t.Cleanup(func() {
		_ = srv.Close()
		hs.CloseClientConnections()
		hs.Close()
		_ = rdb.Close()
	})
	return n
}

// twoNodes starts Redis, nodes a and b on it, and a client c of b that a
// has found.
func twoNodes(t *testing.T, m linkMode) (rs *redistest.Server, a, b *node, c *fleetClient) {
	t.Helper()
	rs = redistest.Start(t)
	a = newNode(t, rs.Addr, "a", m)
	b = newNode(t, rs.Addr, "b", m)
	c = connect(t, b, 1)
	located(t, a, c)
	return rs, a, b, c
}

func connect(t *testing.T, n *node, i int) *fleetClient {
	t.Helper()
	fc := &fleetClient{node: i, notes: make(chan Note, 1000), hang: make(chan struct{}, 10)}
	h := communication.NewHandlers()
	require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[Note](func(_ context.Context, m Note) error {
		fc.notes <- m
		return nil
	})))
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Echo, EchoBack](func(_ context.Context, e Echo) (EchoBack, error) {
		return EchoBack{N: e.N*10 + fc.node}, nil
	})))
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Hang, HangBack](func(ctx context.Context, _ Hang) (HangBack, error) {
		fc.hang <- struct{}{}
		<-ctx.Done()
		return HangBack{}, ctx.Err()
	})))
	c, err := communication.AddClient(communication.WithServerAddress(n.http.URL), communication.WithHandlers(h),
		communication.WithClientInstance(uuid.NewString()), communication.WithReconnectDelays(0, 50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	fc.Client = c
	return fc
}

func recv(t *testing.T, ch chan Note, what string) Note {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s", what)
		return Note{}
	}
}

// located waits until a post to the client through n finds it: the
// connection is claimed once the handshake is read, a moment after Start
// returns on the client.
func located(t *testing.T, n *node, c *fleetClient) {
	t.Helper()
	require.Eventually(t, func() bool {
		return n.Post(context.Background(), c.ConnectionID(), Note{Text: "ping"}) == nil
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, "ping", recv(t, c.notes, "located ping").Text)
}

// TestRedisCluster runs the cross-node suite on Redis, each node with a
// Redis client and Backplane of its own, with and without direct links.
func TestRedisCluster(t *testing.T) {
	eachMode(t, func(t *testing.T, m linkMode) {
		rs := redistest.Start(t)
		backplanetest.Run(t, func(t *testing.T, _ string) communication.Backplane {
			rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
			t.Cleanup(func() { _ = rdb.Close() })
			bp, err := redis.NewBackplane(rdb, append(linkMode{redis.WithLogger(testLogger(t))}, m...)...)
			require.NoError(t, err)
			return bp
		})
	})
}

// hangOn sends from a request to c that its handler never answers, and
// returns once the handler has it; the request's outcome comes on the
// channel.
func hangOn(t *testing.T, from *node, c *fleetClient) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := communication.Send[HangBack](ctxT(t, time.Minute), from.To(c.ConnectionID()), Hang{})
		done <- err
	}()
	<-c.hang
	return done
}

// requireLost waits for a request to fail with ErrConnectionLost, long
// before its own deadline.
func requireLost(t *testing.T, done <-chan error, why string) {
	t.Helper()
	select {
	case err := <-done:
		require.ErrorIs(t, err, communication.ErrConnectionLost)
	case <-time.After(20 * time.Second):
		t.Fatal(why)
	}
}

// TestRedisNodeDies: a request pending on a node that dies (it stops
// answering and stops renewing its liveness) fails within the node
// timeout, and the dead node's connections are forgotten.
func TestRedisNodeDies(t *testing.T) {
	eachMode(t, func(t *testing.T, m linkMode) {
		_, a, b, c := twoNodes(t, m)

		done := hangOn(t, a, c)
		// b dies: its link to Redis and its clients' connections are cut at
		// once, with no goodbye.
		require.NoError(t, b.rdb.Close())
		b.http.CloseClientConnections()
		requireLost(t, done, "the request outlived its node by far more than the node timeout")
		_, err := communication.Send[EchoBack](ctxT(t, 5*time.Second), a.To(c.ConnectionID()), Echo{})
		require.ErrorIs(t, err, communication.ErrNotConnected, "the dead node's connections are forgotten")
	})
}

// TestRedisRestart: Redis killed and started again, empty: requests in
// flight between nodes fail, and once the link is back the nodes claim
// their connections again and traffic crosses nodes as before.
func TestRedisRestart(t *testing.T) {
	eachMode(t, func(t *testing.T, m linkMode) {
		rs, a, _, c := twoNodes(t, m)

		done := hangOn(t, a, c)
		rs.Kill()
		requireLost(t, done, "a request in flight outlived the link")
		rs.Restart()
		located(t, a, c)
		got, err := communication.Send[EchoBack](ctxT(t, 10*time.Second), a.To(c.ConnectionID()), Echo{N: 5})
		require.NoError(t, err)
		require.Equal(t, 51, got.N)
		require.NoError(t, a.PostAll(ctxT(t, 5*time.Second), Note{Text: "after restart"}))
		require.Equal(t, "after restart", recv(t, c.notes, "broadcast after restart").Text)
	})
}

// TestRedisSubscriptions: a subscriber on one node makes the clients of
// another see HasSubscribers, through Redis.
func TestRedisSubscriptions(t *testing.T) {
	eachMode(t, func(t *testing.T, m linkMode) {
		rs := redistest.Start(t)
		a := newNode(t, rs.Addr, "a", m)
		b := newNode(t, rs.Addr, "b", m)
		changes := make(chan communication.SubscriptionChange, 100)
		c, err := communication.AddClient(communication.WithServerAddress(b.http.URL),
			communication.WithSubscriptionHandler(func(ch communication.SubscriptionChange) { changes <- ch }))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
		next := func() communication.SubscriptionChange {
			select {
			case ch := <-changes:
				return ch
			case <-time.After(10 * time.Second):
				t.Fatal("no subscription change")
				return communication.SubscriptionChange{}
			}
		}
		sub, err := communication.Subscribe[Note](ctxT(t, time.Minute), a.Server, "k")
		require.NoError(t, err)
		got := next()
		require.True(t, got.HasSubscribers)
		require.Equal(t, "k", got.Key)
		require.True(t, communication.HasSubscribers[Note](c, "k"))
		require.NoError(t, sub.Close())
		require.False(t, next().HasSubscribers)
	})
}

// TestRedisClientRecords: with the Redis repository every node lists every
// client; the clients of a node that dies are marked disconnected once
// across the cluster (one disconnect event each); after Redis is killed
// and started again empty, the nodes store the records of their live
// clients again.
func TestRedisClientRecords(t *testing.T) {
	rs := redistest.Start(t)
	stateFor := func(rdb *goredis.Client, disconnects *atomic.Int64) communication.ServerOption {
		state, err := communication.NewClientState[struct{}](
			communication.WithRepository[struct{}](redis.NewRepository[struct{}](rdb, redis.WithRepositoryPrefix("records"))),
			communication.WithDisconnectHandler(func(context.Context, communication.ClientEntry[struct{}]) { disconnects.Add(1) }),
		)
		require.NoError(t, err)
		return communication.WithClientState(state)
	}
	var disconnectsA, disconnectsB atomic.Int64
	// Each node gets its own Redis client for its records, so that one
	// node's death does not close the other's.
	recA := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	recB := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	t.Cleanup(func() { _ = recA.Close(); _ = recB.Close() })
	a := newNode(t, rs.Addr, "a", viaRedis, stateFor(recA, &disconnectsA))
	b := newNode(t, rs.Addr, "b", viaDirect, stateFor(recB, &disconnectsB))
	onA := connect(t, a, 0)
	onB := connect(t, b, 1)
	located(t, a, onB)
	located(t, b, onA)

	ctx := ctxT(t, time.Minute)
	all, err := a.Clients(ctx)
	require.NoError(t, err)
	require.Len(t, all, 2, "node a lists the clients of both nodes")

	// Redis restarts empty: the records come back from the nodes.
	rs.Kill()
	rs.Restart()
	require.Eventually(t, func() bool {
		all, err := b.Clients(ctx)
		if err != nil || len(all) != 2 {
			return false
		}
		for _, r := range all {
			if !r.IsConnected {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "the records were not stored again")

	// b dies without a word (it is cut off from Redis and says nothing
	// more; its client stays connected to the zombie): its client is
	// marked disconnected by the survivor, once.
	require.NoError(t, b.rdb.Close())
	require.NoError(t, recB.Close())
	require.Eventually(t, func() bool {
		r, ok, err := a.Client(ctx, onB.ConnectionID())
		return err == nil && ok && !r.IsConnected && !r.DisconnectTime.IsZero()
	}, 20*time.Second, 20*time.Millisecond, "the dead node's client is still marked connected")
	r, ok, err := a.Client(ctx, onA.ConnectionID())
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, r.IsConnected)
	require.Equal(t, int64(1), disconnectsA.Load(), "one disconnect event, on the survivor")
	require.Zero(t, disconnectsB.Load())
}
