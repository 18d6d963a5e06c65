package communication_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// TestConnectsOfDifferentClientsRunInParallel holds every build until all
// of them have started: if connects of different clients were serialised,
// the first build would wait for the others forever, and the barrier
// below gives up.
func TestConnectsOfDifferentClientsRunInParallel(t *testing.T) {
	t.Parallel()
	const n = 10
	barrier := ctxT(t, 10*time.Second)
	var mu sync.Mutex
	entered := 0
	all := make(chan struct{})
	state := newState[string](t,
		communication.WithBuild(func(ctx context.Context, rec communication.ClientRecord, prev *communication.ClientEntry[string]) (string, error) {
			mu.Lock()
			entered++
			if entered == n {
				close(all)
			}
			mu.Unlock()
			select {
			case <-all:
				return "built " + rec.Instance, nil
			case <-barrier.Done():
				return "", errors.New("not every build ran at once")
			}
		}))
	ts := newServer(t, communication.WithClientState(state))

	clients := make([]*communication.Client, n)
	for i := range clients {
		clients[i] = newClient(t, ts, communication.WithClientInstance(uuid.NewString()))
	}
	ctx := ctxT(t, 20*time.Second)
	errs := make(chan error, n)
	for _, c := range clients {
		go func() { errs <- c.Start(ctx) }()
	}
	select {
	case <-all:
	case <-barrier.Done():
		mu.Lock()
		got := entered
		mu.Unlock()
		// Let the starts end before failing, so nothing outlives the test.
		for range n {
			<-errs
		}
		t.Fatalf("only %d of %d builds ran at once: connects of different clients are serialised", got, n)
	}
	for range n {
		require.NoError(t, <-errs)
	}
	for _, c := range clients {
		waitConnected(t, ts, c.ConnectionID())
		e, ok, err := state.GetByConnectionID(ctx, c.ConnectionID())
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "built "+c.Instance(), e.Data)
	}
}

// TestSendFromConnectHandler asks the new client something from the
// connect event: the event runs beside the connection, which is already
// serving, so the answer arrives.
func TestSendFromConnectHandler(t *testing.T) {
	t.Parallel()
	var srv atomic.Pointer[communication.Server]
	got := make(chan error, 1)
	state := newState[struct{}](t,
		communication.WithConnectHandler(func(ctx context.Context, c communication.ClientEntry[struct{}]) {
			pong, err := communication.Send[Pong](ctx, srv.Load().To(c.ConnectionID), Ping{Message: "welcome " + c.Machine})
			if err == nil && pong.Reply != "welcome m1" {
				err = fmt.Errorf("wrong answer %q", pong.Reply)
			}
			got <- err
		}))
	ts := newServer(t, communication.WithClientState(state))
	srv.Store(ts.Server)
	c := newClient(t, ts, communication.WithClientMachine("m1"))
	require.NoError(t, communication.HandleSend(c.Handlers(), communication.SendHandlerFunc[Ping, Pong](func(ctx context.Context, p Ping) (Pong, error) {
		return Pong{Reply: p.Message}, nil
	})))
	ctx := ctxT(t, 20*time.Second)
	require.NoError(t, c.Start(ctx))
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("the connect event never ended")
	}
}

