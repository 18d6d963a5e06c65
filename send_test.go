package communication_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// Other is a response type no handler answers with.
type Other struct{ Reply string }

// pingPongServer answers Ping with Pong under the .NET names of
// PROTOCOL.md, and Boom with an error.
func pingPongServer(t *testing.T) *testServer {
	t.Helper()
	ts := newServer(t)
	h := ts.Handlers()
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Ping, Pong](func(ctx context.Context, p Ping) (Pong, error) {
		return Pong{Reply: "Pong: " + p.Message}, nil
	}), communication.WithName(pingName), communication.WithResponseName(pongName)))
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Boom, BoomBack](func(context.Context, Boom) (BoomBack, error) {
		return BoomBack{}, errors.New("boom")
	})))
	return ts
}

// pingPongClient is a started client that knows the names of Ping and
// Pong, the latter with another assembly version than the server's.
func pingPongClient(t *testing.T, ts *testServer) *communication.Client {
	t.Helper()
	c := newClient(t, ts)
	require.NoError(t, communication.RegisterName[Ping](c.Handlers(), pingName))
	require.NoError(t, communication.RegisterName[Pong](c.Handlers(),
		"MyApp.PingResponse, MyApp, Version=2.0.0.0, Culture=neutral, PublicKeyToken=null"))
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	waitConnected(t, ts, c.ConnectionID())
	return c
}

// TestSendChecksAnswerType: asking for a type the answer is not is an
// error that names both types, not a zero value.
func TestSendChecksAnswerType(t *testing.T) {
	t.Parallel()
	ts := pingPongServer(t)
	c := pingPongClient(t, ts)
	ctx := ctxT(t, 10*time.Second)

	other, err := communication.Send[Other](ctx, c, Ping{Message: "x"})
	require.ErrorIs(t, err, communication.ErrUnexpectedType)
	require.ErrorIs(t, err, communication.ErrBadMessage)
	require.Zero(t, other)
	require.ErrorContains(t, err, "MyApp.PingResponse")
	require.ErrorContains(t, err, communication.TypeName(reflectType[Other]()))

	// Without the name registered, a Go Pong is not the .NET
	// MyApp.PingResponse either.
	bare := newClient(t, ts)
	require.NoError(t, communication.RegisterName[Ping](bare.Handlers(), pingName))
	require.NoError(t, bare.Start(ctxT(t, 10*time.Second)))
	_, err = communication.Send[Pong](ctx, bare, Ping{Message: "x"})
	require.ErrorIs(t, err, communication.ErrUnexpectedType)
}

// TestSendAcceptsMatchingAnswers: the answer types Send takes for Resp.
func TestSendAcceptsMatchingAnswers(t *testing.T) {
	t.Parallel()
	ts := pingPongServer(t)
	c := pingPongClient(t, ts)
	ctx := ctxT(t, 10*time.Second)

	t.Run("same full name, other assembly version", func(t *testing.T) {
		pong, err := communication.Send[Pong](ctx, c, Ping{Message: "a"})
		require.NoError(t, err)
		require.Equal(t, "Pong: a", pong.Reply)
	})
	t.Run("pointer to the named type", func(t *testing.T) {
		pong, err := communication.Send[*Pong](ctx, c, Ping{Message: "b"})
		require.NoError(t, err)
		require.Equal(t, "Pong: b", pong.Reply)
	})
	t.Run("type the registered type is assignable to", func(t *testing.T) {
		pong, err := communication.Send[struct{ Reply string }](ctx, c, Ping{Message: "c"})
		require.NoError(t, err)
		require.Equal(t, "Pong: c", pong.Reply)
	})
	t.Run("interface", func(t *testing.T) {
		v, err := communication.Send[any](ctx, c, Ping{Message: "d"})
		require.NoError(t, err)
		require.Equal(t, map[string]any{"Reply": "Pong: d"}, v)
	})
}

// TestSendErrorAnswerIsRemoteError: an error answer comes in the request's
// type; it stays a RemoteError whatever type was asked for.
func TestSendErrorAnswerIsRemoteError(t *testing.T) {
	t.Parallel()
	ts := pingPongServer(t)
	c := pingPongClient(t, ts)
	ctx := ctxT(t, 10*time.Second)
	for _, send := range []func() error{
		func() error { _, err := communication.Send[BoomBack](ctx, c, Boom{}); return err },
		func() error { _, err := communication.Send[Other](ctx, c, Boom{}); return err },
	} {
		err := send()
		var re *communication.RemoteError
		require.ErrorAs(t, err, &re)
		require.Equal(t, "boom", re.Message)
		require.Equal(t, communication.CodeHandlerError, re.Code)
		require.NotErrorIs(t, err, communication.ErrUnexpectedType)
	}
}
