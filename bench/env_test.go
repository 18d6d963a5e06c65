// Package bench_test measures this library beside raw
// github.com/philippseith/signalr and a raw github.com/coder/websocket
// connection, over real loopback HTTP servers, in the same run.
//
// Every benchmark is named Benchmark<Operation>/<direction or size>/.../<protocol>/<impl>,
// with impl one of ours, signalr (raw philippseith/signalr) and websocket
// (raw coder/websocket), and reports msgs/s (round trips per second for
// requests, deliveries per second for broadcasts). The table program in
// cmd/benchtable runs them and prints one table; run it with `make bench`.
//
// Only Benchmark functions live here: `go test ./...` compiles the package
// and runs nothing.
package bench_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	kitlog "github.com/go-kit/log"
	"github.com/philippseith/signalr"

	communication "github.com/tharga/communication-go"
	"github.com/tharga/communication-go/internal/testutil"
)

// The messages: each encodes to about 100 bytes of JSON
// ({"Seq":123,"Text":"..."}).
type (
	Note struct {
		Seq  int
		Text string
	}
	Ping struct {
		Seq  int
		Text string
	}
	Pong struct {
		Seq  int
		Text string
	}
)

// text makes the JSON of a message about 100 bytes long.
const text = "the quick brown fox jumps over the lazy dog, again and again, 0123456789"

// waitTimeout bounds every wait of a benchmark: a stuck benchmark fails
// instead of hanging.
const waitTimeout = 60 * time.Second

type protocol struct {
	name string
	ours communication.Protocol
	raw  signalr.TransferFormatType
}

var protocols = []protocol{
	{"json", communication.JSON, signalr.TransferFormatText},
	{"msgpack", communication.MessagePack, signalr.TransferFormatBinary},
}

// counter counts deliveries and lets one waiter wait for a total.
type counter = testutil.Counter

func report(b *testing.B, n int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(n)/s, "msgs/s")
	}
}

// parallel runs operations 1..n on workers goroutines (testutil.Parallel).
var parallel = testutil.Parallel

func bgCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), waitTimeout)
}

// --- ours ---------------------------------------------------------------

// oursEnv is a Server behind a loopback httptest server and its clients.
// Both sides count posts of Note and echo a Ping with a Pong.
type oursEnv struct {
	srv     *communication.Server
	hs      *httptest.Server
	clients []*communication.Client
	got     counter // Notes received, on either side
}

func newOurs(tb testing.TB) *oursEnv {
	tb.Helper()
	e := &oursEnv{}
	srv, err := communication.AddServer()
	if err != nil {
		tb.Fatal(err)
	}
	e.register(tb, srv.Handlers())
	mux := http.NewServeMux()
	srv.Mount(mux)
	e.srv = srv
	e.hs = httptest.NewServer(mux)
	tb.Cleanup(e.close)
	return e
}

func (e *oursEnv) register(tb testing.TB, h *communication.Handlers) {
	tb.Helper()
	err := communication.HandlePost(h, communication.PostHandlerFunc[Note](func(context.Context, Note) error {
		e.got.Add()
		return nil
	}))
	if err == nil {
		err = communication.HandleSend(h, communication.SendHandlerFunc[Ping, Pong](func(_ context.Context, p Ping) (Pong, error) {
			return Pong(p), nil
		}))
	}
	if err != nil {
		tb.Fatal(err)
	}
}

// connect starts n clients, at most 32 connecting at a time, and waits
// until the server lists them all.
func (e *oursEnv) connect(tb testing.TB, n int, p protocol) {
	tb.Helper()
	clients := make([]*communication.Client, n)
	for i := range clients {
		c, err := communication.AddClient(
			communication.WithServerAddress(e.hs.URL),
			communication.WithProtocol(p.ours),
		)
		if err != nil {
			tb.Fatal(err)
		}
		e.register(tb, c.Handlers())
		clients[i] = c
	}
	e.clients = append(e.clients, clients...)
	err := parallel(n, 32, func(_, i int) error {
		ctx, cancel := bgCtx()
		defer cancel()
		return clients[i-1].Start(ctx)
	})
	if err != nil {
		tb.Fatal(err)
	}
	want := len(e.clients)
	waitUntil(tb, func() bool { return len(e.srv.ConnectionIDs()) >= want })
}

// close stops the clients and the server; newOurs registers it as a
// cleanup of the benchmark.
func (e *oursEnv) close() {
	_ = parallel(len(e.clients), 32, func(_, i int) error { return e.clients[i-1].Close() })
	_ = e.srv.Close()
	e.hs.CloseClientConnections()
	e.hs.Close()
}

// --- raw philippseith/signalr ---------------------------------------------

// rawState is what the raw hub and receivers share with a benchmark.
type rawState struct {
	got counter // Notes received, on either side

	mu      sync.Mutex
	connIDs []string
	replies []chan struct{} // server-to-client requests by worker, answered by Resp
}

// rawHub is the raw server's hub: one per invocation (HubFactory).
type rawHub struct {
	signalr.Hub
	st *rawState
}

