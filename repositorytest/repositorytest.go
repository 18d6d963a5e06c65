// Package repositorytest is a conformance suite for implementations of
// communication.ClientRepository. Run it from a test of your
// implementation:
//
//	func TestRedisRepository(t *testing.T) {
//		repositorytest.Run(t, func(t *testing.T) communication.ClientRepository[MyData] {
//			return newRepo(t)
//		}, func(i int) MyData { return MyData{N: i} })
//	}
package repositorytest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// Run checks that the repositories newRepo makes behave as the client-state
// service expects. newRepo must return an empty repository each call;
// data(i) returns a distinct application record for each i.
func Run[T any](t *testing.T, newRepo func(t *testing.T) communication.ClientRepository[T], data func(i int) T) {
	t.Helper()
	ctx := context.Background()
	rec := func(i int, conn string) communication.ClientEntry[T] {
		return communication.ClientEntry[T]{
			ClientRecord: communication.ClientRecord{
				Instance:     fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
				ConnectionID: conn,
				Machine:      "m", Type: "t", Version: "v",
				KeyID: "k", KeyName: "key",
				IsConnected: true,
				ConnectTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			},
			Data: data(i),
		}
	}

	t.Run("empty", func(t *testing.T) {
		r := newRepo(t)
		all, err := r.GetAll(ctx)
		require.NoError(t, err)
		require.Empty(t, all)
		_, ok, err := r.GetByConnectionID(ctx, "nope")
		require.NoError(t, err)
		require.False(t, ok)
		_, ok, err = r.GetByKey(ctx, "nope")
		require.NoError(t, err)
		require.False(t, ok)
		require.NoError(t, r.Delete(ctx, "nope"))
	})

	t.Run("upsert and get", func(t *testing.T) {
		r := newRepo(t)
		c := rec(1, "conn-1")
		require.NoError(t, r.Upsert(ctx, c))
		got, ok, err := r.GetByConnectionID(ctx, "conn-1")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, c.ClientRecord.Instance, got.Instance)
		require.True(t, got.ConnectTime.Equal(c.ConnectTime))
		require.Equal(t, c.Data, got.Data)
		got, ok, err = r.GetByKey(ctx, c.Key())
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "conn-1", got.ConnectionID)
		require.Equal(t, "k", got.KeyID)
		require.Equal(t, "key", got.KeyName)
	})

	t.Run("reconnect replaces the connection index", func(t *testing.T) {
		r := newRepo(t)
		require.NoError(t, r.Upsert(ctx, rec(1, "old")))
		require.NoError(t, r.Upsert(ctx, rec(1, "new")))
		_, ok, err := r.GetByConnectionID(ctx, "old")
		require.NoError(t, err)
		require.False(t, ok, "the old connection id still finds the client")
		got, ok, err := r.GetByConnectionID(ctx, "new")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "new", got.ConnectionID)
		all, err := r.GetAll(ctx)
		require.NoError(t, err)
		require.Len(t, all, 1)
	})

	t.Run("disconnect is kept", func(t *testing.T) {
		r := newRepo(t)
		c := rec(2, "c2")
		require.NoError(t, r.Upsert(ctx, c))
		c.IsConnected = false
		c.DisconnectTime = time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)
		require.NoError(t, r.Upsert(ctx, c))
		got, ok, err := r.GetByKey(ctx, c.Key())
		require.NoError(t, err)
		require.True(t, ok)
		require.False(t, got.IsConnected)
		require.True(t, got.DisconnectTime.Equal(c.DisconnectTime))
	})

	t.Run("clients without an instance are keyed by connection", func(t *testing.T) {
		r := newRepo(t)
		a, b := rec(3, "a"), rec(4, "b")
		a.Instance, b.Instance = "", ""
		require.NoError(t, r.Upsert(ctx, a))
		require.NoError(t, r.Upsert(ctx, b))
		all, err := r.GetAll(ctx)
		require.NoError(t, err)
		require.Len(t, all, 2)
		got, ok, err := r.GetByConnectionID(ctx, "b")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, b.Data, got.Data)
	})

	t.Run("delete", func(t *testing.T) {
		r := newRepo(t)
		c := rec(5, "c5")
		require.NoError(t, r.Upsert(ctx, c))
		require.NoError(t, r.Delete(ctx, c.Key()))
		_, ok, err := r.GetByConnectionID(ctx, "c5")
		require.NoError(t, err)
		require.False(t, ok)
		_, ok, err = r.GetByKey(ctx, c.Key())
		require.NoError(t, err)
		require.False(t, ok)
	})

	t.Run("cancelled context", func(t *testing.T) {
		r := newRepo(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		require.Error(t, r.Upsert(cctx, rec(6, "c6")))
		_, err := r.GetAll(cctx)
		require.Error(t, err)
	})

	t.Run("concurrent use", func(t *testing.T) {
		r := newRepo(t)
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 20 {
					c := rec(i, fmt.Sprintf("c%d-%d", i, j))
					if err := r.Upsert(ctx, c); err != nil {
						t.Error(err)
						return
					}
					if _, _, err := r.GetByConnectionID(ctx, c.ConnectionID); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		all, err := r.GetAll(ctx)
		require.NoError(t, err)
		require.Len(t, all, 50)
		var conns []string
		for _, c := range all {
			conns = append(conns, c.ConnectionID)
			got, ok, err := r.GetByConnectionID(ctx, c.ConnectionID)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, c.Key(), got.Key())
		}
		sort.Strings(conns)
		require.Len(t, conns, 50)
	})
}
