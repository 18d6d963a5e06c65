package communication_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// diagnosticsServer is a server whose diagnostics are mounted at
// /diagnostics behind a middleware that wants a bearer token, as an
// application mounts them. Disconnected clients are forgotten at once.
func diagnosticsServer(t *testing.T, token string, diag []communication.DiagnosticsOption, opts ...communication.ServerOption) *testServer {
	t.Helper()
	state, err := communication.NewClientState[struct{}](communication.WithRetention(0))
	require.NoError(t, err)
	opts = append([]communication.ServerOption{
		communication.WithLogger(testLogger(t)),
		communication.WithClientState(state),
	}, opts...)
	srv, err := communication.AddServer(opts...)
	require.NoError(t, err)
	mux := http.NewServeMux()
	srv.Mount(mux)
	mux.Handle("GET /diagnostics", requireBearer(token, srv.DiagnosticsHandler(diag...)))
	return serveTest(t, srv, mux)
}

// requireBearer is the application's own authentication.
func requireBearer(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func getDiagnostics(t *testing.T, ts *testServer, query, accept string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxT(t, 10*time.Second), http.MethodGet, ts.URL+"/diagnostics"+query, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer secret")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func keysOf(t *testing.T, v any) []string {
	t.Helper()
	m, ok := v.(map[string]any)
	require.True(t, ok, "%v is not an object", v)
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestDiagnosticsJSON: the JSON form has the .NET original's resources
// (clients, subscriptions, handlers) and the pending requests, with the
// same keys whatever the content; lists are bounded, counts are not.
func TestDiagnosticsJSON(t *testing.T) {
	ts := diagnosticsServer(t, "secret", []communication.DiagnosticsOption{communication.WithDiagnosticsLimit(1)})
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Ping, Pong](func(_ context.Context, p Ping) (Pong, error) {
		return Pong{Reply: p.Message}, nil
	})))
	require.NoError(t, communication.RegisterName[Note](ts.Handlers(), "My.Note, My"))
	release := make(chan struct{})
	defer close(release)
	held := communication.NewHandlers()
	started := make(chan struct{})
	require.NoError(t, communication.HandleSend(held, communication.SendHandlerFunc[Hang, HangBack](func(ctx context.Context, _ Hang) (HangBack, error) {
		close(started)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return HangBack{}, nil
	})))
	a := startClient(t, ts, communication.WithHandlers(held), communication.WithClientMachine("machine-a"),
		communication.WithClientType("type-a"), communication.WithClientVersion("1.2.3"))
	startClient(t, ts)
	sub, err := communication.Subscribe[Note](ctxT(t, 10*time.Second), ts.Server, "k1")
	require.NoError(t, err)
	defer sub.Close()
	// The server waits on a request to a: it is pending.
	go func() { _, _ = communication.Send[HangBack](context.Background(), ts.To(a.ConnectionID()), Hang{}) }()
	<-started

	resp, body := getDiagnostics(t, ts, "?format=json", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	var d map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &d), body)
	require.Equal(t, []string{"clientCount", "clients", "connectedCount", "handlers", "names", "node", "pending", "pendingCount", "subscriptions", "time"}, keysOf(t, d))
	require.EqualValues(t, 2, d["clientCount"])
	require.EqualValues(t, 2, d["connectedCount"])
	clients := d["clients"].([]any)
	require.Len(t, clients, 1, "the limit bounds the list")
	require.Equal(t, []string{"connectTime", "connectionId", "disconnectTime", "instance", "isConnected", "keyId", "keyName",
		"machine", "pendingRequests", "protocol", "queueBytes", "transport", "type", "version"}, keysOf(t, clients[0]))
	c := clients[0].(map[string]any)
	require.Equal(t, true, c["isConnected"])
	require.Nil(t, c["disconnectTime"])
	require.Equal(t, "web_sockets", c["transport"])
	require.Equal(t, "json", c["protocol"])

	handlers := d["handlers"].([]any)
	require.Len(t, handlers, 1)
	require.Equal(t, []string{"goType", "kind", "type"}, keysOf(t, handlers[0]))
	require.Equal(t, map[string]any{"type": communication.TypeName(reflectType[Ping]()), "goType": communication.TypeName(reflectType[Ping]()), "kind": "send"}, handlers[0])

	// Note is named (RegisterName) and has no handler.
	names := d["names"].([]any)
	require.Len(t, names, 1)
	require.Equal(t, []string{"goType", "type"}, keysOf(t, names[0]))
	require.Equal(t, "My.Note, My", names[0].(map[string]any)["type"])

	subs := d["subscriptions"].([]any)
	require.Len(t, subs, 1)
	require.Equal(t, map[string]any{"topic": "My.Note", "key": "k1", "count": 1.0}, subs[0], "a topic is the full type name")

	require.EqualValues(t, 1, d["pendingCount"])
	pending := d["pending"].([]any)
	require.Len(t, pending, 1)
	require.Equal(t, []string{"ageSeconds", "connectionId", "correlationId", "started", "type"}, keysOf(t, pending[0]))
	require.Equal(t, a.ConnectionID(), pending[0].(map[string]any)["connectionId"])

	// The same data, as a Go value.
	snap, err := ts.Diagnostics(ctxT(t, 10*time.Second), 0)
	require.NoError(t, err)
	require.Len(t, snap.Clients, 2)
	require.Equal(t, 2, snap.ConnectedCount)
	byID := map[string]communication.ClientStatus{}
	for _, c := range snap.Clients {
		byID[c.ConnectionID] = c
	}
	require.Equal(t, "machine-a", byID[a.ConnectionID()].Machine)
	require.Equal(t, 1, byID[a.ConnectionID()].PendingRequests)
}

