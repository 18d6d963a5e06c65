package communication_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

type agentData struct {
	Connects    int
	Disconnects int
	Label       string
}

func TestClientRecords(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var connects, disconnects []communication.ClientEntry[agentData]
	state := newState[agentData](t,
		communication.WithBuild(func(ctx context.Context, rec communication.ClientRecord, prev *communication.ClientEntry[agentData]) (agentData, error) {
			d := agentData{Label: "agent on " + rec.Machine}
			if prev != nil {
				d.Connects, d.Disconnects = prev.Data.Connects, prev.Data.Disconnects
			}
			d.Connects++
			return d, nil
		}),
		communication.WithBuildDisconnect(func(ctx context.Context, c communication.ClientEntry[agentData]) (agentData, error) {
			c.Data.Disconnects++
			return c.Data, nil
		}),
		communication.WithConnectHandler(func(ctx context.Context, c communication.ClientEntry[agentData]) {
			mu.Lock()
			connects = append(connects, c)
			mu.Unlock()
		}),
		communication.WithDisconnectHandler(func(ctx context.Context, c communication.ClientEntry[agentData]) {
			mu.Lock()
			disconnects = append(disconnects, c)
			mu.Unlock()
		}),
	)
	ts := newServer(t, communication.WithClientState(state))
	senderData := make(chan agentData, 1)
	require.NoError(t, communication.HandlePost(ts.Handlers(), communication.PostHandlerFunc[Note](func(ctx context.Context, n Note) error {
		c, ok, err := state.Sender(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		senderData <- c.Data
		return nil
	})))
	instance := uuid.NewString()
	c := startClient(t, ts,
		communication.WithClientInstance(instance),
		communication.WithClientMachine("build-7"),
		communication.WithClientType("agent"),
		communication.WithClientVersion("1.2.3"))
	ctx := ctxT(t, 10*time.Second)
	first := c.ConnectionID()

	rec, ok, err := ts.Client(ctx, first)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, instance, rec.Instance)
	require.Equal(t, "build-7", rec.Machine)
	require.Equal(t, "agent", rec.Type)
	require.Equal(t, "1.2.3", rec.Version)
	require.True(t, rec.IsConnected)
	require.WithinDuration(t, time.Now(), rec.ConnectTime, time.Minute)
	require.Equal(t, time.UTC, rec.ConnectTime.Location())
	require.True(t, rec.DisconnectTime.IsZero())

	require.NoError(t, c.Post(ctx, Note{}))
	require.Equal(t, agentData{Connects: 1, Label: "agent on build-7"}, <-senderData)

	// A reconnect of the same instance updates its record.
	ts.killConnections()
	require.Eventually(t, func() bool {
		id := c.ConnectionID()
		return id != "" && id != first
	}, 10*time.Second, time.Millisecond)
	waitConnected(t, ts, c.ConnectionID())
	require.Eventually(t, func() bool {
		e, ok, _ := state.GetByInstance(ctx, instance)
		return ok && e.ConnectionID == c.ConnectionID() && e.Data.Connects == 2
	}, 10*time.Second, time.Millisecond)
	all, err := state.GetAll(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1)
	_, ok, err = ts.Client(ctx, first)
	require.NoError(t, err)
	require.False(t, ok, "the old connection id still finds a record")

	// A disconnect keeps the record, flag off and time set.
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool {
		e, ok, _ := state.GetByInstance(ctx, instance)
		return ok && !e.IsConnected
	}, 10*time.Second, time.Millisecond)
	e, _, err := state.GetByInstance(ctx, instance)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), e.DisconnectTime, time.Minute)
	// The first connection's end may be noticed after the reconnect, when
	// the newer connection already owns the record: then only the event
	// tells of it.
	require.GreaterOrEqual(t, e.Data.Disconnects, 1)

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(disconnects) >= 2
	}, 10*time.Second, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, connects, 2, "one connect event per connection")
	require.Len(t, disconnects, 2, "one disconnect event per connection")
	require.Equal(t, first, connects[0].ConnectionID)
	require.Equal(t, first, disconnects[0].ConnectionID)
}

func TestClientWithoutHeadersIsRecorded(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	dialRaw(t, ts, nil)
	ctx := ctxT(t, 10*time.Second)
	require.Eventually(t, func() bool {
		all, err := ts.Clients(ctx)
		return err == nil && len(all) == 1 && all[0].IsConnected
	}, 10*time.Second, time.Millisecond)
	all, err := ts.Clients(ctx)
	require.NoError(t, err)
	require.Empty(t, all[0].Instance)
	require.NotEmpty(t, all[0].ConnectionID)

	// A garbled instance header is not trusted either.
	dialRaw(t, ts, http.Header{"X-Client-Instance": {"not-a-guid"}})
	require.Eventually(t, func() bool {
		all, err := ts.Clients(ctx)
		return err == nil && len(all) == 2
	}, 10*time.Second, time.Millisecond)
}

