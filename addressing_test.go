package communication_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// Chat is what a client posts for the server to relay to the others.
type Chat struct{ Text string }

// noteClients starts n clients of ts that collect the Notes posted to
// them.
func noteClients(t *testing.T, ts *testServer, n int) []*clusterClient {
	t.Helper()
	var cs []*clusterClient
	for range n {
		cc := &clusterClient{notes: make(chan Note, 100)}
		h := communication.NewHandlers()
		require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[Note](func(_ context.Context, m Note) error {
			cc.notes <- m
			return nil
		})))
		cc.Client = startClient(t, ts, communication.WithHandlers(h), communication.WithClientInstance(uuid.NewString()))
		cs = append(cs, cc)
	}
	return cs
}

// nextNote requires the client's next Note to be want: posts to one
// connection arrive in the order they were made, so a marker posted last
// that comes next proves nothing else came before it.
func nextNote(t *testing.T, c *clusterClient, want string) {
	t.Helper()
	require.Equal(t, want, recvNote(t, c.notes, want).Text)
}

// relayChats makes srv relay every Chat to every client but its sender,
// and report on done when a relay is over.
func relayChats(t *testing.T, srv *communication.Server) <-chan error {
	t.Helper()
	done := make(chan error, 10)
	require.NoError(t, communication.HandlePost(srv.Handlers(), communication.PostHandlerFunc[Chat](func(ctx context.Context, m Chat) error {
		s, _ := communication.SenderFrom(ctx)
		err := srv.PostAllExcept(ctx, s.ConnectionID, Note(m))
		done <- err
		return err
	})))
	return done
}

func relayed(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("no relay")
	}
}

// TestToInstance: a client is reached by its instance on a single node,
// on its newest connection.
func TestToInstance(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	ctx := ctxT(t, 10*time.Second)
	instance := uuid.NewString()
	answering := func(tag int, notes chan<- Note) *communication.Handlers {
		h := communication.NewHandlers()
		require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Echo, EchoBack](func(_ context.Context, e Echo) (EchoBack, error) {
			return EchoBack{N: e.N + tag}, nil
		})))
		require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[Note](func(_ context.Context, n Note) error {
			notes <- n
			return nil
		})))
		return h
	}
	notesA, notesB := make(chan Note, 1), make(chan Note, 1)
	startClient(t, ts, communication.WithClientInstance(instance), communication.WithHandlers(answering(1, notesA)))
	got, err := communication.Send[EchoBack](ctx, ts.ToInstance(instance), Echo{N: 10})
	require.NoError(t, err)
	require.Equal(t, 11, got.N)
	require.NoError(t, ts.PostToInstance(ctx, instance, Note{Text: "to a"}))
	require.Equal(t, "to a", recvNote(t, notesA, "post by instance").Text)

	// The same instance connects again: the newest connection is reached.
	startClient(t, ts, communication.WithClientInstance(instance), communication.WithHandlers(answering(2, notesB)))
	got, err = communication.Send[EchoBack](ctx, ts.ToInstance(instance), Echo{N: 10})
	require.NoError(t, err)
	require.Equal(t, 12, got.N)
	require.NoError(t, ts.PostToInstance(ctx, instance, Note{Text: "to b"}))
	require.Equal(t, "to b", recvNote(t, notesB, "post to the newest connection").Text)

	_, err = communication.Send[EchoBack](ctx, ts.ToInstance(uuid.NewString()), Echo{})
	require.ErrorIs(t, err, communication.ErrNotConnected)
	require.ErrorIs(t, ts.PostToInstance(ctx, uuid.NewString(), Note{}), communication.ErrNotConnected)
}

// TestPostTo: a post to a set of connections reaches each once, and names
// the connections nobody holds.
func TestPostTo(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	cs := noteClients(t, ts, 3)
	ctx := ctxT(t, 10*time.Second)

	err := ts.PostTo(ctx, []string{cs[0].ConnectionID(), cs[2].ConnectionID(), "gone", cs[0].ConnectionID()}, Note{Text: "some"})
	require.ErrorIs(t, err, communication.ErrNotConnected)
	require.ErrorContains(t, err, `"gone"`)
	for _, c := range cs {
		require.NoError(t, ts.Post(ctx, c.ConnectionID(), Note{Text: "marker"}))
	}
	nextNote(t, cs[0], "some")
	nextNote(t, cs[0], "marker") // once, though listed twice
	nextNote(t, cs[1], "marker") // not listed
	nextNote(t, cs[2], "some")
	nextNote(t, cs[2], "marker")

	require.NoError(t, ts.PostTo(ctx, nil, Note{}))
}

// TestPostAllExcept: a handler relays what a client posts to every other
// client, and the sender gets nothing back.
func TestPostAllExcept(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	done := relayChats(t, ts.Server)
	cs := noteClients(t, ts, 3)
	ctx := ctxT(t, 10*time.Second)

	require.NoError(t, cs[1].Post(ctx, Chat{Text: "hello"}))
	relayed(t, done)
	require.NoError(t, ts.Post(ctx, cs[1].ConnectionID(), Note{Text: "marker"}))
	nextNote(t, cs[0], "hello")
	nextNote(t, cs[2], "hello")
	nextNote(t, cs[1], "marker")

	// Nobody left out.
	require.NoError(t, ts.PostAllExcept(ctx, "", Note{Text: "all"}))
	for _, c := range cs {
		nextNote(t, c, "all")
	}
}

