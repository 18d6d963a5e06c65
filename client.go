package communication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/philippseith/signalr"

	"github.com/tharga/communication-go/internal/pending"
	"github.com/tharga/communication-go/internal/serial"
	"github.com/tharga/communication-go/internal/transport"
	"github.com/tharga/communication-go/internal/wire"
)

// State is the connection state of a Client.
type State uint8

// The states of a Client.
const (
	// Connecting: started, no connection made yet.
	Connecting State = iota + 1
	// Connected: a connection is up; messages flow.
	Connected
	// Reconnecting: the connection dropped (or an attempt failed after one
	// succeeded); the client waits along its reconnect delays.
	Reconnecting
	// Disconnected: not started, a Start that failed, closed, or stopped
	// because the server closed the connection and disallowed
	// reconnecting, or refused the key with retrying turned off.
	Disconnected
)

func (s State) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Reconnecting:
		return "reconnecting"
	case Disconnected:
		return "disconnected"
	}
	return "unknown"
}

// StateChange is one change of a Client's state, or a failed connection
// attempt (Err set, State unchanged).
type StateChange struct {
	State State
	// ConnectionID is the new connection's id when State is Connected.
	ConnectionID string
	// Err is why the previous connection or attempt ended, or why the
	// client stopped. A connection that dropped gives an error that wraps
	// ErrConnectionLost and the connection's close reason; a server that
	// closed it and disallowed reconnecting, ErrClosedByServer. Err is nil
	// when the state changes for no failure: Connecting on Start,
	// Connected, and Disconnected after Close.
	Err error
}

// errAlreadyStarted reports a Start while the client is started.
var errAlreadyStarted = errors.New("communication: client already started")

// DefaultReconnectDelays are the waits between connection attempts: the
// first retry at once, then after 2s, 10s and every 30s. Each non-zero
// delay is jittered (see WithReconnectJitter, DefaultReconnectJitter), so
// that a fleet of clients cut off at the same moment does not come back
// in lockstep. The delays start again from the first only after a
// connection stayed up for a while (see WithReconnectDelays).
var DefaultReconnectDelays = []time.Duration{0, 2 * time.Second, 10 * time.Second, 30 * time.Second}

// DefaultReconnectJitter is the default jitter of the reconnect delays:
// each non-zero delay d is drawn uniformly from [d/2, 3d/2].
const DefaultReconnectJitter = 0.5

// minStableSession is how long, at least, a connection must stay up for
// the reconnect delays to start again from the first. A server that
// accepts the handshake and then drops the connection at once (as a .NET
// Tharga server does for a key it refuses) must not make its clients
// reconnect in a tight loop. The threshold is the longer of this and the
// first non-zero reconnect delay; see stableAfter.
const minStableSession = 5 * time.Second

// stableAfter is how long a connection must have lasted for the delays to
// start again from the first: the longer of minStableSession and the
// first non-zero delay. A connection that lasts less than the wait the
// backoff already imposes does not prove the server has recovered.
func stableAfter(delays []time.Duration) time.Duration {
	for _, d := range delays {
		if d > 0 {
			return max(minStableSession, d)
		}
	}
	return minStableSession
}

// jittered returns d spread uniformly over [d(1-f), d(1+f)], using rnd
// (a source of uniform values in [0, 1)). A zero delay stays zero.
func jittered(d time.Duration, f float64, rnd func() float64) time.Duration {
	if d <= 0 || f == 0 {
		return d
	}
	v := float64(d) * (1 - f + 2*f*rnd())
	if v >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(v)
}

// Client is a connection to a server that keeps itself up. Create it with
// AddClient and connect with Start.
//
// Start either connects and returns nil, after which the client keeps
// itself connected, reconnecting along its delays whenever the connection
// drops, until Close; or it returns an error and leaves nothing running
// (the client is Disconnected and may be started again). After Start
// succeeded the client stops by itself only when the server closes the
// connection and disallows reconnecting (ErrClosedByServer), or refuses
// its key on a reconnect with WithRetryUnauthorized(false): it is then
// Disconnected, the state handler learns why, and Start may be called
// again. Close stops everything the client started.
type Client struct {
	cfg         clientConfig
	h           *Handlers
	log         *slog.Logger
	hubURL      *url.URL
	stableAfter time.Duration
	ctx         context.Context // the client's lifetime, ended by Close
	stop        context.CancelCauseFunc
	events      *serial.Queue
	closeDone   chan struct{} // closed when Close has finished
	tel         *telemetry    // see metrics.go

	mu      sync.Mutex
	state   State
	cur     *peer
	run     *runState // the latest run; nil before the first Start
	closed  bool
	lastErr error   // why the last attempt of the current run failed
	peers   []*peer // peers whose handlers may still run

	subs clientSubscriptions // see subscription_client.go
}

