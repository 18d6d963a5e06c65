package redis_test

import (
	"context"
	"net/http"

	goredis "github.com/redis/go-redis/v9"

	communication "github.com/tharga/communication-go"
	"github.com/tharga/communication-go/redis"
)

// Agent is an application's own record of a client.
type Agent struct{ Pool string }

// Every server node stores its clients in the same Redis, so that each
// node's ClientState sees the clients of all of them.
func ExampleNewRepository() {
	rdb := goredis.NewClient(&goredis.Options{
		Addr: "localhost:6379",
		// Let a context's deadline cut short a command Redis does not
		// answer, not only the client's ReadTimeout.
		ContextTimeoutEnabled: true,
	})
	defer rdb.Close()

	state, err := communication.NewClientState[Agent](
		communication.WithRepository[Agent](redis.NewRepository[Agent](rdb, redis.WithRepositoryPrefix("myapp"))),
		communication.WithBuild(func(ctx context.Context, rec communication.ClientRecord, prev *communication.ClientEntry[Agent]) (Agent, error) {
			return Agent{Pool: rec.Machine}, nil
		}))
	if err != nil {
		panic(err)
	}
	srv, err := communication.AddServer(communication.WithClientState(state))
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	mux := http.NewServeMux()
	srv.Mount(mux)
	// ... serve mux; then, on any node:
	clients, _ := state.GetAll(context.Background())
	_ = clients
}
