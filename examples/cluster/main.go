// Command cluster runs three servers as one cluster over Redis, with six
// clients spread over them, and prints what a cluster does:
//
//  1. a broadcast from one node reaches every client of every node;
//  2. a post or a request from one node reaches a client on another, by
//     connection id or by client instance;
//  3. when a node crashes, a request waiting on one of its clients fails
//     with ErrConnectionLost within the node timeout;
//  4. the crashed node's clients reconnect to the nodes that are left.
//
// It starts redis-server itself, on a free loopback port, and kills it on
// exit. Run it with `make demo-cluster`, or `go run .` in this directory.
// It stops by itself and exits 0 when every step worked.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	communication "github.com/tharga/communication-go"
	"github.com/tharga/communication-go/redis"
)

// The messages. A client answers Where with where it is; it answers Hold
// only when its connection ends, so a Hold stays pending.
type (
	Note  struct{ Text string }
	Where struct{}
	Here  struct{ Client, Node string }
	Hold  struct{}
	Held  struct{}
)

// config bounds the demo; the test runs it with shorter times.
type config struct {
	Timeout     time.Duration // the whole run
	Heartbeat   time.Duration // how often a node tells Redis it is alive
	NodeTimeout time.Duration // how long a silent node is taken for alive
	RedisServer string        // the redis-server program
}

var defaultConfig = config{
	Timeout:     time.Minute,
	Heartbeat:   250 * time.Millisecond,
	NodeTimeout: 1500 * time.Millisecond,
	RedisServer: "redis-server",
}