// runState is one run of the connect loop, from Start until it stops.
type runState struct {
	connected   chan struct{} // closed on the run's first connection
	connectOnce sync.Once
	done        chan struct{} // closed when the loop goroutine has exited
	cancel      context.CancelCauseFunc
	finished    bool  // the loop will make no more attempts; under Client.mu
	err         error // why the run ended; set with finished
}

func (r *runState) isConnected() bool {
	select {
	case <-r.connected:
		return true
	default:
		return false
	}
}

// AddClient builds a Client. Call Start to connect.
func AddClient(opts ...ClientOption) (*Client, error) {
	cfg := clientConfig{
		common:          defaultCommon(),
		reconnectDelays: DefaultReconnectDelays,
		reconnectJitter: DefaultReconnectJitter,
		protocol:        JSON,
		httpClient:      http.DefaultClient,
	}
	for _, o := range opts {
		o.applyClient(&cfg)
	}
	errs := []error{cfg.validate()}
	u, err := url.Parse(cfg.address)
	switch {
	case cfg.address == "":
		errs = append(errs, errors.New("a server address is required (WithServerAddress)"))
	case err != nil:
		errs = append(errs, fmt.Errorf("server address: %w", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("server address must be http or https, got %q", cfg.address))
	}
	if len(cfg.reconnectDelays) == 0 {
		errs = append(errs, errors.New("at least one reconnect delay is required"))
	}
	for _, d := range cfg.reconnectDelays {
		if d < 0 {
			errs = append(errs, fmt.Errorf("reconnect delays must not be negative, got %v", d))
			break
		}
	}
	if f := cfg.reconnectJitter; !(f >= 0 && f <= 1) {
		errs = append(errs, fmt.Errorf("reconnect jitter must be between 0 and 1, got %v", f))
	}
	if cfg.protocol != JSON && cfg.protocol != MessagePack {
		errs = append(errs, fmt.Errorf("unknown protocol %d", cfg.protocol))
	}
	if err := cfg.identity.resolve(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("communication: invalid client options: %w", err)
	}
	h := NewHandlers()
	if err := h.Include(cfg.handlers...); err != nil {
		return nil, err
	}
	hubURL := *u
	hubURL.Path = strings.TrimSuffix(hubURL.Path, "/") + cfg.pattern
	ctx, stop := context.WithCancelCause(context.Background())
	c := &Client{
		cfg:         cfg,
		h:           h,
		log:         cfg.logger,
		hubURL:      &hubURL,
		stableAfter: stableAfter(cfg.reconnectDelays),
		ctx:         ctx,
		stop:        stop,
		closeDone:   make(chan struct{}),
		state:       Disconnected,
		tel:         newTelemetry(sideClient, &cfg.common, cfg.logger),
	}
	c.events = serial.New(256, c.log, "communication: state handler panicked")
	if err := c.handleSubscriptions(); err != nil {
		stop(ErrClosed)
		return nil, err
	}
	return c, nil
}

// Handlers returns the client's own handler set, to register into.
func (c *Client) Handlers() *Handlers { return c.h }

// Instance returns the client's instance id (X-Client-Instance): the one
// set with WithClientInstance, or else a new UUID of this Client, the same
// across its reconnects. Every Client has its own, so that several Clients
// of one process keep separate records on the server.
func (c *Client) Instance() string { return c.cfg.identity.instance }

// Start connects. It returns nil once connected; from then on the client
// keeps itself connected until Close (see Client). Until the first
// connection, failed attempts are retried along the reconnect delays.
//
// Start returns an error, and leaves nothing running, when:
//   - ctx ends first: the error wraps ErrNotConnected and ctx's error, and
//     says why the last attempt failed;
//   - the server refuses the client: ErrUnauthorized for its key (whatever
//     WithRetryUnauthorized says), the server's reason for a refused
//     handshake (an unsupported protocol), ErrClosedByServer for a close
//     message that disallows reconnecting;
//   - the client is closed (ErrClosed), or already started.
//
// After a failed attempt to connect, the client is Disconnected and Start
// may be called again.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	prev := c.run
	if prev != nil && !prev.finished {
		c.mu.Unlock()
		return errAlreadyStarted
	}
	runCtx, cancel := context.WithCancelCause(c.ctx)
	r := &runState{connected: make(chan struct{}), done: make(chan struct{}), cancel: cancel}
	c.run = r
	c.lastErr = nil
	c.setStateLocked(StateChange{State: Connecting})
	c.mu.Unlock()
	if prev != nil {
		<-prev.done // it has finished: its goroutine is on its way out
	}
	go c.loop(runCtx, r)

	select {
	case <-r.connected:
		return nil
	case <-r.done:
	case <-ctx.Done():
		if r.isConnected() {
			return nil
		}
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		err := fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		if last != nil {
			err = fmt.Errorf("%w: %w (last attempt: %w)", ErrNotConnected, ctx.Err(), last)
		}
		cancel(err)
		<-r.done
	}
	if r.isConnected() {
		// It connected, then the server closed it for good: Start did
		// connect; the state handler learns the rest.
		return nil
	}
	c.drainPeers(ErrNotConnected)
	c.mu.Lock()
	err := r.err
	c.mu.Unlock()
	return err
}

