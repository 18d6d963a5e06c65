package communication

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Compare with errors.Is: the errors returned by this
// package wrap them with detail (by %w or an Unwrap method), so that they
// also survive the caller's own wrapping. They are:
//
//   - [ErrTimeout]: no answer before the deadline; also matches
//     context.DeadlineExceeded.
//   - [ErrNotConnected]: no connection to send on.
//   - [ErrClosed]: the Client or Server is closed.
//   - [ErrConnectionLost]: the connection dropped while a request waited.
//   - [ErrUnknownType]: the receiver has no handler for the type; a
//     [RemoteError] from such a receiver matches it.
//   - [ErrDuplicateType]: a message type registered twice.
//   - [ErrUnauthorized]: a connection refused for its API key.
//   - [ErrSlowConsumer]: a connection dropped for not taking its messages.
//   - [ErrBadMessage]: a message that could not be encoded or decoded.
//   - [ErrUnexpectedType]: an answer of another type than the one asked
//     for; also matches ErrBadMessage.
//   - [ErrTooLarge]: a message larger than the receiving side accepts,
//     refused before it was sent.
//   - [ErrNoSuchNode]: a Backplane message for a node not in the cluster.
//   - [ErrClosedByServer]: the server closed the connection and
//     disallowed reconnecting: the client stopped.
//
// A failure the remote side reports is a [*RemoteError].
var (
	// ErrTimeout reports a request whose answer did not come before the
	// deadline of its context (or the default send timeout). Errors that
	// wrap it also match context.DeadlineExceeded.
	ErrTimeout = errors.New("communication: request timed out")
	// ErrNotConnected reports an operation that needs a connection when
	// there is none (the client is between connections, or the server has
	// no connection with that id).
	ErrNotConnected = errors.New("communication: not connected")
	// ErrClosed reports an operation on a closed Client or Server.
	ErrClosed = errors.New("communication: closed")
	// ErrConnectionLost reports a request that was pending on a
	// connection when the connection dropped. It fails at once: it does
	// not wait for its timeout.
	ErrConnectionLost = errors.New("communication: connection lost")
	// ErrUnknownType reports a message type with no handler on the
	// receiving side. A RemoteError whose Code is CodeUnknownType matches it.
	ErrUnknownType = errors.New("communication: unknown message type")
	// ErrDuplicateType reports a second handler registered for the same
	// message type (by wire name).
	ErrDuplicateType = errors.New("communication: message type already registered")
	// ErrUnauthorized reports a connection the server refused for its API key.
	ErrUnauthorized = errors.New("communication: unauthorized")
	// ErrSlowConsumer reports a connection dropped because it did not take
	// the messages sent to it fast enough.
	ErrSlowConsumer = errors.New("communication: slow consumer")
	// ErrBadMessage reports a message that could not be encoded or decoded.
	ErrBadMessage = errors.New("communication: bad message")
	// ErrTooLarge reports a message larger than the receiving side accepts
	// (its maximum message size, which it announces when it connects; a
	// peer that does not is assumed to accept what this side does). The
	// message is not sent; the connection goes on. A RemoteError whose Code
	// is CodeTooLarge (an answer too large to send back) matches it.
	ErrTooLarge = errors.New("communication: message too large")
	// ErrNoSuchNode reports a message published to a node that is not in
	// the cluster (see Backplane).
	ErrNoSuchNode = errors.New("communication: no such node")
	// ErrClosedByServer reports a connection the server ended with a SignalR
	// close message that disallowed reconnecting (what a server does when it
	// cannot serve the client any longer). The client stops: it does not
	// reconnect. The error's text carries the server's message.
	ErrClosedByServer = errors.New("communication: closed by the server")
	// ErrUnexpectedType reports an answer to Send whose type is not the
	// one asked for (see Send). Errors that wrap it also match
	// ErrBadMessage.
	ErrUnexpectedType = errors.New("communication: unexpected answer type")
)

// Code classifies the failure of a request, as the remote side reports
// it (RemoteError.Code) and as a handler chooses it (NewError). It travels
// in the error answer as "Code", which .NET peers ignore; an error answer
// from a .NET peer has none. The codes below are the library's; an
// application may define its own ("not_found"), as long as both ends agree
// on the string.
type Code string