func (h *rawHub) OnConnected(id string) {
	h.st.mu.Lock()
	h.st.connIDs = append(h.st.connIDs, id)
	h.st.mu.Unlock()
}

// Post counts a posted Note.
func (h *rawHub) Post(Note) { h.st.got.Add() }

// Echo answers an Invoke.
func (h *rawHub) Echo(p Ping) Pong { return Pong(p) }

// Resp takes a client's answer to the server's request Req.
func (h *rawHub) Resp(worker int, _ Pong) {
	h.st.mu.Lock()
	ch := h.st.replies[worker]
	h.st.mu.Unlock()
	ch <- struct{}{}
}

// rawReceiver is a raw client's receiver.
type rawReceiver struct {
	st *rawState
	c  *rawClient
}

// Post counts a Note posted by the server.
func (r *rawReceiver) Post(Note) { r.st.got.Add() }

// Req answers a request of the server with a Send of Resp: philippseith
// has no server-to-client invocation with a result.
func (r *rawReceiver) Req(worker int, p Ping) {
	r.c.send("Resp", worker, Pong(p))
}

// rawEnv is a raw philippseith server behind a loopback httptest server
// and its clients.
type rawEnv struct {
	st      *rawState
	srv     signalr.Server
	cancel  context.CancelFunc
	hs      *httptest.Server
	clients []*rawClient
}

func newRaw(tb testing.TB) *rawEnv {
	tb.Helper()
	e := &rawEnv{st: &rawState{}}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := signalr.NewServer(ctx,
		signalr.HubFactory(func() signalr.HubInterface { return &rawHub{st: e.st} }),
		signalr.Logger(kitlog.NewNopLogger(), false),
	)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.MapHTTP(signalr.WithHTTPServeMux(mux), "/hub")
	e.srv, e.cancel, e.hs = srv, cancel, httptest.NewServer(mux)
	tb.Cleanup(e.close)
	return e
}

// connect starts n clients, at most 32 connecting at a time, and waits
// until the server saw them all connect.
func (e *rawEnv) connect(tb testing.TB, n int, p protocol) {
	tb.Helper()
	start := len(e.clients)
	e.clients = append(e.clients, make([]*rawClient, n)...)
	err := parallel(n, 32, func(_, i int) error {
		c, err := dialRaw(e.hs.URL+"/hub", p, e.st)
		e.clients[start+i-1] = c
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	want := len(e.clients)
	waitUntil(tb, func() bool {
		e.st.mu.Lock()
		defer e.st.mu.Unlock()
		return len(e.st.connIDs) >= want
	})
}

// close stops the clients and the server; newRaw registers it as a
// cleanup of the benchmark.
func (e *rawEnv) close() {
	for _, c := range e.clients {
		if c != nil {
			c.cancel()
		}
	}
	e.cancel()
	e.hs.CloseClientConnections()
	e.hs.Close()
}

// rawClient is a raw philippseith client over a gateConn.
type rawClient struct {
	signalr.Client
	conn   *gateConn
	cancel context.CancelFunc
	gated  atomic.Bool // send through the gate (see gateConn)
}

func dialRaw(url string, p protocol, st *rawState) (*rawClient, error) {
	ctx, cancel := context.WithCancel(context.Background())
	dctx, dcancel := context.WithTimeout(ctx, waitTimeout)
	defer dcancel()
	conn, err := signalr.NewHTTPConnection(dctx, url)
	if err != nil {
		cancel()
		return nil, err
	}
	rc := &rawClient{conn: newGateConn(conn), cancel: cancel}
	c, err := signalr.NewClient(ctx,
		signalr.WithConnection(rc.conn),
		signalr.WithReceiver(&rawReceiver{st: st, c: rc}),
		signalr.TransferFormat(p.raw),
		signalr.Logger(kitlog.NewNopLogger(), false),
	)
	if err != nil {
		cancel()
		return nil, err
	}
	rc.Client = c
	c.Start()
	return rc, nil
}

// send is a client Send that nobody waits for (the completion the server
// sends back ends it), gated when the client has many in flight.
func (c *rawClient) send(method string, args ...any) {
	if !c.gated.Load() {
		c.Send(method, args...)
		return
	}
	c.conn.gate.Lock()
	defer c.conn.gate.Unlock()
	c.conn.drain()
	errc := c.Send(method, args...)
	select {
	case <-c.conn.written:
	case <-errc:
	case <-time.After(waitTimeout):
	}
}

// invoke is a client Invoke, gated when the client has many in flight.
func (c *rawClient) invoke(method string, args ...any) signalr.InvokeResult {
	if !c.gated.Load() {
		return <-c.Invoke(method, args...)
	}
	c.conn.gate.Lock()
	c.conn.drain()
	ch := c.Invoke(method, args...)
	select {
	case <-c.conn.written:
	case r := <-ch:
		c.conn.gate.Unlock()
		return r
	case <-time.After(waitTimeout):
	}
	c.conn.gate.Unlock()
	return <-ch
}

// gateConn passes a raw client's connection through unchanged, and
// signals every invocation it writes.
//
// The raw client cannot have more than one Send or Invoke under way at a
// time: each runs in its own goroutine, which takes its invocation id with
// an atomic add followed by a separate load (loop.GetNewID), so that two
// concurrent calls can take the same id; one then hangs and the connection
// drops (SIGNALR-NOTES.md). The gate lets many calls be in flight on one
// connection safely: a caller starts its call under a mutex and keeps it
// until the call's invocation reaches this Write, which happens after the
// id was taken. Calls are pipelined: nobody waits for an answer under the
// mutex, only for the raw client's own goroutine to reach the socket.
type gateConn struct {
	signalr.Connection
	gate    sync.Mutex
	written chan struct{}
}

var _ signalr.ConnectionWithTransferMode = (*gateConn)(nil)

func newGateConn(c signalr.Connection) *gateConn {
	return &gateConn{Connection: c, written: make(chan struct{}, 1)}
}

func (g *gateConn) Write(p []byte) (int, error) {
	if isInvocation(p) {
		select {
		case g.written <- struct{}{}:
		default:
		}
	}
	return g.Connection.Write(p)
}

func (g *gateConn) drain() {
	select {
	case <-g.written:
	default:
	}
}

func (g *gateConn) TransferMode() signalr.TransferMode {
	return g.Connection.(signalr.ConnectionWithTransferMode).TransferMode()
}

func (g *gateConn) SetTransferMode(m signalr.TransferMode) {
	g.Connection.(signalr.ConnectionWithTransferMode).SetTransferMode(m)
}

// isInvocation tells an invocation (type 1) from pings and handshakes, as
// philippseith writes them: one hub message per Write.
func isInvocation(p []byte) bool {
	if len(p) > 0 && p[0] == '{' {
		return bytes.HasPrefix(p, []byte(`{"type":1,`))
	}
	// MessagePack: a varint length, then [1, ...].
	i := 0
	for i < len(p) && i < 5 && p[i]&0x80 != 0 {
		i++
	}
	i++
	return i+1 < len(p) && p[i]&0xf0 == 0x90 && p[i+1] == 1
}

// --- raw coder/websocket ------------------------------------------------

// wsEnv is a loopback httptest server accepting raw WebSockets, and the
// client ends of the connections made to it.
type wsEnv struct {
	hs      *httptest.Server
	server  chan *websocket.Conn // accepted connections
	done    chan struct{}
	clients []*websocket.Conn
	servers []*websocket.Conn
}

func newWS(tb testing.TB) *wsEnv {
	tb.Helper()
	e := &wsEnv{server: make(chan *websocket.Conn, 64), done: make(chan struct{})}
	e.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		select {
		case e.server <- ws:
		case <-e.done:
			_ = ws.CloseNow()
		}
	}))
	tb.Cleanup(e.close)
	return e
}

