package interop_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// This file plays a .NET Tharga client against our Server, with the
// frames and headers the .NET library sends (../shared/PROTOCOL.md): it
// negotiates, opens the WebSocket with the connection token, does the JSON
// handshake and then writes and reads hub messages by hand. Like the .NET
// client it echoes no correlation id, and it may answer requests in any
// order.

// dotNetClientHeaders are the headers the .NET client sends on negotiate
// and on the WebSocket request.
func dotNetClientHeaders(key string) http.Header {
	h := http.Header{
		"X-Client-Instance": {"6f9619ff-8b86-d011-b42d-00cf4fc964ff"},
		"X-Client-Machine":  {"BUILD-AGENT-07"},
		"X-Client-Type":     {"Contoso.Worker"},
		"X-Client-Version":  {"2.3.1.0"},
		"User-Agent":        {"Microsoft SignalR/8.0 (8.0.11; Windows NT 10.0.20348; .NET; .NET 8.0.11)"},
		"X-Requested-With":  {"XMLHttpRequest"},
	}
	if key != "" {
		h.Set("X-Api-Key", key)
	}
	return h
}

// negotiateResponse is the negotiate answer (negotiateVersion 1).
type negotiateResponse struct {
	NegotiateVersion    int    `json:"negotiateVersion"`
	ConnectionID        string `json:"connectionId"`
	ConnectionToken     string `json:"connectionToken"`
	AvailableTransports []struct {
		Transport       string   `json:"transport"`
		TransferFormats []string `json:"transferFormats"`
	} `json:"availableTransports"`
}

// dotNetClient is a connected .NET client.
type dotNetClient struct {
	*rawConn
	id string // the connection id from negotiate
}

// negotiateAsDotNet posts negotiate as the .NET client does and returns
// the HTTP status and, for 200, the answer.
func negotiateAsDotNet(t testing.TB, gs *goServer, header http.Header) (int, negotiateResponse) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxFor(t, wait), http.MethodPost, gs.URL+"/hub/negotiate?negotiateVersion=1", nil)
	require.NoError(t, err)
	req.Header = header.Clone()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var nr negotiateResponse
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(body, &nr), "negotiate answered %s", body)
	}
	return resp.StatusCode, nr
}

// dialDotNet connects as a .NET Tharga client.
func dialDotNet(t testing.TB, gs *goServer, header http.Header) *dotNetClient {
	t.Helper()
	status, nr := negotiateAsDotNet(t, gs, header)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, 1, nr.NegotiateVersion)
	require.NotEmpty(t, nr.ConnectionID)
	require.NotEmpty(t, nr.ConnectionToken)
	ws := false
	for _, tr := range nr.AvailableTransports {
		if tr.Transport == "WebSockets" {
			require.Contains(t, tr.TransferFormats, "Text")
			ws = true
		}
	}
	require.True(t, ws, "negotiate offers no WebSockets: %+v", nr.AvailableTransports)

	url := "ws" + strings.TrimPrefix(gs.URL, "http") + "/hub?id=" + nr.ConnectionToken
	conn, _, err := websocket.Dial(ctxFor(t, wait), url, &websocket.DialOptions{HTTPHeader: header})
	require.NoError(t, err)
	c := &dotNetClient{rawConn: newRawConn(t, conn), id: nr.ConnectionID}
	t.Cleanup(c.close)
	c.write(`{"protocol":"json","version":1}`)
	require.Equal(t, "{}", string(c.nextRecord(wait)), "handshake answer")
	// The .NET client pings right after the handshake.
	c.write(`{"type":6}`)
	gs.waitConnected(t, c.id)
	return c
}

// Names as a .NET peer writes them, with another assembly version than
// the Go side registered, which must not matter.
const (
	nestedName    = "Contoso.Orders.OrderEvents+Shipped, Contoso.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
	nestedNameV2  = "Contoso.Orders.OrderEvents+Shipped, Contoso.Contracts, Version=2.4.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35"
	genericName   = "Contoso.Envelope`1[[Contoso.Orders.Order, Contoso.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null]], Contoso.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
	genericOuterV = "Contoso.Envelope`1[[Contoso.Orders.Order, Contoso.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null]], Contoso.Contracts, Version=2.0.0.0, Culture=neutral, PublicKeyToken=null"
	// The same generic type from a peer built against the next version of
	// the contracts: the version changes inside the brackets too.
	genericBothV   = "Contoso.Envelope`1[[Contoso.Orders.Order, Contoso.Contracts, Version=2.0.0.0, Culture=neutral, PublicKeyToken=null]], Contoso.Contracts, Version=2.0.0.0, Culture=neutral, PublicKeyToken=null"
	listName       = "System.Collections.Generic.List`1[[System.String, System.Private.CoreLib, Version=10.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e]], System.Private.CoreLib, Version=10.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e"
	listNameNet8   = "System.Collections.Generic.List`1[[System.String, System.Private.CoreLib, Version=8.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e]], System.Private.CoreLib, Version=8.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e"
	shippedAckName = "Contoso.Orders.OrderEvents+ShippedAck, Contoso.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
)