// The library's codes.
const (
	// CodeUnknownType: the receiver has no handler for the request's type.
	CodeUnknownType Code = "unknown_type"
	// CodeBadPayload: the payload did not decode into the registered type.
	CodeBadPayload Code = "bad_payload"
	// CodeHandlerError: the handler returned an error of its own (not an
	// *Error that chose another code).
	CodeHandlerError Code = "handler_error"
	// CodeHandlerPanic: the handler panicked.
	CodeHandlerPanic Code = "handler_panic"
	// CodeTimeout: the handler did not finish before its deadline.
	CodeTimeout Code = "timeout"
	// CodeTooLarge: the handler's answer was larger than the caller
	// accepts.
	CodeTooLarge Code = "too_large"
)

// String returns the code as it travels on the wire.
func (c Code) String() string { return string(c) }

// Error is a failure with a code, which a SendHandler returns to choose
// what its caller sees: the caller gets a *RemoteError with this Code and
// this Message. A handler's other errors reach the caller with
// CodeHandlerError and the error's text. An *Error wrapped by the
// handler's own error (fmt.Errorf with %w) is found with errors.As, and
// its code and message are what is answered. The message crosses the
// wire: it should not carry secrets.
type Error struct {
	code Code
	err  error
}

// NewError returns an error with the given code whose message is err's
// text; an empty code is CodeHandlerError. errors.Is and errors.As see err
// through it.
func NewError(code Code, err error) *Error {
	if code == "" {
		code = CodeHandlerError
	}
	return &Error{code: code, err: err}
}

// Code returns the error's code.
func (e *Error) Code() Code { return e.code }

// Message returns the text the caller sees: the wrapped error's, or the
// code when there is none.
func (e *Error) Message() string {
	if e.err == nil {
		return string(e.code)
	}
	return e.err.Error()
}

func (e *Error) Error() string { return string(e.code) + ": " + e.Message() }

// Unwrap returns the wrapped error.
func (e *Error) Unwrap() error { return e.err }

// CodeOf returns the code of the first *RemoteError or *Error in err's
// chain: what the remote side reported, or what a handler chose. It is ""
// when there is neither, and for an error answer from a .NET peer.
func CodeOf(err error) Code {
	var c coded
	if errors.As(err, &c) {
		return c.errorCode()
	}
	return ""
}

// coded is an error that carries a Code: *Error and *RemoteError.
type coded interface {
	error
	errorCode() Code
}

func (e *Error) errorCode() Code       { return e.code }
func (e *RemoteError) errorCode() Code { return e.Code }

// RemoteError is a failure reported by the remote side in answer to a
// request: the .NET error answer {"Error": "..."} in the request's type.
type RemoteError struct {
	// Type is the wire name of the request that failed.
	Type string
	// Message is the remote handler's error text.
	Message string
	// Code classifies the failure when the peer is this library (or a
	// handler chose it with NewError); empty for .NET peers.
	Code Code
}

func (e *RemoteError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("communication: remote error (%s): %s", e.Code, e.Message)
	}
	return "communication: remote error: " + e.Message
}

// Is lets errors.Is(err, ErrUnknownType) match a remote unknown-type
// answer, and errors.Is(err, ErrTimeout) (and context.DeadlineExceeded, as
// a local timeout does) a remote handler that ran out of time: the
// caller's deadline travels with the request, so the remote side may
// notice first.
func (e *RemoteError) Is(target error) bool {
	switch target {
	case ErrUnknownType:
		return e.Code == CodeUnknownType || isDotNetUnknown(e.Message)
	case ErrTimeout, context.DeadlineExceeded:
		return e.Code == CodeTimeout
	case ErrTooLarge:
		return e.Code == CodeTooLarge
	}
	return false
}

// isDotNetUnknown recognises the .NET original's error text for a type it
// cannot resolve or has no handler for.
func isDotNetUnknown(msg string) bool {
	return strings.HasPrefix(msg, "Cannot find handler for type") || strings.HasPrefix(msg, "Cannot find type")
}

// timeoutError wraps ErrTimeout and the context's error, so that both
// errors.Is(err, ErrTimeout) and errors.Is(err, context.DeadlineExceeded)
// hold.
type timeoutError struct {
	typ   string
	cause error
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("%v: no answer to %s: %v", ErrTimeout, e.typ, e.cause)
}

func (e *timeoutError) Unwrap() []error { return []error{ErrTimeout, e.cause} }

// errPanicked stands for a callback's panic, which is logged where it is
// recovered.
var errPanicked = errors.New("communication: callback panicked")
