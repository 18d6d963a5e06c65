package communication_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// codeNotFound is an application's own code.
const codeNotFound communication.Code = "not_found"

// errNoFarm is an application's sentinel that a handler wraps.
var errNoFarm = errors.New("no such farm")

// failing answers Ping by failing as its message says.
func failing(_ context.Context, p Ping) (Pong, error) {
	switch p.Message {
	case "plain":
		return Pong{}, errors.New("boom")
	case "coded":
		return Pong{}, communication.NewError(codeNotFound, errNoFarm)
	case "wrapped":
		return Pong{}, fmt.Errorf("loading farm 7: %w", communication.NewError(codeNotFound, errNoFarm))
	case "no code":
		return Pong{}, communication.NewError("", errNoFarm)
	case "no message":
		return Pong{}, communication.NewError(codeNotFound, nil)
	}
	return Pong{Reply: p.Message}, nil
}

var codeCases = []struct {
	msg, wantMessage string
	wantCode         communication.Code
}{
	{"plain", "boom", communication.CodeHandlerError},
	{"coded", "no such farm", codeNotFound},
	{"wrapped", "no such farm", codeNotFound},
	{"no code", "no such farm", communication.CodeHandlerError},
	{"no message", "not_found", codeNotFound},
}

// TestHandlerChoosesCode: a handler that returns an *Error (itself or
// wrapped) chooses the code and message its caller sees, in both
// directions; any other error is CodeHandlerError with the error's text.
func TestHandlerChoosesCode(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Ping, Pong](failing)))
	h := communication.NewHandlers()
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Ping, Pong](failing)))
	c := startClient(t, ts, communication.WithHandlers(h))
	ctx := ctxT(t, 10*time.Second)

	for _, to := range []struct {
		name string
		ep   communication.Endpoint
	}{{"client to server", c}, {"server to client", ts.To(c.ConnectionID())}} {
		for _, tc := range codeCases {
			t.Run(to.name+"/"+tc.msg, func(t *testing.T) {
				_, err := communication.Send[Pong](ctx, to.ep, Ping{Message: tc.msg})
				var re *communication.RemoteError
				require.ErrorAs(t, err, &re)
				require.Equal(t, tc.wantCode, re.Code)
				require.Equal(t, tc.wantMessage, re.Message)
				require.NotErrorIs(t, err, communication.ErrUnknownType)
			})
		}
	}
}

// TestHandlerCodeOnTheWire: the chosen code travels beside the .NET error
// answer, which keeps its form ({"Error": "<message>"} in the request's
// type), so that a .NET caller reads the message as it reads its own.
func TestHandlerCodeOnTheWire(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Ping, Pong](failing),
		communication.WithName(pingName)))
	p := dialRaw(t, ts, http.Header{"X-Client-Instance": {"0f8fad5b-d9cb-469f-a165-70867728950e"}})
	p.write(`{"type":1,"target":"SendMessage","arguments":[{"type":"` + pingName + `","payload":"{\"Message\":\"wrapped\"}"}]}`)
	f, w := p.nextFrame(10 * time.Second)
	require.Equal(t, "ResponseMessage", f.Target)
	require.Equal(t, pingName, w.Type)
	var e map[string]string
	require.NoError(t, json.Unmarshal([]byte(w.Payload), &e), w.Payload)
	require.Equal(t, map[string]string{"Error": "no such farm", "Code": "not_found"}, e)
}

// TestError: an *Error shows its code and message, and errors.Is and
// errors.As see through it.
func TestError(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("handler: %w", communication.NewError(codeNotFound, errNoFarm))
	require.ErrorIs(t, err, errNoFarm)
	var ce *communication.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, codeNotFound, ce.Code())
	require.Equal(t, "no such farm", ce.Message())
	require.Equal(t, "handler: not_found: no such farm", err.Error())
	require.Equal(t, communication.CodeHandlerError, communication.NewError("", errNoFarm).Code())
	require.Equal(t, "timeout", communication.CodeTimeout.String())
}

// TestCodeOf: the code of the first coded error in the chain, whether a
// handler chose it or the remote side reported it.
func TestCodeOf(t *testing.T) {
	t.Parallel()
	remote := &communication.RemoteError{Type: "T", Message: "m", Code: communication.CodeTimeout}
	for _, tc := range []struct {
		err  error
		want communication.Code
	}{
		{nil, ""},
		{errors.New("plain"), ""},
		{communication.NewError(codeNotFound, nil), codeNotFound},
		{fmt.Errorf("wrapped: %w", remote), communication.CodeTimeout},
		{communication.NewError(codeNotFound, remote), codeNotFound},
		{errors.Join(errors.New("a"), remote), communication.CodeTimeout},
		{&communication.RemoteError{Message: "from .NET"}, ""},
	} {
		require.Equal(t, tc.want, communication.CodeOf(tc.err), "%v", tc.err)
	}
}
