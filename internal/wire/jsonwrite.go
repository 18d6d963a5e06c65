package wire

import (
	"strconv"
	"unicode/utf8"
)

// AppendJSONInvocation appends a non-blocking invocation of target (no
// invocationId, as the .NET client sends PostMessage, SendMessage and
// ResponseMessage) with w as its only argument, followed by the record
// separator:
//
//	{"type":1,"target":"T","arguments":[{"type":"W","payload":"P"}]}
//
// with ,"correlationId":"C" after the payload when w.CorrelationID is set
// and ,"timeoutMs":N when w.TimeoutMillis > 0, then ,"traceparent":"T"
// and ,"tracestate":"S" when set. The payload is written as a
// JSON string, which the .NET reader requires. It allocates only to grow
// dst.
func AppendJSONInvocation(dst []byte, target string, w *Wrapper) []byte {
	dst = append(dst, `{"type":1,"target":`...)
	dst = AppendJSONString(dst, target)
	dst = append(dst, `,"arguments":[{"type":`...)
	dst = AppendJSONString(dst, w.Type)
	dst = append(dst, `,"payload":`...)
	dst = AppendJSONStringBytes(dst, w.Payload)
	if w.CorrelationID != "" {
		dst = append(dst, `,"correlationId":`...)
		dst = AppendJSONString(dst, w.CorrelationID)
	}
	if w.TimeoutMillis > 0 {
		dst = append(dst, `,"timeoutMs":`...)
		dst = strconv.AppendInt(dst, w.TimeoutMillis, 10)
	}
	if w.TraceParent != "" {
		dst = append(dst, `,"traceparent":`...)
		dst = AppendJSONString(dst, w.TraceParent)
	}
	if w.TraceState != "" {
		dst = append(dst, `,"tracestate":`...)
		dst = AppendJSONString(dst, w.TraceState)
	}
	return append(dst, "}]}\x1e"...)
}

// AppendJSONCompletionError appends a completion carrying an error,
// {"type":3,"invocationId":"I","error":"E"} and the record separator: the
// answer a server owes to a blocking invocation it cannot serve (the
// protocol's own methods are always invoked non-blocking, but a foreign
// client may do otherwise).
func AppendJSONCompletionError(dst []byte, invocationID, message string) []byte {
	dst = append(dst, `{"type":3,"invocationId":`...)
	dst = AppendJSONString(dst, invocationID)
	dst = append(dst, `,"error":`...)
	dst = AppendJSONString(dst, message)
	return append(dst, "}\x1e"...)
}

// AppendJSONCompletion appends the completion of an invocation that
// returns nothing, {"type":3,"invocationId":"..."}, and the separator. A
// peer that invokes a protocol target with an id (the JavaScript client's
// invoke, philippseith's Send) waits for it.
func AppendJSONCompletion(dst []byte, invocationID string) []byte {
	dst = append(dst, `{"type":3,"invocationId":`...)
	dst = AppendJSONString(dst, invocationID)
	return append(dst, "}\x1e"...)
}

// AppendJSONPing appends the keep-alive message {"type":6} and the record
// separator.
func AppendJSONPing(dst []byte) []byte {
	return append(dst, "{\"type\":6}\x1e"...)
}

// AppendJSONClose appends a close message, {"type":7}, with its error when
// reason is not empty and allowReconnect when it is true, as ASP.NET Core
// writes them.
func AppendJSONClose(dst []byte, reason string, allowReconnect bool) []byte {
	dst = append(dst, "{\"type\":7"...)
	if reason != "" {
		dst = append(dst, ",\"error\":"...)
		dst = appendJSONString(dst, reason)
	}
	if allowReconnect {
		dst = append(dst, ",\"allowReconnect\":true"...)
	}
	return append(dst, '}', RecordSeparator)
}

// AppendJSONString appends s as a quoted JSON string. It escapes what JSON
// requires plus U+2028 and U+2029 (which JavaScript peers cannot take raw),
// and writes each byte of invalid UTF-8 as \ufffd, as encoding/json does,
// so the output is always valid JSON and valid UTF-8. HTML characters are
// not escaped: the output is never embedded in HTML.
func AppendJSONString(dst []byte, s string) []byte {
	return appendJSONString(dst, s)
}

// AppendJSONStringBytes is AppendJSONString for a byte slice, so that a
// payload can be written without converting it to a string.
func AppendJSONStringBytes(dst []byte, b []byte) []byte {
	return appendJSONString(dst, b)
}

// appendJSONString is the shared implementation of AppendJSONString and
// AppendJSONStringBytes.
func appendJSONString[T string | []byte](dst []byte, s T) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending, to be copied as is
	for i := 0; i < len(s); {
		if strSafe[s[i]] {
			i++
			continue
		}
		if c := s[i]; c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			if c == '"' || c == '\\' {
				dst = append(dst, '\\', c)
			} else if e, ok := shortEscape(c); ok {
				dst = append(dst, '\\', e)
			} else {
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// shortEscape returns the letter of the two-character escape JSON has for
// the control character c (\b \t \n \f \r), which both this package's
// writer and System.Text.Json use.
func shortEscape(c byte) (byte, bool) {
	switch c {
	case '\b':
		return 'b', true
	case '\t':
		return 't', true
	case '\n':
		return 'n', true
	case '\f':
		return 'f', true
	case '\r':
		return 'r', true
	}
	return 0, false
}

// decodeRune is utf8.DecodeRune for a string or a byte slice.
func decodeRune[T string | []byte](s T) (rune, int) {
	switch v := any(s).(type) {
	case string:
		return utf8.DecodeRuneInString(v)
	case []byte:
		return utf8.DecodeRune(v)
	}
	return utf8.RuneError, 1
}
