package communication

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type otherKey struct{}

// TestHandlerContextLikeWithDeadline: a handler's context behaves as
// context.WithDeadline over the connection's life, with the Sender as a
// value, whether or not anything made it set up its timer.
func TestHandlerContextLikeWithDeadline(t *testing.T) {
	s := Sender{ConnectionID: "c1", Type: "T"}
	parent := context.WithValue(context.Background(), otherKey{}, "v")

	t.Run("open", func(t *testing.T) {
		hc := newHandlerContext(parent, time.Hour, s)
		defer hc.end()
		require.NoError(t, hc.Err())
		dl, ok := hc.Deadline()
		require.True(t, ok)
		require.WithinDuration(t, time.Now().Add(time.Hour), dl, time.Minute)
		got, ok := SenderFrom(hc)
		require.True(t, ok)
		require.Equal(t, s, got)
		require.Equal(t, "v", hc.Value(otherKey{}))
		select {
		case <-hc.Done():
			t.Fatal("done while open")
		default:
		}
		require.Nil(t, context.Cause(hc))
	})

	t.Run("ended", func(t *testing.T) {
		hc := newHandlerContext(parent, time.Hour, s)
		var ran sync.WaitGroup
		ran.Add(1)
		context.AfterFunc(hc, ran.Done)
		hc.end()
		ran.Wait() // AfterFunc runs when the handler returns
		require.ErrorIs(t, hc.Err(), context.Canceled)
		<-hc.Done()
		require.ErrorIs(t, context.Cause(hc), context.Canceled)

		// Asked only after the end, before the deadline: cancelled too.
		late := newHandlerContext(parent, time.Hour, s)
		late.end()
		require.ErrorIs(t, late.Err(), context.Canceled)
		<-late.Done()
		require.ErrorIs(t, late.Err(), context.Canceled)
		require.Equal(t, "v", late.Value(otherKey{}))
	})

	t.Run("deadline, nothing waiting", func(t *testing.T) {
		hc := newHandlerContext(parent, -time.Second, s) // a deadline already past
		defer hc.end()
		require.ErrorIs(t, hc.Err(), context.DeadlineExceeded)
		require.ErrorIs(t, context.Cause(hc), context.DeadlineExceeded)
		<-hc.Done()
		require.ErrorIs(t, hc.Err(), context.DeadlineExceeded)
	})

	t.Run("deadline, a derived context waiting", func(t *testing.T) {
		hc := newHandlerContext(parent, 20*time.Millisecond, s)
		defer hc.end()
		child, cancel := context.WithCancel(hc)
		defer cancel()
		<-child.Done()
		require.ErrorIs(t, child.Err(), context.DeadlineExceeded)
		require.ErrorIs(t, hc.Err(), context.DeadlineExceeded)
		got, ok := SenderFrom(child)
		require.True(t, ok)
		require.Equal(t, s, got)
	})

	t.Run("parent cancelled", func(t *testing.T) {
		cause := errors.New("connection gone")
		p, cancel := context.WithCancelCause(parent)
		hc := newHandlerContext(p, time.Hour, s)
		defer hc.end()
		cancel(cause)
		require.ErrorIs(t, hc.Err(), context.Canceled)
		require.Equal(t, cause, context.Cause(hc))
		<-hc.Done()
		require.Equal(t, cause, context.Cause(hc))
	})

	t.Run("concurrent", func(t *testing.T) {
		hc := newHandlerContext(parent, time.Hour, s)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				switch i % 4 {
				case 0:
					<-hc.Done()
				case 1:
					_ = hc.Err()
				case 2:
					_ = hc.Value(otherKey{})
				case 3:
					c, cancel := context.WithTimeout(hc, time.Hour)
					<-c.Done()
					cancel()
				}
			})
		}
		hc.end()
		wg.Wait()
		require.ErrorIs(t, hc.Err(), context.Canceled)
	})
}
