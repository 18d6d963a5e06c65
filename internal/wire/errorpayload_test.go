package wire

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAppendErrorPayload(t *testing.T) {
	require.Equal(t, `{"Error":"Cannot find handler for type 'MyApp.PingRequest'."}`,
		string(AppendErrorPayload(nil, "Cannot find handler for type 'MyApp.PingRequest'.", "")))
	require.Equal(t, `{"Error":"bad \"x\"\n","Code":"E42"}`, string(AppendErrorPayload(nil, "bad \"x\"\n", "E42")))

	var v struct{ Error, Code string }
	require.NoError(t, json.Unmarshal(AppendErrorPayload(nil, "m\u2028", "c"), &v))
	require.Equal(t, "m\u2028", v.Error)
	require.Equal(t, "c", v.Code)
}

func TestParseErrorPayload(t *testing.T) {
	ok := []struct{ in, msg, code string }{
		{`{"Error":"Cannot find handler for type 'MyApp.PingRequest'."}`, "Cannot find handler for type 'MyApp.PingRequest'.", ""},
		{`{"Error":"x","Code":"c"}`, "x", "c"},
		{` { "code" : "c" , "error" : "x" } `, "x", "c"},
		{`{"ERROR":""}`, "", ""},
		{`{"Error":"it\u0027s \u0022quoted\u0022"}`, `it's "quoted"`, ""},
		{`{"\u0045rror":"x"}`, "x", ""},
	}
	for _, c := range ok {
		msg, code, isErr := ParseErrorPayload([]byte(c.in))
		require.True(t, isErr, c.in)
		require.Equal(t, c.msg, msg)
		require.Equal(t, c.code, code)
	}

	notErr := []string{
		``, `null`, `"Error"`, `[]`, `{}`, `{"Reply":"Pong"}`,
		`{"Error":"x","Reply":"y"}`, `{"Error":null}`, `{"Error":1}`, `{"Error":{"Message":"x"}}`,
		`{"Error":"x","Code":1}`, `{"Code":"c"}`, `{"Error":"x","Error":"y"}`, `{"Error":"x","Code":"a","code":"b"}`,
		`{"Error":"x"`, `{"Error":"x"} {}`, `{"Error":"x",}`, `{"Errors":"x"}`,
	}
	for _, in := range notErr {
		_, _, isErr := ParseErrorPayload([]byte(in))
		require.False(t, isErr, in)
	}
}
