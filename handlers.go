package communication

import "context"

// PostHandler handles a fire-and-forget message of type T (a PostMessage).
// The posts of one sender are handled one at a time, in the order they were
// sent. An error is logged: there is nobody to answer.
type PostHandler[T any] interface {
	HandlePost(ctx context.Context, msg T) error
}

// PostHandlerFunc adapts a function to a PostHandler.
type PostHandlerFunc[T any] func(ctx context.Context, msg T) error

// HandlePost calls f(ctx, msg).
func (f PostHandlerFunc[T]) HandlePost(ctx context.Context, msg T) error { return f(ctx, msg) }

// SendHandler answers a request of type Req with a Resp (a SendMessage).
// Requests run concurrently, up to a bound per connection. An error or a
// panic is answered to the caller as a RemoteError. A handler chooses the
// code and message its caller sees by returning an *Error (NewError);
// another error is answered with CodeHandlerError and the error's text.
// The message crosses the wire, so it should not carry secrets.
type SendHandler[Req, Resp any] interface {
	HandleSend(ctx context.Context, req Req) (Resp, error)
}

// SendHandlerFunc adapts a function to a SendHandler.
type SendHandlerFunc[Req, Resp any] func(ctx context.Context, req Req) (Resp, error)

// HandleSend calls f(ctx, req).
func (f SendHandlerFunc[Req, Resp]) HandleSend(ctx context.Context, req Req) (Resp, error) {
	return f(ctx, req)
}

// Sender tells a handler who sent the message it handles.
type Sender struct {
	// ConnectionID is the SignalR connection the message came on. On the
	// server it keys the client's record.
	ConnectionID string
	// Type is the message's type name as the sender wrote it.
	Type string
}

type senderKey struct{}

// SenderFrom returns the sender of the message a handler is handling.
func SenderFrom(ctx context.Context) (Sender, bool) {
	s, ok := ctx.Value(senderKey{}).(Sender)
	return s, ok
}
