package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNextJSONRecord(t *testing.T) {
	buf := []byte(frameHandshake + "\x1e" + framePing + "\x1e{\"ty")
	rec, rest, ok := NextJSONRecord(buf)
	require.True(t, ok)
	require.Equal(t, frameHandshake, string(rec))
	rec, rest, ok = NextJSONRecord(rest)
	require.True(t, ok)
	require.Equal(t, framePing, string(rec))
	_, rest, ok = NextJSONRecord(rest)
	require.False(t, ok)
	require.Equal(t, `{"ty`, string(rest))

	rec, rest, ok = NextJSONRecord([]byte{RecordSeparator})
	require.True(t, ok)
	require.Empty(t, rec)
	require.Empty(t, rest)
}

func TestParseJSONExampleFrames(t *testing.T) {
	for _, e := range exampleInvocations {
		t.Run(e.name, func(t *testing.T) {
			var m Message
			require.NoError(t, ParseJSON([]byte(e.frame), &m))
			require.NoError(t, m.WrapperErr)
			require.Equal(t, Message{
				Type:     TypeInvocation,
				Target:   e.target,
				ArgCount: 1,
				Wrapper:  e.wrapper,
			}, m)
		})
	}
	t.Run("ping", func(t *testing.T) {
		m := Message{Target: "stale", ArgCount: 3}
		require.NoError(t, ParseJSON([]byte(framePing), &m))
		require.Equal(t, Message{Type: TypePing}, m)
	})
}

func TestAppendJSONInvocationExampleFrames(t *testing.T) {
	for _, e := range exampleInvocations {
		t.Run(e.name, func(t *testing.T) {
			out := AppendJSONInvocation(nil, e.target, &e.wrapper)
			require.Equal(t, e.frame+"\x1e", string(out))

			var decoded struct {
				Type      int
				Target    string
				Arguments []struct{ Type, Payload string }
			}
			require.NoError(t, json.Unmarshal(out[:len(out)-1], &decoded))
			require.Equal(t, 1, decoded.Type)
			require.Equal(t, e.target, decoded.Target)
			require.Len(t, decoded.Arguments, 1)
			require.Equal(t, e.wrapper.Type, decoded.Arguments[0].Type)
			require.Equal(t, string(e.wrapper.Payload), decoded.Arguments[0].Payload)
		})
	}
}

func TestAppendJSONInvocationExtensions(t *testing.T) {
	w := Wrapper{Type: "T", Payload: []byte(`{"A":"\n"}`), CorrelationID: "c\"1", TimeoutMillis: 1500}
	out := AppendJSONInvocation([]byte("x"), TargetSend, &w)
	require.Equal(t, `x{"type":1,"target":"SendMessage","arguments":[{"type":"T","payload":"{\"A\":\"\\n\"}","correlationId":"c\"1","timeoutMs":1500}]}`+"\x1e", string(out))

	var m Message
	rec, _, ok := NextJSONRecord(out[1:])
	require.True(t, ok)
	require.NoError(t, ParseJSON(rec, &m))
	require.NoError(t, m.WrapperErr)
	require.Equal(t, w, m.Wrapper)

	w.TimeoutMillis = -5 // not sent
	out = AppendJSONInvocation(nil, TargetSend, &w)
	require.NotContains(t, string(out), "timeoutMs")
}

func TestAppendJSONInvocationNoAllocation(t *testing.T) {
	w := Wrapper{Type: typePingRequest + "é\xff", Payload: []byte("{\"Message\":\"Ping é€😀\u2028\xff\n\"}"), CorrelationID: "abc", TimeoutMillis: 10}
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendJSONInvocation(buf[:0], TargetSend, &w)
	})
	require.Zero(t, allocs)
}

func TestAppendJSONCompletionErrorAndPing(t *testing.T) {
	require.Equal(t, `{"type":3,"invocationId":"42","error":"no \"such\" method"}`+"\x1e",
		string(AppendJSONCompletionError(nil, "42", `no "such" method`)))
	require.Equal(t, framePing+"\x1e", string(AppendJSONPing(nil)))

	var m Message
	require.NoError(t, ParseJSON(AppendJSONPing(nil)[:len(framePing)], &m))
	require.Equal(t, TypePing, m.Type)
}

