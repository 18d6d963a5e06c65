// Package backplanetest checks a communication.Backplane the way a cluster
// uses it: several Servers joined by it, with clients spread over them,
// posting, broadcasting and asking across nodes. Each implementation runs
// the same suite (the in-memory one in this module, the Redis one in its
// own), so that what "crossing nodes" guarantees is written down once.
package backplanetest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// The messages of the suite.
type (
	Note     struct{ Text string }
	Echo     struct{ N int }
	EchoBack struct{ N int }
)

const (
	nodes      = 3
	clientsPer = 2
	wait       = 10 * time.Second
)

// client is a client of one node, with what it received.
type client struct {
	*communication.Client
	node  int
	notes chan Note
}

// Run starts three nodes, each a Server whose Backplane join returns
// (called once per node, with the node's name: return one shared value or
// a new one per node, as the implementation needs), two clients on each,
// and checks across nodes: a broadcast reaches every client once; posts
// and requests reach a client by connection id and by instance; posts from
// one node to one connection keep their order; a post to a set and to all
// but one; nobody holding a connection is ErrNotConnected; 1,000 requests
// in flight all matched.
func Run(t *testing.T, join func(t *testing.T, node string) communication.Backplane) {
	var srvs []*communication.Server
	var clients []*client
	for i := range nodes {
		name := fmt.Sprintf("node-%d", i)
		srv, url := serve(t, join(t, name), name)
		srvs = append(srvs, srv)
		for range clientsPer {
			clients = append(clients, connect(t, url, i))
		}
	}
	// A node claims a connection a moment after the client's Start
	// returns: wait until another node finds each.
	for _, c := range clients {
		located(t, srvs[(c.node+1)%nodes], c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)

	t.Run("broadcast reaches every client of every node once", func(t *testing.T) {
		require.NoError(t, srvs[0].PostAll(ctx, Note{Text: "to all"}))
		for _, c := range clients {
			require.Equal(t, "to all", recv(t, c, "broadcast").Text)
		}
		require.NoError(t, srvs[2].PostAll(ctx, Note{Text: "again"}))
		for _, c := range clients {
			require.Equal(t, "again", recv(t, c, "second broadcast").Text)
			select {
			case n := <-c.notes:
				t.Fatalf("a client got a broadcast twice: %+v", n)
			default:
			}
		}
	})

	t.Run("post and request to a client on another node, by id and by instance", func(t *testing.T) {
		target := clients[5] // on node 2
		require.NoError(t, srvs[0].Post(ctx, target.ConnectionID(), Note{Text: "by id"}))
		require.Equal(t, "by id", recv(t, target, "post by id").Text)
		require.NoError(t, srvs[1].PostToInstance(ctx, target.Instance(), Note{Text: "by instance"}))
		require.Equal(t, "by instance", recv(t, target, "post by instance").Text)

		got, err := communication.Send[EchoBack](ctx, srvs[0].To(target.ConnectionID()), Echo{N: 7})
		require.NoError(t, err)
		require.Equal(t, 72, got.N, "answered by the client on node 2")
		got, err = communication.Send[EchoBack](ctx, srvs[1].ToInstance(target.Instance()), Echo{N: 8})
		require.NoError(t, err)
		require.Equal(t, 82, got.N)
	})

	t.Run("posts from one node to one connection keep their order", func(t *testing.T) {
		target := clients[3] // on node 1
		for i := range 300 {
			require.NoError(t, srvs[0].Post(ctx, target.ConnectionID(), Note{Text: fmt.Sprint(i)}))
		}
		for i := range 300 {
			require.Equal(t, fmt.Sprint(i), recv(t, target, "ordered post").Text)
		}
	})

	t.Run("post to a set, and to every client but one", func(t *testing.T) {
		err := srvs[0].PostTo(ctx, []string{clients[1].ConnectionID(), clients[4].ConnectionID(), "nobody"}, Note{Text: "set"})
		require.ErrorIs(t, err, communication.ErrNotConnected)
		require.NoError(t, srvs[0].PostAllExcept(ctx, clients[5].ConnectionID(), Note{Text: "not 5"}))
		// Posts from one node to a connection keep their order: a marker
		// that comes next proves nothing else came.
		for _, c := range clients {
			require.NoError(t, srvs[0].Post(ctx, c.ConnectionID(), Note{Text: "marker"}))
		}
		for i, c := range clients {
			if i == 1 || i == 4 {
				require.Equal(t, "set", recv(t, c, "post to a set").Text, "client %d", i)
			}
			if i != 5 {
				require.Equal(t, "not 5", recv(t, c, "post to all but one").Text, "client %d", i)
			}
			require.Equal(t, "marker", recv(t, c, "marker").Text, "client %d", i)
		}
	})

	t.Run("nobody holds the connection", func(t *testing.T) {
		require.ErrorIs(t, srvs[0].Post(ctx, "no-such-connection", Note{}), communication.ErrNotConnected)
		_, err := communication.Send[EchoBack](ctx, srvs[1].To("nobody"), Echo{})
		require.ErrorIs(t, err, communication.ErrNotConnected)
		_, err = communication.Send[EchoBack](ctx, srvs[0].ToInstance(uuid.NewString()), Echo{})
		require.ErrorIs(t, err, communication.ErrNotConnected)
	})

	t.Run("1,000 cross-node requests in flight", func(t *testing.T) {
		var wg sync.WaitGroup
		var bad atomic.Int64
		for i := range 1000 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				from := i % nodes
				to := clients[(clientsPer*(from+1)+i%clientsPer)%len(clients)] // a client of the next node
				got, err := communication.Send[EchoBack](ctx, srvs[from].To(to.ConnectionID()), Echo{N: i})
				if err != nil || got.N != i*10+to.node {
					if bad.Add(1) <= 5 {
						t.Logf("request %d: %v, %+v", i, err, got)
					}
				}
			}()
		}
		wg.Wait()
		require.Zero(t, bad.Load(), "requests failed or mismatched")
	})
}

