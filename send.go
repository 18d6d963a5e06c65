package communication

import (
	"context"
	"fmt"
	"reflect"

	"go.opentelemetry.io/otel/attribute"

	"github.com/tharga/communication-go/internal/wire"
)

// Endpoint is one side of a connection that requests can be sent to: a
// *Client (its server), or a connected client of a Server (Server.To,
// Server.ToInstance), on this node or, with a Backplane, on another.
type Endpoint interface {
	requester() (requester, error)
	// observer is the telemetry of the Server or Client the endpoint
	// belongs to, and its handler set, which names the types.
	observer() (*telemetry, *Handlers)
}

// requester sends a request and waits for its answer's wrapper: a
// connection's peer, or another node of the cluster that holds it.
type requester interface {
	request(ctx context.Context, req any, respType reflect.Type) (wire.Wrapper, error)
	// names is the handler set that names the types.
	names() *Handlers
}

func (c *Client) observer() (*telemetry, *Handlers) { return c.tel, c.h }

func (c *Client) requester() (requester, error) {
	p, err := c.peerFor()
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Send sends req to the endpoint and waits for its typed answer: the
// request-response of the protocol (a SendMessage answered by a
// ResponseMessage). Any number of requests may be in flight on one
// connection.
//
// The answer must be of type Resp: its wire name must match Resp's (see
// WithName and RegisterName; names match by full type name, whatever
// assembly version follows), or a name registered for a type assignable
// to Resp. When Resp is an interface type any answer is taken. Against a
// .NET peer, register the .NET name of Resp.
//
// The wait ends at ctx's deadline, or after the send timeout (WithSendTimeout)
// when ctx has none; the deadline travels with the request, so that the
// remote handler's context ends with it. Errors: ErrTimeout (also matching
// context.DeadlineExceeded), ErrNotConnected, ErrConnectionLost when the
// connection drops while waiting, ErrClosed, ErrUnexpectedType (also
// matching ErrBadMessage) when the answer is of another type, ErrBadMessage
// when it does not decode into Resp, and *RemoteError when the remote
// handler failed or has no handler for the type (errors.Is
// ErrUnknownType).
func Send[Resp, Req any](ctx context.Context, to Endpoint, req Req) (Resp, error) {
	tel, h := to.observer()
	if tel == nil {
		return send[Resp](ctx, to, req)
	}
	// What nobody records is not worked out.
	skip := tel.skipSpan(ctx, false)
	start := tel.requestStarted(ctx)
	var a *typeAttrs
	if !skip || !start.IsZero() {
		a = sendAttrs(h, req)
	}
	span := noopSpan
	if !skip {
		ctx, span = tel.startSend(ctx, a)
	}
	resp, err := send[Resp](ctx, to, req)
	tel.requestEnded(ctx, a, start, err)
	if span.IsRecording() {
		span.SetAttributes(attribute.String(attrOutcome, outcomeNames[outcomeOf(err)]))
	}
	endSpan(span, err)
	return resp, err
}

// sendAttrs returns the measurement options of req's type.
func sendAttrs[Req any](h *Handlers, req Req) *typeAttrs {
	rt := reflect.TypeFor[Req]()
	if rt.Kind() == reflect.Interface {
		rt = reflect.TypeOf(req)
	}
	if rt == nil {
		return otherAttrs
	}
	return attrsOf(h.nameOf(rt))
}

func send[Resp, Req any](ctx context.Context, to Endpoint, req Req) (Resp, error) {
	var zero Resp
	r, err := to.requester()
	if err != nil {
		return zero, err
	}
	rt := reflect.TypeFor[Resp]()
	w, err := r.request(ctx, req, rt)
	if err != nil {
		return zero, err
	}
	if h := r.names(); !answers(h, rt, w.Type) {
		return zero, &unexpectedTypeError{want: rt, wantName: h.nameOf(rt), got: w.Type}
	}
	return decodeAnswer[Resp](w)
}

// answers reports whether an answer named name may be decoded as a want:
// want is an interface, or name matches want's wire name (or, for a
// pointer, that of the type it points to), or name is registered in h for
// a type assignable to want (pointers aside).
func answers(h *Handlers, want reflect.Type, name string) bool {
	base := want
	for {
		if base.Kind() == reflect.Interface || wire.SameType(name, h.nameOf(base)) {
			return true
		}
		if base.Kind() != reflect.Pointer {
			break
		}
		base = base.Elem()
	}
	key := wire.MatchKey(name)
	h.mu.RLock()
	defer h.mu.RUnlock()
	for t, n := range h.names {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.AssignableTo(base) && wire.MatchKey(n) == key {
			return true
		}
	}
	return false
}

// unexpectedTypeError reports an answer of another type than the one
// asked for. It matches ErrUnexpectedType and ErrBadMessage.
type unexpectedTypeError struct {
	want     reflect.Type
	wantName string
	got      string
}

func (e *unexpectedTypeError) Error() string {
	return fmt.Sprintf("%v: the answer is a %q, not a %q (%v)", ErrUnexpectedType, e.got, e.wantName, e.want)
}

func (e *unexpectedTypeError) Unwrap() []error { return []error{ErrUnexpectedType, ErrBadMessage} }