// TestClusterAddressing: posts to a set of connections, to all but one,
// and a handler's chosen error code reach across nodes.
func TestClusterAddressing(t *testing.T) {
	t.Parallel()
	nodes, clients := newCluster(t, communication.NewMemoryBackplane(), 2, 2) // clients 0, 1 on node 0; 2, 3 on node 1
	ctx := ctxT(t, 30*time.Second)

	t.Run("post to a set of connections on both nodes", func(t *testing.T) {
		err := nodes[0].PostTo(ctx, []string{clients[1].ConnectionID(), clients[2].ConnectionID(), "gone"}, Note{Text: "set"})
		require.ErrorIs(t, err, communication.ErrNotConnected)
		require.ErrorContains(t, err, `"gone"`)
		for _, c := range clients {
			require.NoError(t, nodes[0].Post(ctx, c.ConnectionID(), Note{Text: "marker"}))
		}
		nextNote(t, clients[0], "marker")
		nextNote(t, clients[1], "set")
		nextNote(t, clients[1], "marker")
		nextNote(t, clients[2], "set")
		nextNote(t, clients[2], "marker")
		nextNote(t, clients[3], "marker")
	})

	t.Run("relay to every client of every node but the sender", func(t *testing.T) {
		relayChats(t, nodes[0].Server)
		done := relayChats(t, nodes[1].Server)
		require.NoError(t, clients[2].Post(ctx, Chat{Text: "hi"}))
		relayed(t, done)
		require.NoError(t, nodes[1].Post(ctx, clients[2].ConnectionID(), Note{Text: "marker"}))
		for _, i := range []int{0, 1, 3} {
			nextNote(t, clients[i], "hi")
		}
		nextNote(t, clients[2], "marker")
	})

	t.Run("leave out a connection of another node", func(t *testing.T) {
		require.NoError(t, nodes[0].PostAllExcept(ctx, clients[3].ConnectionID(), Note{Text: "not 3"}))
		require.NoError(t, nodes[0].Post(ctx, clients[3].ConnectionID(), Note{Text: "marker"}))
		for _, i := range []int{0, 1, 2} {
			nextNote(t, clients[i], "not 3")
		}
		nextNote(t, clients[3], "marker")
	})

	t.Run("a handler's code crosses nodes", func(t *testing.T) {
		h := communication.NewHandlers()
		require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Ping, Pong](failing)))
		c := startClient(t, nodes[1], communication.WithHandlers(h))
		_, err := communication.Send[Pong](ctx, nodes[0].To(c.ConnectionID()), Ping{Message: "wrapped"})
		var re *communication.RemoteError
		require.ErrorAs(t, err, &re)
		require.Equal(t, codeNotFound, re.Code)
		require.Equal(t, "no such farm", re.Message)
	})
}

// TestLookup: a handler finds the typed record of its sender through the
// Server, without a reference to the ClientState.
func TestLookup(t *testing.T) {
	t.Parallel()
	state := newState[agentData](t, communication.WithBuild(
		func(_ context.Context, rec communication.ClientRecord, _ *communication.ClientEntry[agentData]) (agentData, error) {
			return agentData{Label: "agent on " + rec.Machine}, nil
		}))
	ts := newServer(t, communication.WithClientState(state))
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Ping, Pong](func(ctx context.Context, _ Ping) (Pong, error) {
		s, _ := communication.SenderFrom(ctx)
		c, ok, err := communication.Lookup[agentData](ctx, ts.Server, s.ConnectionID)
		if err != nil || !ok {
			return Pong{}, err
		}
		return Pong{Reply: c.Data.Label}, nil
	})))
	instance := uuid.NewString()
	c := startClient(t, ts, communication.WithClientMachine("m7"), communication.WithClientInstance(instance))
	ctx := ctxT(t, 10*time.Second)

	pong, err := communication.Send[Pong](ctx, c, Ping{})
	require.NoError(t, err)
	require.Equal(t, "agent on m7", pong.Reply)

	byInstance, ok, err := communication.LookupInstance[agentData](ctx, ts.Server, instance)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, c.ConnectionID(), byInstance.ConnectionID)
	require.Equal(t, "agent on m7", byInstance.Data.Label)

	_, ok, err = communication.Lookup[agentData](ctx, ts.Server, "nobody")
	require.NoError(t, err)
	require.False(t, ok)

	_, _, err = communication.Lookup[int](ctx, ts.Server, c.ConnectionID())
	require.ErrorContains(t, err, "keeps communication_test.agentData, not int")

	// Without WithClientState the records keep no data.
	plain := newServer(t)
	pc := startClient(t, plain)
	rec, ok, err := communication.Lookup[struct{}](ctx, plain.Server, pc.ConnectionID())
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, pc.Instance(), rec.Instance)
}
