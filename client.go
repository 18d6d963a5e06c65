package communication

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime/debug"
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
	// Disconnected: closed, or gave up because the server refused the key
	// and retrying was turned off.
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
	// Err is why the previous connection or attempt ended, if it failed.
	Err error
}

// DefaultReconnectDelays are the waits between connection attempts: the
// first retry at once, then after 2s, 10s and every 30s. Each non-zero
// delay is jittered (see WithReconnectJitter, DefaultReconnectJitter), so
// that a fleet of clients cut off at the same moment does not come back
// in lockstep.
var DefaultReconnectDelays = []time.Duration{0, 2 * time.Second, 10 * time.Second, 30 * time.Second}

// DefaultReconnectJitter is the default jitter of the reconnect delays:
// each non-zero delay d is drawn uniformly from [d/2, 3d/2].
const DefaultReconnectJitter = 0.5

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

// Client is a connection to a server that keeps itself up: it connects on
// Start, reconnects along its delays whenever the connection drops, and
// stops only on Close. Create it with AddClient.
type Client struct {
	cfg    clientConfig
	h      *Handlers
	log    *slog.Logger
	hubURL *url.URL
	ctx    context.Context // the client's lifetime
	stop   context.CancelFunc
	events *serial.Queue

	mu        sync.Mutex
	state     State
	cur       *peer
	started   bool
	stopped   chan struct{}
	connected chan struct{} // closed on the first connect
	firstErr  chan error    // the first attempt's refusal, for Start
	lastErr   error         // why the last attempt failed
	peers     []*peer       // peers whose handlers may still run
}

// AddClient builds a Client. Call Start to connect.
func AddClient(opts ...ClientOption) (*Client, error) {
	cfg := clientConfig{
		common:          defaultCommon(),
		pattern:         "hub",
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
	hubURL.Path = strings.TrimSuffix(hubURL.Path, "/") + "/" + strings.TrimPrefix(cfg.pattern, "/")
	ctx, stop := context.WithCancel(context.Background())
	c := &Client{
		cfg:       cfg,
		h:         h,
		log:       cfg.logger,
		hubURL:    &hubURL,
		ctx:       ctx,
		stop:      stop,
		stopped:   make(chan struct{}),
		connected: make(chan struct{}),
		firstErr:  make(chan error, 1),
	}
	c.events = serial.New(256, func(v any) {
		c.log.Error("communication: state handler panicked", "panic", v, "stack", string(debug.Stack()))
	})
	return c, nil
}

// Handlers returns the client's own handler set, to register into.
func (c *Client) Handlers() *Handlers { return c.h }

// Instance returns the client's instance id (X-Client-Instance): the one
// set with WithClientInstance, or else a new UUID of this Client, the same
// across its reconnects. Every Client has its own, so that several Clients
// of one process keep separate records on the server.
func (c *Client) Instance() string { return c.cfg.identity.instance }

// Start connects. It returns once connected; with ctx's error (and why the
// last attempt failed) if ctx ends first; at once with ErrUnauthorized if
// the server refuses the key, or with the server's reason if it refuses the
// handshake (an unsupported protocol). In the last cases the client goes on trying in the background along its
// reconnect delays (unless WithRetryUnauthorized(false)): Close stops it.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return errors.New("communication: client already started")
	}
	if c.ctx.Err() != nil {
		c.mu.Unlock()
		return ErrClosed
	}
	c.started = true
	c.setStateLocked(StateChange{State: Connecting})
	c.mu.Unlock()
	go c.run()
	select {
	case <-c.connected:
		return nil
	case err := <-c.firstErr:
		return err
	case <-ctx.Done():
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		if last != nil {
			return fmt.Errorf("%w: %w (last attempt: %v)", ErrNotConnected, ctx.Err(), last)
		}
		return fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
	case <-c.stopped:
		return ErrClosed
	}
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
	if c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if c.cur == nil {
		return nil, ErrNotConnected
	}
	return c.cur, nil
}

// Close disconnects and stops reconnecting. Pending requests fail with
// ErrClosed. It waits for the client's goroutines, handlers included
// (their contexts are cancelled), to end.
func (c *Client) Close() error {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	c.stop()
	if started {
		<-c.stopped
	}
	c.mu.Lock()
	peers := c.peers
	c.peers = nil
	c.setStateLocked(StateChange{State: Disconnected})
	c.mu.Unlock()
	for _, p := range peers {
		p.close(ErrClosed)
		_ = p.wait(context.Background())
	}
	c.events.Close()
	return c.events.Wait(context.Background())
}

