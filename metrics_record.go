package communication

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tharga/communication-go/internal/transport"
	"github.com/tharga/communication-go/internal/wire"
)

// The recording points of the metrics. Each first asks its instrument
// whether it records (Enabled), so that nothing else is done, and nothing
// allocated, while the provider discards everything.

// messageSent counts one message written to a connection.
func (t *telemetry) messageSent(ctx context.Context, target, typ string) {
	if t == nil || t.sent == nil || !t.sent.Enabled(ctx) {
		return
	}
	if k, ok := kindOf(target); ok {
		t.sent.Add(ctx, 1, attrsOf(typ).messages[t.side][k]...)
	}
}

// messagesSent counts n posts of one type written to connections.
func (t *telemetry) messagesSent(ctx context.Context, n int, typ string) {
	if t == nil || n == 0 || t.sent == nil || !t.sent.Enabled(ctx) {
		return
	}
	t.sent.Add(ctx, int64(n), attrsOf(typ).messages[t.side][kindPost]...)
}

// messageReceived counts one message read from a connection and taken.
func (t *telemetry) messageReceived(m *wire.Message) {
	ctx := context.Background()
	if t == nil || t.received == nil || !t.received.Enabled(ctx) {
		return
	}
	if k, ok := kindOf(m.Target); ok {
		t.received.Add(ctx, 1, attrsOf(m.Wrapper.Type).messages[t.side][k]...)
	}
}

// requestStarted counts a request that waits for its answer; the returned
// time is when, zero when nothing is recorded.
func (t *telemetry) requestStarted(ctx context.Context) time.Time {
	if t == nil {
		return time.Time{}
	}
	if t.pending != nil && t.pending.Enabled(ctx) {
		t.pending.Add(ctx, 1, t.sideOpts...)
	}
	if t.requestDuration != nil && t.requestDuration.Enabled(ctx) {
		return time.Now()
	}
	return time.Time{}
}

// requestEnded records how the request started at start ended.
func (t *telemetry) requestEnded(ctx context.Context, a *typeAttrs, start time.Time, err error) {
	if t == nil {
		return
	}
	if t.pending != nil && t.pending.Enabled(ctx) {
		t.pending.Add(ctx, -1, t.sideOpts...)
	}
	if !start.IsZero() {
		t.requestDuration.Record(ctx, time.Since(start).Seconds(), a.requests[t.side][outcomeOf(err)]...)
	}
}

// connectionOpened counts a connection the server made reachable.
func (t *telemetry) connectionOpened(sse bool) {
	ctx := context.Background()
	if t == nil || t.active == nil || !t.active.Enabled(ctx) {
		return
	}
	t.active.Add(ctx, 1, t.activeOpts[transportOf(sse)]...)
}

// connectionClosed records the end of a connection opened at opened:
// shutdown tells whether the server is stopping, reason why the
// connection ended (nil: a normal close).
func (t *telemetry) connectionClosed(sse bool, opened time.Time, shutdown bool, reason error) {
	if t == nil {
		return
	}
	ctx := context.Background()
	tr := transportOf(sse)
	if errors.Is(reason, ErrSlowConsumer) && t.slowDrops.Enabled(ctx) {
		t.slowDrops.Add(ctx, 1)
	}
	if t.active.Enabled(ctx) {
		t.active.Add(ctx, -1, t.activeOpts[tr]...)
	}
	if t.connDuration.Enabled(ctx) {
		t.connDuration.Record(ctx, time.Since(opened).Seconds(), t.durationOpts[tr][connStatus(shutdown, reason)]...)
	}
}

func transportOf(sse bool) int {
	if sse {
		return transportSSE
	}
	return transportWebSockets
}

// connStatus is the signalr.connection.status of a connection that ended.
func connStatus(shutdown bool, reason error) int {
	switch {
	case shutdown:
		return statusShutdown
	case reason == nil:
		return statusNormal
	case errors.Is(reason, ErrSlowConsumer), errors.Is(reason, transport.ErrStalled),
		errors.Is(reason, context.DeadlineExceeded),
		// philippseith's keep-alive timeout, which it reports as text only.
		strings.Contains(reason.Error(), "timeout interval elapsed"):
		return statusTimeout
	}
	return statusNormal
}

// refusedRequest counts an HTTP request to the hub refused with code.
func (t *telemetry) refusedRequest(code int) {
	ctx := context.Background()
	if t == nil || t.refused == nil || !t.refused.Enabled(ctx) {
		return
	}
	t.refused.Add(ctx, 1, t.refusedOpts[code]...)
}

// reconnected counts a client's connection made again.
func (t *telemetry) reconnected() {
	ctx := context.Background()
	if t == nil || t.reconnects == nil || !t.reconnects.Enabled(ctx) {
		return
	}
	t.reconnects.Add(ctx, 1)
}

// backplaneStart returns when a Backplane call starts, zero when its
// duration is not recorded: every message between nodes passes here, and
// reading the clock costs more than the rest of the hook.
func (t *telemetry) backplaneStart() time.Time {
	if t == nil || t.bpDuration == nil || !t.bpDuration.Enabled(context.Background()) {
		return time.Time{}
	}
	return time.Now()
}

// backplaneCall records one Backplane call that started at start and
// returns its error unchanged. A node that is gone is no error of the
// Backplane.
func (t *telemetry) backplaneCall(op backplaneOp, start time.Time, err error) error {
	if t == nil || t.bpErrors == nil {
		return err
	}
	ctx := context.Background()
	if err != nil && !errors.Is(err, ErrNoSuchNode) && t.bpErrors.Enabled(ctx) {
		t.bpErrors.Add(ctx, 1, t.bpOpts[op]...)
	}
	if !start.IsZero() && t.bpDuration.Enabled(ctx) {
		t.bpDuration.Record(ctx, time.Since(start).Seconds(), t.bpRecOpts[op]...)
	}
	return err
}

// unauthorized refuses a request to the hub for its key, and counts it.
func (s *Server) unauthorized(w http.ResponseWriter) {
	s.tel.refusedRequest(http.StatusUnauthorized)
	unauthorized(w)
}
