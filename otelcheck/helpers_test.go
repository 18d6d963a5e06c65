package otelcheck_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
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
	Boom     struct{}
	BoomBack struct{}
	Hang     struct{}
	HangBack struct{}
)

// name is the metric attribute of a registered test type.
func name[T any]() string { return communication.TypeName(reflect.TypeFor[T]()) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type testServer struct {
	*communication.Server
	URL string
	kl  *testutil.KillListener
}

// newServer starts a Server behind a loopback httptest server; both stop
// when the test ends.
func newServer(t *testing.T, opts ...communication.ServerOption) *testServer {
	t.Helper()
	srv, err := communication.AddServer(opts...)
	require.NoError(t, err)
	mux := http.NewServeMux()
	srv.Mount(mux)
	hs := httptest.NewUnstartedServer(mux)
	kl := &testutil.KillListener{Listener: hs.Listener}
	hs.Listener = kl
	hs.Start()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		kl.Kill()
		hs.Close()
	})
	return &testServer{Server: srv, URL: hs.URL, kl: kl}
}

// startClient builds and starts a client of ts; it is closed when the
// test ends.
func startClient(t *testing.T, ts *testServer, opts ...communication.ClientOption) *communication.Client {
	t.Helper()
	opts = append([]communication.ClientOption{
		communication.WithServerAddress(ts.URL),
		communication.WithReconnectDelays(0, 50*time.Millisecond),
	}, opts...)
	c, err := communication.AddClient(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	waitFor(t, "the server lists the client", func() bool { return hasConn(ts, c.ConnectionID()) })
	return c
}

func hasConn(ts *testServer, id string) bool {
	for _, c := range ts.ConnectionIDs() {
		if c == id {
			return true
		}
	}
	return false
}

// waitFor waits until cond holds, checking it every millisecond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, time.Millisecond, what)
}

// series reads the metrics of reader as "name{k=v,...}" → value: a sum's
// value, or a histogram's count (its sum depends on timing).
func series(t *testing.T, reader *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	out := map[string]float64{}
	key := func(n string, set attribute.Set) string {
		return n + "{" + set.Encoded(attribute.DefaultEncoder()) + "}"
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = float64(p.Value)
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = float64(p.Count)
				}
			default:
				t.Fatalf("unexpected data of %s: %T", m.Name, m.Data)
			}
		}
	}
	return out
}

// requireSeries waits until the metrics are exactly want (some are
// recorded just after the event the test waited for: an answer is
// counted sent after it was queued), and fails with the difference.
func requireSeries(t *testing.T, reader *sdkmetric.ManualReader, want map[string]float64) {
	t.Helper()
	var got map[string]float64
	ok := assertEventually(func() bool {
		got = series(t, reader)
		return reflect.DeepEqual(got, want)
	})
	if !ok {
		t.Fatalf("metrics differ:\n%s", diff(want, got))
	}
}

// requireSubset is requireSeries for the series named in want only.
func requireSubset(t *testing.T, reader *sdkmetric.ManualReader, want map[string]float64) {
	t.Helper()
	var got map[string]float64
	ok := assertEventually(func() bool {
		got = series(t, reader)
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return true
	})
	if !ok {
		sub := map[string]float64{}
		for k := range want {
			if v, ok := got[k]; ok {
				sub[k] = v
			}
		}
		t.Fatalf("metrics differ:\n%s\nall:\n%s", diff(want, sub), diff(nil, got))
	}
}

// assertEventually polls cond until it holds, for at most 10s.
func assertEventually(cond func() bool) bool {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			return cond()
		}
	}
	return true
}

func diff(want, got map[string]float64) string {
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	var lines []string
	for k := range keys {
		w, wok := want[k]
		g, gok := got[k]
		switch {
		case !wok:
			lines = append(lines, fmt.Sprintf("+ %s = %v", k, g))
		case !gok:
			lines = append(lines, fmt.Sprintf("- %s = %v (missing)", k, w))
		case w != g:
			lines = append(lines, fmt.Sprintf("! %s = %v, want %v", k, g, w))
		default:
			lines = append(lines, fmt.Sprintf("  %s = %v", k, g))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