// run connects, waits for the connection to end and reconnects, until the
// client is closed. philippseith's own reconnect loop is not used: it gives
// up, reuses a connection whose handshake failed and races on reconnect.
// Each connection gets a fresh philippseith client instead.
func (c *Client) run() {
	defer close(c.stopped)
	attempt := 0
	first := true
	for c.ctx.Err() == nil {
		err := c.session()
		if errors.Is(err, errSessionEstablished) {
			attempt, err = 0, nil
		}
		if c.ctx.Err() != nil {
			return
		}
		if err != nil {
			c.mu.Lock()
			c.lastErr = err
			c.mu.Unlock()
		}
		// A refusal will not go away by itself: Start reports it at once.
		if first && (errors.Is(err, ErrUnauthorized) || errors.Is(err, transport.ErrHandshake)) {
			c.firstErr <- err
		}
		first = false
		if errors.Is(err, ErrUnauthorized) && !c.cfg.identity.retryUnauthorized {
			c.mu.Lock()
			c.setStateLocked(StateChange{State: Disconnected, Err: err})
			c.mu.Unlock()
			return
		}
		delay := jittered(c.cfg.reconnectDelays[min(attempt, len(c.cfg.reconnectDelays)-1)], c.cfg.reconnectJitter, rand.Float64)
		attempt++
		c.mu.Lock()
		next := Reconnecting
		if c.state == Connecting {
			next = Connecting
		}
		c.setStateLocked(StateChange{State: next, Err: err})
		c.mu.Unlock()
		if err != nil {
			c.log.Debug("communication: connection attempt failed", "error", err, "retry_in", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return
		}
	}
}

// errSessionEstablished marks a session that connected before it ended.
var errSessionEstablished = errors.New("session ended")

// session makes one connection and serves it until it ends.
func (c *Client) session() error {
	conn, p, err := c.dial()
	if err != nil {
		return err
	}
	sr, err := signalr.NewClient(c.ctx,
		signalr.WithConnection(conn),
		signalr.TransferFormat(transferFormat(c.cfg.protocol)),
		signalr.KeepAliveInterval(c.cfg.keepAlive),
		signalr.TimeoutInterval(c.cfg.timeout),
		signalr.HandshakeTimeout(c.cfg.handshakeTimeout),
		signalr.MaximumReceiveMessageSize(4096),
		signalr.WithReceiver(&receiver{}),
		signalr.Logger(kitLogger{c.log}, debugEnabled(c.log)),
	)
	if err != nil {
		conn.Close(err)
		return err
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
		case <-c.ctx.Done():
			conn.Close(ErrClosed)
		}
		if conn.Err() != nil {
			break
		}
	}
	if established {
		select {
		case <-conn.Done():
		case <-c.ctx.Done():
			conn.Close(ErrClosed)
		}
	}
	sr.Stop()
	cause := conn.Err()
	c.mu.Lock()
	if c.cur == p.peer {
		c.cur = nil
	}
	c.mu.Unlock()
	p.close(fmt.Errorf("%w: %v", ErrConnectionLost, cause))
	if established {
		return fmt.Errorf("%w: %v", errSessionEstablished, cause)
	}
	return cause
}

// dial negotiates and opens the WebSocket.
func (c *Client) dial() (*transport.Conn, *clientPeer, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.handshakeTimeout)
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
	var nr struct {
		ConnectionID    string `json:"connectionId"`
		ConnectionToken string `json:"connectionToken"`
		Error           string `json:"error"`
	}
	if err := json.Unmarshal(body, &nr); err != nil {
		return nil, nil, fmt.Errorf("negotiate: %w", err)
	}
	if nr.Error != "" {
		return nil, nil, fmt.Errorf("negotiate: the server answered: %s", nr.Error)
	}
	echo := resp.Header.Get(correlationHeader) == "1"

	wsURL := *c.hubURL
	if wsURL.Scheme == "https" {
		wsURL.Scheme = "wss"
	} else {
		wsURL.Scheme = "ws"
	}
	key := nr.ConnectionToken
	if key == "" {
		key = nr.ConnectionID
	}
	q = wsURL.Query()
	q.Set("id", key)
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
	// A .NET server runs one connection's calls in order, so its answers
	// come in request order.
	table := pending.New(pending.InOrder, echo, nil)
	cp := &clientPeer{ready: make(chan struct{})}
	conn := transport.NewConn(c.ctx, ws, transport.ConnConfig{
		Side:         transport.ClientSide,
		ConnectionID: nr.ConnectionID,
		Protocol:     wire.Protocol(c.cfg.protocol),
		MaxMessage:   c.cfg.maxMessage,
		QueueLimit:   c.cfg.sendQueueBytes,
		WriteTimeout: c.cfg.writeTimeout,
		Inbound:      inboundFunc(func(m *wire.Message) { cp.peer.HandleMessage(m) }),
		OnHandshake:  func(wire.Protocol) { c.established(cp) },
		Logger:       c.log,
	})
	cp.peer = newPeer(c.ctx, nr.ConnectionID, c.h, &c.cfg.common, conn, table)
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
	ready chan struct{}
}

// established makes a connection whose handshake went through current.
func (c *Client) established(cp *clientPeer) {
	c.mu.Lock()
	if c.ctx.Err() != nil {
		c.mu.Unlock()
		return
	}
	c.cur = cp.peer
	c.setStateLocked(StateChange{State: Connected, ConnectionID: cp.id})
	first := c.connected
	c.mu.Unlock()
	select {
	case <-first:
	default:
		close(first)
	}
	close(cp.ready)
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
	return h
}

func transferFormat(p Protocol) signalr.TransferFormatType {
	if p == MessagePack {
		return signalr.TransferFormatBinary
	}
	return signalr.TransferFormatText
}

// receiver is the philippseith client's receiver: no methods, as the
// server's invocations are intercepted before philippseith sees them.
type receiver struct{}