var errNoRedis = errors.New("install redis-server (apt-get install redis-server) to run the cluster demo")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout, defaultConfig)
	if err != nil && ctx.Err() != nil {
		err = errors.New("interrupted")
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, cfg config) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	d := &demo{out: out, cfg: cfg, release: make(chan struct{})}
	// Whatever happens, stop the clients, the nodes and redis-server.
	defer d.close()
	began := time.Now()

	redisAddr, err := d.startRedis(ctx)
	if err != nil {
		return err
	}
	for i := 1; i <= 3; i++ {
		if err := d.startNode("node-"+strconv.Itoa(i), redisAddr); err != nil {
			return err
		}
	}
	n1, n2, n3 := d.nodes[0], d.nodes[1], d.nodes[2]

	d.say("clients dial their own node and, when it cannot be reached, the next one:")
	d.say("what a load balancer in front of the nodes would do (a Client takes one address)")
	for i := 1; i <= 6; i++ {
		if err := d.startClient(ctx, i, d.nodes[(i-1)/2]); err != nil {
			return err
		}
	}
	for _, c := range d.clients {
		if _, err := ask(ctx, n1.srv.To(c.ConnectionID())); err != nil {
			return fmt.Errorf("%s is not reachable from node-1: %w", c.name, err)
		}
	}

	d.say("\n1. node-1 broadcasts to every client of every node")
	if err := n1.srv.PostAll(ctx, Note{Text: "hello, everybody"}); err != nil {
		return err
	}
	for _, c := range d.clients {
		if err := c.received(ctx, "hello, everybody"); err != nil {
			return err
		}
	}
	d.say("   ok: all 6 clients, on 3 nodes, got it")

	target := d.clients[4] // client-5, on node-3
	d.say("\n2. node-1 posts to and asks client-5, which is connected to node-3")
	if err := n1.srv.Post(ctx, target.ConnectionID(), Note{Text: "by connection id"}); err != nil {
		return err
	}
	if err := target.received(ctx, "by connection id"); err != nil {
		return err
	}
	if err := n1.srv.PostToInstance(ctx, target.Instance(), Note{Text: "by instance"}); err != nil {
		return err
	}
	if err := target.received(ctx, "by instance"); err != nil {
		return err
	}
	for _, to := range []struct {
		how string
		ep  communication.Endpoint
	}{
		{"by connection id", n1.srv.To(target.ConnectionID())},
		{"by instance", n1.srv.ToInstance(target.Instance())},
	} {
		here, err := ask(ctx, to.ep)
		if err != nil {
			return fmt.Errorf("request %s: %w", to.how, err)
		}
		if here.Node != "node-3" {
			return fmt.Errorf("request %s: answered from %s, not node-3", to.how, here.Node)
		}
		d.say("   request %s: answered %q", to.how, here.Client+" on "+here.Node)
	}
	d.say("   ok: posts and requests crossed from node-1 to node-3")

	d.say("\n3. node-3 crashes while node-1 waits for client-5's answer")
	pending := make(chan error, 1)
	go func() {
		_, err := communication.Send[Held](ctx, n1.srv.To(target.ConnectionID()), Hold{})
		pending <- err
	}()
	select {
	case <-target.holding:
	case <-ctx.Done():
		return fmt.Errorf("client-5 never got the request: %w", ctx.Err())
	}
	d.say("   client-5 holds a request from node-1")
	crashed := time.Now()
	d.crashed.Store(crashed.UnixNano())
	d.say("   %s node-3 crashes: its Redis client, listener and connections are cut, with no goodbye", d.sinceCrash())
	n3.crash()
	var failed error
	select {
	case failed = <-pending:
	case <-ctx.Done():
		return fmt.Errorf("the request to client-5 outlived its node: %w", ctx.Err())
	}
	took := time.Since(crashed)
	if !errors.Is(failed, communication.ErrConnectionLost) {
		return fmt.Errorf("the request to client-5 ended with %w, not ErrConnectionLost", failed)
	}
	d.say("   %s ok: the request failed with ErrConnectionLost after %v (node timeout %v)",
		d.sinceCrash(), took.Round(10*time.Millisecond), cfg.NodeTimeout)
	d.say("      %v", failed)

	d.say("\n4. node-3's clients reconnected to the nodes that are left (above: at once)")
	for _, c := range d.clients[4:] {
		select {
		case <-c.reconnected:
		case <-ctx.Done():
			return fmt.Errorf("%s did not reconnect: %w", c.name, ctx.Err())
		}
	}
	here, err := ask(ctx, n2.srv.ToInstance(target.Instance()))
	if err != nil {
		return fmt.Errorf("request to client-5 after the crash: %w", err)
	}
	if here.Node == "node-3" {
		return errors.New("client-5 answered from node-3, which is dead")
	}
	d.say("   node-2 asks client-5 by instance: answered %q", here.Client+" on "+here.Node)
	if err := n2.srv.PostAll(ctx, Note{Text: "node-3 is gone"}); err != nil {
		return err
	}
	for _, c := range d.clients {
		if err := c.received(ctx, "node-3 is gone"); err != nil {
			return err
		}
	}
	d.say("   ok: a broadcast from node-2 reached all 6 clients, now on 2 nodes")

	d.say("\ncluster demo: every step worked (%v)", time.Since(began).Round(100*time.Millisecond))
	return nil
}

// ask sends Where and returns the answer, trying again while the client
// is not yet known to the cluster: a node records a new connection a
// moment after the client's Start returns.
func ask(ctx context.Context, to communication.Endpoint) (Here, error) {
	for {
		here, err := communication.Send[Here](ctx, to, Where{})
		if !errors.Is(err, communication.ErrNotConnected) {
			return here, err
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return Here{}, err
		}
	}
}

// demo holds what the run started, to stop it all.
type demo struct {
	cfg     config
	release chan struct{} // closed on exit: ends the Hold handlers
	crashed atomic.Int64  // when node-3 crashed (Unix ns); from then on clients print their state changes

	mu      sync.Mutex // guards out and closing
	out     io.Writer
	closing bool

	redis   *exec.Cmd
	exited  chan struct{} // closed once redis-server has exited
	nodes   []*node
	clients []*client
}

// say prints a line, until the demo starts closing.
func (d *demo) say(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closing {
		fmt.Fprintf(d.out, format+"\n", args...)
	}
}

// sinceCrash tells how long ago node-3 crashed.
func (d *demo) sinceCrash() string {
	t := time.Since(time.Unix(0, d.crashed.Load()))
	return fmt.Sprintf("[+%.2fs]", t.Seconds())
}