// TestDiagnosticsNegotiation: JSON for ?format=json or a JSON-only Accept,
// the page otherwise; the application's middleware guards both.
func TestDiagnosticsNegotiation(t *testing.T) {
	ts := diagnosticsServer(t, "secret", nil)
	for _, tc := range []struct{ query, accept, want string }{
		{"?format=json", "", "application/json"},
		{"", "application/json", "application/json"},
		{"", "", "text/html; charset=utf-8"},
		{"", "text/html,application/xhtml+xml,application/json;q=0.9", "text/html; charset=utf-8"},
		{"?format=html", "application/json", "text/html; charset=utf-8"},
	} {
		resp, _ := getDiagnostics(t, ts, tc.query, tc.accept)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, tc.want, resp.Header.Get("Content-Type"), "%q %q", tc.query, tc.accept)
	}
	resp, err := http.Get(ts.URL + "/diagnostics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// TestDiagnosticsNotMounted: Mount serves the hub only.
func TestDiagnosticsNotMounted(t *testing.T) {
	ts := newServer(t)
	for _, p := range []string{"/", "/diagnostics", ts.Pattern() + "/diagnostics"} {
		resp, err := http.Get(ts.URL + p + "?format=json")
		require.NoError(t, err)
		resp.Body.Close()
		require.NotEqual(t, http.StatusOK, resp.StatusCode, p)
	}
}

// TestDiagnosticsPageEscapes: what a client says about itself is
// attacker-controlled; on the page it is text, never markup, and the page
// runs no script but its own.
func TestDiagnosticsPageEscapes(t *testing.T) {
	ts := diagnosticsServer(t, "secret", nil)
	const evil = `<script>alert("x")</script>`
	startClient(t, ts, communication.WithClientMachine(evil), communication.WithClientType(`"><img src=x onerror=alert(1)>`))
	resp, body := getDiagnostics(t, ts, "", "text/html")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotContains(t, body, evil)
	require.NotContains(t, body, "<img src=x")
	require.Contains(t, body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;")
	require.Equal(t, 1, strings.Count(body, "<script"), "one script: the page's own")
	csp := resp.Header.Get("Content-Security-Policy")
	require.Contains(t, csp, "default-src 'none'")
	require.Regexp(t, `script-src 'nonce-[A-Za-z0-9+/=]+'`, csp)
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
}
