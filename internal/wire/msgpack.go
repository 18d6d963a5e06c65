package wire

import (
	"fmt"
	"math"
)

// maxVarintLen is the longest length prefix of the MessagePack hub
// protocol: 5 bytes of 7 bits, enough for the 2 GB SignalR allows.
const maxVarintLen = 5

// NextMsgPackFrame splits the first message off buf. The MessagePack hub
// protocol prefixes each message with its length as a VarInt (the encoding
// of encoding/binary.Uvarint, at most 5 bytes); frame excludes the prefix.
//
// ok is false, with a nil err, while buf holds no complete message. err wraps
// ErrTooLarge as soon as the prefix declares more than max bytes (max <= 0
// means no limit; more than 2^31-1 is always too large), before the body
// arrives, and ErrMalformed for a prefix longer than 5 bytes or a zero
// length. After an error the stream cannot be resynchronised.
func NextMsgPackFrame(buf []byte, max int) (frame, rest []byte, ok bool, err error) {
	var n uint64
	body := 0 // offset of the body, after the prefix
	for i := 0; body == 0; i++ {
		if i == maxVarintLen {
			return nil, buf, false, fmt.Errorf("%w: length prefix longer than %d bytes", ErrMalformed, maxVarintLen)
		}
		if i == len(buf) {
			return nil, buf, false, nil
		}
		c := buf[i]
		n |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			body = i + 1
		}
	}
	switch {
	case n == 0:
		return nil, buf, false, fmt.Errorf("%w: zero-length message", ErrMalformed)
	case n > math.MaxInt32 || (max > 0 && n > uint64(max)):
		return nil, buf, false, fmt.Errorf("%w: %d bytes declared", ErrTooLarge, n)
	case n > uint64(len(buf)-body):
		return nil, buf, false, nil
	}
	end := body + int(n)
	return buf[body:end], buf[end:], true, nil
}

// MsgPackPrefix reads the length prefix at the start of buf: its own size
// in bytes and the length it declares. After NextMsgPackFrame reported
// ErrTooLarge it tells how many bytes to skip to reach the next message,
// so that a receiver can drop the message and stay in step.
func MsgPackPrefix(buf []byte) (prefix int, n int64, err error) {
	var v uint64
	for i := 0; i < maxVarintLen && i < len(buf); i++ {
		c := buf[i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return i + 1, int64(v), nil
		}
	}
	return 0, 0, fmt.Errorf("%w: no complete length prefix", ErrMalformed)
}

// ParseMsgPack decodes one MessagePack hub message (a frame without its
// length prefix) into m, which it resets first.
//
// The message is an array whose first element is the message type.
// Invocations are [type, headers, invocationId, target, arguments,
// streamIds?], close messages [7, error, allowReconnect?]; of other types
// only the type is decoded, but the whole frame must be valid MessagePack,
// nested at most 64 levels, with nothing after the message. Otherwise the
// error wraps ErrMalformed. The first argument of an invocation is decoded
// as the Wrapper (a map whose string keys ignore ASCII case, as clients
// write "Type" or "type"); a bad wrapper only sets m.WrapperErr. The
// decoded strings and Payload never alias frame.
func ParseMsgPack(frame []byte, m *Message) error {
	*m = Message{}
	r := mpReader{b: frame}
	n, ok := r.arrayLen()
	if !ok || n == 0 {
		return fmt.Errorf("%w: not a non-empty MessagePack array", ErrMalformed)
	}
	t, ok := r.int()
	if !ok || int64(int(t)) != t {
		return fmt.Errorf("%w: the message type is not an integer", ErrMalformed)
	}
	m.Type = int(t)
	n--
	var err error
	switch m.Type {
	case TypeInvocation, TypeStreamInvocation:
		n, err = parseMsgPackInvocation(&r, n, m)
	case TypeClose:
		n, err = parseMsgPackClose(&r, n, m)
	}
	if err != nil {
		*m = Message{}
		return err
	}
	for ; n > 0; n-- {
		if !r.skip(2) {
			*m = Message{}
			return fmt.Errorf("%w: invalid MessagePack at offset %d", ErrMalformed, r.i)
		}
	}
	if r.i != len(frame) {
		*m = Message{}
		return fmt.Errorf("%w: data after the message at offset %d", ErrMalformed, r.i)
	}
	return nil
}

