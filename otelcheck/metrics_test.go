package otelcheck_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	communication "github.com/tharga/communication-go"
)

func newReader(t *testing.T) (*sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { require.NoError(t, mp.Shutdown(context.Background())) })
	return reader, mp
}

// scenarioHandlers answers Ping, fails Boom, holds Hang until release is
// closed, and hands Notes to notes.
func scenarioHandlers(t *testing.T, notes chan<- Note, release <-chan struct{}) *communication.Handlers {
	h := communication.NewHandlers()
	require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[Note](func(_ context.Context, n Note) error {
		notes <- n
		return nil
	})))
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Ping, Pong](func(_ context.Context, p Ping) (Pong, error) {
		return Pong{Reply: "pong: " + p.Message}, nil
	})))
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Boom, BoomBack](func(context.Context, Boom) (BoomBack, error) {
		return BoomBack{}, errors.New("boom")
	})))
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Hang, HangBack](func(context.Context, Hang) (HangBack, error) {
		<-release
		return HangBack{}, nil
	})))
	return h
}

// TestMetricsScenario: a known run gives exact values. Two clients
// connect; a request without the key is refused; one client posts three
// notes and sends two requests that are answered, one that fails in its
// handler and one that times out; the server sends a request to a
// connection that does not exist; the other client leaves.
func TestMetricsScenario(t *testing.T) {
	reader, mp := newReader(t)
	notes := make(chan Note, 10)
	release := make(chan struct{})
	ts := newServer(t,
		communication.WithHandlers(scenarioHandlers(t, notes, release)),
		communication.WithMeterProvider(mp),
		communication.WithAPIKeys("key"))
	// Cleanups run last first: the held handler is released before the
	// server closes.
	t.Cleanup(func() { close(release) })
	a := startClient(t, ts, communication.WithMeterProvider(mp), communication.WithAPIKey("key"))
	b := startClient(t, ts, communication.WithMeterProvider(mp), communication.WithAPIKey("key"))

	resp, err := http.Post(ts.URL+ts.Pattern()+"/negotiate?negotiateVersion=1", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	ctx := ctxT(t, 10*time.Second)
	for i := range 3 {
		require.NoError(t, a.Post(ctx, Note{Text: string(rune('a' + i))}))
	}
	for range 3 {
		<-notes
	}
	for range 2 {
		_, err := communication.Send[Pong](ctx, a, Ping{Message: "hi"})
		require.NoError(t, err)
	}
	_, err = communication.Send[BoomBack](ctx, a, Boom{})
	var re *communication.RemoteError
	require.ErrorAs(t, err, &re)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = communication.Send[HangBack](short, a, Hang{})
	cancel()
	require.ErrorIs(t, err, communication.ErrTimeout)
	_, err = communication.Send[Pong](ctx, ts.To("no-such-connection"), Ping{})
	require.ErrorIs(t, err, communication.ErrNotConnected)

	bID := b.ConnectionID()
	require.NoError(t, b.Close())
	waitFor(t, "the server drops the client that left", func() bool { return !hasConn(ts, bID) })

	ping, pong, note, boom, hang := name[Ping](), name[Pong](), name[Note](), name[Boom](), name[Hang]()
	sent := func(side, kind, typ string) string {
		return "tharga.communication.messages.sent{tharga.communication.message.kind=" + kind +
			",tharga.communication.message.type=" + typ + ",tharga.communication.side=" + side + "}"
	}
	received := func(side, kind, typ string) string {
		return "tharga.communication.messages.received{tharga.communication.message.kind=" + kind +
			",tharga.communication.message.type=" + typ + ",tharga.communication.side=" + side + "}"
	}
	duration := func(side, typ, outcome string) string {
		return "tharga.communication.request.duration{tharga.communication.message.type=" + typ +
			",tharga.communication.request.outcome=" + outcome + ",tharga.communication.side=" + side + "}"
	}
	requireSeries(t, reader, map[string]float64{
		"signalr.server.active_connections{signalr.transport=web_sockets}":                                           1,
		"signalr.server.connection.duration{signalr.connection.status=normal_closure,signalr.transport=web_sockets}": 1,
		"tharga.communication.requests.refused{http.response.status_code=401}":                                       1,
		"tharga.communication.requests.pending{tharga.communication.side=client}":                                    0,
		"tharga.communication.requests.pending{tharga.communication.side=server}":                                    0,

		sent("client", "post", note):     3,
		received("server", "post", note): 3,

		sent("client", "request", ping):     2,
		sent("client", "request", boom):     1,
		sent("client", "request", hang):     1,
		received("server", "request", ping): 2,
		received("server", "request", boom): 1,
		received("server", "request", hang): 1,

		// An error answer carries the request's type.
		sent("server", "response", pong):     2,
		sent("server", "response", boom):     1,
		received("client", "response", pong): 2,
		received("client", "response", boom): 1,

		duration("client", ping, "ok"):            2,
		duration("client", boom, "remote_error"):  1,
		duration("client", hang, "timeout"):       1,
		duration("server", ping, "not_connected"): 1,
	})
}

// TestMetricsUnregisteredTypeIsOther: a type nobody registered in the
// process is counted as "other", whatever a peer calls it, so that the
// number of series stays bounded.
func TestMetricsUnregisteredTypeIsOther(t *testing.T) {
	reader, mp := newReader(t)
	ts := newServer(t, communication.WithMeterProvider(mp))
	c := startClient(t, ts)
	type Unregistered struct{ N int }
	ctx := ctxT(t, 10*time.Second)
	for i := range 2 {
		require.NoError(t, c.Post(ctx, Unregistered{N: i}))
	}
	requireSubset(t, reader, map[string]float64{
		"tharga.communication.messages.received{tharga.communication.message.kind=post,tharga.communication.message.type=other,tharga.communication.side=server}": 2,
	})
}

// TestMetricsReconnect: a client whose connection is cut comes back, and
// counts the reconnect; the server counts one connection ended and one
// active.
func TestMetricsReconnect(t *testing.T) {
	reader, mp := newReader(t)
	ts := newServer(t, communication.WithMeterProvider(mp))
	states := make(chan communication.StateChange, 16)
	c := startClient(t, ts, communication.WithMeterProvider(mp),
		communication.WithStateHandler(func(s communication.StateChange) { states <- s }))
	first := c.ConnectionID()
	ts.kl.Kill()
	for {
		s := <-states
		if s.State == communication.Connected && s.ConnectionID != first {
			break
		}
	}
	waitFor(t, "the server lists the new connection", func() bool { return hasConn(ts, c.ConnectionID()) })
	requireSubset(t, reader, map[string]float64{
		"tharga.communication.client.reconnects{}":                         1,
		"signalr.server.active_connections{signalr.transport=web_sockets}": 1,
	})
}

// TestMetricsBackplane: a post to a client on another node is located
// once through the Backplane, and the calls' durations are recorded.
func TestMetricsBackplane(t *testing.T) {
	reader, mp := newReader(t)
	bp := communication.NewMemoryBackplane()
	notes := make(chan Note, 1)
	h := communication.NewHandlers()
	require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[Note](func(_ context.Context, n Note) error {
		notes <- n
		return nil
	})))
	one := newServer(t, communication.WithBackplane(bp), communication.WithNodeName("one"), communication.WithMeterProvider(mp))
	two := newServer(t, communication.WithBackplane(bp), communication.WithNodeName("two"))
	c := startClient(t, two, communication.WithHandlers(h))
	require.NoError(t, one.Post(ctxT(t, 10*time.Second), c.ConnectionID(), Note{Text: "across"}))
	require.Equal(t, "across", (<-notes).Text)
	got := series(t, reader)
	require.Equal(t, 1.0, got["tharga.communication.backplane.duration{tharga.communication.backplane.operation=locate}"], "%v", got)
	require.GreaterOrEqual(t, got["tharga.communication.backplane.duration{tharga.communication.backplane.operation=publish}"], 1.0, "%v", got)
	for k := range got {
		require.NotContains(t, k, "backplane.errors", "no Backplane call failed")
	}
}

