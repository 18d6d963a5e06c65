package communication_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBadWrapperAnsweredWithCorrelationID: a request whose wrapper is not
// valid (no type, no payload, a payload that is not a string) is answered
// with an error that carries the request's correlation id, so that its
// caller learns at once instead of at its timeout.
func TestBadWrapperAnsweredWithCorrelationID(t *testing.T) {
	ts := dotNetServer(t, make(chan Note, 1))
	p := dialRawNegotiated(t, ts, http.Header{"X-Client-Instance": {"0f8fad5b-d9cb-469f-a165-70867728950e"}})

	cases := []struct {
		name, wrapper, inError string
	}{
		{"no payload", `{"type":"` + pingName + `","correlationId":"bad-1","timeoutMs":5000}`, `no "payload"`},
		{"payload number", `{"type":"` + pingName + `","payload":42,"correlationId":"bad-2"}`, `"payload" is a number`},
		{"no type", `{"payload":"{}","correlationId":"bad-3"}`, `no "type"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var id struct {
				CorrelationID string `json:"correlationId"`
			}
			require.NoError(t, json.Unmarshal([]byte(c.wrapper), &id))
			p.write(`{"type":1,"target":"SendMessage","arguments":[` + c.wrapper + `]}`)
			f, w := p.nextFrame(10 * time.Second)
			require.Equal(t, "ResponseMessage", f.Target)
			require.Equal(t, id.CorrelationID, w.CorrelationID)
			var e struct{ Error, Code string }
			require.NoError(t, json.Unmarshal([]byte(w.Payload), &e), w.Payload)
			require.Contains(t, e.Error, "Invalid message")
			require.Contains(t, e.Error, c.inError)
			require.Equal(t, "bad_payload", e.Code)
		})
	}

	// The connection goes on.
	p.write(`{"type":1,"target":"SendMessage","arguments":[{"type":"` + pingName + `","payload":"{\"Message\":\"after\"}","correlationId":"good"}]}`)
	_, w := p.nextFrame(10 * time.Second)
	require.Equal(t, "good", w.CorrelationID)
	require.JSONEq(t, `{"Reply":"Pong: after"}`, w.Payload)
}
