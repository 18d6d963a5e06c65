package communication_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
	"github.com/tharga/communication-go/internal/wire"
)

// negotiate posts a negotiate request and returns its answer.
func negotiate(t *testing.T, ts *testServer, header http.Header) (status int, id, token string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t, 10*time.Second), http.MethodPost, ts.URL+ts.Pattern()+"/negotiate?negotiateVersion=1", nil)
	require.NoError(t, err)
	if header != nil {
		req.Header = header.Clone()
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var nr struct{ ConnectionID, ConnectionToken string }
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&nr))
	}
	return resp.StatusCode, nr.ConnectionID, nr.ConnectionToken
}

// namedNotes registers a post handler for Note under its .NET name, for
// frames written by hand.
func namedNotes(t *testing.T, ts *testServer) chan Note {
	notes := make(chan Note, 10)
	require.NoError(t, communication.HandlePost(ts.Handlers(), communication.PostHandlerFunc[Note](func(_ context.Context, n Note) error {
		notes <- n
		return nil
	}), communication.WithName(noteName)))
	return notes
}

// TestNegotiationFlood: negotiations that are never followed by a
// connection neither refuse anybody (philippseith answered 429 past 1,000
// pending) nor keep a later client out.
func TestNegotiationFlood(t *testing.T) {
	ts := newServer(t)
	const n = 3000
	var wg sync.WaitGroup
	var refused atomic.Int64
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				if status, _, _ := negotiate(t, ts, nil); status != http.StatusOK {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, refused.Load(), "negotiates refused")
	c := startClient(t, ts)
	require.True(t, c.IsConnected())
}

// TestHugeIdentityHeaders: a record keeps at most 256 bytes of each
// identity value, however large the header.
func TestHugeIdentityHeaders(t *testing.T) {
	ts := newServer(t)
	big := strings.Repeat("m", 300<<10) // two of them stay under net/http's 1 MB of headers
	c := startClient(t, ts, communication.WithClientMachine(big), communication.WithClientType(big))
	rec, ok, err := ts.Client(ctxT(t, 5*time.Second), c.ConnectionID())
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, rec.Machine, 256)
	require.Len(t, rec.Type, 256)
}

// TestStrictHandshake: a handshake the library's parser refuses closes
// the connection with an error answer, even where philippseith would have
// taken it; nothing can then be invoked, and the connection's id is no
// credential for anything.
func TestStrictHandshake(t *testing.T) {
	ts := newServer(t, communication.WithAPIKeys("k1"))
	notes := namedNotes(t, ts)
	keyed := http.Header{communication.HeaderAPIKey: {"k1"}}
	for _, hs := range []string{
		`{"protocol":"json","version":0}`,
		`{"Protocol":"json","version":1}`,
		`{"protocol":"json"}`,
	} {
		status, id, token := negotiate(t, ts, keyed)
		require.Equal(t, http.StatusOK, status)
		url := "ws" + strings.TrimPrefix(ts.URL, "http") + ts.Pattern() + "?id=" + token
		ws, _, err := websocket.Dial(ctxT(t, 5*time.Second), url, &websocket.DialOptions{HTTPHeader: keyed})
		require.NoError(t, err)
		ctx := ctxT(t, 5*time.Second)
		require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(hs+"\x1e")))
		_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":1,"target":"PostMessage","arguments":[{"type":"`+noteName+`","payload":"{\"Text\":\"sneaked\"}"}]}`+"\x1e"))
		_, answer, err := ws.Read(ctx)
		require.NoError(t, err, hs)
		require.Contains(t, string(answer), `"error":`, hs)
		_, _, err = ws.Read(ctx)
		require.Error(t, err, "the connection is closed after a refused handshake: %s", hs)
		_ = ws.CloseNow()

		// The connection id and the token open nothing without a key.
		for _, cred := range []string{id, token} {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+ts.Pattern()+"?id="+cred,
				strings.NewReader(`{"type":1,"target":"PostMessage","arguments":[{"type":"`+noteName+`","payload":"{\"Text\":\"sneaked\"}"}]}`+"\x1e"))
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.NotEqual(t, http.StatusOK, resp.StatusCode)
		}
	}
	select {
	case n := <-notes:
		t.Fatalf("a post was executed on a connection whose handshake was refused: %+v", n)
	default:
	}
	require.Empty(t, ts.ConnectionIDs())
}

// TestTokenUsedOnce: the negotiate token of a live WebSocket connection
// does not open an event stream beside it.
func TestTokenUsedOnce(t *testing.T) {
	ts := newServer(t, communication.WithAPIKeys("k1"))
	keyed := http.Header{communication.HeaderAPIKey: {"k1"}}
	_, _, token := negotiate(t, ts, keyed)
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + ts.Pattern() + "?id=" + token
	ctx := ctxT(t, 5*time.Second)
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: keyed})
	require.NoError(t, err)
	defer ws.CloseNow()
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"protocol":"json","version":1}`+"\x1e")))
	_, answer, err := ws.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, "{}\x1e", string(answer))

	for _, h := range []http.Header{keyed, {}} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+ts.Pattern()+"?id="+token, nil)
		require.NoError(t, err)
		req.Header = h.Clone()
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.NotEqual(t, http.StatusOK, resp.StatusCode, "a second session on a used token")
	}
}

