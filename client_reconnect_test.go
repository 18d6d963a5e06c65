package communication_test

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// handshakeOK is a server's answer to a good handshake.
const handshakeOK = "{}\x1e"

// hostileServer speaks just enough SignalR to let a client connect: it
// answers negotiate, accepts the WebSocket, reads the handshake, answers
// it, then does what its script says and closes the connection.
type hostileServer struct {
	URL string
	// conns receives the time of each WebSocket accepted, before the
	// handshake is answered.
	conns chan time.Time
}

// newHostileServer answers each handshake with answer (one WebSocket
// message), then runs script; the connection is closed when script
// returns. A nil script closes at once.
func newHostileServer(t *testing.T, answer string, script func(ctx context.Context, ws *websocket.Conn)) *hostileServer {
	t.Helper()
	hs := &hostileServer{conns: make(chan time.Time, 1000)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hub/negotiate", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"connectionId":"x","connectionToken":"t","negotiateVersion":1,` +
			`"availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]}]}`))
	})
	mux.HandleFunc("GET /hub", func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		hs.conns <- time.Now()
		_, data, err := ws.Read(r.Context())
		if err != nil || string(data) != `{"protocol":"json","version":1}`+"\x1e" {
			return
		}
		if err := ws.Write(r.Context(), websocket.MessageText, []byte(answer)); err != nil {
			return
		}
		if script != nil {
			script(r.Context(), ws)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	hs.URL = srv.URL
	return hs
}

// next returns the time of the next connection.
func (hs *hostileServer) next(t *testing.T) time.Time {
	t.Helper()
	select {
	case at := <-hs.conns:
		return at
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
		return time.Time{}
	}
}

// hostileClient builds a client of hs; it is closed when the test ends.
func hostileClient(t *testing.T, hs *hostileServer, opts ...communication.ClientOption) *communication.Client {
	t.Helper()
	c, err := communication.AddClient(append([]communication.ClientOption{
		communication.WithServerAddress(hs.URL),
		communication.WithLogger(testLogger(t)),
	}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// TestReconnectJitterOption: the jitter must be between 0 and 1.
func TestReconnectJitterOption(t *testing.T) {
	for _, f := range []float64{0, 0.25, 0.5, 1} {
		_, err := communication.AddClient(communication.WithServerAddress("http://x"), communication.WithReconnectJitter(f))
		require.NoError(t, err, f)
	}
	for _, f := range []float64{-0.1, 1.01, math.NaN(), math.Inf(1)} {
		_, err := communication.AddClient(communication.WithServerAddress("http://x"), communication.WithReconnectJitter(f))
		require.ErrorContains(t, err, "jitter", f)
	}
}

// TestJitteredDelay: a delay d with jitter f is spread over
// [d(1-f), d(1+f)]; zero stays zero; no jitter keeps d.
func TestJitteredDelay(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2)).Float64
	d := time.Second
	require.Equal(t, time.Duration(0), communication.JitteredDelay(0, 0.5, rnd))
	require.Equal(t, d, communication.JitteredDelay(d, 0, rnd))
	lo, hi := d, d
	for range 10000 {
		got := communication.JitteredDelay(d, 0.5, rnd)
		require.GreaterOrEqual(t, got, d/2)
		require.LessOrEqual(t, got, 3*d/2)
		lo, hi = min(lo, got), max(hi, got)
	}
	require.Less(t, lo, 11*d/20, "not spread down to d/2")
	require.Greater(t, hi, 29*d/20, "not spread up to 3d/2")
	require.Equal(t, time.Duration(math.MaxInt64), communication.JitteredDelay(time.Duration(math.MaxInt64), 1, func() float64 { return 0.99 }))
}

// TestShortConnectionsBackOff: a server that completes the handshake and
// then drops the connection at once (a .NET Tharga server refusing a key)
// must be retried along the growing delays, not at the first (zero) delay
// over and over.
func TestShortConnectionsBackOff(t *testing.T) {
	delays := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}
	for _, jitter := range []float64{0, 0.5} {
		t.Run(map[float64]string{0: "no jitter", 0.5: "jitter"}[jitter], func(t *testing.T) {
			hs := newHostileServer(t, handshakeOK, nil)
			states := make(chan communication.StateChange, 1000)
			c := hostileClient(t, hs,
				communication.WithReconnectDelays(delays...),
				communication.WithReconnectJitter(jitter),
				communication.WithStateHandler(func(sc communication.StateChange) { states <- sc }))
			require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
			prev := hs.next(t)
			// The first drop is retried after delays[0], the next after
			// delays[1], and so on: each gap between two connections is at
			// least the smallest value of its jittered delay.
			for i, d := range delays {
				at := hs.next(t)
				minimum := time.Duration(float64(d) * (1 - jitter))
				require.GreaterOrEqual(t, at.Sub(prev), minimum, "gap %d after a short connection", i)
				prev = at
			}
			// Each drop says why.
			for sc := range states {
				if sc.State == communication.Reconnecting {
					require.ErrorIs(t, sc.Err, communication.ErrConnectionLost)
					break
				}
			}
		})
	}
}

// TestStableConnectionResetsDelays: once a connection has stayed up for a
// while, a drop is retried from the first delay again.
func TestStableConnectionResetsDelays(t *testing.T) {
	srv, err := communication.AddServer(communication.WithLogger(testLogger(t)))
	require.NoError(t, err)
	mux := http.NewServeMux()
	srv.Mount(mux)
	var requests atomic.Int32
	ts := serveTest(t, srv, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The first two attempts fail, so the client is past its first
		// two delays when it connects: without a reset, its next wait
		// would be the hour.
		if requests.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	states := make(chan communication.StateChange, 64)
	c := newClient(t, ts,
		// Fresh TCP connections: the kill below must not leave a dead
		// keep-alive connection for the reconnect to fail on.
		communication.WithHTTPClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}),
		communication.WithReconnectDelays(0, 10*time.Millisecond, time.Hour),
		communication.WithStateHandler(func(sc communication.StateChange) { states <- sc }))
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	waitConnected(t, ts, c.ConnectionID())
	for sc := range states {
		if sc.State == communication.Connected {
			break
		}
	}

	// Keep the connection up for as long as it takes to count as stable:
	// the stimulus of this test, not a wait for something to happen.
	<-time.After(communication.StableAfter(c) + 100*time.Millisecond)
	ts.killConnections()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case sc := <-states:
			if sc.State == communication.Connected {
				return // retried at the first delay, not after an hour
			}
		case <-deadline:
			t.Fatal("not reconnected: the delays did not start again after a stable connection")
		}
	}
}

