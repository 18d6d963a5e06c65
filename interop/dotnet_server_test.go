package interop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// This file plays a .NET Tharga server (ASP.NET Core SignalR) against our
// Client: a loopback HTTP server that answers negotiate, accepts the
// WebSocket on the connection token and does the JSON handshake by hand,
// then writes and reads the frames of the .NET library. Like the .NET
// server it echoes no correlation id and answers one connection's requests
// in the order they came.

// fakeDotNetServer is the .NET server.
type fakeDotNetServer struct {
	t   testing.TB
	hs  *httptest.Server
	URL string
	// status decides the negotiate answer from the request headers: 200
	// goes on; anything else is answered as is (a 401 for a bad key).
	status func(http.Header) int

	negotiates chan *http.Request // negotiate requests, in order
	upgrades   chan *http.Request // WebSocket requests, in order
	conns      chan *rawConn      // accepted WebSockets, before the handshake

	mu     sync.Mutex
	tokens map[string]bool
	open   []*rawConn
	n      atomic.Int64
}

func newFakeDotNetServer(t testing.TB) *fakeDotNetServer {
	t.Helper()
	s := &fakeDotNetServer{
		t:          t,
		status:     func(http.Header) int { return http.StatusOK },
		negotiates: make(chan *http.Request, 100),
		upgrades:   make(chan *http.Request, 100),
		conns:      make(chan *rawConn, 100),
		tokens:     map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hub/negotiate", s.negotiate)
	mux.HandleFunc("GET /hub", s.upgrade)
	s.hs = httptest.NewServer(mux)
	s.URL = s.hs.URL
	t.Cleanup(func() {
		s.mu.Lock()
		open := s.open
		s.mu.Unlock()
		for _, c := range open {
			c.close()
		}
		s.hs.Close()
	})
	return s
}

func (s *fakeDotNetServer) negotiate(w http.ResponseWriter, r *http.Request) {
	s.negotiates <- r.Clone(context.Background())
	if st := s.status(r.Header); st != http.StatusOK {
		w.WriteHeader(st)
		return
	}
	if r.URL.Query().Get("negotiateVersion") != "1" {
		http.Error(w, "negotiateVersion=1 expected", http.StatusBadRequest)
		return
	}
	n := s.n.Add(1)
	id, token := fmt.Sprintf("conn-%d-AbCdEf", n), fmt.Sprintf("token-%d-ZyXwVu", n)
	s.mu.Lock()
	s.tokens[token] = true
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"negotiateVersion":1,"connectionId":%q,"connectionToken":%q,"availableTransports":[`+
		`{"transport":"WebSockets","transferFormats":["Text","Binary"]},`+
		`{"transport":"ServerSentEvents","transferFormats":["Text"]},`+
		`{"transport":"LongPolling","transferFormats":["Text","Binary"]}]}`, id, token)
}

func (s *fakeDotNetServer) upgrade(w http.ResponseWriter, r *http.Request) {
	s.upgrades <- r.Clone(context.Background())
	s.mu.Lock()
	ok := s.tokens[r.URL.Query().Get("id")]
	delete(s.tokens, r.URL.Query().Get("id"))
	s.mu.Unlock()
	if !ok {
		http.Error(w, "No Connection with that ID", http.StatusNotFound)
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	c := newRawConn(s.t, ws)
	s.mu.Lock()
	s.open = append(s.open, c)
	s.mu.Unlock()
	s.conns <- c
}

// accept returns the next connection after the JSON handshake.
func (s *fakeDotNetServer) accept() *rawConn {
	s.t.Helper()
	c := recv(s.t, s.conns, wait, "a WebSocket from the Go client")
	require.Equal(s.t, `{"protocol":"json","version":1}`, string(c.nextRecord(wait)), "handshake request")
	c.write(`{}`)
	return c
}

// dotNetClientOf builds a Go client of the .NET server; it is closed when
// the test ends.
func dotNetClientOf(t testing.TB, s *fakeDotNetServer, opts ...communication.ClientOption) *communication.Client {
	t.Helper()
	c, err := communication.AddClient(append([]communication.ClientOption{
		communication.WithServerAddress(s.URL),
		communication.WithLogger(logger(t)),
		communication.WithReconnectDelays(0, 20*time.Millisecond),
	}, opts...)...)
	require.NoError(t, err)
	h := c.Handlers()
	require.NoError(t, communication.RegisterName[Ping](h, pingName))
	require.NoError(t, communication.RegisterName[Pong](h, pongName))
	require.NoError(t, communication.RegisterName[Greeting](h, greetingName))
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// startAgainst starts c and accepts its connection on s.
func startAgainst(t testing.TB, s *fakeDotNetServer, c *communication.Client) *rawConn {
	t.Helper()
	started := goAsync(func() (struct{}, error) { return struct{}{}, c.Start(ctxFor(t, wait)) })
	conn := s.accept()
	_, err := started.wait(t)
	require.NoError(t, err)
	return conn
}

// TestGoClientHeadersToDotNetServer: the requests our client makes, as the
// .NET server reads them: negotiate at {address}/hub/negotiate with
// negotiateVersion=1, the WebSocket at /hub?id=<connectionToken>, the
// X-Client-* headers and X-Api-Key on both, the JSON handshake.
func TestGoClientHeadersToDotNetServer(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		s := newFakeDotNetServer(t)
		c := dotNetClientOf(t, s, communication.WithAPIKey("the-key"))
		startAgainst(t, s, c)
		neg := recv(t, s.negotiates, wait, "negotiate")
		up := recv(t, s.upgrades, wait, "the WebSocket request")
		require.Equal(t, "/hub/negotiate", neg.URL.Path)
		require.Equal(t, "1", neg.URL.Query().Get("negotiateVersion"))
		require.Equal(t, "/hub", up.URL.Path)
		require.Equal(t, "token-1-ZyXwVu", up.URL.Query().Get("id"), "the WebSocket must carry the connectionToken, not the connectionId")

		host, _ := os.Hostname()
		exe, _ := os.Executable()
		for name, r := range map[string]*http.Request{"negotiate": neg, "WebSocket": up} {
			inst := r.Header.Get("X-Client-Instance")
			_, err := uuid.Parse(inst)
			require.NoError(t, err, "%s: X-Client-Instance %q is not a GUID (.NET parses it with Guid.Parse)", name, inst)
			require.Len(t, inst, 36, "%s: the GUID form Guid.Parse reads", name)
			require.Equal(t, c.Instance(), inst, name)
			require.Equal(t, host, r.Header.Get("X-Client-Machine"), name)
			require.Equal(t, strings.TrimSuffix(filepath.Base(exe), filepath.Ext(exe)), r.Header.Get("X-Client-Type"), name)
			// A test binary has no module version: the header is omitted,
			// as the .NET client omits an empty one.
			require.NotContains(t, r.Header, "X-Client-Version", name)
			require.Equal(t, "the-key", r.Header.Get("X-Api-Key"), name)
		}
	})

	t.Run("set by options, and the same instance on reconnect", func(t *testing.T) {
		s := newFakeDotNetServer(t)
		const inst = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
		c := dotNetClientOf(t, s,
			communication.WithClientInstance(inst),
			communication.WithClientMachine("WEB-01"),
			communication.WithClientType("Contoso.Gateway"),
			communication.WithClientVersion("1.4.2"),
		)
		conn := startAgainst(t, s, c)
		conn.close() // the server drops the connection: the client comes back
		s.accept()
		for range 2 {
			for _, ch := range []chan *http.Request{s.negotiates, s.upgrades} {
				r := recv(t, ch, wait, "a connect request")
				require.Equal(t, inst, r.Header.Get("X-Client-Instance"))
				require.Equal(t, "WEB-01", r.Header.Get("X-Client-Machine"))
				require.Equal(t, "Contoso.Gateway", r.Header.Get("X-Client-Type"))
				require.Equal(t, "1.4.2", r.Header.Get("X-Client-Version"))
				require.NotContains(t, r.Header, "X-Api-Key", "no key configured: no header")
			}
		}
	})
}

// TestGoClientToDotNetServer: posts and requests from our client to a .NET
// server, which answers in order and echoes no correlation id.
func TestGoClientToDotNetServer(t *testing.T) {
	s := newFakeDotNetServer(t)
	c := dotNetClientOf(t, s)
	conn := startAgainst(t, s, c)
	ctx := ctxFor(t, 30*time.Second)

	t.Run("post", func(t *testing.T) {
		require.NoError(t, c.Post(ctx, Greeting{Text: "Hello from client", N: 1}))
		f := conn.next(wait)
		typ, payload := requireInvocation(t, f, "PostMessage")
		require.Equal(t, greetingName, typ)
		require.JSONEq(t, `{"Text":"Hello from client","N":1}`, payload)
		requirePascalCase(t, payload)
		require.NotContains(t, f.Wrapper, "correlationId", "a post needs no correlation id")
	})

	t.Run("request", func(t *testing.T) {
		res := goAsync(func() (Pong, error) { return communication.Send[Pong](ctx, c, Ping{Message: "Ping"}) })
		typ, payload := requireInvocation(t, conn.next(wait), "SendMessage")
		require.Equal(t, pingName, typ)
		require.JSONEq(t, `{"Message":"Ping"}`, payload)
		conn.write(`{"type":1,"target":"ResponseMessage","arguments":[{"type":"` + pongName + `","payload":"{\"Reply\":\"Pong: Ping\"}"}]}`)
		pong, err := res.wait(t)
		require.NoError(t, err)
		require.Equal(t, "Pong: Ping", pong.Reply)
	})

	t.Run("requests answered in order without ids", func(t *testing.T) {
		const n = 12
		pings := make([]*async[Pong], n)
		for i := range n {
			pings[i] = goAsync(func() (Pong, error) {
				return communication.Send[Pong](ctx, c, Ping{Message: fmt.Sprint("m", i)})
			})
		}
		// The server runs one connection's calls one at a time, in the
		// order they came, and answers each as it finishes.
		for range n {
			_, payload := requireInvocation(t, conn.next(wait), "SendMessage")
			var p Ping
			require.NoError(t, json.Unmarshal([]byte(payload), &p))
			conn.write(invocation("ResponseMessage", pongName, stjPayload("Reply", "for "+p.Message)))
		}
		for i, a := range pings {
			pong, err := a.wait(t)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprint("for m", i), pong.Reply, "request %d got another request's answer", i)
		}
	})

	t.Run("a late answer is dropped", func(t *testing.T) {
		quick, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := communication.Send[Pong](quick, c, Ping{Message: "slow"})
		require.ErrorIs(t, err, communication.ErrTimeout)
		_, payload := requireInvocation(t, conn.next(wait), "SendMessage")
		require.JSONEq(t, `{"Message":"slow"}`, payload)

		next := goAsync(func() (Pong, error) { return communication.Send[Pong](ctx, c, Ping{Message: "next"}) })
		_, payload = requireInvocation(t, conn.next(wait), "SendMessage")
		require.JSONEq(t, `{"Message":"next"}`, payload)
		// In order: first the late answer, then the right one.
		conn.write(invocation("ResponseMessage", pongName, stjPayload("Reply", "LATE: slow")))
		conn.write(invocation("ResponseMessage", pongName, stjPayload("Reply", "for next")))
		pong, err := next.wait(t)
		require.NoError(t, err)
		require.Equal(t, "for next", pong.Reply)
	})

	t.Run("the .NET error answer", func(t *testing.T) {
		res := goAsync(func() (Pong, error) { return communication.Send[Pong](ctx, c, Ping{Message: "x"}) })
		conn.next(wait)
		conn.write(`{"type":1,"target":"ResponseMessage","arguments":[{"type":"` + pingName + `","payload":"{\"Error\":\"Cannot find handler for type 'Interop.Ping'.\"}"}]}`)
		_, err := res.wait(t)
		var remote *communication.RemoteError
		require.ErrorAs(t, err, &remote)
		require.ErrorIs(t, err, communication.ErrUnknownType)
		require.Equal(t, "Cannot find handler for type 'Interop.Ping'.", remote.Message)
		require.Empty(t, remote.Code)
	})
}

// TestDotNetServerToGoClient: posts and requests from a .NET server to our
// client, with .NET names of every shape.
func TestDotNetServerToGoClient(t *testing.T) {
	s := newFakeDotNetServer(t)
	c := dotNetClientOf(t, s)
	got := make(chan any, 10)
	h := c.Handlers()
	require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[Notice](func(ctx context.Context, n Notice) error {
		got <- n
		return nil
	}), communication.WithName(noticeName)))
	require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[Shipped](func(ctx context.Context, v Shipped) error {
		got <- v
		return nil
	}), communication.WithName(nestedName)))
	require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[Envelope](func(ctx context.Context, e Envelope) error {
		got <- e
		return nil
	}), communication.WithName(genericName)))
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[StatusQuery, StatusReport](func(ctx context.Context, q StatusQuery) (StatusReport, error) {
		return StatusReport{Healthy: true, Runtime: "go"}, nil
	}), communication.WithName(statusName), communication.WithResponseName(reportName)))
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Fail, FailBack](func(ctx context.Context, f Fail) (FailBack, error) {
		return FailBack{}, fmt.Errorf("disk full")
	}), communication.WithName(failName)))
	conn := startAgainst(t, s, c)

	t.Run("posts", func(t *testing.T) {
		conn.write(`{"type":1,"target":"PostMessage","arguments":[{"type":"` + noticeName + `","payload":"{\"Text\":\"Hello from server\"}"}]}`)
		require.Equal(t, Notice{Text: "Hello from server"}, recv(t, got, wait, "the post"))
		conn.write(invocation("PostMessage", nestedNameV2, stjPayload("OrderID", "Ø-1", "Items", 2)))
		require.Equal(t, Shipped{OrderID: "Ø-1", Items: 2}, recv(t, got, wait, "the nested post"))
		conn.write(invocation("PostMessage", genericOuterV, `{"Body":{"ID":"G","Total":3},"Created":"2026-01-02T03:04:05Z"}`))
		require.Equal(t, "G", recv(t, got, wait, "the generic post").(Envelope).Body.ID)
	})

	t.Run("request", func(t *testing.T) {
		conn.write(invocation("SendMessage", strings.Replace(statusName, "1.0.0.0", "9.9.9.9", 1), "{}"))
		f := conn.next(wait)
		typ, payload := requireInvocation(t, f, "ResponseMessage")
		require.Equal(t, reportName, typ)
		require.JSONEq(t, `{"Healthy":true,"Runtime":"go"}`, payload)
		requirePascalCase(t, payload)
		require.NotContains(t, f.Wrapper, "correlationId")
	})

	t.Run("error answers", func(t *testing.T) {
		conn.write(invocation("SendMessage", failName, "{}"))
		typ, payload := requireInvocation(t, conn.next(wait), "ResponseMessage")
		require.Equal(t, failName, typ)
		var e struct{ Error string }
		require.NoError(t, json.Unmarshal([]byte(payload), &e))
		require.Equal(t, "disk full", e.Error)

		conn.write(invocation("SendMessage", "Contoso.Nope, Contoso", "{}"))
		typ, payload = requireInvocation(t, conn.next(wait), "ResponseMessage")
		require.Equal(t, "Contoso.Nope, Contoso", typ)
		require.NoError(t, json.Unmarshal([]byte(payload), &e))
		require.Equal(t, "Cannot find handler for type 'Contoso.Nope'.", e.Error)
	})
}

// TestGoClientRefusedByDotNetServer: a key refused with a 401 on negotiate
// (what an authenticating ASP.NET server answers) makes Start fail with
// ErrUnauthorized.
func TestGoClientRefusedByDotNetServer(t *testing.T) {
	s := newFakeDotNetServer(t)
	s.status = func(h http.Header) int {
		if h.Get("X-Api-Key") != "good" {
			return http.StatusUnauthorized
		}
		return http.StatusOK
	}
	c := dotNetClientOf(t, s, communication.WithAPIKey("bad"), communication.WithRetryUnauthorized(false))
	err := c.Start(ctxFor(t, wait))
	require.ErrorIs(t, err, communication.ErrUnauthorized)
	require.Equal(t, "bad", recv(t, s.negotiates, wait, "negotiate").Header.Get("X-Api-Key"))
	require.Eventually(t, func() bool { return c.State() == communication.Disconnected }, wait, time.Millisecond)

	good := dotNetClientOf(t, s, communication.WithAPIKey("good"))
	startAgainst(t, s, good)
	require.True(t, good.IsConnected())
}

// TestGoClientAbortedByDotNetServer: the original .NET server refuses a
// key by accepting the handshake and then aborting the connection. Our
// client must not hang on it: a request pending when it drops fails at
// once, and the client keeps trying.
func TestGoClientAbortedByDotNetServer(t *testing.T) {
	s := newFakeDotNetServer(t)
	c := dotNetClientOf(t, s, communication.WithAPIKey("revoked"))
	conn := startAgainst(t, s, c)
	res := goAsync(func() (Pong, error) { return communication.Send[Pong](ctxFor(t, wait), c, Ping{Message: "x"}) })
	conn.next(wait)
	conn.close()
	_, err := res.wait(t)
	require.ErrorIs(t, err, communication.ErrConnectionLost)
	s.accept() // it comes back
}

// TestGoClientClosedByDotNetServer: a SignalR close message from the
// server (as ASP.NET Core sends on shutdown, allowReconnect true) ends the
// connection; the client reconnects with a new negotiate.
func TestGoClientClosedByDotNetServer(t *testing.T) {
	s := newFakeDotNetServer(t)
	c := dotNetClientOf(t, s)
	conn := startAgainst(t, s, c)
	first := c.ConnectionID()
	conn.write(`{"type":7,"error":"Server is shutting down.","allowReconnect":true}`)
	conn2 := s.accept()
	require.Eventually(t, func() bool { return c.IsConnected() && c.ConnectionID() != first }, wait, time.Millisecond)
	require.NoError(t, c.Post(ctxFor(t, wait), Greeting{Text: "back"}))
	typ, _ := requireInvocation(t, conn2.next(wait), "PostMessage")
	require.Equal(t, greetingName, typ)
}

// TestDotNetServerFrameShapes: what a .NET server may write that is not
// a plain protocol invocation: the handshake answer and a first message in
// one WebSocket message, an invocation of a method the Go client lacks
// (another hub method of the application), pings and records batched
// together. None of them may cost the connection.
func TestDotNetServerFrameShapes(t *testing.T) {
	s := newFakeDotNetServer(t)
	c := dotNetClientOf(t, s)
	got := make(chan Notice, 10)
	require.NoError(t, communication.HandlePost(c.Handlers(), communication.PostHandlerFunc[Notice](func(ctx context.Context, n Notice) error {
		got <- n
		return nil
	}), communication.WithName(noticeName)))
	started := goAsync(func() (struct{}, error) { return struct{}{}, c.Start(ctxFor(t, wait)) })
	conn := recv(t, s.conns, wait, "the WebSocket")
	require.Equal(t, `{"protocol":"json","version":1}`, string(conn.nextRecord(wait)))
	conn.write(`{}`, invocation("PostMessage", noticeName, stjPayload("Text", "right after the handshake")))
	_, err := started.wait(t)
	require.NoError(t, err)
	require.Equal(t, "right after the handshake", recv(t, got, wait, "the first post").Text)

	conn.write(`{"type":1,"target":"UserJoined","arguments":["someone"]}`,
		`{"type":6}`,
		invocation("PostMessage", noticeName, stjPayload("Text", "after a foreign method")))
	require.Equal(t, "after a foreign method", recv(t, got, wait, "the post after a foreign method").Text)
	require.True(t, c.IsConnected())
}

// TestGoClientMessagePackRefusedByDotNetServer: a .NET Tharga server
// speaks only JSON. A Go client configured for MessagePack is refused at
// the handshake; Start must say why.
func TestGoClientMessagePackRefusedByDotNetServer(t *testing.T) {
	s := newFakeDotNetServer(t)
	c := dotNetClientOf(t, s, communication.WithProtocol(communication.MessagePack),
		communication.WithReconnectDelays(0, 200*time.Millisecond))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for conn := range s.conns {
			if rec, ok := conn.tryNext(wait); ok && strings.Contains(string(rec), `"messagepack"`) {
				// ASP.NET Core's answer to a protocol it was not given.
				_ = conn.ws.Write(context.Background(), websocket.MessageText,
					[]byte(`{"error":"The protocol 'messagepack' is not supported."}`+"\x1e"))
			}
			conn.close()
		}
	}()
	t.Cleanup(func() {
		require.NoError(t, c.Close())
		close(s.conns)
		<-done
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := c.Start(ctx)
	require.Error(t, err)
	require.Contains(t, err.Error(), "The protocol 'messagepack' is not supported",
		"GAP: Start hides why every attempt failed (it returns only %q): a handshake refused by the server "+
			"(client.go, Client.Start waits for c.connected or c.firstErr, which only ErrUnauthorized reaches) "+
			"should end Start with the server's reason, as a 401 does", err)
}