type (
	Shipped struct {
		OrderID string
		Items   int
	}
	ShippedAck struct{ Accepted bool }
	Order      struct {
		ID    string
		Total float64
	}
	Envelope struct {
		Body    Order
		Created time.Time
	}
)

// dotNetTypesServer is our server with handlers for the .NET names; got
// receives what the handlers were given.
func dotNetTypesServer(t testing.TB, opts ...communication.ServerOption) (*goServer, chan any) {
	t.Helper()
	got := make(chan any, 100)
	greetings := make(chan greetingFrom, 100)
	gs := newServer(t, opts...)
	h := gs.Handlers()
	addGoHandlers(t, gs.Server, greetings)
	go func() {
		for g := range greetings {
			got <- g.Greeting
		}
	}()
	t.Cleanup(func() { close(greetings) })
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Shipped, ShippedAck](func(ctx context.Context, s Shipped) (ShippedAck, error) {
		got <- s
		return ShippedAck{Accepted: s.Items > 0}, nil
	}), communication.WithName(nestedName), communication.WithResponseName(shippedAckName)))
	require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[Envelope](func(ctx context.Context, e Envelope) error {
		got <- e
		return nil
	}), communication.WithName(genericName)))
	require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[[]string](func(ctx context.Context, l []string) error {
		got <- l
		return nil
	}), communication.WithName(listName)))
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Fail, FailBack](func(ctx context.Context, f Fail) (FailBack, error) {
		return FailBack{}, errors.New("the order store is read-only")
	}), communication.WithName(failName)))
	return gs, got
}

// TestDotNetClientPostsAndRequests: what a .NET client writes reaches the
// right handler, and what our server answers is what the .NET reader
// needs.
func TestDotNetClientPostsAndRequests(t *testing.T) {
	gs, got := dotNetTypesServer(t)
	c := dialDotNet(t, gs, dotNetClientHeaders(""))

	t.Run("the frames of PROTOCOL.md", func(t *testing.T) {
		c.write(`{"type":1,"target":"SendMessage","arguments":[{"type":"` + pingName + `","payload":"{\"Message\":\"Ping\"}"}]}`)
		f := c.next(wait)
		typ, payload := requireInvocation(t, f, "ResponseMessage")
		require.Equal(t, pongName, typ)
		require.JSONEq(t, `{"Reply":"Pong: Ping"}`, payload)
		requirePascalCase(t, payload)
		require.NotContains(t, f.Wrapper, "correlationId", "an answer to a request without an id carries none")
	})

	t.Run("System.Text.Json escaping", func(t *testing.T) {
		text := "Grüße, \"Ørsted\" & <Co> + 'quotes' 😀 \u2028 line\nbreak"
		c.write(invocation("SendMessage", pingName, stjPayload("Message", text)))
		typ, payload := requireInvocation(t, c.next(wait), "ResponseMessage")
		require.Equal(t, pongName, typ)
		var pong Pong
		require.NoError(t, json.Unmarshal([]byte(payload), &pong))
		require.Equal(t, "Pong: "+text, pong.Reply)
	})

	t.Run("post with a plain name", func(t *testing.T) {
		c.write(invocation("PostMessage", greetingName, stjPayload("Text", "Hello from client", "N", 7)))
		require.Equal(t, Greeting{Text: "Hello from client", N: 7}, recv(t, got, wait, "the post"))
	})

	t.Run("request with a nested name and another assembly version", func(t *testing.T) {
		c.write(invocation("SendMessage", nestedNameV2, stjPayload("OrderID", "A-17", "Items", 3)))
		require.Equal(t, Shipped{OrderID: "A-17", Items: 3}, recv(t, got, wait, "the request"))
		typ, payload := requireInvocation(t, c.next(wait), "ResponseMessage")
		require.Equal(t, shippedAckName, typ)
		require.JSONEq(t, `{"Accepted":true}`, payload)
	})

	t.Run("post with a generic name", func(t *testing.T) {
		c.write(invocation("PostMessage", genericOuterV,
			`{"Body":{"ID":"O-1","Total":12.5},"Created":"2026-11-24T10:00:00.1234567+01:00"}`))
		e := recv(t, got, wait, "the generic post").(Envelope)
		require.Equal(t, Order{ID: "O-1", Total: 12.5}, e.Body)
		require.True(t, e.Created.Equal(time.Date(2026, 11, 24, 9, 0, 0, 123456700, time.UTC)), "%v", e.Created)

		c.write(invocation("PostMessage", listName, `["a","b"]`))
		require.Equal(t, []string{"a", "b"}, recv(t, got, wait, "the List<string> post"))
	})

	t.Run("the .NET error answer", func(t *testing.T) {
		c.write(invocation("SendMessage", "Contoso.Unknown, Contoso", "{}"))
		f := c.next(wait)
		typ, payload := requireInvocation(t, f, "ResponseMessage")
		require.Equal(t, "Contoso.Unknown, Contoso", typ, "an error answer carries the request's type")
		var e struct{ Error string }
		require.NoError(t, json.Unmarshal([]byte(payload), &e))
		require.Equal(t, "Cannot find handler for type 'Contoso.Unknown'.", e.Error)

		c.write(invocation("SendMessage", failName, "{}"))
		typ, payload = requireInvocation(t, c.next(wait), "ResponseMessage")
		require.Equal(t, failName, typ)
		require.NoError(t, json.Unmarshal([]byte(payload), &e))
		require.Equal(t, "the order store is read-only", e.Error)
	})

	t.Run("requests pipelined in one message", func(t *testing.T) {
		var recs []string
		for i := range 20 {
			recs = append(recs, invocation("SendMessage", pingName, stjPayload("Message", fmt.Sprint(i))))
		}
		c.write(recs...)
		seen := map[string]bool{}
		for range 20 {
			_, payload := requireInvocation(t, c.next(wait), "ResponseMessage")
			var pong Pong
			require.NoError(t, json.Unmarshal([]byte(payload), &pong))
			seen[pong.Reply] = true
		}
		for i := range 20 {
			require.True(t, seen[fmt.Sprint("Pong: ", i)], "no answer to request %d", i)
		}
	})
}

