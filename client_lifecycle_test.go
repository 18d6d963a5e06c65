package communication_test

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	communication "github.com/tharga/communication-go"
)

// deadAddress returns the address of a loopback port nothing listens on.
func deadAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestFailedStartLeavesNothingRunning: a Start that fails stops every
// goroutine it started, whether its context timed out or was cancelled.
func TestFailedStartLeavesNothingRunning(t *testing.T) {
	for name, ctxOf := range map[string]func() (context.Context, context.CancelFunc){
		"deadline": func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 300*time.Millisecond)
		},
		"cancelled": func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*time.Millisecond, cancel)
			return ctx, cancel
		},
	} {
		t.Run(name, func(t *testing.T) {
			baseline := goleak.IgnoreCurrent()
			states := make(chan communication.StateChange, 1000)
			c, err := communication.AddClient(communication.WithServerAddress(deadAddress(t)),
				communication.WithReconnectDelays(0, 10*time.Millisecond),
				communication.WithStateHandler(func(sc communication.StateChange) { states <- sc }))
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, c.Close()) })

			ctx, cancel := ctxOf()
			defer cancel()
			err = c.Start(ctx)
			require.ErrorIs(t, err, communication.ErrNotConnected)
			require.ErrorIs(t, err, ctx.Err())
			require.Contains(t, err.Error(), "last attempt")
			require.Equal(t, communication.Disconnected, c.State())
			var last communication.StateChange
			for last = range states {
				if last.State == communication.Disconnected {
					break
				}
			}
			require.ErrorIs(t, last.Err, communication.ErrNotConnected)

			// Not closed, yet nothing of the client runs any more.
			goleak.VerifyNone(t, baseline)
		})
	}
}

// TestStartAgainAfterFailedStart: a failed Start can be retried; it
// connects once the server is up.
func TestStartAgainAfterFailedStart(t *testing.T) {
	srv, err := communication.AddServer(communication.WithLogger(testLogger(t)))
	require.NoError(t, err)
	mux := http.NewServeMux()
	srv.Mount(mux)
	var up atomic.Bool
	ts := serveTest(t, srv, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	c := newClient(t, ts, communication.WithReconnectDelays(10*time.Millisecond))
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = c.Start(short)
	require.ErrorIs(t, err, communication.ErrNotConnected)
	require.Contains(t, err.Error(), "503")
	require.Equal(t, communication.Disconnected, c.State())

	up.Store(true)
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	require.True(t, c.IsConnected())
	waitConnected(t, ts, c.ConnectionID())
}

// TestStartContract: Start while started is an error, Start after Close is
// ErrClosed, Close is safe after a failed Start and twice.
func TestStartContract(t *testing.T) {
	ts := newServer(t)

	c := startClient(t, ts)
	err := c.Start(ctxT(t, 10*time.Second))
	require.Error(t, err)
	require.NotErrorIs(t, err, communication.ErrClosed)
	require.True(t, c.IsConnected(), "a second Start must not disturb the connection")
	require.NoError(t, c.Close())
	require.ErrorIs(t, c.Start(ctxT(t, 10*time.Second)), communication.ErrClosed)
	require.NoError(t, c.Close())

	never, err := communication.AddClient(communication.WithServerAddress(ts.URL))
	require.NoError(t, err)
	require.Equal(t, communication.Disconnected, never.State())
	require.NoError(t, never.Close())
	require.ErrorIs(t, never.Start(ctxT(t, 10*time.Second)), communication.ErrClosed)

	failed, err := communication.AddClient(communication.WithServerAddress(deadAddress(t)))
	require.NoError(t, err)
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.Error(t, failed.Start(short))
	require.NoError(t, failed.Close())
	require.NoError(t, failed.Close())
	require.ErrorIs(t, failed.Start(ctxT(t, 10*time.Second)), communication.ErrClosed)
}

// TestCloseLeavesNothingRunning: Close ends every goroutine and timer of a
// connected client, and of one that is waiting to reconnect.
func TestCloseLeavesNothingRunning(t *testing.T) {
	ts := newServer(t)
	baseline := goleak.IgnoreCurrent()
	// No idle HTTP connections: they belong to the HTTP client, not ours.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	c, err := communication.AddClient(communication.WithServerAddress(ts.URL), communication.WithHTTPClient(hc),
		communication.WithReconnectDelays(0, time.Hour))
	require.NoError(t, err)
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	waitConnected(t, ts, c.ConnectionID())
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool { return len(ts.ConnectionIDs()) == 0 }, 10*time.Second, time.Millisecond)
	goleak.VerifyNone(t, baseline)

	// Waiting an hour to reconnect.
	states := make(chan communication.StateChange, 64)
	c, err = communication.AddClient(communication.WithServerAddress(ts.URL), communication.WithHTTPClient(hc),
		communication.WithReconnectDelays(time.Hour),
		communication.WithStateHandler(func(sc communication.StateChange) { states <- sc }))
	require.NoError(t, err)
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	ts.killConnections()
	for sc := range states {
		if sc.State == communication.Reconnecting {
			break
		}
	}
	require.NoError(t, c.Close())
	goleak.VerifyNone(t, baseline)
}

// TestInstancePerClient: two clients of one process have their own
// instance ids and so their own records on the server.
func TestInstancePerClient(t *testing.T) {
	ts := newServer(t)
	a := startClient(t, ts)
	b := startClient(t, ts)
	require.NotEqual(t, a.Instance(), b.Instance())
	ctx := ctxT(t, 10*time.Second)
	require.Eventually(t, func() bool {
		all, err := ts.Clients(ctx)
		if err != nil || len(all) != 2 {
			return false
		}
		got := map[string]string{all[0].Instance: all[0].ConnectionID, all[1].Instance: all[1].ConnectionID}
		return got[a.Instance()] == a.ConnectionID() && got[b.Instance()] == b.ConnectionID()
	}, 10*time.Second, time.Millisecond)
}