// State returns the current connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// IsConnected reports whether a connection is up.
func (c *Client) IsConnected() bool { return c.State() == Connected }

// ConnectionID returns the current connection's id, "" when not connected.
func (c *Client) ConnectionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return ""
	}
	return c.cur.id
}

// Post sends msg to the server. Posts arrive in the order they were made.
// It returns once the message is queued, waiting for room in a full queue
// until ctx ends; ErrNotConnected when there is no connection.
func (c *Client) Post(ctx context.Context, msg any) error {
	p, err := c.peerFor()
	if err != nil {
		return err
	}
	return p.post(ctx, msg)
}

func (c *Client) peerFor() (*peer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.cur == nil {
		return nil, ErrNotConnected
	}
	return c.cur, nil
}

// Close disconnects and stops reconnecting. Pending requests fail with
// ErrClosed. It waits for the client's goroutines, handlers included
// (their contexts are cancelled), to end. Close may be called at any time
// and more than once (a later call waits for the first to finish); it
// must not be called from a handler or the state handler, which it would
// wait for.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.closeDone
		return nil
	}
	c.closed = true
	r := c.run
	c.mu.Unlock()
	defer close(c.closeDone)
	c.stop(ErrClosed)
	if r != nil {
		<-r.done
	}
	c.drainPeers(ErrClosed)
	c.mu.Lock()
	c.setStateLocked(StateChange{State: Disconnected})
	c.mu.Unlock()
	c.events.Close()
	return c.events.Wait(context.Background())
}

// drainPeers ends the peers whose handlers may still run and waits for
// their handlers.
func (c *Client) drainPeers(reason error) {
	c.mu.Lock()
	peers := c.peers
	c.peers = nil
	c.mu.Unlock()
	for _, p := range peers {
		p.close(reason)
		_ = p.wait(context.Background())
	}
}

// loop connects, waits for the connection to end and reconnects, until
// ctx ends or the server refuses the client for good. philippseith's own
// reconnect loop is not used: it gives up, reuses a connection whose
// handshake failed and races on reconnect. Each connection gets a fresh
// philippseith client instead.
func (c *Client) loop(ctx context.Context, r *runState) {
	defer close(r.done)
	attempt := 0
	for {
		stable, err := c.session(ctx, r)
		if ctx.Err() != nil {
			c.finish(r, context.Cause(ctx))
			return
		}
		if stable {
			attempt = 0
		}
		connected := r.isConnected()
		if c.final(err, connected) {
			c.finish(r, err)
			return
		}
		delay := jittered(c.cfg.reconnectDelays[min(attempt, len(c.cfg.reconnectDelays)-1)], c.cfg.reconnectJitter, rand.Float64)
		attempt++
		c.mu.Lock()
		c.lastErr = err
		next := Connecting
		if connected {
			next = Reconnecting
		}
		c.setStateLocked(StateChange{State: next, Err: err})
		c.mu.Unlock()
		c.log.Debug("communication: connection attempt failed", "error", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			c.finish(r, context.Cause(ctx))
			return
		}
	}
}

// final tells whether err ends the run: the server refused the client in
// a way that will not go away by itself. Before the run's first
// connection every refusal is final, so that Start reports it at once.
func (c *Client) final(err error, connected bool) bool {
	switch {
	case errors.Is(err, ErrClosedByServer):
		return true
	case errors.Is(err, ErrUnauthorized):
		return !connected || !c.cfg.identity.retryUnauthorized
	case errors.Is(err, transport.ErrHandshake):
		return !connected
	}
	return false
}

// finish records the end of run r, with why: ErrClosed for Close (which
// the state change does not report as a failure).
func (c *Client) finish(r *runState, why error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.finished = true
	r.err = why
	r.cancel(why) // releases the run's context
	if errors.Is(why, ErrClosed) {
		why = nil
	}
	c.setStateLocked(StateChange{State: Disconnected, Err: why})
}

