package communication_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

func TestPostBothWaysAndBroadcast(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	got := make(chan communication.Sender, 1)
	require.NoError(t, communication.HandlePost(ts.Handlers(), communication.PostHandlerFunc[Note](func(ctx context.Context, n Note) error {
		s, ok := communication.SenderFrom(ctx)
		require.True(t, ok)
		require.Equal(t, "hello server", n.Text)
		got <- s
		return nil
	})))
	var clients []*communication.Client
	var inboxes []chan Note
	for range 3 {
		inbox := make(chan Note, 4)
		c := newClient(t, ts)
		require.NoError(t, communication.HandlePost(c.Handlers(), communication.PostHandlerFunc[Note](func(ctx context.Context, n Note) error {
			inbox <- n
			return nil
		})))
		require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
		waitConnected(t, ts, c.ConnectionID())
		clients = append(clients, c)
		inboxes = append(inboxes, inbox)
	}
	ctx := ctxT(t, 10*time.Second)

	require.NoError(t, clients[0].Post(ctx, Note{Text: "hello server"}))
	s := <-got
	require.Equal(t, clients[0].ConnectionID(), s.ConnectionID)
	require.Equal(t, communication.TypeName(reflectType[Note]()), s.Type)

	require.NoError(t, ts.Post(ctx, clients[1].ConnectionID(), Note{Text: "just you"}))
	require.Equal(t, "just you", (<-inboxes[1]).Text)

	require.NoError(t, ts.PostAll(ctx, Note{Text: "everybody"}))
	for _, inbox := range inboxes {
		require.Equal(t, "everybody", (<-inbox).Text)
	}
	require.ErrorIs(t, ts.Post(ctx, "no-such-connection", Note{}), communication.ErrNotConnected)
}

func TestRequestBothWays(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Ping, Pong](func(ctx context.Context, p Ping) (Pong, error) {
		return Pong{Reply: "Pong: " + p.Message}, nil
	})))
	c := newClient(t, ts)
	require.NoError(t, communication.HandleSend(c.Handlers(), communication.SendHandlerFunc[Ping, Pong](func(ctx context.Context, p Ping) (Pong, error) {
		s, _ := communication.SenderFrom(ctx)
		return Pong{Reply: "client " + s.ConnectionID + ": " + p.Message}, nil
	})))
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	waitConnected(t, ts, c.ConnectionID())
	ctx := ctxT(t, 10*time.Second)

	pong, err := communication.Send[Pong](ctx, c, Ping{Message: "Ping"})
	require.NoError(t, err)
	require.Equal(t, "Pong: Ping", pong.Reply)

	pong, err = communication.Send[Pong](ctx, ts.To(c.ConnectionID()), Ping{Message: "hi"})
	require.NoError(t, err)
	require.Equal(t, "client "+c.ConnectionID()+": hi", pong.Reply)

	_, err = communication.Send[Pong](ctx, ts.To("nobody"), Ping{})
	require.ErrorIs(t, err, communication.ErrNotConnected)
}

// TestManyInFlight sends 1,000 requests at once on one connection, in each
// direction, and checks that every answer reaches its own caller.
func TestManyInFlight(t *testing.T) {
	t.Parallel()
	const n = 1000
	ts := newServer(t, communication.WithMaxRequestsPerConnection(1000))
	echo := communication.SendHandlerFunc[Echo, EchoBack](func(ctx context.Context, e Echo) (EchoBack, error) {
		// Finish in an order unrelated to arrival.
		time.Sleep(time.Duration((e.N*7919)%5) * time.Millisecond)
		return EchoBack(e), nil
	})
	require.NoError(t, communication.HandleSend(ts.Handlers(), echo))
	c := newClient(t, ts, communication.WithMaxRequestsPerConnection(1000))
	require.NoError(t, communication.HandleSend(c.Handlers(), echo))
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	waitConnected(t, ts, c.ConnectionID())

	for _, dir := range []struct {
		name string
		to   communication.Endpoint
	}{{"client to server", c}, {"server to client", ts.To(c.ConnectionID())}} {
		t.Run(dir.name, func(t *testing.T) {
			ctx := ctxT(t, 30*time.Second)
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					back, err := communication.Send[EchoBack](ctx, dir.to, Echo{N: i})
					if err == nil && back.N != i {
						err = fmt.Errorf("request %d got the answer of %d", i, back.N)
					}
					if err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
		})
	}
}