// TestOversizedDropped: a hub message over the limit is dropped, whatever
// its size and protocol, and the connection goes on.
func TestOversizedDropped(t *testing.T) {
	for _, size := range []int{40 << 10, 2 << 20} {
		ts := newServer(t)
		notes := namedNotes(t, ts)
		// JSON.
		p := dialRaw(t, ts, nil)
		huge := strings.Repeat("x", size)
		p.write(`{"type":1,"target":"PostMessage","arguments":[{"type":"` + noteName + `","payload":"{\"Text\":\"` + huge + `\"}"}]}`)
		p.write(`{"type":1,"target":"PostMessage","arguments":[{"type":"` + noteName + `","payload":"{\"Text\":\"after\"}"}]}`)
		select {
		case n := <-notes:
			require.Equal(t, "after", n.Text)
		case <-ctxT(t, 10*time.Second).Done():
			t.Fatalf("JSON %d: the post after an oversized one was not handled", size)
		}

		// MessagePack.
		url := "ws" + strings.TrimPrefix(ts.URL, "http") + ts.Pattern()
		ctx := ctxT(t, 10*time.Second)
		ws, _, err := websocket.Dial(ctx, url, nil)
		require.NoError(t, err)
		require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"protocol":"messagepack","version":1}`+"\x1e")))
		_, answer, err := ws.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, "{}\x1e", string(answer))
		big := wire.AppendMsgPackInvocation(nil, wire.TargetPost, &wire.Wrapper{Type: noteName, Payload: []byte(`{"Text":"` + huge + `"}`)})
		big = wire.AppendMsgPackInvocation(big, wire.TargetPost, &wire.Wrapper{Type: noteName, Payload: []byte(`{"Text":"after msgpack"}`)})
		require.NoError(t, ws.Write(ctx, websocket.MessageBinary, big))
		select {
		case n := <-notes:
			require.Equal(t, "after msgpack", n.Text)
		case <-ctx.Done():
			t.Fatalf("MessagePack %d: the post after an oversized one was not handled", size)
		}
		_ = ws.CloseNow()
	}
}

// TestTooLargeRefusedAtSender: a message larger than the receiver accepts
// is refused before it is sent, with ErrTooLarge, on either side; the
// connection goes on. An answer too large to send back fails the request
// at once.
func TestTooLargeRefusedAtSender(t *testing.T) {
	ts := newServer(t, communication.WithMaxMessageBytes(8<<10))
	notes := make(chan Note, 10)
	require.NoError(t, communication.HandlePost(ts.Handlers(), communication.PostHandlerFunc[Note](func(_ context.Context, n Note) error {
		notes <- n
		return nil
	})))
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Ping, Pong](func(_ context.Context, p Ping) (Pong, error) {
		return Pong{Reply: strings.Repeat("r", 64<<10)}, nil
	})))
	c := startClient(t, ts, communication.WithMaxMessageBytes(16<<10))
	ctx := ctxT(t, 10*time.Second)

	// The server said it takes 8 KiB: the client's own 16 KiB limit does
	// not matter for what it sends.
	err := c.Post(ctx, Note{Text: strings.Repeat("x", 12<<10)})
	require.ErrorIs(t, err, communication.ErrTooLarge)
	require.NoError(t, c.Post(ctx, Note{Text: "small"}))
	require.Equal(t, "small", (<-notes).Text)

	err = ts.Post(ctx, c.ConnectionID(), Note{Text: strings.Repeat("x", 20<<10)})
	require.ErrorIs(t, err, communication.ErrTooLarge)

	_, err = communication.Send[Pong](ctx, c, Ping{Message: "big answer"})
	require.ErrorIs(t, err, communication.ErrTooLarge)
	var re *communication.RemoteError
	require.ErrorAs(t, err, &re)
	require.True(t, c.IsConnected())
}

// TestBackpressureKeepsConnection: a connection whose handlers are all busy
// stops being read, but stays up past the server's timeout, and every
// request is answered.
func TestBackpressureKeepsConnection(t *testing.T) {
	timing := []communication.Option{
		communication.WithKeepAliveInterval(100 * time.Millisecond),
		communication.WithIdleTimeout(500 * time.Millisecond),
	}
	ts := newServer(t, timing[0], timing[1], communication.WithMaxRequestsPerConnection(2))
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Echo, EchoBack](func(ctx context.Context, e Echo) (EchoBack, error) {
		// Work that takes a while: together longer than the timeout.
		select {
		case <-time.After(150 * time.Millisecond):
		case <-ctx.Done():
			return EchoBack{}, ctx.Err()
		}
		return EchoBack(e), nil
	})))
	var drops atomic.Int64
	c := startClient(t, ts, timing[0], timing[1], communication.WithStateHandler(func(sc communication.StateChange) {
		if sc.State == communication.Reconnecting {
			drops.Add(1)
		}
	}))
	id := c.ConnectionID()
	const n = 16 // 8 rounds of 150 ms: 1.2 s, with a 0.5 s timeout
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := communication.Send[EchoBack](ctxT(t, 20*time.Second), c, Echo{N: i})
			if err == nil && got.N != i {
				err = errors.New("wrong answer")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, id, c.ConnectionID(), "the connection stayed the same")
	require.Zero(t, drops.Load())
}

// TestHandlersCancelledOnDrop: the running handlers of a connection that
// drops see their context end.
func TestHandlersCancelledOnDrop(t *testing.T) {
	ts := newServer(t)
	entered := make(chan struct{}, 4)
	cancelled := make(chan struct{}, 4)
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Hang, HangBack](func(ctx context.Context, _ Hang) (HangBack, error) {
		entered <- struct{}{}
		<-ctx.Done()
		cancelled <- struct{}{}
		return HangBack{}, ctx.Err()
	})))
	c := startClient(t, ts)
	for range 3 {
		go func() { _, _ = communication.Send[HangBack](context.Background(), c, Hang{}) }()
	}
	for range 3 {
		<-entered
	}
	ts.killConnections()
	for range 3 {
		select {
		case <-cancelled:
		case <-ctxT(t, 10*time.Second).Done():
			t.Fatal("a handler ran on after its client left")
		}
	}
}

// TestServerWideHandlerBound: WithMaxServerHandlers bounds the handlers
// running across all connections; every request is still answered.
func TestServerWideHandlerBound(t *testing.T) {
	ts := newServer(t, communication.WithMaxServerHandlers(2))
	var running, most atomic.Int64
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Echo, EchoBack](func(ctx context.Context, e Echo) (EchoBack, error) {
		n := running.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		defer running.Add(-1)
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
		}
		return EchoBack(e), nil
	})))
	var wg sync.WaitGroup
	for range 6 {
		c := startClient(t, ts)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := communication.Send[EchoBack](ctxT(t, 20*time.Second), c, Echo{N: i})
				require.NoError(t, err)
				require.Equal(t, i, got.N)
			}()
		}
	}
	wg.Wait()
	require.LessOrEqual(t, most.Load(), int64(2))
	require.Equal(t, int64(2), most.Load(), "the bound was reached, so it was tested")
}

// stuckSSE opens a server-sent-events session, does the handshake and
// then never reads its event stream again.
func stuckSSE(t *testing.T, ts *testServer) (token string) {
	t.Helper()
	_, _, token = negotiate(t, ts, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+ts.Pattern()+"?id="+token, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	stream, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, stream.StatusCode)
	t.Cleanup(func() {
		cancel()
		stream.Body.Close()
	})
	post := func(body string) int {
		req, err := http.NewRequestWithContext(ctxT(t, 10*time.Second), http.MethodPost, ts.URL+ts.Pattern()+"?id="+token, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, post(`{"protocol":"json","version":1}`+"\x1e"))
	// Read up to the handshake answer, then stop reading.
	buf := make([]byte, 0, 64)
	one := make([]byte, 1)
	for !strings.Contains(string(buf), "{}\x1e") {
		_, err := io.ReadFull(stream.Body, one)
		require.NoError(t, err)
		buf = append(buf, one[0])
	}
	return token
}

// TestSSEStuckReader: an event-stream client that never reads is dropped
// by the write timeout like a WebSocket one; broadcasts to everybody go on
// and return; its later POSTs are answered at once, not parked.
func TestSSEStuckReader(t *testing.T) {
	ts := newServer(t, communication.WithWriteTimeout(300*time.Millisecond), communication.WithSendQueueBytes(64<<10))
	token := stuckSSE(t, ts)
	notes := make(chan Note, 100)
	healthy := startClient(t, ts, communication.WithHandlers(func() *communication.Handlers {
		h := communication.NewHandlers()
		require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[Note](func(_ context.Context, n Note) error {
			select {
			case notes <- n:
			default:
			}
			return nil
		})))
		return h
	}()))
	require.Len(t, ts.ConnectionIDs(), 2)

	big := strings.Repeat("b", 16<<10)
	deadline := ctxT(t, 30*time.Second)
	for i := 0; len(ts.ConnectionIDs()) > 1; i++ {
		ctx, cancel := context.WithTimeout(deadline, 5*time.Second)
		err := ts.PostAll(ctx, Note{Text: big})
		cancel()
		require.NoError(t, err, "broadcast %d", i)
		require.NoError(t, deadline.Err(), "the stuck event stream was never dropped")
	}
	require.Equal(t, []string{healthy.ConnectionID()}, ts.ConnectionIDs())
	<-notes

	// POSTs to the dropped session are answered at once.
	for range 20 {
		req, err := http.NewRequestWithContext(ctxT(t, 5*time.Second), http.MethodPost, ts.URL+ts.Pattern()+"?id="+token, strings.NewReader(`{"type":6}`+"\x1e"))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.NotEqual(t, http.StatusOK, resp.StatusCode)
	}
}

// TestSlowConsumerReachesCaller: a request pending on a connection dropped
// for not reading fails with ErrConnectionLost and ErrSlowConsumer.
func TestSlowConsumerReachesCaller(t *testing.T) {
	ts := newServer(t, communication.WithWriteTimeout(300*time.Millisecond), communication.WithSendQueueBytes(64<<10))
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + ts.Pattern()
	ctx := ctxT(t, 30*time.Second)
	ws, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte(`{"protocol":"json","version":1}`+"\x1e")))
	_, _, err = ws.Read(ctx)
	require.NoError(t, err)
	var id string
	require.Eventually(t, func() bool {
		ids := ts.ConnectionIDs()
		if len(ids) == 1 {
			id = ids[0]
		}
		return id != ""
	}, 5*time.Second, time.Millisecond)

	sent := make(chan error, 1)
	go func() {
		_, err := communication.Send[Pong](ctx, ts.To(id), Ping{Message: "anyone?"})
		sent <- err
	}()
	big := Note{Text: strings.Repeat("b", 16<<10)}
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := ts.Post(pctx, id, big)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			break
		}
		require.NoError(t, ctx.Err(), "the connection was never dropped")
	}
	err = <-sent
	require.ErrorIs(t, err, communication.ErrConnectionLost)
	require.ErrorIs(t, err, communication.ErrSlowConsumer)
}

// TestIdleConnectionOutlivesTimeouts: a connection with no traffic but
// the keep-alive pings stays up for many times the idle timeout on both
// ends, in both protocols. philippseith runs its session on MessagePack
// whatever the peer speaks, and is handed each ping as a frame it reads
// whole (internal/transport/inner.go): were a sign of life held back
// until the next one, its timeout would fire.
func TestIdleConnectionOutlivesTimeouts(t *testing.T) {
	t.Parallel()
	for name, proto := range map[string]communication.Protocol{"json": communication.JSON, "messagepack": communication.MessagePack} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			timing := []communication.Option{
				communication.WithKeepAliveInterval(100 * time.Millisecond),
				communication.WithIdleTimeout(500 * time.Millisecond),
			}
			ts := newServer(t, timing[0], timing[1])
			got := make(chan Note, 1)
			var drops atomic.Int64
			c := newClient(t, ts, timing[0], timing[1], communication.WithProtocol(proto),
				communication.WithStateHandler(func(sc communication.StateChange) {
					if sc.State == communication.Reconnecting {
						drops.Add(1)
					}
				}))
			require.NoError(t, communication.HandlePost(c.Handlers(), communication.PostHandlerFunc[Note](func(_ context.Context, n Note) error {
				got <- n
				return nil
			})))
			require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
			id := c.ConnectionID()
			waitConnected(t, ts, id)
			// The server posts once the connection has been idle for six
			// timeouts.
			stop := time.AfterFunc(3*time.Second, func() {
				_ = ts.Post(context.Background(), id, Note{Text: "still here"})
			})
			defer stop.Stop()
			select {
			case n := <-got:
				require.Equal(t, "still here", n.Text)
			case <-ctxT(t, 10*time.Second).Done():
				t.Fatal("the post after the idle period never arrived")
			}
			require.Equal(t, id, c.ConnectionID(), "the connection stayed the same")
			require.Zero(t, drops.Load(), "the connection dropped while idle")
		})
	}
}
