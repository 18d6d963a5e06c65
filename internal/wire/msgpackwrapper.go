package wire

import (
	"cmp"
	"fmt"
)

// parseMsgPackWrapper decodes arg, the raw first argument of an invocation
// (already validated by skip), into w. It returns an error wrapping
// ErrBadWrapper when arg is not a wrapper; w then keeps only the
// correlation id and timeout, when they were valid. Keys that are not
// strings are ignored like unknown keys.
func parseMsgPackWrapper(arg []byte, w *Wrapper) error {
	*w = Wrapper{}
	r := mpReader{b: arg}
	if r.kind() != mpMap {
		return fmt.Errorf("%w: the argument is not a map", ErrBadWrapper)
	}
	n, _ := r.mapLen()
	var typ, payload, corr, timeout, parent, state []byte // raw values; a later duplicate wins
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
		case asciiEqualFold(key, "traceparent"):
			parent = v
		case asciiEqualFold(key, "tracestate"):
			state = v
		}
	}

	// The correlation id and timeout are decoded whatever else is wrong,
	// so that an error answer can still reach its caller; on an error
	// (that of the first bad property: type, payload, correlation id,
	// timeout) w keeps nothing else.
	var typeErr, payloadErr, corrErr, timeoutErr error
	if typ == nil {
		typeErr = fmt.Errorf("%w: no \"type\"", ErrBadWrapper)
	} else if t := (mpReader{b: typ}); t.kind() != mpStr {
		typeErr = fmt.Errorf("%w: \"type\" is not a string", ErrBadWrapper)
	} else if name, _ := t.bytes(); len(name) == 0 {
		typeErr = fmt.Errorf("%w: \"type\" is empty", ErrBadWrapper)
	} else {
		w.Type = string(name)
	}
	if payload == nil {
		payloadErr = fmt.Errorf("%w: no \"payload\"", ErrBadWrapper)
	} else if p := (mpReader{b: payload}); p.kind() != mpStr && p.kind() != mpBin {
		payloadErr = fmt.Errorf("%w: \"payload\" is neither a string nor binary", ErrBadWrapper)
	} else {
		body, _ := p.bytes()
		w.Payload = append(make([]byte, 0, len(body)), body...)
	}
	if corr != nil {
		if c := (mpReader{b: corr}); c.kind() != mpStr {
			corrErr = fmt.Errorf("%w: \"correlationId\" is not a string", ErrBadWrapper)
		} else {
			id, _ := c.bytes()
			w.CorrelationID = string(id)
		}
	}
	if timeout != nil {
		tr := mpReader{b: timeout}
		if v, ok := tr.int(); ok && v >= 0 && tr.i == len(timeout) {
			w.TimeoutMillis = v
		} else {
			timeoutErr = fmt.Errorf("%w: \"timeoutMs\" is not a non-negative integer", ErrBadWrapper)
		}
	}
	if err := wrapperResult(w, typeErr, payloadErr, corrErr, timeoutErr); err != nil {
		return err
	}
	// The trace context is a hint: a value that is not a string is
	// ignored.
	if t := (mpReader{b: parent}); parent != nil && t.kind() == mpStr {
		v, _ := t.bytes()
		w.TraceParent = string(v)
	}
	if t := (mpReader{b: state}); state != nil && t.kind() == mpStr {
		v, _ := t.bytes()
		w.TraceState = string(v)
	}
	return nil
}

// wrapperResult is the rule both decoders follow for a wrapper: the error
// is that of the first bad property (type, payload, correlation id,
// timeout), and a bad wrapper keeps only its correlation id and timeout,
// so that an error answer can still reach its caller but no handler runs
// on what is left.
func wrapperResult(w *Wrapper, typeErr, payloadErr, corrErr, timeoutErr error) error {
	err := cmp.Or(typeErr, payloadErr, corrErr, timeoutErr)
	if err != nil {
		w.Type, w.Payload = "", nil
		return err
	}
	return nil
}
