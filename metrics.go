package communication

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/tharga/communication-go/internal/wire"
)

// instrumentationName is the instrumentation scope of the package's
// metrics and spans.
const instrumentationName = "github.com/tharga/communication-go"

// The attributes of the package's own metrics. Every value comes from a
// small fixed set, or from the registered message types (anything else
// is otherType), so that a peer cannot grow the number of series.
const (
	attrSide      = "tharga.communication.side"                // server, client
	attrKind      = "tharga.communication.message.kind"        // post, request, response
	attrType      = "tharga.communication.message.type"        // a registered full type name, or "other"
	attrOutcome   = "tharga.communication.request.outcome"     // see outcomeNames
	attrOperation = "tharga.communication.backplane.operation" // see backplaneOpNames
	attrStatus    = "http.response.status_code"
	// The stable SignalR semantic conventions.
	attrConnStatus = "signalr.connection.status"
	attrTransport  = "signalr.transport"
)

// otherType is the message type attribute of every type that is not
// registered in this process.
const otherType = "other"

// WithMeterProvider sets where the metrics go (see the README for the
// instruments and their attributes); nil means the default. Default: the
// global provider (otel.GetMeterProvider), which discards everything until
// the application sets one; while nothing is recorded, a message costs an
// Enabled check per instrument and no allocation.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return commonOption(func(c *common) { c.meterProvider = mp })
}

// WithTracerProvider sets where the spans go: one per Send on the caller
// (kind client) and one around the remote handler (kind server), joined
// by the W3C trace context that travels with the request; nil means the
// default. Default: the global provider (otel.GetTracerProvider), which
// records nothing until the application sets one. While the tracer makes
// nothing, no span is started for a request without a trace to continue
// (that would allocate); a provider that starts recording is seen within
// a second.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return commonOption(func(c *common) { c.tracerProvider = tp })
}

type side uint8

const (
	sideServer side = iota
	sideClient
	numSides
)

var sideNames = [numSides]string{"server", "client"}

type kind uint8

const (
	kindPost kind = iota
	kindRequest
	kindResponse
	numKinds
)

var kindNames = [numKinds]string{"post", "request", "response"}

// kindOf is the message kind of a protocol target.
func kindOf(target string) (kind, bool) {
	switch {
	case strings.EqualFold(target, wire.TargetPost):
		return kindPost, true
	case strings.EqualFold(target, wire.TargetSend):
		return kindRequest, true
	case strings.EqualFold(target, wire.TargetResponse):
		return kindResponse, true
	}
	return 0, false
}

// outcome is how a Send ended.
type outcome uint8

const (
	outcomeOK outcome = iota
	outcomeTimeout
	outcomeRemoteError
	outcomeNotConnected
	outcomeConnectionLost
	outcomeCanceled
	outcomeError
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "timeout", "remote_error", "not_connected", "connection_lost", "canceled", "error"}

// outcomeOf classifies the error a Send returned.
func outcomeOf(err error) outcome {
	var re *RemoteError
	switch {
	case err == nil:
		return outcomeOK
	case errors.As(err, &re):
		return outcomeRemoteError
	case errors.Is(err, ErrTimeout):
		return outcomeTimeout
	case errors.Is(err, ErrNotConnected):
		return outcomeNotConnected
	case errors.Is(err, ErrConnectionLost), errors.Is(err, ErrClosed):
		return outcomeConnectionLost
	case errors.Is(err, context.Canceled):
		return outcomeCanceled
	}
	return outcomeError
}

// typeAttrs are the measurement options of one message type, built once
// when the type is registered so that recording allocates nothing.
type typeAttrs struct {
	name     string // the attribute value
	messages [numSides][numKinds][]metric.AddOption
	requests [numSides][numOutcomes][]metric.RecordOption
	// sendSpan and handleSpan name the spans of a request of this type.
	sendSpan, handleSpan string
}

func newTypeAttrs(name string) *typeAttrs {
	a := &typeAttrs{name: name, sendSpan: "send " + name, handleSpan: "handle " + name}
	for s := range numSides {
		for k := range numKinds {
			set := attribute.NewSet(
				attribute.String(attrSide, sideNames[s]),
				attribute.String(attrKind, kindNames[k]),
				attribute.String(attrType, name))
			a.messages[s][k] = []metric.AddOption{metric.WithAttributeSet(set)}
		}
		for o := range numOutcomes {
			set := attribute.NewSet(
				attribute.String(attrSide, sideNames[s]),
				attribute.String(attrType, name),
				attribute.String(attrOutcome, outcomeNames[o]))
			a.requests[s][o] = []metric.RecordOption{metric.WithAttributeSet(set)}
		}
	}
	return a
}

