package communication

import (
	"context"
	"reflect"
)

// Endpoint is one side of a connection that requests can be sent to: a
// *Client (its server), or a connected client of a Server (Server.To).
type Endpoint interface {
	peerFor() (*peer, error)
}

// Send sends req to the endpoint and waits for its typed answer: the
// request-response of the protocol (a SendMessage answered by a
// ResponseMessage). Any number of requests may be in flight on one
// connection.
//
// The wait ends at ctx's deadline, or after the send timeout (WithSendTimeout)
// when ctx has none; the deadline travels with the request, so that the
// remote handler's context ends with it. Errors: ErrTimeout (also matching
// context.DeadlineExceeded), ErrNotConnected, ErrConnectionLost when the
// connection drops while waiting, ErrClosed, and *RemoteError when the
// remote handler failed or has no handler for the type (errors.Is
// ErrUnknownType).
func Send[Resp, Req any](ctx context.Context, to Endpoint, req Req) (Resp, error) {
	var zero Resp
	p, err := to.peerFor()
	if err != nil {
		return zero, err
	}
	w, err := p.request(ctx, req, reflect.TypeFor[Resp]())
	if err != nil {
		return zero, err
	}
	return decodeAnswer[Resp](w)
}