// TestPostOrder sends 10,000 posts in a burst each way and checks they are
// handled in the order they were sent.
func TestPostOrder(t *testing.T) {
	t.Parallel()
	const n = 10000
	ts := newServer(t)
	serverSeen := make(chan int, n)
	require.NoError(t, communication.HandlePost(ts.Handlers(), communication.PostHandlerFunc[Seq](func(ctx context.Context, s Seq) error {
		serverSeen <- s.N
		return nil
	})))
	c := newClient(t, ts)
	clientSeen := make(chan int, n)
	require.NoError(t, communication.HandlePost(c.Handlers(), communication.PostHandlerFunc[Seq](func(ctx context.Context, s Seq) error {
		clientSeen <- s.N
		return nil
	})))
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	waitConnected(t, ts, c.ConnectionID())
	ctx := ctxT(t, 60*time.Second)

	check := func(t *testing.T, seen chan int) {
		for want := range n {
			select {
			case got := <-seen:
				require.Equal(t, want, got, "posts out of order")
			case <-ctx.Done():
				t.Fatalf("only %d of %d posts arrived", want, n)
			}
		}
	}
	t.Run("client to server", func(t *testing.T) {
		for i := range n {
			require.NoError(t, c.Post(ctx, Seq{N: i}))
		}
		check(t, serverSeen)
	})
	t.Run("server to client", func(t *testing.T) {
		for i := range n {
			require.NoError(t, ts.Post(ctx, c.ConnectionID(), Seq{N: i}))
		}
		check(t, clientSeen)
	})
}

// TestConnectionDropFailsPending kills the connection while requests wait
// in both directions: they fail at once with ErrConnectionLost, long before
// their timeout.
func TestConnectionDropFailsPending(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	entered := make(chan struct{}, 2)
	hang := communication.SendHandlerFunc[Hang, HangBack](func(ctx context.Context, h Hang) (HangBack, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return HangBack{}, ctx.Err()
	})
	require.NoError(t, communication.HandleSend(ts.Handlers(), hang))
	c := newClient(t, ts, communication.WithReconnectDelays(time.Hour))
	require.NoError(t, communication.HandleSend(c.Handlers(), hang))
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	waitConnected(t, ts, c.ConnectionID())

	ctx := ctxT(t, time.Minute) // far beyond what the test may take
	results := make(chan error, 2)
	go func() {
		_, err := communication.Send[HangBack](ctx, c, Hang{})
		results <- err
	}()
	go func() {
		_, err := communication.Send[HangBack](ctx, ts.To(c.ConnectionID()), Hang{})
		results <- err
	}()
	<-entered
	<-entered
	ts.killConnections()
	for range 2 {
		select {
		case err := <-results:
			require.ErrorIs(t, err, communication.ErrConnectionLost)
		case <-time.After(10 * time.Second):
			t.Fatal("a pending request did not fail when its connection dropped")
		}
	}
}

func TestReconnect(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Ping, Pong](func(ctx context.Context, p Ping) (Pong, error) {
		return Pong{Reply: p.Message}, nil
	})))
	states := make(chan communication.StateChange, 64)
	c := newClient(t, ts, communication.WithStateHandler(func(sc communication.StateChange) { states <- sc }))
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	require.Equal(t, communication.Connecting, (<-states).State)
	first := <-states
	require.Equal(t, communication.Connected, first.State)
	require.True(t, c.IsConnected())

	ts.killConnections()
	require.Equal(t, communication.Reconnecting, (<-states).State)
	// Attempts may fail (the kill also cut idle keep-alive connections):
	// each is reported, still Reconnecting, until one succeeds.
	second := <-states
	for second.State == communication.Reconnecting {
		require.Error(t, second.Err)
		second = <-states
	}
	require.Equal(t, communication.Connected, second.State)
	require.NotEqual(t, first.ConnectionID, second.ConnectionID)
	waitConnected(t, ts, second.ConnectionID)

	pong, err := communication.Send[Pong](ctxT(t, 10*time.Second), c, Ping{Message: "again"})
	require.NoError(t, err)
	require.Equal(t, "again", pong.Reply)

	require.NoError(t, c.Close())
	require.Equal(t, communication.Disconnected, (<-states).State)
	require.ErrorIs(t, c.Post(context.Background(), Note{}), communication.ErrClosed)
}

