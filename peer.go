package communication

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tharga/communication-go/internal/pending"
	"github.com/tharga/communication-go/internal/recovery"
	"github.com/tharga/communication-go/internal/serial"
	"github.com/tharga/communication-go/internal/stack"
	"github.com/tharga/communication-go/internal/transport"
	"github.com/tharga/communication-go/internal/wire"
)

// outbound writes protocol invocations to one connection, in call order.
type outbound interface {
	// Send queues one invocation; it waits for room in a full queue until
	// ctx ends.
	Send(ctx context.Context, target string, w *wire.Wrapper) error
	// TrySend queues one invocation without waiting.
	TrySend(target string, w *wire.Wrapper) error
	// SendInline is Send from a goroutine with nothing left to do: it
	// may write the queue itself (transport.Conn.SendInline).
	SendInline(ctx context.Context, target string, w *wire.Wrapper) error
}

// peer is the data plane of one connection, the same on both ends: it
// runs the handlers for what arrives and matches answers to requests.
type peer struct {
	id       string
	h        *Handlers
	cfg      *common
	log      *slog.Logger
	out      outbound
	pending  *pending.Table
	posts    *serial.Queue
	requests *limiter        // this connection's running request handlers
	inflight atomic.Int32    // this end's requests waiting for an answer
	shared   *limiter        // the server's running handlers; nil on a client
	blocked  <-chan struct{} // what a refused message waits for (read goroutine only)
	again    bool            // the next message is the one refused (read goroutine only)
	// life bounds post handlers (they outlive the connection: what
	// arrived is handled); ctx bounds request handlers (their answer
	// cannot outlive the connection).
	life   context.Context
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // running request handlers
	tel    *telemetry     // set by its Server or Client; nil records nothing

	closeOnce sync.Once
}

func newPeer(life context.Context, id string, h *Handlers, cfg *common, out outbound, table *pending.Table, shared *limiter) *peer {
	ctx, cancel := context.WithCancel(life)
	p := &peer{
		id:       id,
		h:        h,
		cfg:      cfg,
		log:      cfg.logger,
		out:      out,
		pending:  table,
		requests: newLimiter(cfg.maxRequests),
		shared:   shared,
		life:     life,
		ctx:      ctx,
		cancel:   cancel,
	}
	p.posts = serial.New(1024, p.log, "communication: post handler panicked", "connection", id)
	return p
}

// HandleMessage implements transport.Inbound. It runs on the connection's
// read goroutine, in arrival order, and never blocks: a message that finds
// every handler slot busy is refused, and the connection stops reading
// until Ready.
func (p *peer) HandleMessage(m *wire.Message) bool {
	if !p.again {
		// Counted before it is handled, so that whoever sees it handled
		// sees it counted; once, though a refused message comes again.
		p.tel.messageReceived(m)
	}
	taken := true
	switch m.Target {
	case wire.TargetPost:
		taken = p.handlePost(m)
	case wire.TargetSend:
		taken = p.handleSend(m)
	case wire.TargetResponse:
		p.handleResponse(m)
	}
	p.again = !taken
	return taken
}

// Ready implements transport.Inbound.
func (p *peer) Ready() <-chan struct{} { return p.blocked }

func (p *peer) handlePost(m *wire.Message) bool {
	if m.WrapperErr != nil {
		p.log.Warn("communication: post dropped", "connection", p.id, "error", m.WrapperErr)
		return true
	}
	typ := m.Wrapper.Type
	e := p.h.lookup(typ)
	if e == nil || e.post == nil {
		p.log.Warn("communication: post dropped", "connection", p.id, "type", typ, "error", ErrUnknownType)
		return true
	}
	// The decoders never let a payload alias the read buffer (see
	// wire.Message): it can be kept as it is.
	payload := m.Wrapper.Payload
	ok, space, err := p.posts.TryPush(func() {
		if p.shared != nil {
			// Posts of one connection run one at a time; across the
			// server they share the bound with requests.
			if err := p.shared.acquire(p.life); err != nil {
				return
			}
			defer p.shared.release()
		}
		hc := newHandlerContext(p.life, p.cfg.handlerTimeout, Sender{ConnectionID: p.id, Type: typ})
		defer hc.end()
		if err := e.post(hc, payload); err != nil {
			p.log.Warn("communication: post handler failed", "connection", p.id, "type", typ, "error", err)
		}
	})
	if err != nil {
		p.log.Warn("communication: post dropped", "connection", p.id, "type", typ, "error", err)
		return true
	}
	if !ok {
		p.blocked = space
	}
	return ok
}

