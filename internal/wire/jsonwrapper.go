package wire

import "fmt"

// jsonValue is one wrapper property's value as scanned, kept until the
// whole object was read because a later duplicate key wins.
type jsonValue struct {
	raw   []byte // the value as written
	str   []byte // the content, when the value is a string
	plain bool   // str stands for itself (see jsonScanner.str)
	isStr bool
	set   bool
}

// scanJSONValue scans the value at s, nested at depth.
func scanJSONValue(s *jsonScanner, depth int) (jsonValue, bool) {
	start := s.i
	if s.peek() == '"' {
		c, plain, ok := s.str()
		return jsonValue{raw: s.b[start:s.i], str: c, plain: plain, isStr: true, set: true}, ok
	}
	ok := s.skip(depth)
	return jsonValue{raw: s.b[start:s.i], set: true}, ok
}

// parseJSONWrapper scans the first argument of an invocation, at nesting
// depth, and decodes it into w. ok is false when the JSON is invalid (the
// message is malformed). Otherwise wrapperErr, wrapping ErrBadWrapper, says
// why the argument is not a wrapper, and w is then left zero.
func parseJSONWrapper(s *jsonScanner, depth int, w *Wrapper) (wrapperErr error, ok bool) {
	*w = Wrapper{}
	if c := s.peek(); c != '{' {
		if !s.skip(depth) {
			return nil, false
		}
		return fmt.Errorf("%w: the argument is %s, not an object", ErrBadWrapper, jsonKind(c)), true
	}
	if depth > maxDepth {
		return nil, false
	}
	s.i++
	var typ, payload, corr, timeout jsonValue
	for n := 0; ; n++ {
		key, plain, done, ok := s.member(n)
		if !ok {
			return nil, false
		}
		if done {
			break
		}
		v, ok := scanJSONValue(s, depth+1)
		if !ok {
			return nil, false
		}
		switch {
		case keyMatches(key, plain, "type", true):
			typ = v
		case keyMatches(key, plain, "payload", true):
			payload = v
		case keyMatches(key, plain, "correlationId", true):
			corr = v
		case keyMatches(key, plain, "timeoutMs", true):
			timeout = v
		}
	}
	out, err := decodeJSONWrapper(&typ, &payload, &corr, &timeout)
	if err == nil {
		*w = out
	}
	return err, true
}

// decodeJSONWrapper checks and converts the scanned wrapper properties.
func decodeJSONWrapper(typ, payload, corr, timeout *jsonValue) (Wrapper, error) {
	var out Wrapper
	switch {
	case !typ.set:
		return out, fmt.Errorf("%w: no \"type\"", ErrBadWrapper)
	case !payload.set:
		return out, fmt.Errorf("%w: no \"payload\"", ErrBadWrapper)
	case !typ.isStr:
		return out, fmt.Errorf("%w: \"type\" is %s, not a string", ErrBadWrapper, jsonKind(typ.raw[0]))
	case len(typ.str) == 0:
		return out, fmt.Errorf("%w: \"type\" is empty", ErrBadWrapper)
	}
	switch payload.raw[0] {
	case '"':
		out.Payload = unquoteBytes(payload.str, payload.plain)
	case '{', '[':
		// Lenient: a peer that put the message itself rather than its
		// JSON text. Kept as written.
		out.Payload = append(make([]byte, 0, len(payload.raw)), payload.raw...)
	default:
		return out, fmt.Errorf("%w: \"payload\" is %s, not a string", ErrBadWrapper, jsonKind(payload.raw[0]))
	}
	if corr.set {
		if !corr.isStr {
			return Wrapper{}, fmt.Errorf("%w: \"correlationId\" is %s, not a string", ErrBadWrapper, jsonKind(corr.raw[0]))
		}
		out.CorrelationID = unquoteString(corr.str, corr.plain)
	}
	if timeout.set {
		s := jsonScanner{b: timeout.raw}
		raw, isInt, ok := s.number()
		var v int64
		if ok && isInt {
			v, ok = parseInt(raw)
		}
		if !ok || !isInt || v < 0 || s.i != len(timeout.raw) {
			return Wrapper{}, fmt.Errorf("%w: \"timeoutMs\" is not a non-negative integer", ErrBadWrapper)
		}
		out.TimeoutMillis = v
	}
	out.Type = unquoteString(typ.str, typ.plain)
	return out, nil
}

// jsonKind names the kind of the JSON value starting with c, for errors.
func jsonKind(c byte) string {
	switch c {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