func TestFirstConnectIsRetried(t *testing.T) {
	t.Parallel()
	srv, err := communication.AddServer()
	require.NoError(t, err)
	mux := http.NewServeMux()
	srv.Mount(mux)
	// A server that is not up yet: the client keeps trying.
	var up atomic.Bool
	ts := serveTest(t, srv, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	states := make(chan communication.StateChange, 64)
	c := newClient(t, ts, communication.WithReconnectDelays(10*time.Millisecond),
		communication.WithStateHandler(func(sc communication.StateChange) { states <- sc }))
	startErr := make(chan error, 1)
	go func() { startErr <- c.Start(ctxT(t, 30*time.Second)) }()
	require.Equal(t, communication.Connecting, (<-states).State)
	up.Store(true)
	require.NoError(t, <-startErr)
	require.True(t, c.IsConnected())
}

func TestTimeoutAndLateAnswer(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	release := make(chan struct{})
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Echo, EchoBack](func(ctx context.Context, e Echo) (EchoBack, error) {
		if e.N == 1 {
			<-release // answer only after the caller gave up
		}
		return EchoBack(e), nil
	})))
	c := startClient(t, ts)

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := communication.Send[EchoBack](short, c, Echo{N: 1})
	require.ErrorIs(t, err, communication.ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(release)

	for i := 2; i < 50; i++ {
		back, err := communication.Send[EchoBack](ctxT(t, 10*time.Second), c, Echo{N: i})
		require.NoError(t, err)
		require.Equal(t, i, back.N, "a late answer reached another request")
	}
}

func TestHandlerDeadlineTravels(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	cancelled := make(chan error, 1)
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Hang, HangBack](func(ctx context.Context, h Hang) (HangBack, error) {
		<-ctx.Done()
		cancelled <- ctx.Err()
		return HangBack{}, ctx.Err()
	})))
	c := startClient(t, ts)
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := communication.Send[HangBack](short, c, Hang{})
	require.ErrorIs(t, err, communication.ErrTimeout)
	select {
	case err := <-cancelled:
		require.ErrorIs(t, err, context.DeadlineExceeded)
	case <-time.After(10 * time.Second):
		t.Fatal("the hanging handler's context was not cancelled")
	}
}

func TestRemoteErrors(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Boom, BoomBack](func(ctx context.Context, b Boom) (BoomBack, error) {
		panic("secret internal state")
	})))
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Ping, Pong](func(ctx context.Context, p Ping) (Pong, error) {
		if p.Message == "fail" {
			return Pong{}, errors.New("no pong today")
		}
		return Pong{Reply: p.Message}, nil
	})))
	a := startClient(t, ts)
	b := startClient(t, ts)
	ctx := ctxT(t, 10*time.Second)

	_, err := communication.Send[BoomBack](ctx, a, Boom{})
	var re *communication.RemoteError
	require.ErrorAs(t, err, &re)
	require.Equal(t, communication.CodeHandlerPanic, re.Code)
	require.NotContains(t, re.Message, "secret")
	require.NotContains(t, re.Message, "goroutine")

	_, err = communication.Send[Pong](ctx, a, Ping{Message: "fail"})
	require.ErrorAs(t, err, &re)
	require.Equal(t, "no pong today", re.Message)
	require.Equal(t, communication.CodeHandlerError, re.Code)

	_, err = communication.Send[Pong](ctx, a, Note{Text: "nobody handles notes"})
	require.ErrorIs(t, err, communication.ErrUnknownType)

	// The panic hurt nobody: both clients go on.
	for _, c := range []*communication.Client{a, b} {
		pong, err := communication.Send[Pong](ctx, c, Ping{Message: "still here"})
		require.NoError(t, err)
		require.Equal(t, "still here", pong.Reply)
	}
}

func TestConcurrencyBound(t *testing.T) {
	t.Parallel()
	const bound = 4
	ts := newServer(t, communication.WithMaxRequestsPerConnection(bound))
	var running, peak atomic.Int32
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Echo, EchoBack](func(ctx context.Context, e Echo) (EchoBack, error) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		running.Add(-1)
		return EchoBack(e), nil
	})))
	c := startClient(t, ts)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := communication.Send[EchoBack](ctxT(t, 30*time.Second), c, Echo{N: i})
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	require.LessOrEqual(t, peak.Load(), int32(bound))
	require.Greater(t, peak.Load(), int32(1), "requests should run concurrently")
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	_, err := communication.AddServer(communication.WithMaxMessageBytes(10), communication.WithKeepAliveInterval(-1))
	require.Error(t, err)
	require.Contains(t, err.Error(), "maximum message size")
	require.Contains(t, err.Error(), "keep-alive")
	_, err = communication.AddClient()
	require.ErrorContains(t, err, "server address is required")
	_, err = communication.AddClient(communication.WithServerAddress("ftp://x"), communication.WithReconnectDelays())
	require.ErrorContains(t, err, "http or https")
	require.ErrorContains(t, err, "reconnect delay")
}