// session makes one connection and serves it until it ends or ctx ends.
// It reports whether the connection stayed up long enough to count as
// stable (see stableAfter), and why it ended.
func (c *Client) session(ctx context.Context, r *runState) (stable bool, err error) {
	conn, p, err := c.dial(ctx)
	if err != nil {
		return false, err
	}
	sc := &sessionConn{Conn: conn, ready: func() { c.established(ctx, r, p) }}
	sr, err := signalr.NewClient(ctx,
		signalr.WithConnection(sc),
		// philippseith runs the session on MessagePack whatever this end
		// speaks (see internal/transport/inner.go): its JSON reader holds
		// 32 KiB per connection while it waits.
		signalr.TransferFormat(signalr.TransferFormatBinary),
		signalr.KeepAliveInterval(c.cfg.keepAlive),
		signalr.TimeoutInterval(c.cfg.timeout),
		signalr.HandshakeTimeout(c.cfg.handshakeTimeout),
		signalr.MaximumReceiveMessageSize(512),
		signalr.WithReceiver(&receiver{}),
		signalr.Logger(kitLogger{c.log}, debugEnabled(c.log)),
	)
	if err != nil {
		conn.Close(err)
		c.endPeer(p, err)
		return false, err
	}
	sr.Start()
	handshake := time.NewTimer(c.cfg.handshakeTimeout)
	defer handshake.Stop()
	established := false
	for !established {
		select {
		case <-p.ready:
			established = true
			handshake.Stop()
		case <-handshake.C:
			conn.Close(errors.New("handshake timed out"))
		case <-conn.Done():
		case <-ctx.Done():
			conn.Close(context.Cause(ctx))
		}
		if conn.Err() != nil {
			break
		}
	}
	// The connection may have been established and have ended at once.
	select {
	case <-p.ready:
		established = true
	default:
	}
	if established {
		select {
		case <-conn.Done():
		case <-ctx.Done():
			conn.Close(context.Cause(ctx))
		}
	}
	sr.Stop()
	cause := conn.Err()
	lost := fmt.Errorf("%w: %w", ErrConnectionLost, cause)
	c.endPeer(p, lost)
	var closed *transport.ClosedByPeerError
	switch {
	case errors.As(cause, &closed) && !closed.AllowReconnect:
		if closed.Message == "" {
			return false, fmt.Errorf("%w (reconnect not allowed)", ErrClosedByServer)
		}
		return false, fmt.Errorf("%w (reconnect not allowed): %s", ErrClosedByServer, closed.Message)
	case established:
		return time.Since(p.readyAt) >= c.stableAfter, lost
	}
	return false, cause
}

// endPeer retires the peer of a connection that ended.
func (c *Client) endPeer(p *clientPeer, reason error) {
	c.mu.Lock()
	if c.cur == p.peer {
		c.cur = nil
	}
	c.mu.Unlock()
	c.subs.disconnected(c, p.id)
	p.close(reason)
}

// sessionConn is the connection as philippseith sees it. philippseith
// sets the transfer mode once it has read and accepted the server's
// handshake answer: the connection is then established, unless what came
// with the answer (a close message in the same WebSocket message) has
// already ended it.
type sessionConn struct {
	*transport.Conn
	ready func()
	once  sync.Once
}

func (s *sessionConn) SetTransferMode(m signalr.TransferMode) {
	s.Conn.SetTransferMode(m)
	s.once.Do(func() {
		if s.Err() == nil {
			s.ready()
		}
	})
}