// TestMetricsSlowConsumer: a connection that stops reading is dropped as
// a slow consumer, counted as such, and its duration recorded with the
// timeout status.
func TestMetricsSlowConsumer(t *testing.T) {
	reader, mp := newReader(t)
	ts := newServer(t, communication.WithMeterProvider(mp),
		communication.WithWriteTimeout(300*time.Millisecond), communication.WithSendQueueBytes(64<<10))
	ctx := ctxT(t, 30*time.Second)
	// A client that does the handshake and never reads again.
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+ts.Pattern(), nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"protocol":"json","version":1}`+"\x1e")))
	_, _, err = ws.Read(ctx)
	require.NoError(t, err)
	waitFor(t, "the server lists the client", func() bool { return len(ts.ConnectionIDs()) == 1 })

	big := Note{Text: strings.Repeat("b", 16<<10)}
	for i := 0; len(ts.ConnectionIDs()) > 0; i++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := ts.PostAll(pctx, big)
		cancel()
		require.NoError(t, err, "broadcast %d", i)
		require.NoError(t, ctx.Err(), "the client that does not read was never dropped")
	}
	requireSubset(t, reader, map[string]float64{
		"tharga.communication.slow_consumer.drops{}":                                                          1,
		"signalr.server.active_connections{signalr.transport=web_sockets}":                                    0,
		"signalr.server.connection.duration{signalr.connection.status=timeout,signalr.transport=web_sockets}": 1,
	})
}