// close stops the clients, then the nodes, then redis-server.
func (d *demo) close() {
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
	close(d.release)
	for _, c := range d.clients {
		_ = c.Close()
	}
	for _, n := range d.nodes {
		n.stop()
	}
	if d.redis != nil {
		_ = d.redis.Process.Kill()
		<-d.exited
	}
}

// startRedis runs redis-server on a free loopback port, without
// persistence, and waits until it answers.
func (d *demo) startRedis(ctx context.Context) (string, error) {
	bin, err := exec.LookPath(d.cfg.RedisServer)
	if err != nil {
		return "", errNoRedis
	}
	// A free port may be taken by someone else before redis-server binds
	// it: then try another.
	for attempt := 1; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		_ = l.Close()
		_, port, _ := net.SplitHostPort(addr)
		var log bytes.Buffer
		cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--loglevel", "warning")
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			return "", fmt.Errorf("starting redis-server: %w", err)
		}
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		err = waitForRedis(ctx, addr, exited)
		if err == nil {
			d.redis, d.exited = cmd, exited
			d.say("redis-server (pid %d) on %s", cmd.Process.Pid, addr)
			return addr, nil
		}
		_ = cmd.Process.Kill()
		<-exited
		if attempt == 3 || ctx.Err() != nil {
			return "", fmt.Errorf("redis-server did not start: %w\n%s", err, log.String())
		}
	}
}

