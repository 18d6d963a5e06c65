package communication_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// TestSlowConsumer connects a client that stops reading: the server drops
// it once its bounded queue is full, and the others are unaffected.
func TestSlowConsumer(t *testing.T) {
	ts := newServer(t, communication.WithSendQueueBytes(64<<10), communication.WithWriteTimeout(300*time.Millisecond))
	good := newClient(t, ts)
	got := make(chan struct{})
	each := make(chan struct{}, 1)
	require.NoError(t, communication.HandlePost(good.Handlers(), communication.PostHandlerFunc[Note](func(ctx context.Context, n Note) error {
		if n.Text == "still fine" {
			close(got)
			return nil
		}
		each <- struct{}{}
		return nil
	})))
	require.NoError(t, good.Start(ctxT(t, 10*time.Second)))
	waitConnected(t, ts, good.ConnectionID())

	// The slow one: a handshake, then never another read.
	ctx := ctxT(t, 30*time.Second)
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + ts.Pattern()
	ws, _, err := websocket.Dial(ctx, url, nil)
	require.NoError(t, err)
	defer ws.CloseNow()
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte("{\"protocol\":\"json\",\"version\":1}\x1e")))
	_, _, err = ws.Read(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(ts.ConnectionIDs()) == 2 }, 10*time.Second, time.Millisecond)

	// Each broadcast waits until the good client has it, so that only the
	// one that does not read falls behind, however slow the machine.
	big := Note{Text: strings.Repeat("x", 4096)}
	dropped := false
	for i := 0; i < 20000 && !dropped; i++ {
		require.NoError(t, ts.PostAll(ctx, big))
		select {
		case <-each:
		case <-ctx.Done():
			t.Fatal("the good client stopped receiving")
		}
		dropped = len(ts.ConnectionIDs()) == 1
	}
	require.True(t, dropped, "the slow consumer was never dropped")
	require.Equal(t, []string{good.ConnectionID()}, ts.ConnectionIDs())

	// The good client still gets what is posted.
	require.NoError(t, ts.Post(ctx, good.ConnectionID(), Note{Text: "still fine"}))
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("the good client stopped receiving")
	}
}

// TestShutdown lets an in-flight request finish, fails what outlives the
// deadline, and refuses new connections.
func TestShutdown(t *testing.T) {
	ts := newServer(t)
	entered := make(chan struct{}, 2)
	release := make(chan struct{})
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Echo, EchoBack](func(ctx context.Context, e Echo) (EchoBack, error) {
		entered <- struct{}{}
		if e.N == 1 {
			<-release // finishes during Shutdown
			return EchoBack{N: 1}, nil
		}
		<-ctx.Done() // outlives Shutdown's deadline
		return EchoBack{}, ctx.Err()
	})))
	c := startClient(t, ts, communication.WithReconnectDelays(time.Hour))
	ctx := ctxT(t, 30*time.Second)
	finished := make(chan error, 1)
	go func() {
		back, err := communication.Send[EchoBack](ctx, c, Echo{N: 1})
		if err == nil && back.N != 1 {
			err = context.Canceled
		}
		finished <- err
	}()
	hung := make(chan error, 1)
	go func() {
		_, err := communication.Send[EchoBack](ctx, c, Echo{N: 2})
		hung <- err
	}()
	<-entered
	<-entered

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(shutdownCtx) }()

	// New connections are refused while it shuts down.
	require.Eventually(t, func() bool {
		resp, err := http.Post(ts.URL+"/hub/negotiate", "text/plain", nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	}, 10*time.Second, time.Millisecond)

	close(release)
	require.NoError(t, <-finished, "the in-flight request did not finish")
	require.ErrorIs(t, <-shut, context.DeadlineExceeded)
	require.ErrorIs(t, <-hung, communication.ErrConnectionLost)
	require.Empty(t, ts.ConnectionIDs())
	require.ErrorIs(t, ts.Post(ctx, "x", Note{}), communication.ErrClosed)
}
