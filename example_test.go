package communication_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	communication "github.com/tharga/communication-go"
)

type Greeting struct{ Name string }
type Welcome struct{ Text string }

// A server with a request handler, mounted on a mux, and a client that
// sends it a request.
func Example() {
	srv, _ := communication.AddServer()
	_ = communication.HandleSend(srv.Handlers(), communication.SendHandlerFunc[Greeting, Welcome](
		func(ctx context.Context, g Greeting) (Welcome, error) {
			return Welcome{Text: "Welcome, " + g.Name}, nil
		}))
	mux := http.NewServeMux()
	srv.Mount(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer srv.Close()

	client, _ := communication.AddClient(communication.WithServerAddress(hs.URL))
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	w, err := communication.Send[Welcome](ctx, client, Greeting{Name: "Ada"})
	fmt.Println(w.Text, err)
	// Output: Welcome, Ada <nil>
}

// Handlers can be collected in a set, in the package that owns them, and
// handed to a server or client in one call.
func ExampleWithHandlers() {
	billing := communication.NewHandlers()
	_ = communication.HandlePost(billing, communication.PostHandlerFunc[Greeting](
		func(ctx context.Context, g Greeting) error { return nil }))

	srv, err := communication.AddServer(communication.WithHandlers(billing))
	fmt.Println(err)
	defer srv.Close()

	// The same type twice is refused.
	dup := communication.NewHandlers()
	_ = communication.HandlePost(dup, communication.PostHandlerFunc[Greeting](
		func(ctx context.Context, g Greeting) error { return nil }))
	_, err = communication.AddServer(communication.WithHandlers(billing, dup))
	fmt.Println(errors.Is(err, communication.ErrDuplicateType))
	// Output:
	// <nil>
	// true
}

// A Go type can carry the .NET assembly-qualified name of its counterpart;
// incoming names match whatever version follows.
func ExampleWithName() {
	h := communication.NewHandlers()
	err := communication.HandleSend(h, communication.SendHandlerFunc[Greeting, Welcome](
		func(ctx context.Context, g Greeting) (Welcome, error) { return Welcome{}, nil }),
		communication.WithName("MyApp.Greeting, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"),
		communication.WithResponseName("MyApp.Welcome, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"))
	fmt.Println(err)
	// Output: <nil>
}

// A failed remote handler is a *RemoteError; an unknown type also matches
// ErrUnknownType.
func ExampleRemoteError() {
	err := error(&communication.RemoteError{Type: "MyApp.Ping", Message: "Cannot find handler for type 'MyApp.Ping'."})
	var re *communication.RemoteError
	fmt.Println(errors.As(err, &re), errors.Is(err, communication.ErrUnknownType))
	// Output: true true
}

type FarmReport struct {
	Farm  string
	Yield int
}

// A dashboard on the server shows one farm while its page is open; the
// agent that produces the reports posts only while somebody looks.
func ExampleSubscribe() {
	srv, _ := communication.AddServer()
	reports := make(chan FarmReport, 1)
	_ = communication.HandlePost(srv.Handlers(), communication.PostHandlerFunc[FarmReport](
		func(ctx context.Context, r FarmReport) error {
			reports <- r
			return nil
		}))
	mux := http.NewServeMux()
	srv.Mount(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer srv.Close()

	changes := make(chan communication.SubscriptionChange, 10)
	agent, _ := communication.AddClient(communication.WithServerAddress(hs.URL),
		communication.WithSubscriptionHandler(func(c communication.SubscriptionChange) { changes <- c }))
	defer agent.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := agent.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}

	// Server: the page subscribes to farm 7 for as long as it is open.
	page, closePage := context.WithCancel(ctx)
	defer closePage()
	if _, err := communication.Subscribe[FarmReport](page, srv, "7"); err != nil {
		fmt.Println(err)
		return
	}

	// Agent: told at once; it posts farm 7's report and skips farm 8's.
	c := <-changes
	fmt.Println(c.Key, c.HasSubscribers)
	sent, err := agent.PostIfSubscribed(ctx, FarmReport{Farm: "7", Yield: 42}, "7")
	fmt.Println(sent, err, (<-reports).Yield)
	sent, err = agent.PostIfSubscribed(ctx, FarmReport{Farm: "8", Yield: 3}, "8")
	fmt.Println(sent, err)

	closePage()
	c = <-changes
	fmt.Println(c.Key, c.HasSubscribers, communication.HasSubscribers[FarmReport](agent, "7"))
	// Output:
	// 7 true
	// true <nil> 42
	// false <nil>
	// 7 false false
}

type StatusQuery struct{}
type StatusReport struct{ Healthy bool }

// The server asks one connected client a question: Send with Server.To
// (Server.ToInstance names the client by its instance instead).
func ExampleServer_To() {
	srv, _ := communication.AddServer()
	mux := http.NewServeMux()
	srv.Mount(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer srv.Close()

	client, _ := communication.AddClient(communication.WithServerAddress(hs.URL))
	defer client.Close()
	_ = communication.HandleSend(client.Handlers(), communication.SendHandlerFunc[StatusQuery, StatusReport](
		func(ctx context.Context, q StatusQuery) (StatusReport, error) {
			return StatusReport{Healthy: true}, nil
		}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}

	report, err := communication.Send[StatusReport](ctx, srv.To(client.ConnectionID()), StatusQuery{})
	fmt.Println(report.Healthy, err)
	// Output: true <nil>
}

// Agent is an application's own data about a connected client.
type Agent struct{ Pool string }

// The server keeps a record per client with the application's data, built
// when the client connects; a handler finds its sender's with Lookup.
func ExampleWithBuild() {
	state, err := communication.NewClientState[Agent](
		communication.WithBuild(func(ctx context.Context, rec communication.ClientRecord, previous *communication.ClientEntry[Agent]) (Agent, error) {
			return Agent{Pool: "pool of " + rec.Machine}, nil
		}),
		communication.WithRetention(time.Hour))
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, _ := communication.AddServer(communication.WithClientState(state))
	_ = communication.HandleSend(srv.Handlers(), communication.SendHandlerFunc[Greeting, Welcome](
		func(ctx context.Context, g Greeting) (Welcome, error) {
			sender, _ := communication.SenderFrom(ctx)
			agent, _, err := communication.Lookup[Agent](ctx, srv, sender.ConnectionID)
			return Welcome{Text: g.Name + " in the " + agent.Data.Pool}, err
		}))
	mux := http.NewServeMux()
	srv.Mount(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer srv.Close()

	client, _ := communication.AddClient(communication.WithServerAddress(hs.URL), communication.WithClientMachine("build-7"))
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	w, err := communication.Send[Welcome](ctx, client, Greeting{Name: "Ada"})
	fmt.Println(w.Text, err)
	clients, _ := state.GetAll(ctx)
	fmt.Println(len(clients), clients[0].IsConnected, clients[0].Data.Pool)
	// Output:
	// Ada in the pool of build-7 <nil>
	// 1 true pool of build-7
}

// A server that takes API keys refuses a client without one before any
// SignalR handshake; Start reports it at once.
func ExampleWithAPIKeys() {
	srv, err := communication.AddServer(communication.WithAPIKeys("s3cret"))
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	srv.Mount(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	stranger, _ := communication.AddClient(communication.WithServerAddress(hs.URL), communication.WithAPIKey("guess"))
	defer stranger.Close()
	err = stranger.Start(ctx)
	fmt.Println(errors.Is(err, communication.ErrUnauthorized))

	agent, _ := communication.AddClient(communication.WithServerAddress(hs.URL), communication.WithAPIKey("s3cret"))
	defer agent.Close()
	fmt.Println(agent.Start(ctx))

	// An empty key (an unset environment variable) is an error, not an
	// open server.
	_, err = communication.AddServer(communication.WithAPIKeys(""))
	fmt.Println(err != nil)
	// Output:
	// true
	// <nil>
	// true
}

// A client reports every change of its connection, one at a time, in
// order, with its cause.
func ExampleWithStateHandler() {
	srv, _ := communication.AddServer()
	mux := http.NewServeMux()
	srv.Mount(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer srv.Close()

	changes := make(chan communication.StateChange, 10)
	client, _ := communication.AddClient(communication.WithServerAddress(hs.URL),
		communication.WithStateHandler(func(c communication.StateChange) { changes <- c }))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	_ = client.Close()
	for c := range changes {
		fmt.Println(c.State, c.Err)
		if c.State == communication.Disconnected {
			break
		}
	}
	// Output:
	// connecting <nil>
	// connected <nil>
	// disconnected <nil>
}

// A handler chooses the code and message its caller sees with NewError;
// the caller finds them in the RemoteError.
func ExampleNewError() {
	const codeNotFound communication.Code = "not_found"
	srv, _ := communication.AddServer()
	_ = communication.HandleSend(srv.Handlers(), communication.SendHandlerFunc[Greeting, Welcome](
		func(ctx context.Context, g Greeting) (Welcome, error) {
			return Welcome{}, communication.NewError(codeNotFound, fmt.Errorf("nobody called %s here", g.Name))
		}))
	mux := http.NewServeMux()
	srv.Mount(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer srv.Close()

	client, _ := communication.AddClient(communication.WithServerAddress(hs.URL))
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	_, err := communication.Send[Welcome](ctx, client, Greeting{Name: "Bob"})
	var re *communication.RemoteError
	if errors.As(err, &re) {
		fmt.Println(re.Code == codeNotFound, re.Message)
	}
	// Output: true nobody called Bob here
}

// A handler relays what a client posts to every other client: the sender
// is left out, on every node with a Backplane.
func ExampleServer_PostAllExcept() {
	srv, _ := communication.AddServer()
	_ = communication.HandlePost(srv.Handlers(), communication.PostHandlerFunc[Greeting](
		func(ctx context.Context, g Greeting) error {
			sender, _ := communication.SenderFrom(ctx)
			return srv.PostAllExcept(ctx, sender.ConnectionID, Welcome{Text: g.Name + " is here"})
		}))
	mux := http.NewServeMux()
	srv.Mount(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	welcomes := make(chan string, 10)
	join := func(name string) *communication.Client {
		c, _ := communication.AddClient(communication.WithServerAddress(hs.URL))
		_ = communication.HandlePost(c.Handlers(), communication.PostHandlerFunc[Welcome](
			func(ctx context.Context, w Welcome) error {
				welcomes <- name + " hears: " + w.Text
				return nil
			}))
		if err := c.Start(ctx); err != nil {
			fmt.Println(err)
		}
		return c
	}
	ada := join("ada")
	defer ada.Close()
	bob := join("bob")
	defer bob.Close()

	_ = bob.Post(ctx, Greeting{Name: "Bob"})
	fmt.Println(<-welcomes)
	// Output: ada hears: Bob is here
}
