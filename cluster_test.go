package communication_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
	"github.com/tharga/communication-go/backplanetest"
)

// clusterClient is a client of one node of a test cluster, with what it
// received.
type clusterClient struct {
	*communication.Client
	node  int
	notes chan Note
}

// newCluster starts n nodes on one backplane and clientsPer clients on
// each; every client answers Echo with its node and instance.
func newCluster(t *testing.T, bp communication.Backplane, n, clientsPer int, opts ...communication.ServerOption) ([]*testServer, []*clusterClient) {
	t.Helper()
	var nodes []*testServer
	var clients []*clusterClient
	for i := range n {
		o := append([]communication.ServerOption{communication.WithBackplane(bp), communication.WithNodeName(fmt.Sprintf("node-%d", i))}, opts...)
		ts := newServer(t, o...)
		nodes = append(nodes, ts)
		for range clientsPer {
			cc := &clusterClient{node: i, notes: make(chan Note, 100)}
			h := communication.NewHandlers()
			require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[Note](func(_ context.Context, m Note) error {
				cc.notes <- m
				return nil
			})))
			require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Echo, EchoBack](func(_ context.Context, e Echo) (EchoBack, error) {
				return EchoBack{N: e.N*10 + cc.node}, nil
			})))
			cc.Client = startClient(t, ts, communication.WithHandlers(h), communication.WithClientInstance(uuid.NewString()))
			clients = append(clients, cc)
		}
	}
	return nodes, clients
}

func recvNote(t *testing.T, ch chan Note, what string) Note {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s", what)
		return Note{}
	}
}

// TestClusterInMemory runs the cross-node suite on one MemoryBackplane
// shared by the nodes.
func TestClusterInMemory(t *testing.T) {
	t.Parallel()
	bp := communication.NewMemoryBackplane()
	backplanetest.Run(t, func(*testing.T, string) communication.Backplane { return bp })
}

// TestClusterFailsFast: a request to a client on another node fails at
// once, not at its timeout, when the client leaves or its node shuts down.
func TestClusterFailsFast(t *testing.T) {
	t.Parallel()
	bp := communication.NewMemoryBackplane()
	nodes, _ := newCluster(t, bp, 2, 0)
	entered := make(chan struct{}, 4)
	h := communication.NewHandlers()
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Hang, HangBack](func(ctx context.Context, _ Hang) (HangBack, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return HangBack{}, ctx.Err()
	})))
	c := startClient(t, nodes[1], communication.WithHandlers(h), communication.WithReconnectDelays(time.Hour))

	// The client leaves while the request waits.
	done := make(chan error, 1)
	go func() {
		_, err := communication.Send[HangBack](ctxT(t, time.Minute), nodes[0].To(c.ConnectionID()), Hang{})
		done <- err
	}()
	<-entered
	nodes[1].killConnections()
	select {
	case err := <-done:
		require.ErrorIs(t, err, communication.ErrConnectionLost)
	case <-time.After(20 * time.Second):
		t.Fatal("the request waited for its timeout after its client left")
	}

	// The node holding the client shuts down while the request waits.
	c2 := startClient(t, nodes[1], communication.WithHandlers(h))
	go func() {
		_, err := communication.Send[HangBack](ctxT(t, time.Minute), nodes[0].To(c2.ConnectionID()), Hang{})
		done <- err
	}()
	<-entered
	require.NoError(t, nodes[1].Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, communication.ErrConnectionLost)
	case <-time.After(20 * time.Second):
		t.Fatal("the request waited for its timeout after its node shut down")
	}
	err := nodes[0].Post(ctxT(t, 5*time.Second), c2.ConnectionID(), Note{})
	require.ErrorIs(t, err, communication.ErrNotConnected, "the node's connections are forgotten")
}

