// Command quickstart is the README's quickstart: a server and a client in
// one process, a request from the client, a post and a broadcast from the
// server.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	communication "github.com/tharga/communication-go"
)

// The messages: fields without json tags travel PascalCase, as .NET expects.
type (
	Ping struct{ Message string }
	Pong struct{ Reply string }
	Note struct{ Text string }
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Server: an http.Handler on your own mux.
	srv, err := communication.AddServer()
	if err != nil {
		return err
	}
	defer srv.Close()
	err = communication.HandleSend(srv.Handlers(), communication.SendHandlerFunc[Ping, Pong](
		func(ctx context.Context, p Ping) (Pong, error) {
			return Pong{Reply: "Pong: " + p.Message}, nil
		}))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	srv.Mount(mux) // GET/POST /hub and POST /hub/negotiate
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()

	// Client: connects, and stays connected until Close.
	client, err := communication.AddClient(communication.WithServerAddress("http://" + ln.Addr().String()))
	if err != nil {
		return err
	}
	defer client.Close()
	notes := make(chan Note, 2)
	err = communication.HandlePost(client.Handlers(), communication.PostHandlerFunc[Note](
		func(ctx context.Context, n Note) error {
			notes <- n
			return nil
		}))
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}

	// Client to server: a request.
	pong, err := communication.Send[Pong](ctx, client, Ping{Message: "Ping"})
	if err != nil {
		return err
	}
	fmt.Println(pong.Reply)

	// Server to client: a post to its connection, then to every client.
	if err := srv.Post(ctx, client.ConnectionID(), Note{Text: "hi"}); err != nil {
		return err
	}
	if err := srv.PostAll(ctx, Note{Text: "everybody"}); err != nil {
		return err
	}
	fmt.Println((<-notes).Text, (<-notes).Text)
	return nil
}