func TestAppendJSONString(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`q"b\`, `"q\"b\\"`},
		{"\n\r\t\b\f", `"\n\r\t\b\f"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f" + `"`},
		{"a\xffb", `"a\ufffdb"`},
		{"\xe2\x82", `"\ufffd\ufffd"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"é€😀<&>", `"é€😀<&>"`},
	}
	for _, c := range cases {
		require.Equal(t, c.want, string(AppendJSONString(nil, c.in)), "%q", c.in)
		require.Equal(t, c.want, string(AppendJSONStringBytes(nil, []byte(c.in))), "%q", c.in)
		var back string
		require.NoError(t, json.Unmarshal(AppendJSONString(nil, c.in), &back))
		require.Equal(t, string([]rune(c.in)), back) // invalid bytes read back as U+FFFD
	}
}

func TestParseJSONWrapperKeys(t *testing.T) {
	cases := []struct {
		name, arg string
		want      Wrapper
	}{
		{"PascalCase", `{"Type":"T","Payload":"{}"}`, Wrapper{Type: "T", Payload: []byte("{}")}},
		{"upper", `{"TYPE":"T","PAYLOAD":"x","CORRELATIONID":"c","TIMEOUTMS":5}`, Wrapper{Type: "T", Payload: []byte("x"), CorrelationID: "c", TimeoutMillis: 5}},
		{"escaped key", `{"\u0074ype":"T","payload":""}`, Wrapper{Type: "T", Payload: []byte{}}},
		{"object payload", `{"type":"T","payload":{"A": [1, "b"]}}`, Wrapper{Type: "T", Payload: []byte(`{"A": [1, "b"]}`)}},
		{"array payload", `{"type":"T","payload":[1,2]}`, Wrapper{Type: "T", Payload: []byte(`[1,2]`)}},
		{"unknown keys", `{"x":{"y":[null]},"type":"T","payload":"p","extra":1}`, Wrapper{Type: "T", Payload: []byte("p")}},
		{"later key wins", `{"type":5,"type":"T","payload":"p"}`, Wrapper{Type: "T", Payload: []byte("p")}},
		{"escapes", `{"type":"A\u002BB","payload":"{\u0022K\u0022:\"\ud83d\ude00\"}"}`, Wrapper{Type: "A+B", Payload: []byte(`{"K":"😀"}`)}},
		{"zero timeout", `{"type":"T","payload":"p","timeoutMs":0}`, Wrapper{Type: "T", Payload: []byte("p")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m Message
			rec := `{"type":1,"target":"PostMessage","arguments":[` + c.arg + `]}`
			require.NoError(t, ParseJSON([]byte(rec), &m))
			require.NoError(t, m.WrapperErr)
			require.Equal(t, c.want, m.Wrapper)
			require.Empty(t, compareWithOracle([]byte(rec)))
		})
	}
}

func TestParseJSONBadWrapper(t *testing.T) {
	cases := map[string]string{
		"missing type":         `{"payload":"p"}`,
		"missing payload":      `{"type":"T"}`,
		"empty type":           `{"type":"","payload":"p"}`,
		"type number":          `{"type":1,"payload":"p"}`,
		"type null":            `{"type":null,"payload":"p"}`,
		"payload null":         `{"type":"T","payload":null}`,
		"payload number":       `{"type":"T","payload":12}`,
		"payload bool":         `{"type":"T","payload":true}`,
		"correlationId number": `{"type":"T","payload":"p","correlationId":1}`,
		"correlationId null":   `{"type":"T","payload":"p","correlationId":null}`,
		"timeoutMs negative":   `{"type":"T","payload":"p","timeoutMs":-1}`,
		"timeoutMs fraction":   `{"type":"T","payload":"p","timeoutMs":1.5}`,
		"timeoutMs string":     `{"type":"T","payload":"p","timeoutMs":"5"}`,
		"timeoutMs overflow":   `{"type":"T","payload":"p","timeoutMs":99999999999999999999}`,
		"not an object":        `"T"`,
		"null argument":        `null`,
		"array argument":       `["T","p"]`,
	}
	for name, arg := range cases {
		t.Run(name, func(t *testing.T) {
			var m Message
			rec := `{"type":1,"target":"SendMessage","invocationId":"9","arguments":[` + arg + `,2],"streamIds":[]}`
			require.NoError(t, ParseJSON([]byte(rec), &m))
			require.ErrorIs(t, m.WrapperErr, ErrBadWrapper)
			require.Equal(t, Wrapper{}, m.Wrapper)
			require.Equal(t, TargetSend, m.Target)
			require.Equal(t, "9", m.InvocationID)
			require.Equal(t, 2, m.ArgCount)
			require.False(t, m.StreamIDs)
			require.Empty(t, compareWithOracle([]byte(rec)))
		})
	}

	var m Message
	require.NoError(t, ParseJSON([]byte(`{"type":1,"target":"PostMessage","arguments":[]}`), &m))
	require.ErrorIs(t, m.WrapperErr, ErrBadWrapper)
	require.Zero(t, m.ArgCount)
}