// TestClusterRequestDeadlines: a request to a client on another node
// without a deadline of its own gets the send timeout (ErrTimeout, which
// matches context.DeadlineExceeded), and one with a deadline gets that;
// cancelling it ends the wait at once. The client's handler runs under the
// request's deadline (not its own default of a minute) either way, and no
// timer or goroutine outlives the requests (goleak, in TestMain).
func TestClusterRequestDeadlines(t *testing.T) {
	t.Parallel()
	// Long enough for an answer on a loaded machine under the race
	// detector, short beside the handlers' default timeout.
	const sendTimeout = 2 * time.Second
	bp := communication.NewMemoryBackplane()
	nodes, clients := newCluster(t, bp, 2, 1, communication.WithSendTimeout(sendTimeout))
	deadlines := make(chan time.Time, 4)
	h := communication.NewHandlers()
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Hang, HangBack](func(ctx context.Context, _ Hang) (HangBack, error) {
		dl, _ := ctx.Deadline()
		deadlines <- dl
		<-ctx.Done()
		return HangBack{}, ctx.Err()
	})))
	hang := startClient(t, nodes[1], communication.WithHandlers(h))
	to := nodes[0].To(hang.ConnectionID())
	// requireBy checks that the handler's deadline comes from a request
	// sent at start with the given timeout: after start, and well before
	// the handler's own default would put it.
	requireBy := func(start time.Time, timeout time.Duration) {
		t.Helper()
		dl := <-deadlines
		require.True(t, dl.After(start), "the handler's deadline %v is before the request was sent", dl)
		require.True(t, dl.Before(start.Add(timeout+communication.DefaultHandlerTimeout/2)),
			"the handler's deadline %v is not the request's", dl.Sub(start))
	}

	// Answered, without a deadline.
	got, err := communication.Send[EchoBack](context.Background(), nodes[0].To(clients[1].ConnectionID()), Echo{N: 4})
	require.NoError(t, err)
	require.Equal(t, 41, got.N)

	// No deadline: the send timeout.
	start := time.Now()
	_, err = communication.Send[HangBack](context.Background(), to, Hang{})
	require.ErrorIs(t, err, communication.ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	requireBy(start, sendTimeout)

	// A deadline of its own, shorter than the send timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = communication.Send[HangBack](ctx, to, Hang{})
	require.ErrorIs(t, err, communication.ErrTimeout)
	requireBy(start, 100*time.Millisecond)

	// Cancelled while it waits.
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := communication.Send[HangBack](ctx, to, Hang{})
		done <- err
	}()
	<-deadlines
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

// TestNegotiateOnAnotherNode: negotiations are per node; a transport
// request that reaches another node than its negotiate is refused with a
// message that says why (sticky sessions).
func TestNegotiateOnAnotherNode(t *testing.T) {
	t.Parallel()
	bp := communication.NewMemoryBackplane()
	nodes, _ := newCluster(t, bp, 2, 0)
	_, _, token := negotiate(t, nodes[0], nil)
	req, err := http.NewRequestWithContext(ctxT(t, 5*time.Second), http.MethodGet, nodes[1].URL+nodes[1].Pattern()+"?id="+token, nil)
	require.NoError(t, err)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, string(body), "sticky sessions")
}

// TestClusterSubscriptions: subscription counts are cluster-wide: a
// subscriber on one node makes the clients of every node see
// HasSubscribers; a node that joins later learns the active set; the
// subscriptions of a node that leaves end with it.
func TestClusterSubscriptions(t *testing.T) {
	t.Parallel()
	bp := communication.NewMemoryBackplane()
	nodes, _ := newCluster(t, bp, 2, 0)
	ctx := ctxT(t, 30*time.Second)
	onB, changesB := subsClient(t, nodes[1])

	subA, err := communication.Subscribe[Farm](ctx, nodes[0].Server, "7")
	require.NoError(t, err)
	waitChange(t, changesB, change[Farm]("7", true))
	require.True(t, communication.HasSubscribers[Farm](onB, "7"))

	// A second subscriber of the same topic/key, on another node, changes
	// nothing for the clients; the counts add up.
	subB, err := communication.Subscribe[Farm](ctx, nodes[1].Server, "7")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		for _, s := range nodes[0].Subscriptions() {
			if s.Topic == topic[Farm]() && s.Key == "7" && s.Count == 2 {
				return true
			}
		}
		return false
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, subA.Close())
	noChange(t, nodes[1], changesB)
	require.True(t, communication.HasSubscribers[Farm](onB, "7"))
	require.NoError(t, subB.Close())
	waitChange(t, changesB, change[Farm]("7", false))

	// A node that joins later learns what is active elsewhere.
	sub, err := communication.Subscribe[Herd](ctx, nodes[0].Server)
	require.NoError(t, err)
	late := newServer(t, communication.WithBackplane(bp), communication.WithNodeName("late"))
	onLate, changesLate := subsClient(t, late)
	waitChange(t, changesLate, change[Herd]("", true))
	require.True(t, communication.HasSubscribers[Herd](onLate, "any key"))

	// The node leaves: its subscriptions end everywhere.
	require.NoError(t, nodes[0].Close())
	waitChange(t, changesLate, change[Herd]("", false))
	waitChange(t, changesB, change[Herd]("", false))
	_ = sub.Close()
}
