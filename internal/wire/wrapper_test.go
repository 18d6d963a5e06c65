package wire

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// badWrappers are wrappers that are not valid but name their request: the
// decoders must keep the correlation id and timeout they read, so that the
// error answer reaches the caller at once instead of at its timeout.
var badWrappers = []struct {
	name string
	arg  map[string]any
	want Wrapper // what the decoders keep
}{
	{"no payload", map[string]any{"type": "T", "correlationId": "c-1", "timeoutMs": 5000}, Wrapper{CorrelationID: "c-1", TimeoutMillis: 5000}},
	{"payload number", map[string]any{"type": "T", "payload": 12, "correlationId": "c-2"}, Wrapper{CorrelationID: "c-2"}},
	{"payload null", map[string]any{"type": "T", "payload": nil, "correlationId": "c-3"}, Wrapper{CorrelationID: "c-3"}},
	{"no type", map[string]any{"payload": "{}", "correlationId": "c-4", "timeoutMs": 1}, Wrapper{CorrelationID: "c-4", TimeoutMillis: 1}},
	{"type number", map[string]any{"type": 1, "payload": "{}", "correlationId": "c-5"}, Wrapper{CorrelationID: "c-5"}},
	{"empty type", map[string]any{"type": "", "payload": "{}", "CorrelationId": "c-6"}, Wrapper{CorrelationID: "c-6"}},
	{"bad timeout", map[string]any{"type": "T", "payload": "{}", "correlationId": "c-7", "timeoutMs": -1}, Wrapper{CorrelationID: "c-7"}},
	{"bad correlation id", map[string]any{"type": "T", "payload": "{}", "correlationId": 7, "timeoutMs": 9}, Wrapper{TimeoutMillis: 9}},
	{"nothing to keep", map[string]any{"type": "T"}, Wrapper{}},
}

func TestParseJSONBadWrapperKeepsCorrelation(t *testing.T) {
	for _, c := range badWrappers {
		t.Run(c.name, func(t *testing.T) {
			arg, err := json.Marshal(c.arg)
			require.NoError(t, err)
			rec := `{"type":1,"target":"SendMessage","arguments":[` + string(arg) + `]}`
			var m Message
			require.NoError(t, ParseJSON([]byte(rec), &m))
			require.ErrorIs(t, m.WrapperErr, ErrBadWrapper)
			require.Equal(t, c.want, m.Wrapper)
			require.Empty(t, compareWithOracle([]byte(rec)))
		})
	}
}

func TestParseMsgPackBadWrapperKeepsCorrelation(t *testing.T) {
	for _, c := range badWrappers {
		t.Run(c.name, func(t *testing.T) {
			body, err := msgpack.Marshal([]any{1, map[string]any{}, nil, "SendMessage", []any{c.arg}})
			require.NoError(t, err)
			var m Message
			require.NoError(t, ParseMsgPack(body, &m))
			require.ErrorIs(t, m.WrapperErr, ErrBadWrapper)
			require.Equal(t, c.want, m.Wrapper)
		})
	}
}

// TestBadWrapperErrorNamesFirstProblem: with several problems, the error
// is that of the type, then the payload, then the correlation id, then the
// timeout, in both protocols.
func TestBadWrapperErrorNamesFirstProblem(t *testing.T) {
	cases := []struct {
		arg  map[string]any
		want string
	}{
		{map[string]any{"payload": 1, "correlationId": 1}, `no "type"`},
		{map[string]any{"type": "T", "correlationId": 1}, `no "payload"`},
		{map[string]any{"type": "T", "payload": "", "correlationId": 1, "timeoutMs": -1}, `"correlationId"`},
		{map[string]any{"type": "T", "payload": "", "timeoutMs": -1}, `"timeoutMs"`},
	}
	for _, c := range cases {
		arg, err := json.Marshal(c.arg)
		require.NoError(t, err)
		var m Message
		require.NoError(t, ParseJSON([]byte(`{"type":1,"target":"SendMessage","arguments":[`+string(arg)+`]}`), &m))
		require.ErrorContains(t, m.WrapperErr, c.want, string(arg))

		body, err := msgpack.Marshal([]any{1, map[string]any{}, nil, "SendMessage", []any{c.arg}})
		require.NoError(t, err)
		require.NoError(t, ParseMsgPack(body, &m))
		require.ErrorContains(t, m.WrapperErr, c.want, string(arg))
	}
}
