package serial

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOrderAndIdle(t *testing.T) {
	q := New(8, nil, "")
	var mu sync.Mutex
	var got []int
	for i := range 1000 {
		require.NoError(t, q.Push(context.Background(), func() {
			mu.Lock()
			got = append(got, i)
			mu.Unlock()
		}))
	}
	require.NoError(t, q.Wait(context.Background()))
	require.Len(t, got, 1000)
	for i, v := range got {
		require.Equal(t, i, v)
	}
}

func TestBackpressure(t *testing.T) {
	q := New(2, nil, "")
	release := make(chan struct{})
	started := make(chan struct{})
	require.NoError(t, q.Push(context.Background(), func() { close(started); <-release }))
	<-started
	require.NoError(t, q.Push(context.Background(), func() {}))
	require.NoError(t, q.Push(context.Background(), func() {}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, q.Push(ctx, func() {}), context.DeadlineExceeded, "a full queue must make the producer wait")
	close(release)
	require.NoError(t, q.Push(context.Background(), func() {}))
	require.NoError(t, q.Wait(context.Background()))
}

func TestPanicDoesNotStopTheQueue(t *testing.T) {
	var out bytes.Buffer
	q := New(4, slog.New(slog.NewTextHandler(&out, nil)), "fn panicked", "queue", "q1")
	ran := make(chan struct{})
	require.NoError(t, q.Push(context.Background(), func() { panic("boom") }))
	require.NoError(t, q.Push(context.Background(), func() { close(ran) }))
	<-ran
	require.NoError(t, q.Wait(context.Background()))
	require.Contains(t, out.String(), `msg="fn panicked" queue=q1 panic=boom`)
}

func TestClose(t *testing.T) {
	q := New(4, nil, "")
	ran := make(chan struct{})
	require.NoError(t, q.Push(context.Background(), func() { close(ran) }))
	q.Close()
	require.ErrorIs(t, q.Push(context.Background(), func() {}), ErrClosed)
	<-ran
	require.NoError(t, q.Wait(context.Background()))
}
