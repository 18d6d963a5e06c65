package communication_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	communication "github.com/tharga/communication-go"
	"github.com/tharga/communication-go/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Test messages.
type (
	Ping     struct{ Message string }
	Pong     struct{ Reply string }
	Note     struct{ Text string }
	Seq      struct{ N int }
	Echo     struct{ N int }
	EchoBack struct{ N int }
	Boom     struct{}
	BoomBack struct{}
	Hang     struct{}
	HangBack struct{}
)

// newState builds a ClientState for a test.
func newState[T any](t *testing.T, opts ...communication.ClientStateOption) *communication.ClientState[T] {
	t.Helper()
	s, err := communication.NewClientState[T](opts...)
	require.NoError(t, err)
	return s
}

// testLogger logs to the test output when -v and COMM_LOG=1 are given.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("COMM_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type testServer struct {
	*communication.Server
	http *httptest.Server
	URL  string
	kl   *testutil.KillListener
}

// newServer starts a Server behind a loopback httptest server; both stop
// when the test ends.
func newServer(t *testing.T, opts ...communication.ServerOption) *testServer {
	t.Helper()
	opts = append([]communication.ServerOption{communication.WithLogger(testLogger(t))}, opts...)
	srv, err := communication.AddServer(opts...)
	require.NoError(t, err)
	mux := http.NewServeMux()
	srv.Mount(mux)
	return serveTest(t, srv, mux)
}

// serveTest serves h on loopback with a listener that can cut every
// connection, hijacked WebSockets included.
func serveTest(t *testing.T, srv *communication.Server, h http.Handler) *testServer {
	t.Helper()
	hs := httptest.NewUnstartedServer(h)
	kl := &testutil.KillListener{Listener: hs.Listener}
	hs.Listener = kl
	hs.Start()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		kl.Kill()
		hs.Close()
	})
	return &testServer{Server: srv, http: hs, URL: hs.URL, kl: kl}
}

// killConnections cuts every TCP connection to the server, as a crash or
// a network failure would.
func (ts *testServer) killConnections() { ts.kl.Kill() }

// newClient builds a client of ts; it is closed when the test ends.
func newClient(t *testing.T, ts *testServer, opts ...communication.ClientOption) *communication.Client {
	t.Helper()
	opts = append([]communication.ClientOption{
		communication.WithServerAddress(ts.URL),
		communication.WithLogger(testLogger(t)),
		communication.WithReconnectDelays(0, 50*time.Millisecond),
	}, opts...)
	c, err := communication.AddClient(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// startClient builds and starts a client.
func startClient(t *testing.T, ts *testServer, opts ...communication.ClientOption) *communication.Client {
	t.Helper()
	c := newClient(t, ts, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.Start(ctx))
	waitConnected(t, ts, c.ConnectionID())
	return c
}

// waitConnected waits until the server lists the connection.
func waitConnected(t *testing.T, ts *testServer, id string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, c := range ts.ConnectionIDs() {
			if c == id {
				return true
			}
		}
		return false
	}, 10*time.Second, time.Millisecond)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// rawPeer speaks the SignalR JSON protocol over a WebSocket by hand, as a
// .NET client does, to test what our server reads and writes on the wire.
type rawPeer struct {
	t      *testing.T
	ws     *websocket.Conn
	frames chan []byte
	done   chan struct{}
}

// dialRaw connects without negotiate (skip-negotiation) and does the
// handshake.
func dialRaw(t *testing.T, ts *testServer, header http.Header) *rawPeer {
	t.Helper()
	return openRaw(t, "ws"+strings.TrimPrefix(ts.URL, "http")+ts.Pattern(), header)
}

// dialRawNegotiated negotiates, as every SignalR client does by default,
// then connects with the connection token it was given and does the
// handshake.
func dialRawNegotiated(t *testing.T, ts *testServer, header http.Header) *rawPeer {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t, 10*time.Second), http.MethodPost,
		ts.URL+ts.Pattern()+"/negotiate?negotiateVersion=1", nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var nego struct {
		ConnectionToken string `json:"connectionToken"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&nego))
	require.NotEmpty(t, nego.ConnectionToken)
	return openRaw(t, "ws"+strings.TrimPrefix(ts.URL, "http")+ts.Pattern()+"?id="+url.QueryEscape(nego.ConnectionToken), header)
}

// openRaw opens a WebSocket at addr and does the handshake.
func openRaw(t *testing.T, addr string, header http.Header) *rawPeer {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	ws, _, err := websocket.Dial(ctx, addr, &websocket.DialOptions{HTTPHeader: header})
	require.NoError(t, err)
	ws.SetReadLimit(1 << 20)
	p := &rawPeer{t: t, ws: ws, frames: make(chan []byte, 10000), done: make(chan struct{})}
	go p.readLoop()
	t.Cleanup(func() {
		_ = ws.CloseNow()
		<-p.done
	})
	p.write(`{"protocol":"json","version":1}`)
	require.Equal(t, "{}", string(p.next(5*time.Second)))
	return p
}

func (p *rawPeer) readLoop() {
	defer close(p.done)
	for {
		_, data, err := p.ws.Read(context.Background())
		if err != nil {
			return
		}
		for _, rec := range bytes.Split(data, []byte{0x1e}) {
			if len(rec) > 0 {
				p.frames <- append([]byte(nil), rec...)
			}
		}
	}
}

// write sends one record (the separator is added).
func (p *rawPeer) write(record string) {
	p.t.Helper()
	require.NoError(p.t, p.ws.Write(context.Background(), websocket.MessageText, append([]byte(record), 0x1e)))
}

// next returns the next record that is not a ping.
func (p *rawPeer) next(d time.Duration) []byte {
	p.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case f := <-p.frames:
			if bytes.Equal(f, []byte(`{"type":6}`)) {
				continue
			}
			return f
		case <-timer.C:
			p.t.Fatalf("no frame within %v", d)
			return nil
		}
	}
}

// rawFrame is a decoded invocation or completion.
type rawFrame struct {
	Type         int               `json:"type"`
	Target       string            `json:"target"`
	InvocationID string            `json:"invocationId"`
	Error        string            `json:"error"`
	Arguments    []json.RawMessage `json:"arguments"`
}

type rawWrapper struct {
	Type          string `json:"type"`
	Payload       string `json:"payload"`
	CorrelationID string `json:"correlationId"`
}

func (p *rawPeer) nextFrame(d time.Duration) (rawFrame, rawWrapper) {
	p.t.Helper()
	var f rawFrame
	rec := p.next(d)
	require.NoError(p.t, json.Unmarshal(rec, &f), string(rec))
	var w rawWrapper
	if len(f.Arguments) == 1 {
		require.NoError(p.t, json.Unmarshal(f.Arguments[0], &w), string(rec))
	}
	return f, w
}
