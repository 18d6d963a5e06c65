package otelcheck_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"

	communication "github.com/tharga/communication-go"
)

// switchable is a tracer provider that makes nothing until it is turned
// on, as the global provider does until the application sets one.
type switchable struct {
	embedded.TracerProvider
	on  atomic.Bool
	sdk trace.TracerProvider
}

func (s *switchable) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return &switchableTracer{s: s, sdk: s.sdk.Tracer(name, opts...), off: noop.NewTracerProvider().Tracer(name)}
}

type switchableTracer struct {
	embedded.Tracer
	s        *switchable
	sdk, off trace.Tracer
}

func (t *switchableTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if t.s.on.Load() {
		return t.sdk.Start(ctx, name, opts...)
	}
	return t.off.Start(ctx, name, opts...)
}

// TestIdleTracer: while the tracer makes nothing, a caller's own trace
// still reaches the handler; once the provider starts recording, spans
// follow without restarting anything.
func TestIdleTracer(t *testing.T) {
	rec, sdk := newRecorder(t)
	tp := &switchable{sdk: sdk}
	seen := make(chan trace.SpanContext, 100)
	ts := newServer(t, communication.WithHandlers(pingHandlers(t, seen)), communication.WithTracerProvider(tp))
	c := startClient(t, ts, communication.WithTracerProvider(tp))
	ctx := ctxT(t, 10*time.Second)

	_, err := communication.Send[Pong](ctx, c, Ping{})
	require.NoError(t, err)
	require.False(t, (<-seen).IsValid(), "no trace, none made")

	// The caller's trace (from its own provider) goes through.
	callerCtx, caller := sdk.Tracer("caller").Start(ctx, "caller")
	_, err = communication.Send[Pong](callerCtx, c, Ping{})
	caller.End()
	require.NoError(t, err)
	require.Equal(t, caller.SpanContext().TraceID(), (<-seen).TraceID())
	for _, s := range rec.Ended() {
		require.Equal(t, "caller", s.Name(), "the idle provider made a span")
	}

	tp.on.Store(true)
	waitFor(t, "spans once the provider records", func() bool {
		_, err := communication.Send[Pong](ctx, c, Ping{})
		require.NoError(t, err)
		<-seen
		return len(rec.Ended()) > 1
	})
}