func TestParseJSONOtherMessages(t *testing.T) {
	var m Message
	require.NoError(t, ParseJSON([]byte(`{"type":7,"error":"Server \"closed\"","allowReconnect":true}`), &m))
	require.Equal(t, Message{Type: TypeClose, CloseError: `Server "closed"`, AllowReconnect: true}, m)

	require.NoError(t, ParseJSON([]byte(` {"type":3,"invocationId":"1","result":{"deep":[[[]]]},"error":null} `), &m))
	require.Equal(t, Message{Type: TypeCompletion}, m)

	require.NoError(t, ParseJSON([]byte(`{"type":4,"invocationId":"1","target":"x","arguments":[{"type":"T","payload":"p"}],"streamIds":["a"],"headers":{"k":"v"}}`), &m))
	require.Equal(t, Message{Type: TypeStreamInvocation, Target: "x", InvocationID: "1", ArgCount: 1, StreamIDs: true,
		Wrapper: Wrapper{Type: "T", Payload: []byte("p")}}, m)

	require.NoError(t, ParseJSON([]byte(`{"type":99}`), &m))
	require.Equal(t, Message{Type: 99}, m)
}

func TestParseJSONMalformed(t *testing.T) {
	cases := map[string]string{
		"empty":             ``,
		"not json":          `hello`,
		"truncated":         `{"type":1,"target":"PostMessage","arguments":[{"type":"T"`,
		"array":             `[1]`,
		"no type":           `{"target":"PostMessage"}`,
		"type string":       `{"type":"1"}`,
		"type fraction":     `{"type":1.0}`,
		"type exponent":     `{"type":1e0}`,
		"type null":         `{"type":null}`,
		"type overflow":     `{"type":9223372036854775808}`,
		"trailing data":     `{"type":6}{"type":6}`,
		"trailing comma":    `{"type":6,}`,
		"leading zero":      `{"type":06}`,
		"target number":     `{"type":1,"target":1,"arguments":[]}`,
		"no target":         `{"type":1,"arguments":[{"type":"T","payload":"p"}]}`,
		"arguments object":  `{"type":1,"target":"x","arguments":{}}`,
		"streamIds string":  `{"type":1,"target":"x","arguments":[],"streamIds":"a"}`,
		"bad escape":        `{"type":6,"x":"\q"}`,
		"control char":      "{\"type\":6,\"x\":\"a\nb\"}",
		"bad unicode":       `{"type":6,"x":"\u12g4"}`,
		"allowReconnect 1":  `{"type":7,"allowReconnect":1}`,
		"single quotes":     `{'type':6}`,
		"unclosed string":   `{"type":6,"x":"abc`,
		"bare minus":        `{"type":-}`,
		"nested too deep":   `{"type":6,"x":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`,
		"record separator":  "{\"type\":6}\x1e",
		"byte order mark":   "\xef\xbb\xbf{\"type\":6}",
		"invalid bare utf8": "{\"type\":6,\"x\":\xff}",
	}
	for name, rec := range cases {
		t.Run(name, func(t *testing.T) {
			m := Message{Target: "stale"}
			err := ParseJSON([]byte(rec), &m)
			require.ErrorIs(t, err, ErrMalformed)
			require.Equal(t, Message{}, m)
			require.Empty(t, compareWithOracle([]byte(rec)))
		})
	}

	// 63 levels below the message object are still fine (64 in all).
	ok := `{"type":6,"x":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `}`
	var m Message
	require.NoError(t, ParseJSON([]byte(ok), &m))
}

func TestParseJSONDeepNesting(t *testing.T) {
	for _, rec := range []string{
		strings.Repeat("[", 10000),
		`{"type":1,"target":"x","arguments":` + strings.Repeat("[", 10000),
		`{"type":1,"target":"x","arguments":[` + strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000) + "]}",
		strings.Repeat(`{"a":`, 1000000),
	} {
		var m Message
		err := ParseJSON([]byte(rec), &m)
		require.ErrorIs(t, err, ErrMalformed)
	}
}

func TestParseJSONInvalidUTF8(t *testing.T) {
	rec := "{\"type\":1,\"target\":\"P\xffM\",\"arguments\":[{\"type\":\"T\xc3\",\"payload\":\"\xed\xa0\x80\\ud800x\"}]}"
	var m Message
	require.NoError(t, ParseJSON([]byte(rec), &m))
	require.Equal(t, "P\uFFFDM", m.Target)
	require.Equal(t, "T\uFFFD", m.Wrapper.Type)
	require.Equal(t, "\uFFFD\uFFFD\uFFFD\uFFFDx", string(m.Wrapper.Payload))
	require.Empty(t, compareWithOracle([]byte(rec)))
}

func TestParseJSONDoesNotAlias(t *testing.T) {
	rec := []byte(exampleInvocations[1].frame)
	var m Message
	require.NoError(t, ParseJSON(rec, &m))
	for i := range rec {
		rec[i] = 'x'
	}
	require.Equal(t, exampleInvocations[1].wrapper, m.Wrapper)
}

func TestParseJSONMatchesOracleOnExamples(t *testing.T) {
	for _, rec := range exampleRecords() {
		require.Empty(t, compareWithOracle([]byte(rec)), rec)
	}
}

func TestParseHandshakeRequest(t *testing.T) {
	p, err := ParseHandshakeRequest([]byte(frameHandshake))
	require.NoError(t, err)
	require.Equal(t, JSON, p)

	p, err = ParseHandshakeRequest([]byte(` { "version" : 2 , "protocol" : "messagepack", "extra": [1] } `))
	require.NoError(t, err)
	require.Equal(t, MessagePack, p)

	_, err = ParseHandshakeRequest([]byte(`{"protocol":"blazorpack","version":1}`))
	require.ErrorContains(t, err, "blazorpack")

	for _, bad := range []string{
		``, `{`, `[]`, `{"protocol":"json"}`, `{"protocol":"json","version":0}`,
		`{"protocol":"json","version":1.5}`, `{"protocol":"json","version":"1"}`,
		`{"protocol":1,"version":1}`, `{"version":1}`, `{"protocol":"json","version":1}x`,
	} {
		_, err := ParseHandshakeRequest([]byte(bad))
		require.Error(t, err, bad)
	}
	_, err = ParseHandshakeRequest([]byte(`{"protocol":"json",`))
	require.ErrorIs(t, err, ErrMalformed)
}

func TestParseHandshakeResponse(t *testing.T) {
	msg, err := ParseHandshakeResponse([]byte(frameHandshakeResponse))
	require.NoError(t, err)
	require.Empty(t, msg)

	msg, err = ParseHandshakeResponse([]byte(`{"error":"Requested protocol 'x' is not available."}`))
	require.NoError(t, err)
	require.Equal(t, "Requested protocol 'x' is not available.", msg)

	msg, err = ParseHandshakeResponse([]byte(`{"minorVersion":1}`))
	require.NoError(t, err)
	require.Empty(t, msg)

	for _, bad := range []string{``, `{`, `nope`, `{"error":1}`, `{} {}`} {
		_, err := ParseHandshakeResponse([]byte(bad))
		require.True(t, errors.Is(err, ErrMalformed), bad)
	}
}

func TestParseAllocations(t *testing.T) {
	rec := []byte(exampleInvocations[0].frame)
	var m Message
	allocs := testing.AllocsPerRun(100, func() {
		if ParseJSON(rec, &m) != nil {
			t.Fatal("error")
		}
	})
	require.LessOrEqual(t, allocs, 2.0) // the type name and the payload

	frame := nextFrame(t, AppendMsgPackInvocation(nil, TargetPost, &exampleInvocations[0].wrapper))
	allocs = testing.AllocsPerRun(100, func() {
		if ParseMsgPack(frame, &m) != nil {
			t.Fatal("error")
		}
	})
	require.LessOrEqual(t, allocs, 2.0)
}