// TestEventsOfOneClientAreOrdered runs connect/close cycles of several
// clients that share one instance, so that reconnects race the ends of
// older connections. The events of that one key must come one at a time,
// in the order of the transitions, and each connection's connect before
// its disconnect.
func TestEventsOfOneClientAreOrdered(t *testing.T) {
	t.Parallel()
	const workers, cycles = 4, 10
	const total = workers * cycles
	type event struct {
		connect  bool
		conn     string
		connects int
	}
	events := make(chan event, 2*total)
	var inside atomic.Int32
	overlaps := atomic.Int32{}
	record := func(connect bool, c communication.ClientEntry[agentData]) {
		if inside.Add(1) != 1 {
			overlaps.Add(1)
		}
		// Give another event of the key every chance to run now.
		for range 100 {
			runtime.Gosched()
		}
		events <- event{connect: connect, conn: c.ConnectionID, connects: c.Data.Connects}
		inside.Add(-1)
	}
	state := newState[agentData](t,
		communication.WithBuild(func(ctx context.Context, rec communication.ClientRecord, prev *communication.ClientEntry[agentData]) (agentData, error) {
			var d agentData
			if prev != nil {
				d = prev.Data
			}
			d.Connects++
			return d, nil
		}),
		communication.WithBuildDisconnect(func(ctx context.Context, c communication.ClientEntry[agentData]) (agentData, error) {
			c.Data.Disconnects++
			return c.Data, nil
		}),
		communication.WithConnectHandler(func(ctx context.Context, c communication.ClientEntry[agentData]) { record(true, c) }),
		communication.WithDisconnectHandler(func(ctx context.Context, c communication.ClientEntry[agentData]) { record(false, c) }),
	)
	ts := newServer(t, communication.WithClientState(state))
	instance := uuid.NewString()
	ctx := ctxT(t, time.Minute)

	var wg sync.WaitGroup
	errs := make(chan error, total)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range cycles {
				c, err := communication.AddClient(communication.WithServerAddress(ts.URL), communication.WithClientInstance(instance))
				if err != nil {
					errs <- err
					return
				}
				if err := c.Start(ctx); err != nil {
					errs <- err
				}
				if err := c.Close(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	var seq []event
	for len(seq) < 2*total {
		select {
		case e := <-events:
			seq = append(seq, e)
		case <-ctx.Done():
			t.Fatalf("%d of %d events arrived", len(seq), 2*total)
		}
	}
	require.Zero(t, overlaps.Load(), "events of one client overlapped")

	connected := map[string]int{} // connection -> index of its connect event
	ended := map[string]bool{}
	lastConnects := 0
	for i, e := range seq {
		if e.connect {
			_, dup := connected[e.conn]
			require.False(t, dup, "two connect events for %s", e.conn)
			connected[e.conn] = i
			// Builds count the connects in the order they were stored:
			// connect events must come in that order.
			require.Equal(t, lastConnects+1, e.connects, "connect event %d out of order", i)
			lastConnects = e.connects
			continue
		}
		_, ok := connected[e.conn]
		require.True(t, ok, "disconnect of %s before its connect", e.conn)
		require.False(t, ended[e.conn], "two disconnect events for %s", e.conn)
		ended[e.conn] = true
		require.GreaterOrEqual(t, e.connects, lastConnects, "disconnect event %d reports an older record", i)
	}
	require.Len(t, connected, total)
	require.Len(t, ended, total)

	c, ok, err := state.GetByInstance(ctx, instance)
	require.NoError(t, err)
	require.True(t, ok)
	require.False(t, c.IsConnected)
	require.Equal(t, total, c.Data.Connects, "a connect was lost")
}

// slowPruneRepository holds the first GetAll after arm until release.
type slowPruneRepository struct {
	*communication.MemoryRepository[struct{}]
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (r *slowPruneRepository) GetAll(ctx context.Context) ([]communication.ClientEntry[struct{}], error) {
	if r.armed.CompareAndSwap(true, false) {
		close(r.entered)
		select {
		case <-r.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return r.MemoryRepository.GetAll(ctx)
}

// TestPruneDoesNotHoldUpConnects keeps a prune (a GetAll over the
// repository) from finishing: clients must still connect and be recorded
// meanwhile.
func TestPruneDoesNotHoldUpConnects(t *testing.T) {
	t.Parallel()
	repo := &slowPruneRepository{
		MemoryRepository: communication.NewMemoryRepository[struct{}](),
		entered:          make(chan struct{}),
		release:          make(chan struct{}),
	}
	state := newState[struct{}](t,
		communication.WithRepository[struct{}](repo),
		communication.WithRetention(time.Hour))
	ts := newServer(t, communication.WithClientState(state))
	ctx := ctxT(t, 20*time.Second)

	first := startClient(t, ts, communication.WithClientInstance(uuid.NewString()))
	repo.armed.Store(true)
	require.NoError(t, first.Close()) // its disconnect prunes
	select {
	case <-repo.entered:
	case <-ctx.Done():
		t.Fatal("the disconnect did not prune")
	}

	// The prune is stuck in GetAll; connects and disconnects go on.
	for range 3 {
		c := startClient(t, ts, communication.WithClientInstance(uuid.NewString()))
		rec, ok, err := ts.Client(ctx, c.ConnectionID())
		require.NoError(t, err)
		require.True(t, ok)
		require.True(t, rec.IsConnected)
		require.NoError(t, c.Close())
	}
	close(repo.release)
}
