package wire

import (
	"bytes"
	"fmt"
)

// NextJSONRecord splits the first record off buf. The JSON hub protocol ends
// every message (and the handshake) with RecordSeparator, and a transport
// read can hold several records or part of one. record excludes the
// separator; ok is false when buf holds no complete record yet.
func NextJSONRecord(buf []byte) (record, rest []byte, ok bool) {
	i := bytes.IndexByte(buf, RecordSeparator)
	if i < 0 {
		return nil, buf, false
	}
	return buf[:i], buf[i+1:], true
}

// span is the raw content of a JSON string value seen while scanning, kept
// so that it is only converted when the message type needs it.
type span struct {
	raw   []byte
	plain bool
	set   bool
}

// ParseJSON decodes one JSON hub message (a record without its separator)
// into m, which it resets first.
//
// The message itself must be valid: valid JSON nested at most 64 levels, an
// object with an integer "type", and the fields SignalR defines of the
// right kinds (a "target" for invocations). Otherwise the error wraps
// ErrMalformed and the connection should be closed. For invocations the
// first argument is decoded as the Wrapper; a bad wrapper only sets
// m.WrapperErr (keeping its correlation id), so that the caller can still
// answer a SendMessage.
//
// Property names of the message are matched exactly, as SignalR does;
// those of the wrapper ignore ASCII case, as the .NET reader does. The
// decoded strings and Payload never alias record. After an error m is
// zero.
func ParseJSON(record []byte, m *Message) error {
	*m = Message{}
	err := parseJSON(record, m)
	if err != nil {
		*m = Message{}
	}
	return err
}

// parseJSON is ParseJSON, leaving m partly filled on errors.
func parseJSON(record []byte, m *Message) error {
	s := jsonScanner{b: record}
	s.ws()
	if s.peek() != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	s.i++
	var (
		hasType                   bool
		target, invID, closeErr   span
		argCount                  int
		streamIDs, allowReconnect bool
	)
	for n := 0; ; n++ {
		key, plain, done, ok := s.member(n)
		if !ok {
			return malformedAt(&s)
		}
		if done {
			break
		}
		var err error
		switch {
		case keyMatches(key, plain, "type", false):
			var t int
			if t, err = jsonMessageType(&s); err == nil {
				hasType, m.Type = true, t
			}
		case keyMatches(key, plain, "target", false):
			target, err = jsonStringOrNull(&s, "target")
		case keyMatches(key, plain, "invocationId", false):
			invID, err = jsonStringOrNull(&s, "invocationId")
		case keyMatches(key, plain, "error", false):
			closeErr, err = jsonStringOrNull(&s, "error")
		case keyMatches(key, plain, "arguments", false):
			argCount, err = jsonArguments(&s, m)
		case keyMatches(key, plain, "streamIds", false):
			var count int
			count, err = jsonArray(&s, "streamIds")
			streamIDs = count > 0
		case keyMatches(key, plain, "allowReconnect", false):
			allowReconnect, err = jsonBoolOrNull(&s)
		default:
			if !s.skip(2) {
				return malformedAt(&s)
			}
		}
		if err != nil {
			return err
		}
	}
	if !s.end() {
		return fmt.Errorf("%w: data after the message at offset %d", ErrMalformed, s.i)
	}
	if !hasType {
		return fmt.Errorf("%w: no message type", ErrMalformed)
	}
	switch m.Type {
	case TypeInvocation, TypeStreamInvocation:
		if !target.set {
			return fmt.Errorf("%w: invocation without a target", ErrMalformed)
		}
		m.Target = internTarget(target.raw, target.plain)
		if invID.set {
			m.InvocationID = unquoteString(invID.raw, invID.plain)
		}
		m.ArgCount = argCount
		m.StreamIDs = streamIDs
		if argCount == 0 {
			m.Wrapper, m.WrapperErr = Wrapper{}, fmt.Errorf("%w: the invocation has no arguments", ErrBadWrapper)
		}
		return nil
	case TypeClose:
		if closeErr.set {
			m.CloseError = unquoteString(closeErr.raw, closeErr.plain)
		}
		m.AllowReconnect = allowReconnect
	}
	// Arguments of a message that is not an invocation were decoded for
	// nothing: forget them.
	m.Wrapper, m.WrapperErr = Wrapper{}, nil
	return nil
}

