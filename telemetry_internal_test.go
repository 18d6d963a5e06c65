package communication

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"testing"

	"github.com/tharga/communication-go/internal/wire"
)

type telemetryPing struct{ N int }

// telemetryHooks returns what the instrumentation does for one post (both
// ends) and for one request and its answer (both ends), with the default
// providers: the global ones, which record nothing until the application
// sets some.
func telemetryHooks(t testing.TB) (post, request func()) {
	h := NewHandlers()
	if err := HandlePost(h, PostHandlerFunc[telemetryPing](func(context.Context, telemetryPing) error { return nil })); err != nil {
		t.Fatal(err)
	}
	name := h.nameOf(reflect.TypeFor[telemetryPing]())
	c := defaultCommon()
	client := newTelemetry(sideClient, &c, slog.New(slog.DiscardHandler))
	server := newTelemetry(sideServer, &c, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	postMsg := wire.Message{Target: wire.TargetPost, Wrapper: wire.Wrapper{Type: name}}
	reqMsg := wire.Message{Target: wire.TargetSend, Wrapper: wire.Wrapper{Type: name, CorrelationID: "1"}}
	respMsg := wire.Message{Target: wire.TargetResponse, Wrapper: wire.Wrapper{Type: name, CorrelationID: "1"}}
	// The request's wrapper lives on the heap already in the peer (its
	// address goes to the connection's queue).
	w := new(wire.Wrapper)
	post = func() {
		client.messageSent(ctx, wire.TargetPost, name)
		server.messageReceived(&postMsg)
	}
	request = func() {
		// The caller's Send.
		sctx, span := ctx, noopSpan
		skip := client.skipSpan(ctx, false)
		start := client.requestStarted(sctx)
		var a *typeAttrs
		if !skip || !start.IsZero() {
			a = sendAttrs(h, telemetryPing{})
		}
		if !skip {
			sctx, span = client.startSend(ctx, a)
		}
		*w = reqMsg.Wrapper
		injectTrace(sctx, w)
		client.messageSent(sctx, wire.TargetSend, name)
		// The handler's end.
		server.messageReceived(&reqMsg)
		_, hspan := server.startHandle(ctx, w, "conn")
		endSpan(hspan, nil)
		server.messageSent(ctx, wire.TargetResponse, name)
		// The answer back.
		client.messageReceived(&respMsg)
		client.requestEnded(sctx, a, start, nil)
		endSpan(span, nil)
	}
	return post, request
}

// BenchmarkTelemetryOff measures what the instrumentation adds to a post
// and to a request while nothing records.
func BenchmarkTelemetryOff(b *testing.B) {
	post, request := telemetryHooks(b)
	for name, f := range map[string]func(){"post": post, "request": request} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				f()
			}
		})
	}
}

// TestTelemetryOffAllocatesNothing: while nothing records, the hooks of a
// post and of a request allocate nothing (after the first request, which
// finds the tracer idle).
func TestTelemetryOffAllocatesNothing(t *testing.T) {
	post, request := telemetryHooks(t)
	request()
	if n := testing.AllocsPerRun(100, post); n != 0 {
		t.Errorf("a post's hooks allocate %v times", n)
	}
	if n := testing.AllocsPerRun(100, request); n != 0 {
		t.Errorf("a request's hooks allocate %v times", n)
	}
}

// TestOutcomeOf: every error a Send returns maps to one outcome.
func TestOutcomeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{&RemoteError{Type: "T", Message: "m", Code: CodeHandlerError}, "remote_error"},
		{&timeoutError{typ: "T", cause: context.DeadlineExceeded}, "timeout"},
		{ErrNotConnected, "not_connected"},
		{ErrConnectionLost, "connection_lost"},
		{ErrClosed, "connection_lost"},
		{context.Canceled, "canceled"},
		{errors.New("else"), "error"},
	} {
		if got := outcomeNames[outcomeOf(tc.err)]; got != tc.want {
			t.Errorf("outcomeOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