func (p *peer) handleSend(m *wire.Message) bool {
	w := m.Wrapper
	if m.WrapperErr != nil {
		p.answerError(&w, fmt.Sprintf("Invalid message: %v", m.WrapperErr), CodeBadPayload)
		return true
	}
	e := p.h.lookup(w.Type)
	if e == nil || e.send == nil {
		p.answerError(&w, fmt.Sprintf("Cannot find handler for type '%s'.", wire.FullName(w.Type)), CodeUnknownType)
		return true
	}
	if p.ctx.Err() != nil {
		return true // the connection is going: nobody would get the answer
	}
	ok, wait := p.requests.tryAcquire()
	if !ok {
		p.blocked = wait
		return false
	}
	if p.shared != nil {
		if ok, wait := p.shared.tryAcquire(); !ok {
			p.requests.release()
			p.blocked = wait
			return false
		}
	}
	p.wg.Add(1)
	go func() {
		stack.Grow()
		defer p.wg.Done()
		defer p.requests.release()
		if p.shared != nil {
			defer p.shared.release()
		}
		p.runSend(e, &w)
	}()
	return true
}

func (p *peer) runSend(e *entry, w *wire.Wrapper) {
	timeout := p.cfg.handlerTimeout
	if w.TimeoutMillis > 0 {
		timeout = time.Duration(w.TimeoutMillis) * time.Millisecond
	}
	hc := newHandlerContext(p.ctx, timeout, Sender{ConnectionID: p.id, Type: w.Type})
	defer hc.end()
	ctx, span := p.tel.startHandle(hc, w, p.id)
	name, answer, err := p.callSend(ctx, e, w.Payload)
	endSpan(span, err)
	if p.ctx.Err() != nil {
		// The connection is gone or going: the caller learns that from
		// the connection, not from a cancelled handler's error.
		return
	}
	if err != nil {
		code, msg := CodeHandlerError, err.Error()
		var coded *Error
		if errors.As(err, &coded) {
			code, msg = coded.Code(), coded.Message()
		}
		if code == CodeHandlerError && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			code = CodeTimeout
		}
		p.answerError(w, msg, code)
		return
	}
	resp := wire.Wrapper{Type: name, Payload: answer, CorrelationID: w.CorrelationID}
	err = p.out.SendInline(p.ctx, wire.TargetResponse, &resp)
	if err == nil {
		p.tel.messageSent(p.ctx, wire.TargetResponse, name)
	}
	if errors.Is(err, wire.ErrTooLarge) {
		// The caller must not wait for an answer that cannot be sent.
		p.log.Warn("communication: answer too large for the peer", "connection", p.id, "type", w.Type, "error", err)
		p.answerError(w, fmt.Sprintf("The answer of type '%s' is too large: %v", wire.FullName(name), err), CodeTooLarge)
		return
	}
	if err != nil {
		p.log.Debug("communication: answer not sent", "connection", p.id, "type", w.Type, "error", err)
	}
}

// callSend runs a send handler, turning a panic into an error answer whose
// text tells nothing of the server's insides.
func (p *peer) callSend(ctx context.Context, e *entry, payload []byte) (name string, answer []byte, err error) {
	defer recovery.Log(p.log, "communication: send handler panicked", func() []any {
		err = NewError(CodeHandlerPanic, errors.New("the handler failed with an internal error"))
		return []any{"connection", p.id, "type", e.name}
	})
	return e.send(ctx, p.h, payload)
}

