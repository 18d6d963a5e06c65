package wire

import (
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	testTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	testTraceState  = "congo=t61rcWkgMzE"
)

// TestTraceContextRoundTrip: the trace context travels beside the
// correlation id in both protocols, and comes back as it was written.
func TestTraceContextRoundTrip(t *testing.T) {
	w := Wrapper{Type: "T", Payload: []byte(`{"A":1}`), CorrelationID: "c", TimeoutMillis: 5,
		TraceParent: testTraceParent, TraceState: testTraceState}
	rec := AppendJSONInvocation(nil, TargetSend, &w)
	require.Contains(t, string(rec), `,"correlationId":"c","timeoutMs":5,"traceparent":"`+testTraceParent+`","tracestate":"`+testTraceState+`"}]}`)
	var m Message
	require.NoError(t, ParseJSON(rec[:len(rec)-1], &m))
	require.NoError(t, m.WrapperErr)
	require.Equal(t, w, m.Wrapper)

	frame := AppendMsgPackInvocation(nil, TargetSend, &w)
	body, rest, ok, err := NextMsgPackFrame(frame, 0)
	require.NoError(t, err)
	require.True(t, ok)
	require.Empty(t, rest)
	m = Message{}
	require.NoError(t, ParseMsgPack(body, &m))
	require.NoError(t, m.WrapperErr)
	require.Equal(t, w, m.Wrapper)
}

// TestNoTraceContextSameBytes: a wrapper without a trace context is
// written exactly as before the trace context existed.
func TestNoTraceContextSameBytes(t *testing.T) {
	w := Wrapper{Type: "T", Payload: []byte(`{}`), CorrelationID: "c"}
	require.Equal(t, "{\"type\":1,\"target\":\"SendMessage\",\"arguments\":[{\"type\":\"T\",\"payload\":\"{}\",\"correlationId\":\"c\"}]}\x1e",
		string(AppendJSONInvocation(nil, TargetSend, &w)))
	// fixarray 6, type 1, no headers, no invocation id, the target, one
	// argument: a map of three (type, payload, correlationId), no streams.
	frame := AppendMsgPackInvocation(nil, TargetSend, &w)
	require.Equal(t, byte(0x83), frame[1+4+1+len(TargetSend)+1])
}

// TestTraceContextIsAHint: a trace context that is not a string is
// ignored, not an error, and names match case-insensitively as the
// wrapper's other properties do.
func TestTraceContextIsAHint(t *testing.T) {
	for _, tc := range []struct {
		name, arg string
		want      Wrapper
	}{
		{"number", `{"type":"T","payload":"{}","traceparent":5,"tracestate":null}`, Wrapper{Type: "T", Payload: []byte("{}")}},
		{"object", `{"type":"T","payload":"{}","traceparent":{"a":1}}`, Wrapper{Type: "T", Payload: []byte("{}")}},
		{"case", `{"type":"T","payload":"{}","TraceParent":"` + testTraceParent + `"}`, Wrapper{Type: "T", Payload: []byte("{}"), TraceParent: testTraceParent}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m Message
			require.NoError(t, ParseJSON([]byte(`{"type":1,"target":"SendMessage","arguments":[`+tc.arg+`]}`), &m))
			require.NoError(t, m.WrapperErr)
			require.Equal(t, tc.want, m.Wrapper)
		})
	}
}
