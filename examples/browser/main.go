// Command browser serves a web page that joins a communication server
// with the official SignalR JavaScript client, in JSON or MessagePack:
// the page shows the connected clients live, sends a request to the Go
// server, and answers the server's request to tell who it is. It
// authenticates with an API key through accessTokenFactory.
//
// The JavaScript bundles come from node_modules (npm ci at the module
// root): the server serves them, nothing is committed.
//
//	npm ci
//	go run ./examples/browser -key demo-key
//	open http://127.0.0.1:8080/ (add ?protocol=messagepack for MessagePack)
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	communication "github.com/tharga/communication-go"
)

// The messages. Fields without json tags travel PascalCase, which the page
// reads and writes. The names are what the page puts in "type"; a .NET
// peer would use assembly-qualified names here.
type (
	// EchoRequest: page → server request.
	EchoRequest struct{ Text string }
	// EchoReply answers it.
	EchoReply struct {
		Text     string
		ServedBy string
	}
	// WhoAreYou: server → page request, sent when a page connects.
	WhoAreYou struct{}
	// IAm answers it.
	IAm struct {
		Name      string
		UserAgent string
	}
	// ClientList: server → every page post, whenever a client comes or
	// goes.
	ClientList struct{ Clients []ClientInfo }
	// ClientInfo is one connected client.
	ClientInfo struct {
		ConnectionID string
		Name         string
	}
)

// Wire names, shared with app.js.
const (
	echoRequestName = "Demo.EchoRequest, Demo"
	echoReplyName   = "Demo.EchoReply, Demo"
	whoAreYouName   = "Demo.WhoAreYou, Demo"
	iAmName         = "Demo.IAm, Demo"
	clientListName  = "Demo.ClientList, Demo"
)

//go:embed static
var static embed.FS

// vendored are the files of node_modules the page loads, by URL path.
var vendored = map[string]string{
	"/vendor/signalr.min.js":                      "@microsoft/signalr/dist/browser/signalr.min.js",
	"/vendor/signalr.min.js.map":                  "@microsoft/signalr/dist/browser/signalr.min.js.map",
	"/vendor/signalr-protocol-msgpack.min.js":     "@microsoft/signalr-protocol-msgpack/dist/browser/signalr-protocol-msgpack.min.js",
	"/vendor/signalr-protocol-msgpack.min.js.map": "@microsoft/signalr-protocol-msgpack/dist/browser/signalr-protocol-msgpack.min.js.map",
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	key := flag.String("key", "demo-key", "the API key browsers must give (empty: no key)")
	modules := flag.String("node-modules", "", "the node_modules directory (default: the nearest one at or above the working directory)")
	flag.Parse()
	if err := run(*addr, *key, *modules); err != nil {
		log.Fatal(err)
	}
}

func run(addr, key, modules string) error {
	if modules == "" {
		var err error
		if modules, err = findNodeModules(); err != nil {
			return err
		}
	}
	a, err := newApp(config{Key: key, NodeModules: modules, Logger: slog.Default()})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	fmt.Printf("browser demo: open http://%s/ (key %q)\n", ln.Addr(), key)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = a.Shutdown(shutdown)
	_ = hs.Shutdown(shutdown)
	return err
}

// config configures the app.
type config struct {
	// Key is the API key browsers must give; empty lets everybody in.
	Key string
	// NodeModules is where npm ci put the packages.
	NodeModules string
	Logger      *slog.Logger
	// Poll is how often the app looks for clients that came or went.
	// Default: 100ms.
	Poll time.Duration
}

// app is the demo: the communication server, the page and the bundles.
type app struct {
	srv  *communication.Server
	mux  *http.ServeMux
	log  *slog.Logger
	stop context.CancelFunc
	done chan struct{}

	mu    sync.Mutex
	names map[string]string // connection id -> name the page gave
}

