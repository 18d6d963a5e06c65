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