// waitForRedis waits until Redis at addr answers PING, or its process
// exits.
func waitForRedis(ctx context.Context, addr string, exited <-chan struct{}) error {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, err = c.Write([]byte("PING\r\n"))
			var line string
			if err == nil {
				line, err = bufio.NewReader(c).ReadString('\n')
			}
			_ = c.Close()
			if err == nil && strings.HasPrefix(line, "+PONG") {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("redis-server exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// node is one server of the cluster: a Server with a Redis Backplane,
// served on its own loopback listener. In a real deployment each is a
// process of its own.
type node struct {
	name   string
	addr   string // host:port
	srv    *communication.Server
	rdb    *goredis.Client
	hs     *http.Server
	served chan struct{} // closed once hs.Serve returned

	mu    sync.Mutex
	conns map[net.Conn]bool // every connection accepted and not closed, WebSockets included
}

func (d *demo) startNode(name, redisAddr string) error {
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	bp, err := redis.NewBackplane(rdb,
		redis.WithHeartbeat(d.cfg.Heartbeat), redis.WithNodeTimeout(d.cfg.NodeTimeout))
	if err != nil {
		_ = rdb.Close()
		return err
	}
	srv, err := communication.AddServer(communication.WithBackplane(bp), communication.WithNodeName(name))
	if err != nil {
		_ = rdb.Close()
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = srv.Close()
		_ = rdb.Close()
		return err
	}
	n := &node{name: name, addr: l.Addr().String(), srv: srv, rdb: rdb,
		served: make(chan struct{}), conns: make(map[net.Conn]bool)}
	mux := http.NewServeMux()
	srv.Mount(mux)
	n.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ConnState: n.track}
	go func() {
		defer close(n.served)
		_ = n.hs.Serve(l)
	}()
	d.nodes = append(d.nodes, n)
	d.say("%s listening on http://%s%s", name, n.addr, srv.Pattern())
	return nil
}

// track keeps the node's open connections. A WebSocket is hijacked from
// the http.Server, which then forgets it: the node must cut it itself.
func (n *node) track(c net.Conn, s http.ConnState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch s {
	case http.StateNew:
		n.conns[c] = true
	case http.StateClosed:
		delete(n.conns, c)
	}
}

// crash cuts the node off as a crash of its process would: its link to
// Redis, its listener and every client connection go at once, and it
// says goodbye to nobody.
func (n *node) crash() {
	_ = n.rdb.Close()
	_ = n.hs.Close()
	n.mu.Lock()
	defer n.mu.Unlock()
	for c := range n.conns {
		_ = c.Close()
	}
}

// stop closes what is left of the node.
func (n *node) stop() {
	_ = n.srv.Close()
	n.crash()
	<-n.served
}

// client is one client of the demo, with what it received.
type client struct {
	*communication.Client
	name        string
	dial        *failover
	notes       chan string
	holding     chan struct{} // a Hold arrived
	reconnected chan struct{} // connected again after node-3 crashed
}

func (d *demo) startClient(ctx context.Context, i int, home *node) error {
	c := &client{
		name:        "client-" + strconv.Itoa(i),
		dial:        newFailover(home, d.nodes, i),
		notes:       make(chan string, 16),
		holding:     make(chan struct{}, 1),
		reconnected: make(chan struct{}, 1),
	}
	cc, err := communication.AddClient(
		communication.WithServerAddress("http://"+home.addr),
		communication.WithHTTPClient(&http.Client{Transport: &http.Transport{
			DialContext:       c.dial.dialContext,
			DisableKeepAlives: true,
		}}),
		// One process runs six clients: each needs its own instance.
		communication.WithClientInstance(uuid.NewString()),
		communication.WithReconnectDelays(0, 250*time.Millisecond, time.Second),
		communication.WithStateHandler(func(sc communication.StateChange) {
			if d.crashed.Load() == 0 {
				return
			}
			switch sc.State {
			case communication.Connected:
				d.say("   %s %s: connected to %s", d.sinceCrash(), c.name, c.dial.node())
				select {
				case c.reconnected <- struct{}{}:
				default:
				}
			case communication.Reconnecting:
				d.say("   %s %s: reconnecting", d.sinceCrash(), c.name)
			}
		}),
	)
	if err != nil {
		return err
	}
	c.Client = cc
	h := cc.Handlers()
	err = errors.Join(
		communication.HandlePost(h, communication.PostHandlerFunc[Note](func(ctx context.Context, n Note) error {
			d.say("   %s on %s got %q", c.name, c.dial.node(), n.Text)
			select {
			case c.notes <- n.Text:
			case <-ctx.Done():
			}
			return nil
		})),
		communication.HandleSend(h, communication.SendHandlerFunc[Where, Here](func(context.Context, Where) (Here, error) {
			return Here{Client: c.name, Node: c.dial.node()}, nil
		})),
		communication.HandleSend(h, communication.SendHandlerFunc[Hold, Held](func(ctx context.Context, _ Hold) (Held, error) {
			c.holding <- struct{}{}
			select {
			case <-ctx.Done():
				return Held{}, ctx.Err()
			case <-d.release:
				return Held{}, errors.New("the demo is over")
			}
		})),
	)
	if err != nil {
		_ = cc.Close()
		return err
	}
	d.clients = append(d.clients, c)
	if err := cc.Start(ctx); err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	d.say("%s connected to %s", c.name, c.dial.node())
	return nil
}

// received waits for the client's next post and checks its text.
func (c *client) received(ctx context.Context, want string) error {
	select {
	case got := <-c.notes:
		if got != want {
			return fmt.Errorf("%s got %q, want %q", c.name, got, want)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s did not get %q: %w", c.name, want, ctx.Err())
	}
}

// failover dials a client's own node and, when it cannot be reached, the
// others, starting at a different one for each client so that they
// spread: what a load balancer in front of the nodes does. It remembers
// which node it reached last.
type failover struct {
	order []*node

	mu sync.Mutex
	at string
}

func newFailover(home *node, nodes []*node, i int) *failover {
	var others []*node
	for _, n := range nodes {
		if n != home {
			others = append(others, n)
		}
	}
	f := &failover{order: []*node{home}}
	for k := range others {
		f.order = append(f.order, others[(i+k)%len(others)])
	}
	return f
}

func (f *failover) dialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	var errs []error
	for _, n := range f.order {
		c, err := d.DialContext(ctx, network, n.addr)
		if err == nil {
			f.mu.Lock()
			f.at = n.name
			f.mu.Unlock()
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// node names the node of the client's newest connection.
func (f *failover) node() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at
}
