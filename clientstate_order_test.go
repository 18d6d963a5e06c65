package communication_test

import (
	"context"
	"errors"
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
	const n = 10
	barrier := ctxT(t, 10*time.Second)
	var mu sync.Mutex
	entered := 0
	all := make(chan struct{})
	state := communication.NewClientState(
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
	repo := &slowPruneRepository{
		MemoryRepository: communication.NewMemoryRepository[struct{}](),
		entered:          make(chan struct{}),
		release:          make(chan struct{}),
	}
	state := communication.NewClientState(
		communication.WithRepository[struct{}](repo),
		communication.WithRetention[struct{}](time.Hour))
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