// TestDotNetClientGenericNameAcrossVersions: a .NET peer built against
// another version of the contracts writes the version inside the generic
// argument's brackets too. The .NET receiver resolves such a name (it
// binds assemblies by name); a Go handler registered under the other
// version must take it as well.
func TestDotNetClientGenericNameAcrossVersions(t *testing.T) {
	gs, got := dotNetTypesServer(t)
	c := dialDotNet(t, gs, dotNetClientHeaders(""))
	for _, name := range []string{genericBothV, listNameNet8} {
		payload := `{"Body":{"ID":"O-2","Total":1},"Created":"2026-11-24T10:00:00Z"}`
		if strings.HasPrefix(name, "System.") {
			payload = `["net8"]`
		}
		c.write(invocation("PostMessage", name, payload))
		select {
		case v := <-got:
			t.Logf("%s reached %T", name, v)
		case <-time.After(5 * time.Second):
			t.Fatalf("BUG: a post whose generic name carries another assembly version inside the brackets "+
				"reached no handler: %s\n(names are matched by wire.FullName/MatchKey in registry.go, Handlers.lookup)", name)
		}
	}
}

// TestGoServerToDotNetClient: posts and requests from our server to a .NET
// client, which echoes no correlation id and answers in any order.
func TestGoServerToDotNetClient(t *testing.T) {
	gs, _ := dotNetTypesServer(t)
	c := dialDotNet(t, gs, dotNetClientHeaders(""))
	ctx := ctxFor(t, 30*time.Second)

	t.Run("post", func(t *testing.T) {
		require.NoError(t, gs.Post(ctx, c.id, Notice{Text: "Hello from the server"}))
		f := c.next(wait)
		typ, payload := requireInvocation(t, f, "PostMessage")
		require.Equal(t, noticeName, typ)
		require.JSONEq(t, `{"Text":"Hello from the server"}`, payload)
		requirePascalCase(t, payload)

		require.NoError(t, gs.PostAll(ctx, Shipped{OrderID: "B-2", Items: 1}))
		typ, payload = requireInvocation(t, c.next(wait), "PostMessage")
		require.Equal(t, nestedName, typ)
		require.JSONEq(t, `{"OrderID":"B-2","Items":1}`, payload)

		created := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
		require.NoError(t, gs.Post(ctx, c.id, Envelope{Body: Order{ID: "C-3", Total: 9.5}, Created: created}))
		typ, payload = requireInvocation(t, c.next(wait), "PostMessage")
		require.Equal(t, genericName, typ, "the generic .NET name goes out exactly as registered")
		require.JSONEq(t, `{"Body":{"ID":"C-3","Total":9.5},"Created":"2026-11-24T09:00:00Z"}`, payload)
	})

	t.Run("request", func(t *testing.T) {
		res := goAsync(func() (Pong, error) { return communication.Send[Pong](ctx, gs.To(c.id), Ping{Message: "status?"}) })
		f := c.next(wait)
		typ, payload := requireInvocation(t, f, "SendMessage")
		require.Equal(t, pingName, typ)
		require.JSONEq(t, `{"Message":"status?"}`, payload)
		// Our extensions ride along; the .NET reader skips unknown members.
		require.NotEmpty(t, f.correlationID())
		require.Contains(t, f.Wrapper, "timeoutMs")
		// The .NET client answers with the response's name and no id.
		c.write(invocation("ResponseMessage", strings.Replace(pongName, "1.0.0.0", "1.2.0.0", 1), stjPayload("Reply", "all good")))
		pong, err := res.wait(t)
		require.NoError(t, err)
		require.Equal(t, "all good", pong.Reply)
	})

	t.Run("the .NET error answer", func(t *testing.T) {
		res := goAsync(func() (Pong, error) { return communication.Send[Pong](ctx, gs.To(c.id), Ping{Message: "x"}) })
		c.next(wait)
		c.write(invocation("ResponseMessage", pingName, stjPayload("Error", "Cannot find handler for type 'Interop.Ping'.")))
		_, err := res.wait(t)
		var remote *communication.RemoteError
		require.ErrorAs(t, err, &remote)
		require.ErrorIs(t, err, communication.ErrUnknownType)
		require.Equal(t, "Cannot find handler for type 'Interop.Ping'.", remote.Message)

		res = goAsync(func() (Pong, error) { return communication.Send[Pong](ctx, gs.To(c.id), Ping{Message: "y"}) })
		c.next(wait)
		c.write(invocation("ResponseMessage", pingName, stjPayload("Error", "Object reference not set to an instance of an object.")))
		_, err = res.wait(t)
		require.ErrorAs(t, err, &remote)
		require.NotErrorIs(t, err, communication.ErrUnknownType)
		require.Equal(t, "Object reference not set to an instance of an object.", remote.Message)
	})

	t.Run("answers out of order", func(t *testing.T) {
		ping := goAsync(func() (Pong, error) { return communication.Send[Pong](ctx, gs.To(c.id), Ping{Message: "first"}) })
		status := goAsync(func() (StatusReport, error) {
			return communication.Send[StatusReport](ctx, gs.To(c.id), StatusQuery{})
		})
		// Both are in flight (their answers differ by type); the .NET
		// client answers the later one first.
		reqs := map[string]frame{}
		for range 2 {
			f := c.next(wait)
			typ, _ := requireInvocation(t, f, "SendMessage")
			reqs[typ] = f
		}
		require.Contains(t, reqs, pingName)
		require.Contains(t, reqs, statusName)
		c.write(invocation("ResponseMessage", reportName, stjPayload("Healthy", true, "Runtime", ".NET 8.0.11")))
		rep, err := status.wait(t)
		require.NoError(t, err)
		require.Equal(t, StatusReport{Healthy: true, Runtime: ".NET 8.0.11"}, rep)
		c.write(invocation("ResponseMessage", pongName, stjPayload("Reply", "to first")))
		pong, err := ping.wait(t)
		require.NoError(t, err)
		require.Equal(t, "to first", pong.Reply)
	})

	t.Run("requests of one type go one at a time", func(t *testing.T) {
		// Answers without ids to two requests of one type could not be
		// told apart: the second waits for the first's answer.
		a := goAsync(func() (Pong, error) { return communication.Send[Pong](ctx, gs.To(c.id), Ping{Message: "a"}) })
		first := c.next(wait)
		b := goAsync(func() (Pong, error) { return communication.Send[Pong](ctx, gs.To(c.id), Ping{Message: "b"}) })
		if f, ok := c.tryNext(300 * time.Millisecond); ok {
			t.Fatalf("a second request of one type went out before the first was answered: %s", f)
		}
		_, p1 := requireInvocation(t, first, "SendMessage")
		var msg Ping
		require.NoError(t, json.Unmarshal([]byte(p1), &msg))
		c.write(invocation("ResponseMessage", pongName, stjPayload("Reply", "for "+msg.Message)))
		_, p2 := requireInvocation(t, c.next(wait), "SendMessage")
		var msg2 Ping
		require.NoError(t, json.Unmarshal([]byte(p2), &msg2))
		c.write(invocation("ResponseMessage", pongName, stjPayload("Reply", "for "+msg2.Message)))
		ra, err := a.wait(t)
		require.NoError(t, err)
		rb, err := b.wait(t)
		require.NoError(t, err)
		require.Equal(t, "for a", ra.Reply)
		require.Equal(t, "for b", rb.Reply)
	})

	t.Run("a late answer is dropped", func(t *testing.T) {
		quick, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := communication.Send[Pong](quick, gs.To(c.id), Ping{Message: "too slow"})
		require.ErrorIs(t, err, communication.ErrTimeout)
		slow := c.next(wait) // it went out and is not answered yet
		_, p := requireInvocation(t, slow, "SendMessage")
		require.JSONEq(t, `{"Message":"too slow"}`, p)

		next := goAsync(func() (Pong, error) { return communication.Send[Pong](ctx, gs.To(c.id), Ping{Message: "next"}) })
		// The late answer comes; the next request must not take it.
		c.write(invocation("ResponseMessage", pongName, stjPayload("Reply", "LATE answer to 'too slow'")))
		_, p = requireInvocation(t, c.next(wait), "SendMessage")
		require.JSONEq(t, `{"Message":"next"}`, p)
		c.write(invocation("ResponseMessage", pongName, stjPayload("Reply", "answer to 'next'")))
		pong, err := next.wait(t)
		require.NoError(t, err)
		require.Equal(t, "answer to 'next'", pong.Reply)
	})

	t.Run("an answer nobody waits for is dropped", func(t *testing.T) {
		c.write(invocation("ResponseMessage", pongName, stjPayload("Reply", "stray")))
		// The server reads a connection in order: once it answered this
		// request, it has seen the stray answer.
		c.write(invocation("SendMessage", pingName, stjPayload("Message", "sync")))
		_, p := requireInvocation(t, c.next(wait), "ResponseMessage")
		require.JSONEq(t, `{"Reply":"Pong: sync"}`, p)
		res := goAsync(func() (Pong, error) { return communication.Send[Pong](ctx, gs.To(c.id), Ping{Message: "after stray"}) })
		c.next(wait)
		c.write(invocation("ResponseMessage", pongName, stjPayload("Reply", "right")))
		pong, err := res.wait(t)
		require.NoError(t, err)
		require.Equal(t, "right", pong.Reply)
	})
}