// TestDropSaysWhy: a connection that drops is reported with its cause,
// wrapped in ErrConnectionLost.
func TestDropSaysWhy(t *testing.T) {
	for name, drop := range map[string]func(*testServer){
		"connections cut":  func(ts *testServer) { ts.killConnections() },
		"server shut down": func(ts *testServer) { require.NoError(t, ts.Server.Close()) },
	} {
		t.Run(name, func(t *testing.T) {
			ts := newServer(t)
			states := make(chan communication.StateChange, 64)
			c := newClient(t, ts, communication.WithStateHandler(func(sc communication.StateChange) { states <- sc }))
			require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
			require.Equal(t, communication.Connecting, (<-states).State)
			require.Equal(t, communication.Connected, (<-states).State)
			drop(ts)
			sc := <-states
			require.Equal(t, communication.Reconnecting, sc.State)
			require.ErrorIs(t, sc.Err, communication.ErrConnectionLost)
			require.NotEqual(t, communication.ErrConnectionLost.Error(), sc.Err.Error(), "the cause is missing")
		})
	}
}

// TestCloseWithoutReconnect: a SignalR close message that disallows
// reconnecting stops the client, with the server's reason.
func TestCloseWithoutReconnect(t *testing.T) {
	const closeMsg = `{"type":7,"error":"go away","allowReconnect":false}` + "\x1e"

	t.Run("with the handshake answer", func(t *testing.T) {
		// The handshake answer and the close in one WebSocket message.
		hs := newHostileServer(t, handshakeOK+closeMsg, nil)
		c := hostileClient(t, hs, communication.WithReconnectDelays(0))
		err := c.Start(ctxT(t, 10*time.Second))
		require.ErrorIs(t, err, communication.ErrClosedByServer)
		require.Contains(t, err.Error(), "go away")
		require.Equal(t, communication.Disconnected, c.State())
		// Start has returned: nothing runs any more, and there was one
		// attempt only.
		require.Len(t, hs.conns, 1)
	})

	t.Run("after the handshake", func(t *testing.T) {
		hs := newHostileServer(t, handshakeOK, func(ctx context.Context, ws *websocket.Conn) {
			_ = ws.Write(ctx, websocket.MessageText, []byte(closeMsg))
		})
		states := make(chan communication.StateChange, 64)
		c := hostileClient(t, hs, communication.WithReconnectDelays(0),
			communication.WithStateHandler(func(sc communication.StateChange) { states <- sc }))
		require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
		var last communication.StateChange
		for last = range states {
			if last.State == communication.Disconnected {
				break
			}
			require.NotEqual(t, communication.Reconnecting, last.State, "it reconnects: %v", last.Err)
		}
		require.ErrorIs(t, last.Err, communication.ErrClosedByServer)
		require.Contains(t, last.Err.Error(), "go away")
		require.Equal(t, communication.Disconnected, c.State())
		require.Empty(t, c.ConnectionID())
		require.ErrorIs(t, c.Post(ctxT(t, time.Second), Note{}), communication.ErrNotConnected)
		// The client stopped after its first connection.
		require.Len(t, hs.conns, 1)
	})
}
