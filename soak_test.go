package communication_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

type SoakPost struct {
	From string
	N    int
}

// soakSettings reads SOAK_CLIENTS and SOAK_DURATION; make test runs the
// short default, make soak the long one.
func soakSettings(t *testing.T) (clients int, d time.Duration) {
	clients, d = 40, 3*time.Second
	if v := os.Getenv("SOAK_CLIENTS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		clients = n
	}
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		x, err := time.ParseDuration(v)
		require.NoError(t, err)
		d = x
	}
	return clients, d
}

// TestSoak runs clients that post and request in both directions, with
// connection churn, for a while. Every post is counted exactly (none lost
// while connected, none duplicated, in order); every request is answered,
// since a session ends its connection only once its requests are over and
// nothing else cuts one; and goroutines and heap return to baseline.
func TestSoak(t *testing.T) {
	clients, duration := soakSettings(t)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var mu sync.Mutex
	serverSeen := map[string]int{}           // client instance -> posts received, in order
	serverDone := map[string]chan struct{}{} // closed when all arrived
	var orderErrs atomic.Int64
	ts := newServer(t, communication.WithMaxRequestsPerConnection(16))
	require.NoError(t, communication.HandlePost(ts.Handlers(), communication.PostHandlerFunc[SoakPost](func(ctx context.Context, p SoakPost) error {
		mu.Lock()
		defer mu.Unlock()
		if serverSeen[p.From] != p.N {
			orderErrs.Add(1)
		}
		serverSeen[p.From] = p.N + 1
		if p.N+1 == soakRounds {
			close(serverDone[p.From])
		}
		return nil
	})))
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Echo, EchoBack](func(ctx context.Context, e Echo) (EchoBack, error) {
		return EchoBack(e), nil
	})))

	deadline := time.Now().Add(duration)
	var requests, answered, posts atomic.Int64
	var failures soakFailures
	var wg sync.WaitGroup
	errs := make(chan error, clients*4)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for session := 0; time.Now().Before(deadline); session++ {
				if err := soakSession(ts, w, &mu, serverSeen, serverDone, &requests, &answered, &failures, &posts); err != nil {
					errs <- fmt.Errorf("client %d session %d: %w", w, session, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Zero(t, orderErrs.Load(), "posts out of order or duplicated")
	require.Zero(t, failures.n.Load(), "requests failed while nothing cut their connection; the first: %v", failures.first())
	require.Equal(t, requests.Load(), answered.Load(), "a request neither answered nor failed")
	t.Logf("soak: %d clients, %v: %d posts, %d requests", clients, duration, posts.Load(), requests.Load())

	require.Eventually(t, func() bool { return len(ts.ConnectionIDs()) == 0 }, 30*time.Second, 10*time.Millisecond)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	require.Less(t, int64(after.HeapInuse)-int64(before.HeapInuse), int64(64<<20), "heap did not come back")
}

// soakSession connects one client, exchanges messages both ways, checks
// that every post arrived, and disconnects (the churn).
func soakSession(ts *testServer, w int, mu *sync.Mutex, serverSeen map[string]int, serverDone map[string]chan struct{},
	requests, answered *atomic.Int64, failures *soakFailures, posts *atomic.Int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	instance := uuid.NewString()
	fromServer := make(chan struct{})
	toServer := make(chan struct{})
	mu.Lock()
	serverDone[instance] = toServer
	mu.Unlock()
	var clientSeen atomic.Int64
	var clientOrder atomic.Int64
	c, err := communication.AddClient(communication.WithServerAddress(ts.URL), communication.WithClientInstance(instance),
		communication.WithReconnectDelays(10*time.Millisecond))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := communication.HandlePost(c.Handlers(), communication.PostHandlerFunc[SoakPost](func(ctx context.Context, p SoakPost) error {
		if int64(p.N) != clientSeen.Load() {
			clientOrder.Add(1)
		}
		clientSeen.Store(int64(p.N) + 1)
		if p.N+1 == soakRounds {
			close(fromServer)
		}
		return nil
	})); err != nil {
		return err
	}
	if err := communication.HandleSend(c.Handlers(), communication.SendHandlerFunc[Echo, EchoBack](func(ctx context.Context, e Echo) (EchoBack, error) {
		return EchoBack(e), nil
	})); err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	id := c.ConnectionID()
	const rounds = soakRounds
	var inner sync.WaitGroup
	for i := range rounds {
		if err := c.Post(ctx, SoakPost{From: instance, N: i}); err != nil {
			return err
		}
		posts.Add(1)
		if err := ts.Post(ctx, id, SoakPost{From: "server", N: i}); err != nil {
			return err
		}
		posts.Add(1)
		inner.Add(2)
		for _, to := range []communication.Endpoint{c, ts.To(id)} {
			go func() {
				defer inner.Done()
				requests.Add(1)
				back, err := communication.Send[EchoBack](ctx, to, Echo{N: w*1000 + i})
				switch {
				case err == nil && back.N == w*1000+i:
					answered.Add(1)
				case err == nil:
					failures.add(fmt.Errorf("request %d answered with %d", w*1000+i, back.N))
				default:
					failures.add(err)
				}
			}()
		}
	}
	inner.Wait()
	// Every post of this session arrived, once, in order.
	for _, done := range []chan struct{}{toServer, fromServer} {
		select {
		case <-done:
		case <-ctx.Done():
			mu.Lock()
			got := serverSeen[instance]
			mu.Unlock()
			return fmt.Errorf("posts lost: server got %d, client got %d of %d", got, clientSeen.Load(), rounds)
		}
	}
	if clientOrder.Load() != 0 {
		return errors.New("server posts out of order")
	}
	mu.Lock()
	delete(serverSeen, instance)
	delete(serverDone, instance)
	mu.Unlock()
	return nil
}

// soakFailures counts the requests that failed, and keeps the first
// error.
type soakFailures struct {
	n        atomic.Int64
	mu       sync.Mutex
	firstErr error
}

func (f *soakFailures) add(err error) {
	if f.n.Add(1) == 1 {
		f.mu.Lock()
		f.firstErr = err
		f.mu.Unlock()
	}
}

func (f *soakFailures) first() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.firstErr
}

// soakRounds is how many posts each way, and requests each way, one session
// makes.
const soakRounds = 20