// dial negotiates and opens the WebSocket. The connection lives until
// life ends.
func (c *Client) dial(life context.Context) (*transport.Conn, *clientPeer, error) {
	ctx, cancel := context.WithTimeout(life, c.cfg.handshakeTimeout)
	defer cancel()
	header := c.header()

	negURL := *c.hubURL
	negURL.Path += "/negotiate"
	q := negURL.Query()
	q.Set("negotiateVersion", "1")
	negURL.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, negURL.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header = header.Clone()
	resp, err := c.cfg.httpClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("negotiate: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("negotiate: %w", err)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return nil, nil, fmt.Errorf("%w: negotiate answered %s", ErrUnauthorized, resp.Status)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("negotiate answered %s", resp.Status)
	}
	nr, err := parseNegotiateResponse(body)
	if err != nil {
		return nil, nil, err
	}
	echo := resp.Header.Get(correlationHeader) == "1"
	peerMax, _ := strconv.Atoi(resp.Header.Get(maxMessageHeader))

	wsURL := *c.hubURL
	if wsURL.Scheme == "https" {
		wsURL.Scheme = "wss"
	} else {
		wsURL.Scheme = "ws"
	}
	q = wsURL.Query()
	q.Set("id", nr.transportKey())
	wsURL.RawQuery = q.Encode()
	ws, wsResp, err := websocket.Dial(ctx, wsURL.String(), &websocket.DialOptions{
		HTTPClient: c.cfg.httpClient,
		HTTPHeader: header,
	})
	if err != nil {
		if wsResp != nil && (wsResp.StatusCode == http.StatusUnauthorized || wsResp.StatusCode == http.StatusForbidden) {
			return nil, nil, fmt.Errorf("%w: the WebSocket request was answered %s", ErrUnauthorized, wsResp.Status)
		}
		return nil, nil, fmt.Errorf("websocket: %w", err)
	}
	if wsResp != nil && wsResp.Header.Get(correlationHeader) == "1" {
		echo = true
	}
	if wsResp != nil {
		if n, err := strconv.Atoi(wsResp.Header.Get(maxMessageHeader)); err == nil {
			peerMax = n
		}
	}
	if peerMax <= 0 {
		// A server that does not say (.NET) is assumed to accept what
		// this end does: both default to SignalR's 32 KiB.
		peerMax = c.cfg.maxMessage
	}
	// A .NET server runs one connection's calls in order, so its answers
	// come in request order.
	table := pending.New(pending.InOrder, echo, nil)
	cp := &clientPeer{ready: make(chan struct{})}
	conn := transport.NewConn(life, ws, transport.ConnConfig{
		Side:           transport.ClientSide,
		ConnectionID:   nr.ConnectionID,
		Protocol:       wire.Protocol(c.cfg.protocol),
		MaxMessage:     c.cfg.maxMessage,
		PeerMaxMessage: peerMax,
		QueueLimit:     c.cfg.sendQueueBytes,
		WriteTimeout:   c.cfg.writeTimeout,
		PingEvery:      c.cfg.timeout / 4,
		Inbound:        (*clientInbound)(cp),
		Logger:         c.log,
	})
	cp.peer = newPeer(c.ctx, nr.ConnectionID, c.h, &c.cfg.common, conn, table, nil)
	conn.SetCrowded(cp.peer.crowded)
	cp.peer.tel = c.tel
	c.mu.Lock()
	live := c.peers[:0]
	for _, p := range c.peers {
		if p.busy() {
			live = append(live, p)
		}
	}
	clear(c.peers[len(live):])
	c.peers = append(live, cp.peer)
	c.mu.Unlock()
	return conn, cp, nil
}

// clientPeer is a peer with a signal for its handshake.
type clientPeer struct {
	*peer
	ready   chan struct{} // closed once the connection is established
	readyAt time.Time     // when; written before ready is closed
}

// clientInbound is a connection's transport.Inbound: its peer, which is
// made after the connection it writes to, before anything is read.
type clientInbound clientPeer

func (c *clientInbound) HandleMessage(m *wire.Message) bool { return c.peer.HandleMessage(m) }
func (c *clientInbound) Ready() <-chan struct{}             { return c.peer.Ready() }

// established makes a connection whose handshake went through current.
func (c *Client) established(ctx context.Context, r *runState, cp *clientPeer) {
	c.mu.Lock()
	if ctx.Err() != nil {
		c.mu.Unlock()
		return
	}
	c.cur = cp.peer
	c.subs.connected(cp.id)
	c.setStateLocked(StateChange{State: Connected, ConnectionID: cp.id})
	c.mu.Unlock()
	cp.readyAt = time.Now()
	close(cp.ready)
	if r.isConnected() {
		c.tel.reconnected()
	}
	r.connectOnce.Do(func() { close(r.connected) })
}

// setStateLocked records a state and queues its callback; c.mu is held.
// A failed attempt is reported even when the state stays the same, so
// that the callback learns why the client is not connected.
func (c *Client) setStateLocked(sc StateChange) {
	if c.state == sc.State && sc.State != Connected && sc.Err == nil {
		return
	}
	c.state = sc.State
	if f := c.cfg.onState; f != nil {
		_ = c.events.Push(context.Background(), func() { f(sc) })
	}
}

func (c *Client) header() http.Header {
	h := c.cfg.headers.Clone()
	if h == nil {
		h = http.Header{}
	}
	c.cfg.identity.apply(h)
	h.Set(correlationHeader, "1")
	h.Set(maxMessageHeader, strconv.Itoa(c.cfg.maxMessage))
	return h
}

// receiver is the philippseith client's receiver: no methods, as the
// server's invocations are intercepted before philippseith sees them.
type receiver struct{}