// malformedAt reports a JSON syntax error (or too deep nesting) at the
// scanner's position.
func malformedAt(s *jsonScanner) error {
	return fmt.Errorf("%w: invalid JSON or nesting deeper than %d at offset %d", ErrMalformed, maxDepth, s.i)
}

// jsonMessageType reads the value of "type": an integer number.
func jsonMessageType(s *jsonScanner) (int, error) {
	if c := s.peek(); c != '-' && (c < '0' || c > '9') {
		if !s.skip(2) {
			return 0, malformedAt(s)
		}
		return 0, fmt.Errorf("%w: the message type is not a number", ErrMalformed)
	}
	raw, isInt, ok := s.number()
	if !ok {
		return 0, malformedAt(s)
	}
	v, ok := parseInt(raw)
	if !isInt || !ok || int64(int(v)) != v {
		return 0, fmt.Errorf("%w: the message type %s is not an integer", ErrMalformed, raw)
	}
	return int(v), nil
}

// jsonStringOrNull reads a string value; null counts as absent.
func jsonStringOrNull(s *jsonScanner, name string) (span, error) {
	switch s.peek() {
	case '"':
		raw, plain, ok := s.str()
		if !ok {
			return span{}, malformedAt(s)
		}
		return span{raw: raw, plain: plain, set: true}, nil
	case 'n':
		if !s.literal("null") {
			return span{}, malformedAt(s)
		}
		return span{}, nil
	}
	if !s.skip(2) {
		return span{}, malformedAt(s)
	}
	return span{}, fmt.Errorf("%w: %q is not a string", ErrMalformed, name)
}

// jsonBoolOrNull reads a boolean value; null counts as false.
func jsonBoolOrNull(s *jsonScanner) (bool, error) {
	switch {
	case s.literal("true"):
		return true, nil
	case s.literal("false"), s.literal("null"):
		return false, nil
	}
	if !s.skip(2) {
		return false, malformedAt(s)
	}
	return false, fmt.Errorf("%w: \"allowReconnect\" is not a boolean", ErrMalformed)
}

// jsonArray reads an array value (null counts as empty) and returns its
// length.
func jsonArray(s *jsonScanner, name string) (count int, err error) {
	if ok, err := jsonArrayStart(s, name); !ok || err != nil {
		return 0, err
	}
	for n := 0; ; n++ {
		done, ok := s.element(n)
		if !ok {
			return 0, malformedAt(s)
		}
		if done {
			return n, nil
		}
		if !s.skip(3) {
			return 0, malformedAt(s)
		}
	}
}

// jsonArguments reads the "arguments" array and decodes its first element
// into m.Wrapper and m.WrapperErr as it goes, whatever the message type
// (which may come later), so that the argument is scanned once.
// It repeats jsonArray's loop rather than take the first element's
// decoder as a function: that closure costs an allocation per message.
func jsonArguments(s *jsonScanner, m *Message) (count int, err error) {
	m.Wrapper, m.WrapperErr = Wrapper{}, nil
	if ok, err := jsonArrayStart(s, "arguments"); !ok || err != nil {
		return 0, err
	}
	for n := 0; ; n++ {
		done, ok := s.element(n)
		if !ok {
			return 0, malformedAt(s)
		}
		if done {
			return n, nil
		}
		if n == 0 {
			m.WrapperErr, ok = parseJSONWrapper(s, 3, &m.Wrapper)
		} else {
			ok = s.skip(3)
		}
		if !ok {
			return 0, malformedAt(s)
		}
	}
}

// jsonArrayStart consumes the '[' of an array value. ok is false, with a nil
// error, for null.
func jsonArrayStart(s *jsonScanner, name string) (ok bool, err error) {
	switch s.peek() {
	case '[':
		s.i++
		return true, nil
	case 'n':
		if !s.literal("null") {
			return false, malformedAt(s)
		}
		return false, nil
	}
	if !s.skip(2) {
		return false, malformedAt(s)
	}
	return false, fmt.Errorf("%w: %q is not an array", ErrMalformed, name)
}

// internTarget returns the target name, without allocating when it is one
// of the protocol's targets spelled exactly.
func internTarget(raw []byte, plain bool) string {
	if plain {
		switch string(raw) {
		case TargetPost:
			return TargetPost
		case TargetSend:
			return TargetSend
		case TargetResponse:
			return TargetResponse
		}
	}
	return unquoteString(raw, plain)
}