func reflectType[T any]() reflect.Type { return reflect.TypeFor[T]() }

func TestMessagePackClient(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	serverNotes := make(chan Note, 1)
	require.NoError(t, communication.HandlePost(ts.Handlers(), communication.PostHandlerFunc[Note](func(ctx context.Context, n Note) error {
		serverNotes <- n
		return nil
	})))
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Ping, Pong](func(ctx context.Context, p Ping) (Pong, error) {
		return Pong{Reply: "Pong: " + p.Message}, nil
	})))
	c := newClient(t, ts, communication.WithProtocol(communication.MessagePack))
	clientNotes := make(chan Note, 1)
	require.NoError(t, communication.HandlePost(c.Handlers(), communication.PostHandlerFunc[Note](func(ctx context.Context, n Note) error {
		clientNotes <- n
		return nil
	})))
	require.NoError(t, communication.HandleSend(c.Handlers(), communication.SendHandlerFunc[Ping, Pong](func(ctx context.Context, p Ping) (Pong, error) {
		return Pong{Reply: "client: " + p.Message}, nil
	})))
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	waitConnected(t, ts, c.ConnectionID())
	ctx := ctxT(t, 10*time.Second)

	require.NoError(t, c.Post(ctx, Note{Text: "über msgpack"}))
	require.Equal(t, "über msgpack", (<-serverNotes).Text)
	require.NoError(t, ts.Post(ctx, c.ConnectionID(), Note{Text: "back"}))
	require.Equal(t, "back", (<-clientNotes).Text)
	pong, err := communication.Send[Pong](ctx, c, Ping{Message: "a"})
	require.NoError(t, err)
	require.Equal(t, "Pong: a", pong.Reply)
	pong, err = communication.Send[Pong](ctx, ts.To(c.ConnectionID()), Ping{Message: "b"})
	require.NoError(t, err)
	require.Equal(t, "client: b", pong.Reply)
}

// TestMountBesideRoot mounts the hub on a mux that also serves "GET /".
func TestMountBesideRoot(t *testing.T) {
	t.Parallel()
	srv, err := communication.AddServer()
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("GET /", http.NotFoundHandler())
	srv.Mount(mux)
	ts := serveTest(t, srv, mux)
	c := startClient(t, ts)
	require.True(t, c.IsConnected())
}

// TestSendTimeoutWithoutDeadline: a request whose context has no deadline
// ends after the send timeout, in both directions, with ErrTimeout
// (context.DeadlineExceeded too); the handler's context ends with it, as
// the deadline travels with the request.
func TestSendTimeoutWithoutDeadline(t *testing.T) {
	t.Parallel()
	const timeout = 150 * time.Millisecond
	ts := newServer(t, communication.WithSendTimeout(timeout))
	ended := make(chan error, 2)
	hang := communication.SendHandlerFunc[Hang, HangBack](func(ctx context.Context, h Hang) (HangBack, error) {
		<-ctx.Done()
		ended <- ctx.Err()
		return HangBack{}, ctx.Err()
	})
	require.NoError(t, communication.HandleSend(ts.Handlers(), hang))
	c := newClient(t, ts, communication.WithSendTimeout(timeout))
	require.NoError(t, communication.HandleSend(c.Handlers(), hang))
	require.NoError(t, c.Start(ctxT(t, 10*time.Second)))
	waitConnected(t, ts, c.ConnectionID())

	for _, to := range []communication.Endpoint{c, ts.To(c.ConnectionID())} {
		_, err := communication.Send[HangBack](context.Background(), to, Hang{})
		require.ErrorIs(t, err, communication.ErrTimeout)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		select {
		case err := <-ended:
			require.ErrorIs(t, err, context.DeadlineExceeded, "the handler's context ends at the request's deadline")
		case <-ctxT(t, 10*time.Second).Done():
			t.Fatal("the handler's context never ended")
		}
	}
	// The connection serves on. The request has a deadline of its own: the
	// send timeout is too short for a loaded machine under the race
	// detector.
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Echo, EchoBack](func(_ context.Context, e Echo) (EchoBack, error) {
		return EchoBack(e), nil
	})))
	got, err := communication.Send[EchoBack](ctxT(t, 10*time.Second), c, Echo{N: 7})
	require.NoError(t, err)
	require.Equal(t, 7, got.N)
}
