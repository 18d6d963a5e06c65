package wire

import "fmt"

// parseMsgPackWrapper decodes arg, the raw first argument of an invocation
// (already validated by skip), into w. It returns an error wrapping
// ErrBadWrapper, and leaves w zero, when arg is not a wrapper. Keys that
// are not strings are ignored like unknown keys.
func parseMsgPackWrapper(arg []byte, w *Wrapper) error {
	r := mpReader{b: arg}
	if r.kind() != mpMap {
		return fmt.Errorf("%w: the argument is not a map", ErrBadWrapper)
	}
	n, _ := r.mapLen()
	var typ, payload, corr, timeout []byte // raw values; a later duplicate wins
	for ; n > 0; n-- {
		var key []byte
		isStr := r.kind() == mpStr
		if isStr {
			key, _ = r.bytes()
		} else {
			r.skip(1)
		}
		start := r.i
		r.skip(1)
		v := arg[start:r.i]
		switch {
		case !isStr:
		case asciiEqualFold(key, "type"):
			typ = v
		case asciiEqualFold(key, "payload"):
			payload = v
		case asciiEqualFold(key, "correlationId"):
			corr = v
		case asciiEqualFold(key, "timeoutMs"):
			timeout = v
		}
	}

	if typ == nil {
		return fmt.Errorf("%w: no \"type\"", ErrBadWrapper)
	}
	if payload == nil {
		return fmt.Errorf("%w: no \"payload\"", ErrBadWrapper)
	}
	t := mpReader{b: typ}
	if t.kind() != mpStr {
		return fmt.Errorf("%w: \"type\" is not a string", ErrBadWrapper)
	}
	typeName, _ := t.bytes()
	if len(typeName) == 0 {
		return fmt.Errorf("%w: \"type\" is empty", ErrBadWrapper)
	}
	var out Wrapper
	p := mpReader{b: payload}
	if k := p.kind(); k != mpStr && k != mpBin {
		return fmt.Errorf("%w: \"payload\" is neither a string nor binary", ErrBadWrapper)
	}
	body, _ := p.bytes()
	out.Payload = append(make([]byte, 0, len(body)), body...)
	if corr != nil {
		c := mpReader{b: corr}
		if c.kind() != mpStr {
			return fmt.Errorf("%w: \"correlationId\" is not a string", ErrBadWrapper)
		}
		id, _ := c.bytes()
		out.CorrelationID = string(id)
	}
	if timeout != nil {
		tr := mpReader{b: timeout}
		v, ok := tr.int()
		if !ok || v < 0 || tr.i != len(timeout) {
			return fmt.Errorf("%w: \"timeoutMs\" is not a non-negative integer", ErrBadWrapper)
		}
		out.TimeoutMillis = v
	}
	out.Type = string(typeName)
	*w = out
	return nil
}