// serve starts a Server on bp, mounted on a loopback HTTP server, for the
// life of t.
func serve(t *testing.T, bp communication.Backplane, name string) (*communication.Server, string) {
	t.Helper()
	srv, err := communication.AddServer(communication.WithBackplane(bp), communication.WithNodeName(name))
	require.NoError(t, err)
	mux := http.NewServeMux()
	srv.Mount(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		_ = srv.Close()
		hs.CloseClientConnections()
		hs.Close()
	})
	return srv, hs.URL
}

// connect starts a client of node (at url) that keeps the notes it gets
// and answers Echo with N*10 + its node.
func connect(t *testing.T, url string, node int) *client {
	t.Helper()
	c := &client{node: node, notes: make(chan Note, 1000)}
	h := communication.NewHandlers()
	require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[Note](func(_ context.Context, m Note) error {
		c.notes <- m
		return nil
	})))
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Echo, EchoBack](func(_ context.Context, e Echo) (EchoBack, error) {
		return EchoBack{N: e.N*10 + node}, nil
	})))
	cl, err := communication.AddClient(communication.WithServerAddress(url), communication.WithHandlers(h),
		communication.WithClientInstance(uuid.NewString()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, cl.Start(ctx))
	c.Client = cl
	return c
}

// located waits until a post to c through srv finds it, and takes that
// post off c's notes.
func located(t *testing.T, srv *communication.Server, c *client) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		err := srv.Post(context.Background(), c.ConnectionID(), Note{Text: "located"})
		if err == nil {
			break
		}
		if !errors.Is(err, communication.ErrNotConnected) || time.Now().After(deadline) {
			t.Fatalf("the connection was never found from another node: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.Equal(t, "located", recv(t, c, "located post").Text)
}

func recv(t *testing.T, c *client, what string) Note {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case n := <-c.notes:
		return n
	case <-timer.C:
		t.Fatalf("no %s", what)
		return Note{}
	}
}
