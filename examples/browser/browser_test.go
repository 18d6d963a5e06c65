package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tharga/communication-go/interop/nodetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// serveApp starts the example on a loopback port; it stops when the test
// ends.
func serveApp(t *testing.T, key, modules string) (*app, string) {
	t.Helper()
	a, err := newApp(config{Key: key, NodeModules: modules, Poll: 20 * time.Millisecond})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, a.Shutdown(ctx))
		require.NoError(t, hs.Shutdown(ctx))
		<-done
	})
	return a, "http://" + ln.Addr().String()
}

// TestServesPageAndBundles: the page and the official bundles, and nothing
// else of node_modules.
func TestServesPageAndBundles(t *testing.T) {
	env := nodetest.Require(t, "@microsoft/signalr", "@microsoft/signalr-protocol-msgpack")
	_, url := serveApp(t, "k", env.NodeModules)
	for path, want := range map[string]int{
		"/":                      http.StatusOK,
		"/app.js":                http.StatusOK,
		"/vendor/signalr.min.js": http.StatusOK,
		"/vendor/signalr-protocol-msgpack.min.js":       http.StatusOK,
		"/vendor/../package.json":                       http.StatusNotFound,
		"/node_modules/@microsoft/signalr/package.json": http.StatusNotFound,
	} {
		resp, err := http.Get(url + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, path)
	}
	// The hub refuses a missing key before any handshake.
	resp, err := http.Post(url+"/hub/negotiate?negotiateVersion=1", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// TestBrowserEndToEnd drives the page in headless Chromium: connect with
// the key (accessTokenFactory), the server's request answered by the page,
// the live client list, a request to the server, a wrong key refused.
func TestBrowserEndToEnd(t *testing.T) {
	env := nodetest.Require(t, "@microsoft/signalr", "@microsoft/signalr-protocol-msgpack", "playwright-core")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	nodetest.RequireFile(t, chromium, "Debian's Chromium: apt-get install -y chromium")
	for _, proto := range []string{"json", "messagepack"} {
		t.Run(proto, func(t *testing.T) {
			const key = "e2e-secret-key"
			a, url := serveApp(t, key, env.NodeModules)
			p := nodetest.Start(t, env, "examples/browser/e2e/browser.cjs",
				"BASE_URL="+url, "KEY="+key, "PROTOCOL="+proto, "CHROMIUM="+chromium)
			e, err := p.Wait(func(e nodetest.Event) bool { return e.Name() == "result" || e.Name() == "error" }, 90*time.Second)
			require.NoError(t, err, "steps: %v\nstderr:\n%s", p.Pending(), p.Stderr())
			require.Equal(t, "result", e.Name(), "the browser test failed: %s\nsteps: %v\nstderr:\n%s", e.Str("error"), p.Pending(), p.Stderr())
			require.NoError(t, p.ExitErr(), p.Stderr())

			t.Logf("the pages showed: %v", e)
			require.Equal(t, proto, e.Str("protocol"))
			require.Equal(t, "connected", e.Str("adaStatus"))
			require.Equal(t, `The server asked who I am; I answered "Ada".`, e.Str("asked"))
			require.Equal(t, "The Go server got: hello from Chromium ✓", e.Str("answer"))
			require.Equal(t, []any{"Ada", "Grace"}, e["withGrace"])
			require.Equal(t, []any{"Ada"}, e["afterGrace"])
			require.Contains(t, e.Str("refused"), "refused: wrong API key")
			require.Contains(t, e.Str("refused"), "401")
			require.Empty(t, e["pageErrors"], "the pages reported errors")

			// The key reached the WebSocket as access_token (a browser
			// cannot set headers there), and no page fell back to
			// server-sent events.
			sockets, _ := json.Marshal(e["sockets"])
			require.Contains(t, string(sockets), "access_token="+key)
			require.Regexp(t, `"page":"Ada","url":"ws://[^"]+/hub\?id=`, string(sockets))
			require.Regexp(t, `"page":"Grace","url":"ws://`, string(sockets))
			require.NotContains(t, string(sockets), `"page":"Mallory"`, "the refused page must not get a WebSocket")

			// The server's view agrees with the page's.
			require.Eventually(t, func() bool { return strings.Join(a.clients(), ",") == "" }, 15*time.Second, 10*time.Millisecond,
				"the server still lists %v after every page closed", a.clients())
		})
	}
}