// registeredTypes holds the typeAttrs of every type registered in the
// process (handlers, RegisterName, response names), by wire.MatchKey of
// its name: a bounded set, since only code registers.
var registeredTypes sync.Map

var otherAttrs = newTypeAttrs(otherType)

// noteType makes name a registered type for the metrics.
func noteType(name string) {
	key := wire.MatchKey(name)
	if _, ok := registeredTypes.Load(key); !ok {
		registeredTypes.LoadOrStore(key, newTypeAttrs(key))
	}
}

// attrsOf returns the measurement options of the type named name, or
// those of otherType when it is not registered.
func attrsOf(name string) *typeAttrs {
	if a, ok := registeredTypes.Load(wire.MatchKey(name)); ok {
		return a.(*typeAttrs)
	}
	return otherAttrs
}

// Connection attributes of the SignalR conventions.
const (
	transportWebSockets = iota
	transportSSE
	numTransports
)

var transportNames = [numTransports]string{"web_sockets", "server_sent_events"}

const (
	statusNormal = iota
	statusTimeout
	statusShutdown
	numStatuses
)

var statusNames = [numStatuses]string{"normal_closure", "timeout", "app_shutdown"}

// The Backplane calls that are measured.
type backplaneOp uint8

const (
	opPublish backplaneOp = iota
	opLocate
	opClaim
	opRelease
	opLink
	numBackplaneOps
)

var backplaneOpNames = [numBackplaneOps]string{"publish", "locate", "claim", "release", "link"}

// telemetry is the metrics and tracing of one Server or Client. Its
// methods are safe on a nil *telemetry, which records nothing.
type telemetry struct {
	side side
	log  *slog.Logger

	sent, received  metric.Int64Counter
	requestDuration metric.Float64Histogram
	pending         metric.Int64UpDownCounter
	sideOpts        []metric.AddOption

	// Server.
	active       metric.Int64UpDownCounter
	connDuration metric.Float64Histogram
	slowDrops    metric.Int64Counter
	refused      metric.Int64Counter
	activeOpts   [numTransports][]metric.AddOption
	durationOpts [numTransports][numStatuses][]metric.RecordOption
	refusedOpts  map[int][]metric.AddOption

	// Client.
	reconnects metric.Int64Counter

	// Backplane, on a Server that has one.
	bpErrors   metric.Int64Counter
	bpDuration metric.Float64Histogram
	bpOpts     [numBackplaneOps][]metric.AddOption
	bpRecOpts  [numBackplaneOps][]metric.RecordOption

	tracer trace.Tracer
	// tracerIdleUntil is until when (Unix nanoseconds) the tracer is taken
	// to make nothing, 0 when it is not; tracerSkips counts the spans not
	// started. See skipSpan.
	tracerIdleUntil atomic.Int64
	tracerSkips     atomic.Uint64
}

// connectionBuckets are the bucket boundaries the SignalR conventions
// advise for signalr.server.connection.duration.
var connectionBuckets = []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}

// requestBuckets suit requests that take from a fraction of a millisecond
// (loopback) to the default send timeout.
var requestBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// newTelemetry makes the instruments of one Server or Client. An
// instrument the provider refuses is logged and replaced by one that
// records nothing.
func newTelemetry(s side, c *common, log *slog.Logger) *telemetry {
	if s == sideClient && c.meterProvider == nil && c.tracerProvider == nil {
		return defaultClientTelemetry()
	}
	return buildTelemetry(s, c, log)
}

// defaultClientTelemetry is shared by the clients that keep the default
// providers: a process may run thousands of clients, and their
// instruments are the same.
var defaultClientTelemetry = sync.OnceValue(func() *telemetry {
	return buildTelemetry(sideClient, &common{}, slog.New(slog.DiscardHandler))
})

