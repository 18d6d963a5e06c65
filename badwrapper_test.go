package communication_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// TestBadWrapperAnsweredWithCorrelationID: a request whose wrapper is not
// valid (no type, no payload, a payload that is not a string) is answered
// with an error that carries the request's correlation id, so that its
// caller learns at once instead of at its timeout.
func TestBadWrapperAnsweredWithCorrelationID(t *testing.T) {
	t.Parallel()
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

// TestBadAnswerFailsRequestAtOnce: an answer whose wrapper cannot be read
// but names its request fails that request at once with ErrBadMessage,
// instead of leaving it to its timeout.
func TestBadAnswerFailsRequestAtOnce(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	p := dialRaw(t, ts, http.Header{"X-Tharga-Correlation": {"1"}})
	require.Eventually(t, func() bool { return len(ts.ConnectionIDs()) == 1 }, 5*time.Second, time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, err := communication.Send[Pong](context.Background(), ts.To(ts.ConnectionIDs()[0]), Ping{Message: "hi"})
		done <- err
	}()
	f, w := p.nextFrame(10 * time.Second)
	require.Equal(t, "SendMessage", f.Target)
	require.NotEmpty(t, w.CorrelationID)
	p.write(`{"type":1,"target":"ResponseMessage","arguments":[{"type":"Pong","correlationId":"` + w.CorrelationID + `"}]}`)
	select {
	case err := <-done:
		require.ErrorIs(t, err, communication.ErrBadMessage)
		require.NotErrorIs(t, err, communication.ErrTimeout)
	case <-time.After(10 * time.Second):
		t.Fatal("the request waited for its timeout")
	}
}