// async is a call running in a goroutine.
type async[T any] struct {
	done chan struct{}
	v    T
	err  error
}

func goAsync[T any](f func() (T, error)) *async[T] {
	a := &async[T]{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.v, a.err = f()
	}()
	return a
}

func (a *async[T]) wait(t testing.TB) (T, error) {
	t.Helper()
	select {
	case <-a.done:
		return a.v, a.err
	case <-time.After(wait):
		t.Fatalf("the call did not return within %v", wait)
		var zero T
		return zero, nil
	}
}

// TestDotNetClientAPIKey: a .NET client's X-Api-Key is checked on
// negotiate and on the WebSocket request: a wrong or missing key gets a
// 401 before any SignalR handshake.
func TestDotNetClientAPIKey(t *testing.T) {
	gs, _ := dotNetTypesServer(t, communication.WithAPIKeys("primary-key", "secondary-key"))

	c := dialDotNet(t, gs, dotNetClientHeaders("secondary-key"))
	c.write(invocation("SendMessage", pingName, stjPayload("Message", "with key")))
	_, payload := requireInvocation(t, c.next(wait), "ResponseMessage")
	require.JSONEq(t, `{"Reply":"Pong: with key"}`, payload)

	for _, key := range []string{"wrong-key", ""} {
		status, _ := negotiateAsDotNet(t, gs, dotNetClientHeaders(key))
		require.Equal(t, http.StatusUnauthorized, status, "negotiate with key %q", key)
	}

	// A WebSocket request with a wrong key, on a token a good negotiate
	// handed out, or with none at all (skip negotiation).
	status, nr := negotiateAsDotNet(t, gs, dotNetClientHeaders("primary-key"))
	require.Equal(t, http.StatusOK, status)
	base := "ws" + strings.TrimPrefix(gs.URL, "http") + "/hub"
	for _, url := range []string{base + "?id=" + nr.ConnectionToken, base} {
		_, resp, err := websocket.Dial(ctxFor(t, wait), url, &websocket.DialOptions{HTTPHeader: dotNetClientHeaders("wrong-key")})
		require.Error(t, err, url)
		require.NotNil(t, resp, url)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, url)
	}
	require.Len(t, gs.ConnectionIDs(), 1)
}
