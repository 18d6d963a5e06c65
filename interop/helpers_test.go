package interop_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	communication "github.com/tharga/communication-go"
	"github.com/tharga/communication-go/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The .NET names of the test contracts, as a .NET peer writes them.
const (
	pingName     = "Interop.Ping, Interop.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
	pongName     = "Interop.Pong, Interop.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
	greetingName = "Interop.Greeting, Interop.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
	noticeName   = "Interop.Notice, Interop.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
	statusName   = "Interop.StatusQuery, Interop.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
	reportName   = "Interop.StatusReport, Interop.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
	failName     = "Interop.Fail, Interop.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
	unknownName  = "Interop.Nobody.Handles.This, Interop.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
)

// The test contracts. No json tags: fields travel PascalCase, as
// System.Text.Json writes and reads them.
type (
	Ping     struct{ Message string }
	Pong     struct{ Reply string }
	Greeting struct {
		Text string
		N    int
	}
	Notice       struct{ Text string }
	StatusQuery  struct{}
	StatusReport struct {
		Healthy bool
		Runtime string
	}
	Fail     struct{}
	FailBack struct{}
	Unknown  struct{}
)

// logger logs to the test output with COMM_LOG=1.
func logger(t testing.TB) *slog.Logger {
	if os.Getenv("COMM_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// goServer is a Server behind a real loopback HTTP server.
type goServer struct {
	*communication.Server
	URL  string // http://127.0.0.1:port
	Addr string // 127.0.0.1:port
	hs   *http.Server
	ln   *testutil.KillListener
	done chan struct{}
	once sync.Once
}

// serve starts srv on addr ("127.0.0.1:0" for any port); it stops when the
// test ends.
func serve(t testing.TB, addr string, srv *communication.Server) *goServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	mux := http.NewServeMux()
	srv.Mount(mux)
	g := &goServer{
		Server: srv,
		URL:    "http://" + ln.Addr().String(),
		Addr:   ln.Addr().String(),
		hs:     &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		ln:     &testutil.KillListener{Listener: ln},
		done:   make(chan struct{}),
	}
	go func() {
		defer close(g.done)
		if err := g.hs.Serve(g.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(g.stop)
	return g
}

// newServer builds a Server with the test contracts' names and serves it.
func newServer(t testing.TB, opts ...communication.ServerOption) *goServer {
	t.Helper()
	return serve(t, "127.0.0.1:0", buildServer(t, opts...))
}

func buildServer(t testing.TB, opts ...communication.ServerOption) *communication.Server {
	t.Helper()
	srv, err := communication.AddServer(append([]communication.ServerOption{communication.WithLogger(logger(t))}, opts...)...)
	require.NoError(t, err)
	h := srv.Handlers()
	require.NoError(t, communication.RegisterName[Notice](h, noticeName))
	require.NoError(t, communication.RegisterName[StatusQuery](h, statusName))
	require.NoError(t, communication.RegisterName[StatusReport](h, reportName))
	require.NoError(t, communication.RegisterName[Fail](h, failName))
	require.NoError(t, communication.RegisterName[Unknown](h, unknownName))
	return srv
}

// stop shuts the server down gracefully, as a deploy would.
func (g *goServer) stop() {
	g.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = g.Server.Shutdown(ctx)
		_ = g.hs.Shutdown(ctx)
		g.ln.Kill()
		<-g.done
	})
}

// crash cuts every connection without a goodbye, as a crash or a network
// failure would, then stops the server.
func (g *goServer) crash() {
	g.once.Do(func() {
		_ = g.hs.Close()
		g.ln.Kill()
		_ = g.Server.Close()
		<-g.done
	})
}

// waitConnected waits until the server lists the connection.
func (g *goServer) waitConnected(t testing.TB, id string) {
	t.Helper()
	require.Eventually(t, func() bool { return slices.Contains(g.ConnectionIDs(), id) },
		10*time.Second, time.Millisecond, "the server never listed connection %q (it has %v)", id, g.ConnectionIDs())
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// recv waits for a value on ch.
func recv[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
		var zero T
		return zero
	}
}
