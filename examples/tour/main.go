// Command tour starts a server on a loopback port, connects a client
// and shows every operation of the library: posts both ways, a broadcast,
// requests both ways, a timeout and a remote error. It exits 0 when all
// went as expected.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	communication "github.com/tharga/communication-go"
)

// The messages. Fields without json tags travel PascalCase, as .NET peers
// expect.
type (
	Greeting     struct{ Text string }
	Notice       struct{ Text string }
	PingRequest  struct{ Message string }
	PingResponse struct{ Reply string }
	StatusQuery  struct{}
	StatusReport struct {
		Healthy bool
		Uptime  string
	}
	SlowRequest  struct{ Delay time.Duration }
	SlowResponse struct{}
	FailRequest  struct{}
	FailResponse struct{}
)

func main() {
	if err := run(); err != nil {
		log.Printf("tour failed: %v", err)
		os.Exit(1)
	}
	fmt.Println("tour: every operation worked")
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// --- the server ---
	serverGot := make(chan Greeting, 1)
	srv, err := communication.AddServer()
	if err != nil {
		return err
	}
	h := srv.Handlers()
	must(communication.HandlePost(h, communication.PostHandlerFunc[Greeting](func(ctx context.Context, g Greeting) error {
		s, _ := communication.SenderFrom(ctx)
		fmt.Printf("server: post from %s: %q\n", short(s.ConnectionID), g.Text)
		serverGot <- g
		return nil
	})))
	must(communication.HandleSend(h, communication.SendHandlerFunc[PingRequest, PingResponse](func(ctx context.Context, r PingRequest) (PingResponse, error) {
		return PingResponse{Reply: "Pong: " + r.Message}, nil
	})))
	must(communication.HandleSend(h, communication.SendHandlerFunc[SlowRequest, SlowResponse](func(ctx context.Context, r SlowRequest) (SlowResponse, error) {
		select {
		case <-time.After(r.Delay):
			return SlowResponse{}, nil
		case <-ctx.Done(): // the caller's deadline travels with the request
			return SlowResponse{}, ctx.Err()
		}
	})))
	must(communication.HandleSend(h, communication.SendHandlerFunc[FailRequest, FailResponse](func(ctx context.Context, r FailRequest) (FailResponse, error) {
		return FailResponse{}, errors.New("the database is read-only today")
	})))

	mux := http.NewServeMux()
	srv.Mount(mux)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer func() {
		_ = srv.Shutdown(context.Background())
		_ = hs.Close()
	}()
	addr := "http://" + ln.Addr().String()
	fmt.Println("server: listening on", addr+srv.Pattern())

	// --- the client ---
	clientGot := make(chan any, 2)
	client, err := communication.AddClient(
		communication.WithServerAddress(addr),
		communication.WithStateHandler(func(sc communication.StateChange) {
			fmt.Println("client: state", sc.State)
		}),
	)
	if err != nil {
		return err
	}
	ch := client.Handlers()
	must(communication.HandlePost(ch, communication.PostHandlerFunc[Notice](func(ctx context.Context, n Notice) error {
		fmt.Printf("client: post from the server: %q\n", n.Text)
		clientGot <- n
		return nil
	})))
	must(communication.HandleSend(ch, communication.SendHandlerFunc[StatusQuery, StatusReport](func(ctx context.Context, q StatusQuery) (StatusReport, error) {
		return StatusReport{Healthy: true, Uptime: "42s"}, nil
	})))
	if err := client.Start(ctx); err != nil {
		return err
	}
	defer client.Close()

	// 1. client -> server post
	if err := client.Post(ctx, Greeting{Text: "Hello from the client"}); err != nil {
		return err
	}
	if err := wait(ctx, serverGot); err != nil {
		return err
	}

	// 2. server -> client post, and 3. a broadcast to every client
	id := client.ConnectionID()
	if err := srv.Post(ctx, id, Notice{Text: "Hello from the server"}); err != nil {
		return err
	}
	if err := srv.PostAll(ctx, Notice{Text: "Hello, everybody"}); err != nil {
		return err
	}
	for range 2 {
		if err := wait(ctx, clientGot); err != nil {
			return err
		}
	}

	// 4. client -> server request
	pong, err := communication.Send[PingResponse](ctx, client, PingRequest{Message: "Ping"})
	if err != nil {
		return err
	}
	fmt.Printf("client: answer %q\n", pong.Reply)

	// 5. server -> client request
	status, err := communication.Send[StatusReport](ctx, srv.To(id), StatusQuery{})
	if err != nil {
		return err
	}
	fmt.Printf("server: client status healthy=%v uptime=%s\n", status.Healthy, status.Uptime)

	// 6. a timeout
	quick, cancelQuick := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelQuick()
	_, err = communication.Send[SlowResponse](quick, client, SlowRequest{Delay: time.Second})
	if !errors.Is(err, communication.ErrTimeout) {
		return fmt.Errorf("want a timeout, got %w", err)
	}
	fmt.Println("client: timed out as expected:", err)

	// 7. a remote error
	_, err = communication.Send[FailResponse](ctx, client, FailRequest{})
	var remote *communication.RemoteError
	if !errors.As(err, &remote) {
		return fmt.Errorf("want a remote error, got %w", err)
	}
	fmt.Printf("client: remote error as expected: %q (code %s)\n", remote.Message, remote.Code)
	return nil
}

func wait[T any](ctx context.Context, ch <-chan T) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