// answerError answers a request with the .NET error form: the request's
// type and {"Error": "..."}.
func (p *peer) answerError(req *wire.Wrapper, msg string, code Code) {
	p.log.Debug("communication: request answered with an error", "connection", p.id, "type", req.Type, "error", msg)
	w := wire.Wrapper{
		Type:          req.Type,
		Payload:       wire.AppendErrorPayload(nil, msg, string(code)),
		CorrelationID: req.CorrelationID,
	}
	if err := p.out.Send(p.ctx, wire.TargetResponse, &w); err != nil {
		p.log.Debug("communication: error answer not sent", "connection", p.id, "error", err)
	} else {
		p.tel.messageSent(p.ctx, wire.TargetResponse, req.Type)
	}
}

func (p *peer) handleResponse(m *wire.Message) {
	if m.WrapperErr != nil {
		// An answer that names its request fails that request at once,
		// rather than leaving it to its timeout.
		id := m.Wrapper.CorrelationID
		if id == "" || !p.pending.Fail(id, fmt.Errorf("%w: the answer could not be read: %w", ErrBadMessage, m.WrapperErr)) {
			p.log.Warn("communication: answer dropped", "connection", p.id, "error", m.WrapperErr)
		}
		return
	}
	w := m.Wrapper
	if !p.pending.Resolve(&w) {
		p.log.Debug("communication: answer dropped: no request waits for it", "connection", p.id, "type", w.Type, "correlationId", w.CorrelationID)
	}
}

// post sends a fire-and-forget message.
func (p *peer) post(ctx context.Context, msg any) error {
	w, err := p.wrap(msg)
	if err != nil {
		return err
	}
	if err := p.out.Send(ctx, wire.TargetPost, &w); err != nil {
		return p.sendErr(err)
	}
	p.tel.messageSent(ctx, wire.TargetPost, w.Type)
	return nil
}

func (p *peer) wrap(msg any) (wire.Wrapper, error) { return wrapWith(p.h, msg) }

// wrapWith encodes msg under its wire name in h.
func wrapWith(h *Handlers, msg any) (wire.Wrapper, error) {
	if msg == nil {
		return wire.Wrapper{}, fmt.Errorf("%w: nil message", ErrBadMessage)
	}
	payload, err := json.Marshal(msg)
	if err != nil {
		return wire.Wrapper{}, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	return wire.Wrapper{Type: h.nameOf(reflect.TypeOf(msg)), Payload: payload}, nil
}

// names implements requester.
func (p *peer) names() *Handlers { return p.h }

// request sends a request and waits for the answer's wrapper.
func (p *peer) request(ctx context.Context, req any, respType reflect.Type) (wire.Wrapper, error) {
	w, err := p.wrap(req)
	if err != nil {
		return w, err
	}
	return p.requestWrapper(ctx, w, p.h.nameOf(respType), time.Time{})
}

// requestWrapper sends an encoded request and waits for the answer's
// wrapper; respName is the answer's expected wire name. An error answer
// is a *RemoteError. The request's deadline is ctx's, or until when that
// is earlier or ctx has none (a request from another node carries its
// own), or the send timeout when neither says.
func (p *peer) requestWrapper(ctx context.Context, w wire.Wrapper, respName string, until time.Time) (wire.Wrapper, error) {
	p.inflight.Add(1)
	defer p.inflight.Add(-1)
	dl, bounded := ctx.Deadline()
	if bounded && !until.IsZero() && !until.Before(dl) {
		until = time.Time{} // ctx ends first
	}
	// wait bounds the wait for the answer when ctx does not. With a peer
	// that echoes correlation ids nothing else waits on ctx but a full
	// queue (below), so a timer does, cheaper than a context of our own
	// per request.
	var wait time.Duration
	switch {
	case bounded && until.IsZero():
	case p.pending.Echoes():
		if until.IsZero() {
			until = time.Now().Add(p.cfg.sendTimeout)
		}
		dl = until
		if wait = time.Until(dl); wait <= 0 {
			return wire.Wrapper{}, &timeoutError{typ: w.Type, cause: context.DeadlineExceeded}
		}
	default:
		if until.IsZero() {
			until = time.Now().Add(p.cfg.sendTimeout)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, until)
		defer cancel()
		dl = until
	}
	if ms := time.Until(dl).Milliseconds(); ms > 0 {
		w.TimeoutMillis = ms
	}
	injectTrace(ctx, &w)
	call, err := p.pending.Add(ctx, w.Type, respName, func(id string) error {
		w.CorrelationID = id
		err := p.out.TrySend(wire.TargetSend, &w)
		if errors.Is(err, transport.ErrQueueFull) {
			// Wait for room, until the request's deadline.
			sctx, cancel := context.WithDeadline(ctx, dl)
			err = p.out.Send(sctx, wire.TargetSend, &w)
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				err = errSendTimedOut
			}
			cancel()
		}
		if err == nil {
			p.tel.messageSent(ctx, wire.TargetSend, w.Type)
		}
		return err
	})
	if errors.Is(err, errSendTimedOut) {
		return wire.Wrapper{}, &timeoutError{typ: w.Type, cause: context.DeadlineExceeded}
	}
	if err != nil {
		return wire.Wrapper{}, p.requestErr(ctx, w.Type, err)
	}
	var res pending.Result
	if wait > 0 {
		res = call.WaitFor(ctx, wait)
		if res.Err == context.DeadlineExceeded && ctx.Err() == nil {
			return wire.Wrapper{}, &timeoutError{typ: w.Type, cause: context.DeadlineExceeded}
		}
	} else {
		res = call.Wait(ctx)
	}
	if res.Err != nil {
		return wire.Wrapper{}, p.requestErr(ctx, w.Type, res.Err)
	}
	if wire.SameType(res.Wrapper.Type, w.Type) {
		if msg, code, ok := wire.ParseErrorPayload(res.Wrapper.Payload); ok {
			return wire.Wrapper{}, &RemoteError{Type: w.Type, Message: msg, Code: Code(code)}
		}
	}
	return res.Wrapper, nil
}

