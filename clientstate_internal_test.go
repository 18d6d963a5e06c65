package communication

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// newState builds a ClientState for a test.
func newState[T any](t *testing.T, opts ...ClientStateOption) *ClientState[T] {
	t.Helper()
	s, err := NewClientState[T](opts...)
	require.NoError(t, err)
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func connectedRecord(instance string) ClientRecord {
	return ClientRecord{Instance: instance, ConnectionID: uuid.NewString(), IsConnected: true, ConnectTime: time.Now().UTC()}
}

func ended(rec ClientRecord) ClientRecord {
	rec.IsConnected = false
	rec.DisconnectTime = time.Now().UTC()
	return rec
}

func (l *keyLocks) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// TestKeyLocksForgetIdleKeys runs many clients through the state at once:
// when everything has settled, no key is left in the map.
func TestKeyLocksForgetIdleKeys(t *testing.T) {
	t.Parallel()
	var events atomic.Int32
	count := func(context.Context, ClientEntry[int]) { events.Add(1) }
	s := newState[int](t, WithConnectHandler(count), WithDisconnectHandler(count))
	ctx := testCtx(t)
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Pairs of connections share an instance, so keys are
			// contended too.
			rec := connectedRecord(fmt.Sprintf("00000000-0000-0000-0000-%012d", i/2))
			s.connect(ctx, rec)
			s.disconnect(ctx, ended(rec))
		}()
	}
	wg.Wait()
	require.NoError(t, s.wait(ctx))
	require.Equal(t, int32(2*n), events.Load())
	require.Zero(t, s.keys.size(), "keys kept after their work ended")
}

// TestWaitCancelsEventsWhenItGivesUp: an event that waits on its context
// ends when a wait gives up; events queued later start uncancelled.
func TestWaitCancelsEventsWhenItGivesUp(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	started := make(chan string, 2)
	s := newState[int](t, WithConnectHandler(func(ectx context.Context, c ClientEntry[int]) {
		started <- c.Instance
		if c.Instance == "first" {
			select {
			case <-ectx.Done():
			case <-ctx.Done():
			}
		}
	}))
	s.connect(ctx, connectedRecord("first"))
	require.Equal(t, "first", <-started)

	gaveUp, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, s.wait(gaveUp), context.Canceled)
	require.NoError(t, s.wait(ctx), "the event did not see its context cancelled")
	require.NoError(t, ctx.Err())

	// A later event is not born cancelled: it ends when it returns.
	var later error
	s.onConnect = func(ectx context.Context, c ClientEntry[int]) { later = ectx.Err() }
	s.connect(ctx, connectedRecord("second"))
	require.NoError(t, s.wait(ctx))
	require.NoError(t, later)
}

// TestEventContextOutlivesTheTransition: the caller's context ends when
// connect returns; the event's must not, and it keeps the caller's values.
func TestEventContextOutlivesTheTransition(t *testing.T) {
	t.Parallel()
	type ctxKey struct{}
	got := make(chan error, 1)
	s := newState[int](t, WithConnectHandler(func(ectx context.Context, c ClientEntry[int]) {
		if v, _ := ectx.Value(ctxKey{}).(string); v != "v" {
			got <- fmt.Errorf("value lost: %q", v)
			return
		}
		_, ok := ectx.Deadline()
		if !ok {
			got <- fmt.Errorf("no deadline")
			return
		}
		got <- ectx.Err()
	}))
	release := make(chan struct{})
	s.build = func(ctx context.Context, rec ClientRecord, prev *ClientEntry[int]) (int, error) { return 1, nil }
	ctx, cancel := context.WithTimeout(context.WithValue(testCtx(t), ctxKey{}, "v"), 10*time.Second)
	// Hold the event back until the transition's context is gone.
	k := s.keys.lock("hold")
	s.keys.queue(k, func(context.Context) { <-release })
	s.keys.unlock(k)
	s.connect(ctx, connectedRecord("hold"))
	cancel()
	close(release)
	require.NoError(t, <-got)
	require.NoError(t, s.wait(testCtx(t)))
}

// TestPanickingEventKeepsTheQueueGoing: a connect event that panics is
// logged, and the disconnect event behind it still runs.
func TestPanickingEventKeepsTheQueueGoing(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	disconnected := make(chan string, 1)
	s := newState[int](t,
		WithConnectHandler(func(context.Context, ClientEntry[int]) { panic("boom") }),
		WithDisconnectHandler(func(_ context.Context, c ClientEntry[int]) { disconnected <- c.ConnectionID }))
	rec := connectedRecord(uuid.NewString())
	s.connect(ctx, rec)
	s.disconnect(ctx, ended(rec))
	require.NoError(t, s.wait(ctx))
	require.Equal(t, rec.ConnectionID, <-disconnected)
}

// staleRepository answers GetAll with a snapshot taken long ago, as if a
// client reconnected between a prune's read and its removals.
type staleRepository struct {
	*MemoryRepository[int]
	snapshot []ClientEntry[int]
}

func (r *staleRepository) GetAll(context.Context) ([]ClientEntry[int], error) {
	return r.snapshot, nil
}

// TestPruneSparesAClientThatReconnected: a prune checks each client again
// under its key before it removes it.
func TestPruneSparesAClientThatReconnected(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	repo := &staleRepository{MemoryRepository: NewMemoryRepository[int]()}
	s := newState[int](t, WithRepository[int](repo), WithRetention(time.Hour))
	back := connectedRecord(uuid.NewString())
	gone := connectedRecord(uuid.NewString())
	old := ClientEntry[int]{ClientRecord: back}
	old.IsConnected = false
	old.DisconnectTime = time.Now().Add(-2 * time.Hour)
	oldGone := ClientEntry[int]{ClientRecord: gone}
	oldGone.IsConnected = false
	oldGone.DisconnectTime = old.DisconnectTime
	repo.snapshot = []ClientEntry[int]{old, oldGone}
	require.NoError(t, repo.Upsert(ctx, oldGone))

	s.connect(ctx, back) // reconnected since the snapshot
	other := connectedRecord(uuid.NewString())
	s.connect(ctx, other)
	s.disconnect(ctx, ended(other)) // prunes

	_, ok, err := repo.GetByKey(ctx, back.Key())
	require.NoError(t, err)
	require.True(t, ok, "a connected client was pruned")
	_, ok, err = repo.GetByKey(ctx, gone.Key())
	require.NoError(t, err)
	require.False(t, ok, "an expired client was kept")
}