func TestHeadersSentByClient(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 4)
	ts := newServer(t)
	mux := http.NewServeMux()
	ts.Mount(mux)
	spy := serveTest(t, ts.Server, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		mux.ServeHTTP(w, r)
	}))
	c := newClient(t, spy, communication.WithAPIKey("k"))
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	for _, step := range []string{"negotiate", "websocket"} {
		h := <-got
		require.Equal(t, c.Instance(), h.Get("X-Client-Instance"), step)
		_, err := uuid.Parse(h.Get("X-Client-Instance"))
		require.NoError(t, err)
		require.NotEmpty(t, h.Get("X-Client-Machine"), step)
		require.NotEmpty(t, h.Get("X-Client-Type"), step)
		require.Equal(t, "k", h.Get("X-Api-Key"), step)
	}
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	ts := newServer(t, communication.WithPrimaryAndSecondaryKeys("primary-key", "secondary-key"))
	ctx := ctxT(t, 10*time.Second)
	negotiate := func(h http.Header, query string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/hub/negotiate?negotiateVersion=1"+query, nil)
		require.NoError(t, err)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, negotiate(nil, ""))
	require.Equal(t, http.StatusUnauthorized, negotiate(http.Header{"X-Api-Key": {"wrong"}}, ""))
	require.Equal(t, http.StatusOK, negotiate(http.Header{"X-Api-Key": {"primary-key"}}, ""))
	require.Equal(t, http.StatusOK, negotiate(http.Header{"X-Api-Key": {"secondary-key"}}, ""))
	require.Equal(t, http.StatusOK, negotiate(http.Header{"Authorization": {"Bearer secondary-key"}}, ""))
	require.Equal(t, http.StatusOK, negotiate(nil, "&access_token=primary-key"))
	require.Equal(t, http.StatusUnauthorized, negotiate(http.Header{"Authorization": {"Bearer nope"}}, ""))

	// A direct WebSocket (skip negotiation) without a valid key: 401
	// before any handshake, and no record.
	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http") + "/hub"
	for _, h := range []http.Header{nil, {"X-Api-Key": {"wrong"}}} {
		_, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: h})
		require.Error(t, err)
		require.NotNil(t, resp)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	ws, _, err := websocket.Dial(ctx, wsURL+"?access_token=primary-key", nil)
	require.NoError(t, err)
	_ = ws.CloseNow()
	clients, err := ts.Clients(ctx)
	require.NoError(t, err)
	for _, c := range clients {
		require.Equal(t, "primary", c.KeyID, "a refused connection left a record")
	}

	// Both keys let a client in; the record names the key.
	for _, key := range []string{"primary", "secondary"} {
		c := startClient(t, ts, communication.WithAPIKey(key+"-key"), communication.WithClientInstance(uuid.NewString()))
		rec, ok, err := ts.Client(ctx, c.ConnectionID())
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, key, rec.KeyID)
		require.Equal(t, key, rec.KeyName)
	}
}

func TestCustomKeyValidator(t *testing.T) {
	t.Parallel()
	ts := newServer(t, communication.WithKeyValidator(communication.KeyValidatorFunc(
		func(ctx context.Context, key string, r *http.Request) (communication.KeyInfo, bool, error) {
			if strings.HasPrefix(key, "tenant-") {
				return communication.KeyInfo{ID: key, Name: "Tenant " + strings.TrimPrefix(key, "tenant-")}, true, nil
			}
			return communication.KeyInfo{}, false, nil
		})))
	c := startClient(t, ts, communication.WithAPIKey("tenant-42"))
	rec, ok, err := ts.Client(ctxT(t, 10*time.Second), c.ConnectionID())
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "tenant-42", rec.KeyID)
	require.Equal(t, "Tenant 42", rec.KeyName)
}

