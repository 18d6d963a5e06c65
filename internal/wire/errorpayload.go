package wire

// AppendErrorPayload appends the payload with which a receiver answers a
// SendMessage it could not serve: {"Error":"<message>"} as the .NET
// library writes it, plus "Code" when code is set (an extension .NET
// callers ignore). It is sent as a ResponseMessage with the request's type.
func AppendErrorPayload(dst []byte, message, code string) []byte {
	dst = append(dst, `{"Error":`...)
	dst = AppendJSONString(dst, message)
	if code != "" {
		dst = append(dst, `,"Code":`...)
		dst = AppendJSONString(dst, code)
	}
	return append(dst, '}')
}

// ParseErrorPayload recognises the error answer to a SendMessage, which
// the .NET library sends with the request's type instead of the response's
// so that a caller cannot tell it apart by type: ok is true only when
// payload is a JSON object with a string "Error" and at most a string
// "Code" besides (names ignore ASCII case, each at most once). A response
// type whose only property is a string named Error is indistinguishable
// and is reported as an error answer.
func ParseErrorPayload(payload []byte) (message, code string, ok bool) {
	s := jsonScanner{b: payload}
	s.ws()
	if s.peek() != '{' {
		return "", "", false
	}
	s.i++
	var msg, cd span
	for n := 0; ; n++ {
		key, plain, done, ok := s.member(n)
		if !ok {
			return "", "", false
		}
		if done {
			break
		}
		var field *span
		switch {
		case keyMatches(key, plain, "Error", true):
			field = &msg
		case keyMatches(key, plain, "Code", true):
			field = &cd
		default:
			return "", "", false
		}
		if field.set || s.peek() != '"' {
			return "", "", false
		}
		raw, plain, ok := s.str()
		if !ok {
			return "", "", false
		}
		*field = span{raw: raw, plain: plain, set: true}
	}
	if !msg.set || !s.end() {
		return "", "", false
	}
	message = unquoteString(msg.raw, msg.plain)
	if cd.set {
		code = unquoteString(cd.raw, cd.plain)
	}
	return message, code, true
}
