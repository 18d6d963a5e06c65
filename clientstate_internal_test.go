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
	var events atomic.Int32
	count := func(context.Context, ClientEntry[int]) { events.Add(1) }
	s := NewClientState(OnClientConnected(count), OnClientDisconnected(count))
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
	require.Equal(t, int32(2*n), events.Load())
	require.Zero(t, s.keys.size(), "keys kept after their work ended")
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
	ctx := testCtx(t)
	repo := &staleRepository{MemoryRepository: NewMemoryRepository[int]()}
	s := NewClientState(WithRepository[int](repo), WithRetention[int](time.Hour))
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