func TestClientWithWrongKey(t *testing.T) {
	t.Parallel()
	var revoked atomic.Bool
	ts := newServer(t, communication.WithKeyValidator(communication.KeyValidatorFunc(
		func(ctx context.Context, key string, r *http.Request) (communication.KeyInfo, bool, error) {
			return communication.KeyInfo{ID: key}, key == "right" && !revoked.Load(), nil
		})))

	// A refused Start fails at once and leaves the client Disconnected,
	// retrying nothing.
	states := make(chan communication.StateChange, 64)
	c := newClient(t, ts, communication.WithAPIKey("wrong"),
		communication.WithReconnectDelays(20*time.Millisecond),
		communication.WithStateHandler(func(sc communication.StateChange) { states <- sc }))
	err := c.Start(ctxT(t, 10*time.Second))
	require.ErrorIs(t, err, communication.ErrUnauthorized)
	require.Equal(t, communication.Connecting, (<-states).State)
	sc := <-states
	require.Equal(t, communication.Disconnected, sc.State)
	require.ErrorIs(t, sc.Err, communication.ErrUnauthorized)
	require.Equal(t, communication.Disconnected, c.State())

	// A key revoked while connected: the client backs off and keeps
	// trying, reporting why, and comes back once the key is valid again.
	// Fresh TCP connections, so that the kill leaves no dead keep-alive
	// connection behind.
	fresh := communication.WithHTTPClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}})
	retrying := make(chan communication.StateChange, 64)
	c1 := newClient(t, ts, communication.WithAPIKey("right"), fresh,
		communication.WithReconnectDelays(20*time.Millisecond),
		communication.WithStateHandler(func(sc communication.StateChange) { retrying <- sc }))
	require.NoError(t, c1.Start(ctxT(t, 10*time.Second)))
	revoked.Store(true)
	ts.killConnections()
	refusals := 0
	for refusals < 2 {
		sc := <-retrying
		require.NotEqual(t, communication.Disconnected, sc.State, sc.Err)
		if sc.State == communication.Reconnecting && errors.Is(sc.Err, communication.ErrUnauthorized) {
			refusals++
		}
	}
	require.False(t, c1.IsConnected())

	// With retrying off it stops.
	stopped := make(chan communication.StateChange, 64)
	revoked.Store(false)
	c2 := newClient(t, ts, communication.WithAPIKey("right"), fresh, communication.WithRetryUnauthorized(false),
		communication.WithStateHandler(func(sc communication.StateChange) { stopped <- sc }))
	require.NoError(t, c2.Start(ctxT(t, 10*time.Second)))
	revoked.Store(true)
	ts.killConnections()
	for s := range stopped {
		if s.State == communication.Disconnected {
			require.ErrorIs(t, s.Err, communication.ErrUnauthorized)
			break
		}
	}
	require.Equal(t, communication.Disconnected, c2.State())

	revoked.Store(false)
	for sc := range retrying {
		if sc.State == communication.Connected {
			break
		}
	}
}

func TestPendingIntrospection(t *testing.T) {
	t.Parallel()
	events := make(chan communication.PendingEvent, 16)
	ts := newServer(t, communication.WithPendingHandler(func(e communication.PendingEvent) { events <- e }))
	c := newClient(t, ts)
	release := make(chan struct{})
	require.NoError(t, communication.HandleSend(c.Handlers(), communication.SendHandlerFunc[Hang, HangBack](func(ctx context.Context, h Hang) (HangBack, error) {
		<-release
		return HangBack{}, nil
	})))
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	waitConnected(t, ts, c.ConnectionID())
	done := make(chan error, 1)
	go func() {
		_, err := communication.Send[HangBack](ctxT(t, 10*time.Second), ts.To(c.ConnectionID()), Hang{})
		done <- err
	}()
	added := <-events
	require.True(t, added.Added)
	require.Equal(t, c.ConnectionID(), added.ConnectionID)
	list := ts.Pending()
	require.Len(t, list, 1)
	require.Equal(t, added.PendingRequest, list[0])
	close(release)
	require.NoError(t, <-done)
	removed := <-events
	require.False(t, removed.Added)
	require.Equal(t, added.CorrelationID, removed.CorrelationID)
	require.Empty(t, ts.Pending())
}

// TestChurn connects and disconnects 1,000 clients: nothing is left behind
// (goroutines are checked by goleak in TestMain).
func TestChurn(t *testing.T) {
	t.Parallel()
	state := newState[struct{}](t, communication.WithRetention(0))
	ts := newServer(t, communication.WithClientState(state))
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Ping, Pong](func(ctx context.Context, p Ping) (Pong, error) {
		return Pong{Reply: p.Message}, nil
	})))
	ctx := ctxT(t, 2*time.Minute)
	const n, parallel = 1000, 20
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := communication.AddClient(communication.WithServerAddress(ts.URL), communication.WithClientInstance(uuid.NewString()))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.Start(ctx); err != nil {
				errs <- err
				return
			}
			if _, err := communication.Send[Pong](ctx, c, Ping{Message: "x"}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		all, err := state.GetAll(ctx)
		return err == nil && len(all) == 0 && len(ts.ConnectionIDs()) == 0
	}, 30*time.Second, 10*time.Millisecond, "records or connections left behind")
	require.Empty(t, ts.Pending())
}
