package communication

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tharga/communication-go/internal/wire"
)

// traceContext reads and writes the W3C trace context (traceparent and
// tracestate) of a request's wrapper.
var traceContext propagation.TraceContext

var (
	clientSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
)

// Span attributes. Spans may carry what metrics must not (connection and
// correlation ids): they are sampled and not aggregated.
const (
	attrConnectionID  = "tharga.communication.connection.id"
	attrCorrelationID = "tharga.communication.correlation.id"
)

// noopSpan stands for a span that was not started.
var noopSpan = trace.SpanFromContext(context.Background())

// idleTracerRecheck is how long a tracer seen making nothing (a no-op
// tracer, or the global one before the application sets a provider) is
// taken to go on making nothing for requests without a trace to continue.
// Starting a span costs allocations even then; this way a provider set
// later takes effect within that time (and idleClockEvery requests).
const idleTracerRecheck = time.Second

// idleClockEvery is how many skipped spans go by between two looks at
// the clock, which costs more than the rest of skipSpan.
const idleClockEvery = 16

// skipSpan tells whether a span need not be started: the tracer made
// nothing of late, and there is no trace to continue.
func (t *telemetry) skipSpan(ctx context.Context, remoteParent bool) bool {
	if t == nil || remoteParent || t.tracerIdleUntil.Load() == 0 || trace.SpanContextFromContext(ctx).IsValid() {
		return false
	}
	if t.tracerSkips.Add(1)%idleClockEvery != 0 {
		return true
	}
	if time.Now().UnixNano() < t.tracerIdleUntil.Load() {
		return true
	}
	// Time to look again: spans are started until one shows the tracer
	// still idle.
	t.tracerIdleUntil.Store(0)
	return false
}

// sawSpan notes whether a span the tracer made was nothing at all.
func (t *telemetry) sawSpan(span trace.Span) {
	if !span.IsRecording() && !span.SpanContext().IsValid() {
		t.tracerIdleUntil.Store(time.Now().Add(idleTracerRecheck).UnixNano())
	}
}

// wrapperCarrier is a wrapper as a propagation.TextMapCarrier.
type wrapperCarrier struct{ w *wire.Wrapper }

func (c wrapperCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.w.TraceParent
	case "tracestate":
		return c.w.TraceState
	}
	return ""
}

func (c wrapperCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c.w.TraceParent = value
	case "tracestate":
		c.w.TraceState = value
	}
}

func (c wrapperCarrier) Keys() []string { return []string{"traceparent", "tracestate"} }

// startSend starts the span of a Send of a request of type a. It is the
// caller's: its context is what the request carries to the remote
// handler.
func (t *telemetry) startSend(ctx context.Context, a *typeAttrs) (context.Context, trace.Span) {
	ctx, span := t.tracer.Start(ctx, a.sendSpan, clientSpan...)
	t.sawSpan(span)
	if span.IsRecording() {
		span.SetAttributes(attribute.String(attrSide, sideNames[t.side]), attribute.String(attrType, a.name))
	}
	return ctx, span
}

// startHandle starts the span around the handler of a request that
// arrived on connection connID, as a child of the caller's span when the
// request carries its trace context.
func (t *telemetry) startHandle(ctx context.Context, w *wire.Wrapper, connID string) (context.Context, trace.Span) {
	if t == nil || t.skipSpan(ctx, w.TraceParent != "") {
		return ctx, noopSpan
	}
	if w.TraceParent != "" {
		ctx = traceContext.Extract(ctx, wrapperCarrier{w})
	}
	a := attrsOf(w.Type)
	ctx, span := t.tracer.Start(ctx, a.handleSpan, serverSpan...)
	t.sawSpan(span)
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String(attrSide, sideNames[t.side]),
			attribute.String(attrType, wire.MatchKey(w.Type)),
			attribute.String(attrConnectionID, connID),
			attribute.String(attrCorrelationID, w.CorrelationID))
	}
	return ctx, span
}

// injectTrace puts the trace context of ctx into a request's wrapper,
// when there is one to continue.
func injectTrace(ctx context.Context, w *wire.Wrapper) {
	if trace.SpanContextFromContext(ctx).IsValid() {
		traceContext.Inject(ctx, wrapperCarrier{w})
	}
}

// endSpan ends a span with the outcome of what it measured.
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		var re *RemoteError
		if errors.As(err, &re) {
			span.SetAttributes(attribute.String("tharga.communication.error.code", string(re.Code)))
		}
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