// connect opens n connections, at most 32 at a time.
func (e *wsEnv) connect(tb testing.TB, n int) {
	tb.Helper()
	url := "ws" + strings.TrimPrefix(e.hs.URL, "http")
	start := len(e.clients)
	e.clients = append(e.clients, make([]*websocket.Conn, n)...)
	go func() {
		_ = parallel(n, 32, func(_, i int) error {
			ctx, cancel := bgCtx()
			defer cancel()
			ws, _, err := websocket.Dial(ctx, url, nil)
			if err != nil {
				return err
			}
			e.clients[start+i-1] = ws
			return nil
		})
	}()
	t := time.NewTimer(waitTimeout)
	defer t.Stop()
	for range n {
		select {
		case ws := <-e.server:
			e.servers = append(e.servers, ws)
		case <-t.C:
			tb.Fatal("timed out connecting")
		}
	}
	waitUntil(tb, func() bool {
		for _, c := range e.clients[start:] {
			if c == nil {
				return false
			}
		}
		return true
	})
}

// close closes every connection and the server; newWS registers it as a
// cleanup of the benchmark.
func (e *wsEnv) close() {
	close(e.done)
	for _, c := range e.clients {
		if c != nil {
			_ = c.CloseNow()
		}
	}
	for _, c := range e.servers {
		_ = c.CloseNow()
	}
	e.hs.CloseClientConnections()
	e.hs.Close()
}

// --- helpers ------------------------------------------------------------

func waitUntil(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("timed out waiting")
		}
		time.Sleep(time.Millisecond)
	}
}

// settle waits (up to 15 s) until the number of goroutines stops falling,
// so that what an earlier benchmark left behind does not end inside a
// measurement.
func settle() {
	deadline := time.Now().Add(15 * time.Second)
	last, same := runtime.NumGoroutine(), 0
	for time.Now().Before(deadline) && same < 5 {
		time.Sleep(50 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n < last {
			last, same = n, 0
		} else {
			same++
		}
	}
}

func note(i int) Note { return Note{Seq: i, Text: text} }
func ping(i int) Ping { return Ping{Seq: i, Text: text} }

// wsMessage is what the raw WebSocket benchmarks send: the JSON of a Ping.
var wsMessage = []byte(fmt.Sprintf(`{"Seq":%d,"Text":%q}`, 123456, text))
