package otelcheck_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	communication "github.com/tharga/communication-go"
)

func newRecorder(t *testing.T) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { require.NoError(t, tp.Shutdown(context.Background())) })
	return rec, tp
}

// spanNamed returns the one ended span named n.
func spanNamed(t *testing.T, rec *tracetest.SpanRecorder, n string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == n {
			found = append(found, s)
		}
	}
	require.Len(t, found, 1, "spans named %q", n)
	return found[0]
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// pingHandlers answer Ping, telling on seen the span context the handler
// ran in.
func pingHandlers(t *testing.T, seen chan<- trace.SpanContext) *communication.Handlers {
	h := communication.NewHandlers()
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Ping, Pong](func(ctx context.Context, p Ping) (Pong, error) {
		seen <- trace.SpanContextFromContext(ctx)
		return Pong{Reply: p.Message}, nil
	})))
	return h
}

// TestTraceAcrossTheWire: a Send's span (kind client) is the parent of the
// span around the remote handler (kind server), which runs in the
// caller's trace; in both directions and both protocols.
func TestTraceAcrossTheWire(t *testing.T) {
	for _, proto := range []communication.Protocol{communication.JSON, communication.MessagePack} {
		for _, dir := range []string{"client-to-server", "server-to-client"} {
			t.Run(dir+"/"+map[communication.Protocol]string{communication.JSON: "json", communication.MessagePack: "messagepack"}[proto], func(t *testing.T) {
				rec, tp := newRecorder(t)
				seen := make(chan trace.SpanContext, 1)
				h := pingHandlers(t, seen)
				ts := newServer(t, communication.WithHandlers(h), communication.WithTracerProvider(tp))
				c := startClient(t, ts, communication.WithHandlers(pingHandlers(t, seen)),
					communication.WithTracerProvider(tp), communication.WithProtocol(proto))
				var to communication.Endpoint = c
				if dir == "server-to-client" {
					to = ts.To(c.ConnectionID())
				}

				ctx, root := tp.Tracer("test").Start(ctxT(t, 10*time.Second), "caller")
				pong, err := communication.Send[Pong](ctx, to, Ping{Message: "traced"})
				require.NoError(t, err)
				require.Equal(t, "traced", pong.Reply)
				root.End()
				inHandler := <-seen

				send := spanNamed(t, rec, "send "+name[Ping]())
				handle := spanNamed(t, rec, "handle "+name[Ping]())
				require.Equal(t, trace.SpanKindClient, send.SpanKind())
				require.Equal(t, trace.SpanKindServer, handle.SpanKind())
				// One trace: caller → send → handle, and the handler's
				// context is the handle span's.
				require.Equal(t, root.SpanContext().TraceID(), send.SpanContext().TraceID())
				require.Equal(t, root.SpanContext().SpanID(), send.Parent().SpanID())
				require.Equal(t, send.SpanContext().TraceID(), handle.SpanContext().TraceID())
				require.Equal(t, send.SpanContext().SpanID(), handle.Parent().SpanID())
				require.True(t, handle.Parent().IsRemote(), "the handler's parent came over the wire")
				require.Equal(t, handle.SpanContext().SpanID(), inHandler.SpanID())
				require.Equal(t, send.SpanContext().TraceID(), inHandler.TraceID())

				require.Equal(t, "ok", attr(send, "tharga.communication.request.outcome"))
				require.Equal(t, name[Ping](), attr(handle, "tharga.communication.message.type"))
				require.NotEmpty(t, attr(handle, "tharga.communication.correlation.id"))
				require.Equal(t, codes.Unset, send.Status().Code)
			})
		}
	}
}

// TestTraceFailedSend: a Send that fails ends its span with an error
// status and the outcome; a Send without a parent starts a trace of its
// own that the handler continues.
func TestTraceFailedSend(t *testing.T) {
	rec, tp := newRecorder(t)
	h := communication.NewHandlers()
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Boom, BoomBack](func(context.Context, Boom) (BoomBack, error) {
		return BoomBack{}, context.Canceled
	})))
	ts := newServer(t, communication.WithHandlers(h), communication.WithTracerProvider(tp))
	c := startClient(t, ts, communication.WithTracerProvider(tp))
	_, err := communication.Send[BoomBack](ctxT(t, 10*time.Second), c, Boom{})
	require.Error(t, err)

	send := spanNamed(t, rec, "send "+name[Boom]())
	handle := spanNamed(t, rec, "handle "+name[Boom]())
	require.False(t, send.Parent().IsValid(), "a Send without a parent starts a trace")
	require.Equal(t, send.SpanContext().SpanID(), handle.Parent().SpanID())
	require.Equal(t, codes.Error, send.Status().Code)
	require.Equal(t, codes.Error, handle.Status().Code)
	require.Equal(t, "remote_error", attr(send, "tharga.communication.request.outcome"))
	require.Contains(t, send.Attributes(), attribute.String("tharga.communication.error.code", "handler_error"))
}

// TestNoTraceNoTraceContext: without a tracer provider that records,
// nothing is added to the wrapper: the frame a .NET peer sees is the one
// it always saw. (Checked on the wire by the root module's frame tests;
// here, the handler gets no remote parent.)
func TestNoTraceNoTraceContext(t *testing.T) {
	seen := make(chan trace.SpanContext, 1)
	ts := newServer(t, communication.WithHandlers(pingHandlers(t, seen)))
	c := startClient(t, ts)
	_, err := communication.Send[Pong](ctxT(t, 10*time.Second), c, Ping{})
	require.NoError(t, err)
	require.False(t, (<-seen).IsValid())
}

// TestTraceAcrossNodes: a request to a client connected to another node
// carries the caller's trace through the Backplane, so that the client's
// handler continues it.
func TestTraceAcrossNodes(t *testing.T) {
	rec, tp := newRecorder(t)
	seen := make(chan trace.SpanContext, 1)
	bp := communication.NewMemoryBackplane()
	a := newServer(t, communication.WithBackplane(bp), communication.WithNodeName("a"), communication.WithTracerProvider(tp))
	b := newServer(t, communication.WithBackplane(bp), communication.WithNodeName("b"))
	c := startClient(t, b, communication.WithHandlers(pingHandlers(t, seen)), communication.WithTracerProvider(tp))

	ctx, root := tp.Tracer("test").Start(ctxT(t, 10*time.Second), "caller")
	var pong Pong
	var err error
	waitFor(t, "node a to find the client on node b", func() bool {
		pong, err = communication.Send[Pong](ctx, a.To(c.ConnectionID()), Ping{Message: "across"})
		return !errors.Is(err, communication.ErrNotConnected)
	})
	require.NoError(t, err)
	require.Equal(t, "across", pong.Reply)
	root.End()
	inHandler := <-seen

	// Attempts made before node a could find the client have spans of
	// their own; the one that reached the handler is its parent.
	handle := spanNamed(t, rec, "handle "+name[Ping]())
	require.Equal(t, root.SpanContext().TraceID(), handle.SpanContext().TraceID(), "one trace from the caller on node a to the handler")
	var parent sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanContext().SpanID() == handle.Parent().SpanID() {
			parent = s
		}
	}
	require.NotNil(t, parent, "the handler's parent span was recorded")
	require.Equal(t, "send "+name[Ping](), parent.Name())
	require.Equal(t, root.SpanContext().SpanID(), parent.Parent().SpanID())
	require.True(t, handle.Parent().IsRemote())
	require.Equal(t, handle.SpanContext().SpanID(), inHandler.SpanID())
}