func newApp(cfg config) (*app, error) {
	for _, rel := range vendored {
		if _, err := os.Stat(filepath.Join(cfg.NodeModules, filepath.FromSlash(rel))); err != nil {
			return nil, fmt.Errorf("the SignalR browser bundle is missing (run npm ci at the module root): %w", err)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	opts := []communication.ServerOption{communication.WithLogger(cfg.Logger)}
	if cfg.Key != "" {
		opts = append(opts, communication.WithAPIKeys(cfg.Key))
	}
	srv, err := communication.AddServer(opts...)
	if err != nil {
		return nil, err
	}
	h := srv.Handlers()
	err = errors.Join(
		communication.HandleSend(h, communication.SendHandlerFunc[EchoRequest, EchoReply](
			func(ctx context.Context, r EchoRequest) (EchoReply, error) {
				s, _ := communication.SenderFrom(ctx)
				return EchoReply{Text: "The Go server got: " + r.Text, ServedBy: "go server, for " + s.ConnectionID}, nil
			}), communication.WithName(echoRequestName), communication.WithResponseName(echoReplyName)),
		communication.RegisterName[WhoAreYou](h, whoAreYouName),
		communication.RegisterName[IAm](h, iAmName),
		communication.RegisterName[ClientList](h, clientListName),
	)
	if err != nil {
		return nil, err
	}

	ctx, stop := context.WithCancel(context.Background())
	a := &app{srv: srv, mux: http.NewServeMux(), log: cfg.Logger, stop: stop, done: make(chan struct{}), names: map[string]string{}}
	srv.Mount(a.mux)
	files, _ := fs.Sub(static, "static")
	// "/" and not "GET /": Mount registers "/hub" for every method, and
	// "GET /" would conflict with it in a Go 1.22 ServeMux.
	a.mux.Handle("/", http.FileServerFS(files))
	for path, rel := range vendored {
		file := filepath.Join(cfg.NodeModules, filepath.FromSlash(rel))
		a.mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) })
	}
	go a.watch(ctx, cfg.Poll)
	return a, nil
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Shutdown stops watching and shuts the communication server down.
func (a *app) Shutdown(ctx context.Context) error {
	a.stop()
	<-a.done
	return a.srv.Shutdown(ctx)
}

// watch notices clients that come and go. A new client is asked who it
// is (a request from the server, answered by the page); every change is
// posted to all pages.
func (a *app) watch(ctx context.Context, every time.Duration) {
	defer close(a.done)
	var asking sync.WaitGroup
	defer asking.Wait()
	known := map[string]bool{}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ids := a.srv.ConnectionIDs()
		changed := false
		for _, id := range ids {
			if !known[id] {
				known[id] = true
				asking.Add(1)
				go func() {
					defer asking.Done()
					a.ask(ctx, id)
				}()
			}
		}
		for id := range known {
			if !slices.Contains(ids, id) {
				delete(known, id)
			}
		}
		a.mu.Lock()
		for id := range a.names {
			if !slices.Contains(ids, id) {
				delete(a.names, id)
				changed = true
			}
		}
		a.mu.Unlock()
		if changed {
			a.broadcast(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ask sends WhoAreYou to a new client and broadcasts the list.
func (a *app) ask(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	name := "(did not answer)"
	iam, err := communication.Send[IAm](ctx, a.srv.To(id), WhoAreYou{})
	switch {
	case err == nil:
		name = iam.Name
		a.log.Info("browser demo: a client said who it is", "connection", id, "name", iam.Name, "agent", iam.UserAgent)
	case errors.Is(err, communication.ErrNotConnected), errors.Is(err, communication.ErrConnectionLost):
		return
	default:
		a.log.Warn("browser demo: a client did not say who it is", "connection", id, "error", err)
	}
	a.mu.Lock()
	a.names[id] = name
	a.mu.Unlock()
	a.broadcast(ctx)
}

// broadcast posts the list of clients that said who they are to all.
func (a *app) broadcast(ctx context.Context) {
	a.mu.Lock()
	list := ClientList{Clients: make([]ClientInfo, 0, len(a.names))}
	for id, name := range a.names {
		list.Clients = append(list.Clients, ClientInfo{ConnectionID: id, Name: name})
	}
	a.mu.Unlock()
	sort.Slice(list.Clients, func(i, j int) bool { return list.Clients[i].Name < list.Clients[j].Name })
	if err := a.srv.PostAll(ctx, list); err != nil && !errors.Is(err, communication.ErrClosed) {
		a.log.Warn("browser demo: broadcast failed", "error", err)
	}
}

// clients returns the names of the clients that said who they are.
func (a *app) clients() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var names []string
	for _, n := range a.names {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// findNodeModules returns the nearest node_modules at or above the working
// directory that holds @microsoft/signalr.
func findNodeModules() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		nm := filepath.Join(dir, "node_modules")
		if _, err := os.Stat(filepath.Join(nm, "@microsoft", "signalr", "package.json")); err == nil {
			return nm, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no node_modules with @microsoft/signalr at or above the working directory: run npm ci at the module root, or pass -node-modules")
		}
		dir = parent
	}
}
