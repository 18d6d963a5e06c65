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
// why the argument is not a wrapper; w then keeps only the correlation id
// and timeout, when they were valid.
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
	var typ, payload, corr, timeout, parent, state jsonValue
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
		case keyMatches(key, plain, "traceparent", true):
			parent = v
		case keyMatches(key, plain, "tracestate", true):
			state = v
		}
	}
	err := decodeJSONWrapper(&typ, &payload, &corr, &timeout, w)
	if err == nil {
		if parent.isStr {
			w.TraceParent = unquoteString(parent.str, parent.plain)
		}
		if state.isStr {
			w.TraceState = unquoteString(state.str, state.plain)
		}
	}
	return err, true
}

// decodeJSONWrapper checks and converts the scanned wrapper properties
// into w. The correlation id and timeout are decoded whatever else is
// wrong, so that an error answer can still reach its caller; on an error
// (that of the first bad property: type, payload, correlation id,
// timeout) w keeps nothing else.
func decodeJSONWrapper(typ, payload, corr, timeout *jsonValue, w *Wrapper) error {
	var typeErr, payloadErr, corrErr, timeoutErr error
	switch {
	case !typ.set:
		typeErr = fmt.Errorf("%w: no \"type\"", ErrBadWrapper)
	case !typ.isStr:
		typeErr = fmt.Errorf("%w: \"type\" is %s, not a string", ErrBadWrapper, jsonKind(typ.raw[0]))
	case len(typ.str) == 0:
		typeErr = fmt.Errorf("%w: \"type\" is empty", ErrBadWrapper)
	default:
		w.Type = unquoteString(typ.str, typ.plain)
	}
	switch {
	case !payload.set:
		payloadErr = fmt.Errorf("%w: no \"payload\"", ErrBadWrapper)
	case payload.raw[0] == '"':
		w.Payload = unquoteBytes(payload.str, payload.plain)
	case payload.raw[0] == '{', payload.raw[0] == '[':
		// Lenient: a peer that put the message itself rather than its
		// JSON text. Kept as written.
		w.Payload = append(make([]byte, 0, len(payload.raw)), payload.raw...)
	default:
		payloadErr = fmt.Errorf("%w: \"payload\" is %s, not a string", ErrBadWrapper, jsonKind(payload.raw[0]))
	}
	if corr.set {
		if corr.isStr {
			w.CorrelationID = unquoteString(corr.str, corr.plain)
		} else {
			corrErr = fmt.Errorf("%w: \"correlationId\" is %s, not a string", ErrBadWrapper, jsonKind(corr.raw[0]))
		}
	}
	if timeout.set {
		s := jsonScanner{b: timeout.raw}
		raw, isInt, ok := s.number()
		var v int64
		if ok && isInt {
			v, ok = parseInt(raw)
		}
		if ok && isInt && v >= 0 && s.i == len(timeout.raw) {
			w.TimeoutMillis = v
		} else {
			timeoutErr = fmt.Errorf("%w: \"timeoutMs\" is not a non-negative integer", ErrBadWrapper)
		}
	}
	return wrapperResult(w, typeErr, payloadErr, corrErr, timeoutErr)
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
