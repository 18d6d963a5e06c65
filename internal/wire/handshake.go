package wire

import "fmt"

// ParseHandshakeRequest decodes a client's handshake record (without its
// separator), {"protocol":"json","version":1}, and returns the hub protocol
// it asks for. A server must refuse any protocol it does not speak, so an
// unknown name, a missing or non-integer version, or invalid JSON is an
// error (invalid JSON wraps ErrMalformed).
//
// Any version from 1 up is accepted: .NET 8 and later clients announce
// version 2 (stateful reconnect), whose messages are the same as version 1
// unless stateful reconnect was negotiated.
func ParseHandshakeRequest(record []byte) (Protocol, error) {
	var name, version span
	var versionInt bool
	err := walkHandshake(record, func(s *jsonScanner, key []byte, plain bool) bool {
		switch {
		case keyMatches(key, plain, "protocol", false):
			if s.peek() == '"' {
				raw, p, ok := s.str()
				name = span{raw: raw, plain: p, set: true}
				return ok
			}
			name = span{}
		case keyMatches(key, plain, "version", false):
			if c := s.peek(); c == '-' || (c >= '0' && c <= '9') {
				raw, isInt, ok := s.number()
				version, versionInt = span{raw: raw, set: true}, isInt
				return ok
			}
			version = span{}
		}
		return s.skip(2)
	})
	if err != nil {
		return 0, err
	}
	if !name.set {
		return 0, fmt.Errorf("%w: the handshake names no protocol", ErrMalformed)
	}
	var p Protocol
	switch n := unquoteString(name.raw, name.plain); n {
	case "json":
		p = JSON
	case "messagepack":
		p = MessagePack
	default:
		return 0, fmt.Errorf("unsupported hub protocol %q", n)
	}
	if !version.set || !versionInt {
		return 0, fmt.Errorf("%w: the handshake for %q has no integer version", ErrMalformed, p.String())
	}
	if v, ok := parseInt(version.raw); !ok || v < 1 {
		return 0, fmt.Errorf("unsupported version %s of hub protocol %q", version.raw, p.String())
	}
	return p, nil
}

// AppendHandshakeError appends the answer that refuses a client's
// handshake, {"error":"reason"}, and the record separator: the handshake
// is JSON whatever protocol it asked for.
func AppendHandshakeError(dst []byte, reason string) []byte {
	dst = append(dst, `{"error":`...)
	dst = AppendJSONString(dst, reason)
	return append(dst, '}', RecordSeparator)
}

// ParseHandshakeResponse decodes a server's handshake answer (without its
// separator): {} accepts the connection, {"error":"..."} refuses it with the
// server's reason. err is set (wrapping ErrMalformed) only when the answer
// cannot be read at all, which also means the connection is unusable.
func ParseHandshakeResponse(record []byte) (serverError string, err error) {
	var msg span
	err = walkHandshake(record, func(s *jsonScanner, key []byte, plain bool) bool {
		if keyMatches(key, plain, "error", false) {
			switch s.peek() {
			case '"':
				raw, p, ok := s.str()
				msg = span{raw: raw, plain: p, set: true}
				return ok
			case 'n':
				msg = span{}
				return s.literal("null")
			}
			return false
		}
		return s.skip(2)
	})
	if err != nil {
		return "", err
	}
	if msg.set {
		return unquoteString(msg.raw, msg.plain), nil
	}
	return "", nil
}

// walkHandshake scans the JSON object record and calls member for each
// property, with the scanner on the value; member must consume the value
// and report whether it was valid.
func walkHandshake(record []byte, member func(s *jsonScanner, key []byte, plain bool) bool) error {
	s := jsonScanner{b: record}
	s.ws()
	if s.peek() != '{' {
		return fmt.Errorf("%w: the handshake is not a JSON object", ErrMalformed)
	}
	s.i++
	for n := 0; ; n++ {
		key, plain, done, ok := s.member(n)
		if !ok {
			return malformedAt(&s)
		}
		if done {
			break
		}
		if !member(&s, key, plain) {
			return malformedAt(&s)
		}
	}
	if !s.end() {
		return fmt.Errorf("%w: data after the handshake at offset %d", ErrMalformed, s.i)
	}
	return nil
}

// AppendHandshakeRequest appends a client's handshake record for p,
// {"protocol":"json","version":1}, separator included.
func AppendHandshakeRequest(dst []byte, p Protocol) []byte {
	dst = append(dst, `{"protocol":"`...)
	dst = append(dst, p.String()...)
	return append(dst, "\",\"version\":1}\x1e"...)
}