// parseMsgPackInvocation decodes the fields after the type of an
// invocation; n is the number of them and the result the number left.
func parseMsgPackInvocation(r *mpReader, n int, m *Message) (int, error) {
	if n < 4 {
		return 0, fmt.Errorf("%w: invocation with %d fields", ErrMalformed, n+1)
	}
	if r.kind() != mpMap || !r.skip(2) {
		return 0, fmt.Errorf("%w: invocation headers are not a map", ErrMalformed)
	}
	switch r.kind() {
	case mpNil:
		r.i++
	case mpStr:
		id, ok := r.bytes()
		if !ok {
			return 0, fmt.Errorf("%w: truncated invocation id", ErrMalformed)
		}
		m.InvocationID = string(id)
	default:
		return 0, fmt.Errorf("%w: invocation id is neither nil nor a string", ErrMalformed)
	}
	if r.kind() != mpStr {
		return 0, fmt.Errorf("%w: invocation target is not a string", ErrMalformed)
	}
	target, ok := r.bytes()
	if !ok {
		return 0, fmt.Errorf("%w: truncated invocation target", ErrMalformed)
	}
	m.Target = internTarget(target, true)
	count, ok := r.arrayLen()
	if !ok {
		return 0, fmt.Errorf("%w: invocation arguments are not an array", ErrMalformed)
	}
	m.ArgCount = count
	if count == 0 {
		m.WrapperErr = fmt.Errorf("%w: the invocation has no arguments", ErrBadWrapper)
	}
	for i := 0; i < count; i++ {
		start := r.i
		if !r.skip(3) {
			return 0, fmt.Errorf("%w: invalid invocation argument %d", ErrMalformed, i)
		}
		if i == 0 {
			m.WrapperErr = parseMsgPackWrapper(r.b[start:r.i], &m.Wrapper)
		}
	}
	n -= 4
	if n > 0 {
		ids, ok := r.arrayLen()
		if !ok {
			return 0, fmt.Errorf("%w: stream ids are not an array", ErrMalformed)
		}
		m.StreamIDs = ids > 0
		for ; ids > 0; ids-- {
			if !r.skip(3) {
				return 0, fmt.Errorf("%w: invalid stream id", ErrMalformed)
			}
		}
		n--
	}
	return n, nil
}

// parseMsgPackClose decodes the fields after the type of a close message.
func parseMsgPackClose(r *mpReader, n int, m *Message) (int, error) {
	if n == 0 {
		return 0, nil
	}
	switch r.kind() {
	case mpNil:
		r.i++
	case mpStr:
		msg, ok := r.bytes()
		if !ok {
			return 0, fmt.Errorf("%w: truncated close error", ErrMalformed)
		}
		m.CloseError = string(msg)
	default:
		return 0, fmt.Errorf("%w: close error is neither nil nor a string", ErrMalformed)
	}
	n--
	if n > 0 {
		b, ok := r.bool()
		if !ok {
			return 0, fmt.Errorf("%w: allowReconnect is not a boolean", ErrMalformed)
		}
		m.AllowReconnect = b
		n--
	}
	return n, nil
}

// ParseSessionMsgPack reads the type of a MessagePack frame (without its
// length prefix) that philippseith/signalr v0.11.0 wrote, and for a close
// message its error and allowReconnect. Its close messages carry a headers
// map the protocol does not have ([7, {}, error, allowReconnect] under an
// array header of 3), which ParseMsgPack refuses: this reads both shapes.
func ParseSessionMsgPack(frame []byte) (typ int, reason string, allowReconnect bool, err error) {
	r := &mpReader{b: frame}
	if _, ok := r.arrayLen(); !ok {
		return 0, "", false, fmt.Errorf("%w: not an array", ErrMalformed)
	}
	t, ok := r.int()
	if !ok {
		return 0, "", false, fmt.Errorf("%w: no message type", ErrMalformed)
	}
	if t != TypeClose {
		return int(t), "", false, nil
	}
	if r.i < len(r.b) && r.kind() == mpMap {
		if !r.skip(0) {
			return 0, "", false, fmt.Errorf("%w: truncated close headers", ErrMalformed)
		}
	}
	// The array header may undercount (see above): the fields are the
	// values that are there, error and allowReconnect at most.
	start, fields := r.i, 0
	for fields < 2 && r.i < len(r.b) && r.skip(0) {
		fields++
	}
	r.i = start
	var m Message
	if _, err := parseMsgPackClose(r, fields, &m); err != nil {
		return 0, "", false, err
	}
	return TypeClose, m.CloseError, m.AllowReconnect, nil
}