func buildTelemetry(s side, c *common, log *slog.Logger) *telemetry {
	mp := c.meterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	tp := c.tracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	m := mp.Meter(instrumentationName)
	t := &telemetry{side: s, log: log, tracer: tp.Tracer(instrumentationName)}
	t.sideOpts = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String(attrSide, sideNames[s])))}
	check := func(what string, err error) {
		if err != nil {
			log.Warn("communication: a metric instrument could not be made", "instrument", what, "error", err)
		}
	}
	var err error
	t.sent, err = m.Int64Counter("tharga.communication.messages.sent", metric.WithUnit("{message}"),
		metric.WithDescription("Messages written to connections, by side, kind and type."))
	check("messages.sent", err)
	t.received, err = m.Int64Counter("tharga.communication.messages.received", metric.WithUnit("{message}"),
		metric.WithDescription("Messages read from connections, by side, kind and type."))
	check("messages.received", err)
	t.requestDuration, err = m.Float64Histogram("tharga.communication.request.duration", metric.WithUnit("s"),
		metric.WithDescription("The time a Send waited for its answer, by side, type and outcome."),
		metric.WithExplicitBucketBoundaries(requestBuckets...))
	check("request.duration", err)
	t.pending, err = m.Int64UpDownCounter("tharga.communication.requests.pending", metric.WithUnit("{request}"),
		metric.WithDescription("Requests sent and waiting for their answer, by side."))
	check("requests.pending", err)

	switch s {
	case sideServer:
		t.active, err = m.Int64UpDownCounter("signalr.server.active_connections", metric.WithUnit("{connection}"),
			metric.WithDescription("Number of connections that are currently active on the server."))
		check("signalr.server.active_connections", err)
		t.connDuration, err = m.Float64Histogram("signalr.server.connection.duration", metric.WithUnit("s"),
			metric.WithDescription("The duration of connections on the server."),
			metric.WithExplicitBucketBoundaries(connectionBuckets...))
		check("signalr.server.connection.duration", err)
		t.slowDrops, err = m.Int64Counter("tharga.communication.slow_consumer.drops", metric.WithUnit("{connection}"),
			metric.WithDescription("Connections dropped because they did not read what was sent to them."))
		check("slow_consumer.drops", err)
		t.refused, err = m.Int64Counter("tharga.communication.requests.refused", metric.WithUnit("{request}"),
			metric.WithDescription("HTTP requests to the hub refused before a connection, by status code."))
		check("requests.refused", err)
		for tr := range numTransports {
			t.activeOpts[tr] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
				attribute.String(attrTransport, transportNames[tr])))}
			for st := range numStatuses {
				t.durationOpts[tr][st] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(
					attribute.String(attrTransport, transportNames[tr]),
					attribute.String(attrConnStatus, statusNames[st])))}
			}
		}
		t.refusedOpts = map[int][]metric.AddOption{}
		for _, code := range []int{401, 429} {
			t.refusedOpts[code] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.Int(attrStatus, code)))}
		}
	case sideClient:
		t.reconnects, err = m.Int64Counter("tharga.communication.client.reconnects", metric.WithUnit("{reconnect}"),
			metric.WithDescription("Connections a client made again after its connection dropped."))
		check("client.reconnects", err)
	}
	return t
}

// withBackplane adds the instruments of the Backplane.
func (t *telemetry) withBackplane(mp metric.MeterProvider) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(instrumentationName)
	var err error
	t.bpErrors, err = m.Int64Counter("tharga.communication.backplane.errors", metric.WithUnit("{error}"),
		metric.WithDescription("Backplane calls that failed, by operation."))
	if err != nil {
		t.log.Warn("communication: a metric instrument could not be made", "instrument", "backplane.errors", "error", err)
	}
	t.bpDuration, err = m.Float64Histogram("tharga.communication.backplane.duration", metric.WithUnit("s"),
		metric.WithDescription("The time a Backplane call took (the lag it adds to a message between nodes), by operation."),
		metric.WithExplicitBucketBoundaries(requestBuckets...))
	if err != nil {
		t.log.Warn("communication: a metric instrument could not be made", "instrument", "backplane.duration", "error", err)
	}
	for op := range numBackplaneOps {
		set := attribute.NewSet(attribute.String(attrOperation, backplaneOpNames[op]))
		t.bpOpts[op] = []metric.AddOption{metric.WithAttributeSet(set)}
		t.bpRecOpts[op] = []metric.RecordOption{metric.WithAttributeSet(set)}
	}
}
