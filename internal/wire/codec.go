package wire

import (
	"bytes"
	"fmt"
)

// Codec is one hub protocol's framing and encoding: everything that differs
// between the JSON and the MessagePack hub protocols, so that a connection
// picks its Codec once, at the handshake, and never asks which protocol it
// speaks again. The two implementations hold no state and are safe for
// concurrent use.
type Codec interface {
	// Protocol returns the hub protocol the Codec speaks.
	Protocol() Protocol
	// Binary reports whether the protocol's messages travel as binary
	// WebSocket messages (text otherwise).
	Binary() bool

	// Next splits the first hub message off buf: frame is the message
	// without its framing, rest what follows it. ok is false, with a nil
	// err, while buf holds no complete message. With max > 0, err wraps
	// ErrTooLarge as soon as the message is known to be longer than max,
	// before the rest of it arrives: SkipLen then tells how to drop it.
	// Any other error means the stream cannot be resynchronised.
	Next(buf []byte, max int) (frame, rest []byte, ok bool, err error)
	// SkipLen starts dropping the message at the start of buf that Next
	// reported too large. It returns the bytes the message takes, or -1
	// when its end is known only once it arrives; ok is false when that
	// cannot be told.
	SkipLen(buf []byte) (left int64, ok bool)
	// Skip consumes the start of buf that belongs to a message being
	// dropped; left is what SkipLen or the previous Skip returned. It
	// returns how many bytes of buf it consumed and what is left of the
	// message, 0 once it is over.
	Skip(buf []byte, left int64) (n int, after int64)
	// Parse decodes one frame (as Next returns it) into m, which it
	// resets first.
	Parse(frame []byte, m *Message) error

	// AppendInvocation appends a non-blocking invocation of target with
	// w as its only argument, framing included.
	AppendInvocation(dst []byte, target string, w *Wrapper) []byte
	// AppendCompletion appends the completion of an invocation that
	// returns nothing.
	AppendCompletion(dst []byte, invocationID string) []byte
	// AppendCompletionError appends a completion carrying an error.
	AppendCompletionError(dst []byte, invocationID, message string) []byte
	// AppendPing appends a keep-alive message.
	AppendPing(dst []byte) []byte
	// AppendClose appends a close message; an empty reason is none.
	AppendClose(dst []byte, reason string, allowReconnect bool) []byte
}

// Codecs of the two hub protocols. The handshake is always JSON: it is
// framed by JSONCodec whatever protocol it asks for.
var (
	JSONCodec    Codec = jsonCodec{}
	MsgPackCodec Codec = msgpackCodec{}
)

// CodecFor returns the Codec of p. A protocol not known yet (0) is JSON,
// the protocol of the handshake.
func CodecFor(p Protocol) Codec {
	if p == MessagePack {
		return MsgPackCodec
	}
	return JSONCodec
}

type jsonCodec struct{}

func (jsonCodec) Protocol() Protocol { return JSON }
func (jsonCodec) Binary() bool       { return false }

// Next reports a record too large once buf holds more than max bytes and
// no separator yet.
func (jsonCodec) Next(buf []byte, max int) (frame, rest []byte, ok bool, err error) {
	frame, rest, ok = NextJSONRecord(buf)
	if !ok && max > 0 && len(buf) > max {
		return nil, buf, false, fmt.Errorf("%w: more than %d bytes without a record separator", ErrTooLarge, max)
	}
	return frame, rest, ok, nil
}

// SkipLen is -1: a record ends at its separator.
func (jsonCodec) SkipLen([]byte) (int64, bool) { return -1, true }

func (jsonCodec) Skip(buf []byte, _ int64) (int, int64) {
	i := bytes.IndexByte(buf, RecordSeparator)
	if i < 0 {
		return len(buf), -1
	}
	return i + 1, 0
}

func (jsonCodec) Parse(frame []byte, m *Message) error { return ParseJSON(frame, m) }

func (jsonCodec) AppendInvocation(dst []byte, target string, w *Wrapper) []byte {
	return AppendJSONInvocation(dst, target, w)
}

func (jsonCodec) AppendCompletion(dst []byte, invocationID string) []byte {
	return AppendJSONCompletion(dst, invocationID)
}

func (jsonCodec) AppendCompletionError(dst []byte, invocationID, message string) []byte {
	return AppendJSONCompletionError(dst, invocationID, message)
}

func (jsonCodec) AppendPing(dst []byte) []byte { return AppendJSONPing(dst) }

func (jsonCodec) AppendClose(dst []byte, reason string, allowReconnect bool) []byte {
	return AppendJSONClose(dst, reason, allowReconnect)
}

type msgpackCodec struct{}

func (msgpackCodec) Protocol() Protocol { return MessagePack }
func (msgpackCodec) Binary() bool       { return true }

func (msgpackCodec) Next(buf []byte, max int) (frame, rest []byte, ok bool, err error) {
	return NextMsgPackFrame(buf, max)
}

// SkipLen is the length prefix and the length it declares.
func (msgpackCodec) SkipLen(buf []byte) (int64, bool) {
	prefix, n, err := MsgPackPrefix(buf)
	return int64(prefix) + n, err == nil
}

func (msgpackCodec) Skip(buf []byte, left int64) (int, int64) {
	n := min(left, int64(len(buf)))
	return int(n), left - n
}

func (msgpackCodec) Parse(frame []byte, m *Message) error { return ParseMsgPack(frame, m) }

func (msgpackCodec) AppendInvocation(dst []byte, target string, w *Wrapper) []byte {
	return AppendMsgPackInvocation(dst, target, w)
}

func (msgpackCodec) AppendCompletion(dst []byte, invocationID string) []byte {
	return AppendMsgPackCompletion(dst, invocationID)
}

func (msgpackCodec) AppendCompletionError(dst []byte, invocationID, message string) []byte {
	return AppendMsgPackCompletionError(dst, invocationID, message)
}

func (msgpackCodec) AppendPing(dst []byte) []byte { return AppendMsgPackPing(dst) }

func (msgpackCodec) AppendClose(dst []byte, reason string, allowReconnect bool) []byte {
	return AppendMsgPackClose(dst, reason, allowReconnect)
}
