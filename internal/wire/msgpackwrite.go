package wire

import "encoding/binary"

// AppendMsgPackInvocation appends a non-blocking invocation of target with
// w as its only argument, length prefix included:
//
//	[1, {}, nil, target, [{"type": T, "payload": P}], []]
//
// with "correlationId", "timeoutMs", "traceparent" and "tracestate" added
// to the wrapper map when set.
// The payload (the message's JSON text) is written as a str, as JavaScript
// clients expect a string there. The body size is computed first so that
// the prefix is written in place; it allocates only to grow dst.
func AppendMsgPackInvocation(dst []byte, target string, w *Wrapper) []byte {
	fields := 2
	size := 1 + 1 + 1 + 1 + mpStrSize(len(target)) + 1 + 1 + 1 // array, type, headers, nil, target, args array, wrapper map, streamIds
	size += mpStrSize(len("type")) + mpStrSize(len(w.Type))
	size += mpStrSize(len("payload")) + mpStrSize(len(w.Payload))
	if w.CorrelationID != "" {
		fields++
		size += mpStrSize(len("correlationId")) + mpStrSize(len(w.CorrelationID))
	}
	if w.TimeoutMillis > 0 {
		fields++
		size += mpStrSize(len("timeoutMs")) + mpUintSize(uint64(w.TimeoutMillis))
	}
	if w.TraceParent != "" {
		fields++
		size += mpStrSize(len("traceparent")) + mpStrSize(len(w.TraceParent))
	}
	if w.TraceState != "" {
		fields++
		size += mpStrSize(len("tracestate")) + mpStrSize(len(w.TraceState))
	}
	dst = binary.AppendUvarint(dst, uint64(size))
	dst = append(dst, 0x96, TypeInvocation, 0x80, 0xc0)
	dst = appendMsgPackStr(dst, target)
	dst = append(dst, 0x91, 0x80|byte(fields))
	dst = appendMsgPackStr(dst, "type")
	dst = appendMsgPackStr(dst, w.Type)
	dst = appendMsgPackStr(dst, "payload")
	dst = appendMsgPackStr(dst, w.Payload)
	if w.CorrelationID != "" {
		dst = appendMsgPackStr(dst, "correlationId")
		dst = appendMsgPackStr(dst, w.CorrelationID)
	}
	if w.TimeoutMillis > 0 {
		dst = appendMsgPackStr(dst, "timeoutMs")
		dst = appendMsgPackUint(dst, uint64(w.TimeoutMillis))
	}
	if w.TraceParent != "" {
		dst = appendMsgPackStr(dst, "traceparent")
		dst = appendMsgPackStr(dst, w.TraceParent)
	}
	if w.TraceState != "" {
		dst = appendMsgPackStr(dst, "tracestate")
		dst = appendMsgPackStr(dst, w.TraceState)
	}
	return append(dst, 0x90)
}

// AppendMsgPackCompletionError appends a completion carrying an error,
// [3, {}, invocationID, 1, message] (1 is the "error" result kind), length
// prefix included: the answer owed to a blocking invocation the server
// cannot serve.
func AppendMsgPackCompletionError(dst []byte, invocationID, message string) []byte {
	size := 1 + 1 + 1 + mpStrSize(len(invocationID)) + 1 + mpStrSize(len(message))
	dst = binary.AppendUvarint(dst, uint64(size))
	dst = append(dst, 0x95, TypeCompletion, 0x80)
	dst = appendMsgPackStr(dst, invocationID)
	dst = append(dst, 0x01)
	return appendMsgPackStr(dst, message)
}

// AppendMsgPackCompletion appends the completion of an invocation that
// returns nothing, [3, {}, invocationID, 2], length prefix included.
func AppendMsgPackCompletion(dst []byte, invocationID string) []byte {
	size := 1 + 1 + 1 + mpStrSize(len(invocationID)) + 1
	dst = binary.AppendUvarint(dst, uint64(size))
	dst = append(dst, 0x94, TypeCompletion, 0x80)
	dst = appendMsgPackStr(dst, invocationID)
	return append(dst, 0x02)
}

// AppendMsgPackPing appends the keep-alive message [6], length prefix
// included.
func AppendMsgPackPing(dst []byte) []byte {
	return append(dst, 0x02, 0x91, TypePing)
}

// AppendMsgPackClose appends a close message, [7, error, allowReconnect]
// (error nil when reason is empty), length prefix included.
func AppendMsgPackClose(dst []byte, reason string, allowReconnect bool) []byte {
	size := 1 + 1 + 1 + 1
	if reason != "" {
		size += mpStrSize(len(reason)) - 1
	}
	dst = binary.AppendUvarint(dst, uint64(size))
	dst = append(dst, 0x93, TypeClose)
	if reason == "" {
		dst = append(dst, 0xc0)
	} else {
		dst = appendMsgPackStr(dst, reason)
	}
	if allowReconnect {
		return append(dst, 0xc3)
	}
	return append(dst, 0xc2)
}

// mpStrSize is the encoded size of a str of n bytes.
func mpStrSize(n int) int {
	switch {
	case n < 32:
		return 1 + n
	case n <= 0xff:
		return 2 + n
	case n <= 0xffff:
		return 3 + n
	}
	return 5 + n
}

// appendMsgPackStr appends s as a MessagePack str in its shortest form.
// Strings of 4 GB and more cannot be encoded (nor sent: SignalR caps a
// message at 2 GB).
func appendMsgPackStr[T string | []byte](dst []byte, s T) []byte {
	n := len(s)
	switch {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= 0xff:
		dst = append(dst, 0xd9, byte(n))
	case n <= 0xffff:
		dst = append(dst, 0xda, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, s...)
}

// mpUintSize is the encoded size of the unsigned integer v.
func mpUintSize(v uint64) int {
	switch {
	case v <= 0x7f:
		return 1
	case v <= 0xff:
		return 2
	case v <= 0xffff:
		return 3
	case v <= 0xffffffff:
		return 5
	}
	return 9
}

// appendMsgPackUint appends v as a MessagePack integer in its shortest
// unsigned form.
func appendMsgPackUint(dst []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(dst, byte(v))
	case v <= 0xff:
		return append(dst, 0xcc, byte(v))
	case v <= 0xffff:
		return append(dst, 0xcd, byte(v>>8), byte(v))
	case v <= 0xffffffff:
		return append(dst, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
}
