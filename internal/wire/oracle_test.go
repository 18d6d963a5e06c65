package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// This file is a reference implementation of ParseJSON built only on
// encoding/json, slow and simple, against which the hand-written scanner
// is fuzzed (FuzzParseJSON).

// errOracleMalformed marks records the reference refuses.
var errOracleMalformed = errors.New("oracle: malformed")

// member is one property of a JSON object, in input order.
type member struct {
	key   string
	value json.RawMessage
}

// orderedMembers decodes the object raw into its members in order,
// duplicates included. ok is false when raw is not an object.
func orderedMembers(raw []byte) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out = append(out, member{key: tok.(string), value: v})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return out, true
}

// jsonDepth is the deepest nesting of containers in the valid JSON raw.
func jsonDepth(raw []byte) int {
	depth, maxSeen, inStr, esc := 0, 0, false, false
	for _, c := range raw {
		switch {
		case inStr && esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case inStr && c == '"':
			inStr = false
		case inStr:
		case c == '"':
			inStr = true
		case c == '[' || c == '{':
			depth++
			maxSeen = max(maxSeen, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return maxSeen
}

// lowerASCII folds ASCII letters only.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// oracleParseJSON is ParseJSON written with encoding/json. It returns
// errOracleMalformed where ParseJSON must return ErrMalformed, and sets
// WrapperErr to a non-nil error where ParseJSON must set one.
func oracleParseJSON(record []byte) (Message, error) {
	var m Message
	if !json.Valid(record) || jsonDepth(record) > maxDepth {
		return m, errOracleMalformed
	}
	members, ok := orderedMembers(record)
	if !ok {
		return m, errOracleMalformed
	}
	isNull := func(v json.RawMessage) bool { return string(v) == "null" }
	var hasType, hasTarget, allow bool
	var target, invID, closeErr string
	var args []json.RawMessage
	var streams []json.RawMessage
	for _, mb := range members {
		v := mb.value
		switch mb.key {
		case "type":
			if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
				return m, errOracleMalformed
			}
			if err := json.Unmarshal(v, &m.Type); err != nil {
				return m, errOracleMalformed
			}
			hasType = true
		case "target", "invocationId", "error":
			var s string
			if !isNull(v) {
				if v[0] != '"' || json.Unmarshal(v, &s) != nil {
					return m, errOracleMalformed
				}
			}
			switch mb.key {
			case "target":
				target, hasTarget = s, !isNull(v)
			case "invocationId":
				invID = s
			default:
				closeErr = s
			}
		case "arguments", "streamIds":
			var a []json.RawMessage
			if !isNull(v) && (v[0] != '[' || json.Unmarshal(v, &a) != nil) {
				return m, errOracleMalformed
			}
			if mb.key == "arguments" {
				args = a
			} else {
				streams = a
			}
		case "allowReconnect":
			allow = false
			if !isNull(v) && json.Unmarshal(v, &allow) != nil {
				return m, errOracleMalformed
			}
		}
	}
	if !hasType {
		return m, errOracleMalformed
	}
	switch m.Type {
	case TypeInvocation, TypeStreamInvocation:
		if !hasTarget {
			return m, errOracleMalformed
		}
		m.Target, m.InvocationID = target, invID
		m.ArgCount, m.StreamIDs = len(args), len(streams) > 0
		if len(args) == 0 {
			m.WrapperErr = errors.New("no arguments")
		} else {
			m.Wrapper, m.WrapperErr = oracleWrapper(args[0])
		}
	case TypeClose:
		m.CloseError, m.AllowReconnect = closeErr, allow
	}
	return m, nil
}

// oracleWrapper decodes a wrapper with encoding/json. On an error it
// still returns the correlation id and timeout when they were valid, and
// nothing else.
func oracleWrapper(arg json.RawMessage) (Wrapper, error) {
	var w Wrapper
	members, ok := orderedMembers(arg)
	if !ok {
		return Wrapper{}, errors.New("not an object")
	}
	var typ, payload, corr, timeout, parent, state json.RawMessage
	for _, mb := range members {
		switch lowerASCII(mb.key) {
		case "type":
			typ = mb.value
		case "payload":
			payload = mb.value
		case "correlationid":
			corr = mb.value
		case "timeoutms":
			timeout = mb.value
		case "traceparent":
			parent = mb.value
		case "tracestate":
			state = mb.value
		}
	}
	var errs []error
	var name string
	if typ == nil || typ[0] != '"' || json.Unmarshal(typ, &name) != nil || name == "" {
		errs = append(errs, errors.New("bad type"))
	} else {
		w.Type = name
	}
	switch {
	case payload == nil:
		errs = append(errs, errors.New("no payload"))
	case payload[0] == '"':
		var s string
		if err := json.Unmarshal(payload, &s); err != nil {
			errs = append(errs, err)
		}
		w.Payload = []byte(s)
	case payload[0] == '{' || payload[0] == '[':
		w.Payload = []byte(payload)
	default:
		errs = append(errs, errors.New("bad payload"))
	}
	if corr != nil {
		var id string
		if corr[0] != '"' || json.Unmarshal(corr, &id) != nil {
			errs = append(errs, errors.New("bad correlationId"))
		} else {
			w.CorrelationID = id
		}
	}
	if timeout != nil {
		var ms int64
		if timeout[0] == 'n' || json.Unmarshal(timeout, &ms) != nil || ms < 0 {
			errs = append(errs, errors.New("bad timeoutMs"))
		} else {
			w.TimeoutMillis = ms
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Wrapper{CorrelationID: w.CorrelationID, TimeoutMillis: w.TimeoutMillis}, err
	}
	// The trace context is kept when it is a string and ignored otherwise.
	if parent != nil && parent[0] == '"' {
		_ = json.Unmarshal(parent, &w.TraceParent)
	}
	if state != nil && state[0] == '"' {
		_ = json.Unmarshal(state, &w.TraceState)
	}
	return w, nil
}

// compareWithOracle returns a description of the first difference between
// ParseJSON and the reference on record, or "".
func compareWithOracle(record []byte) string {
	var got Message
	gotErr := ParseJSON(record, &got)
	want, wantErr := oracleParseJSON(record)
	switch {
	case (gotErr != nil) != (wantErr != nil):
		return fmt.Sprintf("ParseJSON error %v, reference error %v", gotErr, wantErr)
	case gotErr != nil:
		if !errors.Is(gotErr, ErrMalformed) {
			return fmt.Sprintf("error %v does not wrap ErrMalformed", gotErr)
		}
		return ""
	case (got.WrapperErr != nil) != (want.WrapperErr != nil):
		return fmt.Sprintf("WrapperErr %v, reference %v", got.WrapperErr, want.WrapperErr)
	case got.WrapperErr != nil && !errors.Is(got.WrapperErr, ErrBadWrapper):
		return fmt.Sprintf("WrapperErr %v does not wrap ErrBadWrapper", got.WrapperErr)
	}
	got.WrapperErr, want.WrapperErr = nil, nil
	if got.Wrapper.Payload == nil {
		got.Wrapper.Payload = []byte{}
	}
	if want.Wrapper.Payload == nil {
		want.Wrapper.Payload = []byte{}
	}
	if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
		return fmt.Sprintf("decoded\n%#v\nreference\n%#v", got, want)
	}
	return ""
}