// errSendTimedOut is a request that ran out of time waiting for room in
// the connection's queue.
var errSendTimedOut = errors.New("timed out waiting for room in the send queue")

func (p *peer) requestErr(ctx context.Context, typ string, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return &timeoutError{typ: typ, cause: ctx.Err()}
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return ctx.Err()
	}
	return p.sendErr(err)
}

// sendErr maps transport errors to the package's sentinels.
func (p *peer) sendErr(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, ErrConnectionLost), errors.Is(err, ErrClosed), errors.Is(err, ErrNotConnected),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, wire.ErrTooLarge):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	if errors.Is(err, transport.ErrConnClosed) || p.ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrConnectionLost, connErr(err))
	}
	return err
}

// close ends the peer: pending requests fail at once with reason, request
// handlers are cancelled, queued posts still run.
func (p *peer) close(reason error) {
	p.closeOnce.Do(func() {
		p.cancel()
		p.pending.Close(reason)
		p.posts.Close()
	})
}

// busy reports whether handlers of the peer may still be running.
// crowded reports whether more than one of this connection's requests
// or handlers is under way: their frames come together, and a writer
// waits for them before its first write.
func (p *peer) crowded() bool {
	return p.inflight.Load() > 1 || p.requests.running() > 1
}

func (p *peer) busy() bool {
	return p.requests.running() > 0 || p.posts.Wait(doneContext) != nil
}

// doneContext is an already-cancelled context, for non-blocking checks.
var doneContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// wait blocks until the peer's handlers are done or ctx ends.
func (p *peer) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.posts.Wait(ctx)
}

// decodeAnswer decodes an answer's payload into Resp.
func decodeAnswer[Resp any](w wire.Wrapper) (Resp, error) {
	var resp Resp
	if err := json.Unmarshal(w.Payload, &resp); err != nil {
		return resp, fmt.Errorf("%w: answer of type %s does not decode into %v: %w", ErrBadMessage, w.Type, reflect.TypeFor[Resp](), err)
	}
	return resp, nil
}
