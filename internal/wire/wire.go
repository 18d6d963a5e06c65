// Package wire encodes and decodes the Tharga messages as they travel inside
// SignalR hub-protocol frames, in the JSON and MessagePack hub protocols.
//
// The transport (github.com/philippseith/signalr) runs the SignalR session:
// negotiate, handshake, keep-alive pings, timeouts and close. The three
// protocol targets (PostMessage, SendMessage, ResponseMessage) are read and
// written by this package directly so that a connection's messages are
// decoded once, in the order they arrived.
//
// Nothing here allocates per message beyond what the decoded values need:
// encoders append to a caller-owned buffer.
package wire

import "errors"

// The three hub methods of the protocol. Incoming targets match them
// case-insensitively, as SignalR method names do.
const (
	TargetPost     = "PostMessage"
	TargetSend     = "SendMessage"
	TargetResponse = "ResponseMessage"
)

// Protocol is a SignalR hub protocol.
type Protocol uint8

// The hub protocols this package speaks.
const (
	JSON        Protocol = 1
	MessagePack Protocol = 2
)

// String returns the protocol's handshake name ("json", "messagepack").
func (p Protocol) String() string {
	switch p {
	case JSON:
		return "json"
	case MessagePack:
		return "messagepack"
	}
	return "unknown"
}

// RecordSeparator ends every JSON hub-protocol record.
const RecordSeparator = 0x1e

// SignalR hub message types.
const (
	TypeInvocation       = 1
	TypeStreamItem       = 2
	TypeCompletion       = 3
	TypeStreamInvocation = 4
	TypeCancelInvocation = 5
	TypePing             = 6
	TypeClose            = 7
)

// Wrapper is the single argument of the three protocol targets:
// {"type": "<type name>", "payload": "<message JSON>"} plus the extensions of
// this library, which .NET peers ignore.
type Wrapper struct {
	// Type is the sender's name of the message type: a .NET
	// assembly-qualified name or a Go-derived name.
	Type string
	// Payload is the message serialized as JSON (the content of the
	// "payload" string, unescaped).
	Payload []byte
	// CorrelationID ("correlationId" on the wire) pairs a ResponseMessage
	// with its SendMessage. Empty when the peer does not use it.
	CorrelationID string
	// TimeoutMillis ("timeoutMs" on the wire) is how long the caller of a
	// SendMessage will wait for the answer; 0 when unknown.
	TimeoutMillis int64
	// TraceParent and TraceState ("traceparent", "tracestate" on the
	// wire) carry the W3C trace context of a SendMessage, so that the
	// remote handler's trace continues the caller's. Empty when the
	// caller traces nothing; a wrapper without them is written as
	// before, byte for byte. Decoders take them as they are (a value that
	// is not a string is ignored, never an error): they are a hint, and
	// the tracing API validates them.
	TraceParent string
	TraceState  string
}

// Message is one decoded hub message. Its strings and byte slices never
// alias the input: a caller may reuse its read buffer and keep them.
type Message struct {
	// Type is the SignalR message type (TypeInvocation, TypePing, ...).
	Type int
	// Target and InvocationID are set for invocations (types 1 and 4).
	Target       string
	InvocationID string
	// ArgCount is the number of invocation arguments; StreamIDs is true
	// when the invocation carries stream ids.
	ArgCount  int
	StreamIDs bool
	// Wrapper is the decoded first argument of an invocation, when
	// WrapperErr is nil and ArgCount > 0. When WrapperErr is set it holds
	// only the correlation id and timeout, if those were valid, so that
	// the error answer reaches the caller.
	Wrapper Wrapper
	// WrapperErr says why the first argument is not a valid wrapper
	// (missing type or payload, wrong JSON types). It is set instead of
	// failing the whole message so that a SendMessage can still be answered.
	WrapperErr error
	// CloseError and AllowReconnect are set for close messages (type 7).
	CloseError     string
	AllowReconnect bool
}

// Errors returned by the decoders.
var (
	// ErrMalformed reports a frame that is not a valid hub message.
	ErrMalformed = errors.New("malformed hub message")
	// ErrTooLarge reports a frame longer than the allowed maximum.
	ErrTooLarge = errors.New("hub message exceeds the maximum message size")
	// ErrBadWrapper reports an argument that is not a {type, payload} wrapper.
	ErrBadWrapper = errors.New("argument is not a {type, payload} wrapper")
)
