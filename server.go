package communication

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/philippseith/signalr"

	"github.com/tharga/communication-go/internal/pending"
	"github.com/tharga/communication-go/internal/recovery"
	"github.com/tharga/communication-go/internal/transport"
	"github.com/tharga/communication-go/internal/wire"
)

// correlationHeader announces, on connect requests and on negotiate and
// WebSocket answers, that this end echoes correlation ids. .NET and plain
// SignalR peers neither send nor read it.
const correlationHeader = "X-Tharga-Correlation"

// maxMessageHeader announces, beside correlationHeader, the largest hub
// message this end accepts, so that the other end refuses a larger one
// before sending it (ErrTooLarge) instead of having it dropped here.
const maxMessageHeader = "X-Tharga-Max-Message"

// Server is the hub: an http.Handler serving SignalR negotiate, WebSockets
// and server-sent events at one path of the user's mux, and the typed
// messaging with every connected client. Create it with AddServer; stop it
// with Shutdown or Close.
type Server struct {
	cfg  serverConfig
	h    *Handlers
	log  *slog.Logger
	sr   signalr.Server
	ctx  context.Context // the server's lifetime
	stop context.CancelFunc
	nego *negotiations
	// cluster is this node's part of a cluster; nil without a Backplane.
	cluster *cluster
	// validator checks API keys; nil lets everybody in.
	validator KeyValidator
	// handlers bounds the handlers running across the server.
	handlers *limiter
	tel      *telemetry // see metrics.go

	mu        sync.RWMutex
	conns     map[string]*serverConn // connected, by connection id
	instances map[string]*serverConn // connected, by client instance (the newest)
	accepting map[string]*serverConn // between accept and handshake
	sse       map[string]*serverConn // server-sent-events sessions, by token
	closed    bool
	serving   sync.WaitGroup // connections being served

	subs serverSubscriptions // see subscription.go
}

// serverConn is one connected client.
type serverConn struct {
	id        string
	peer      *peer
	conn      *transport.Conn
	info      connInfo
	connected time.Time
	record    ClientRecord
	// Server-sent events: the session's stream, and the token its POSTs
	// carry.
	sse   *transport.SSE
	token string
	// dropped is set, under Server.mu, when the connection has been
	// taken down.
	dropped bool
	// opened is when the connection became reachable, under Server.mu.
	opened time.Time
}

// AddServer builds a Server. Mount it on your mux (see Server.Mount); the
// library never owns the listener. The Server runs from here on: end it
// with Shutdown or Close.
func AddServer(opts ...ServerOption) (*Server, error) {
	cfg := serverConfig{common: defaultCommon(), maxHandlers: DefaultMaxServerHandlers}
	for _, o := range opts {
		o.applyServer(&cfg)
	}
	errs := []error{cfg.validate(), checkKeyOptions(opts)}
	if cfg.maxHandlers < 1 {
		errs = append(errs, fmt.Errorf("maximum server handlers must be at least 1, got %d", cfg.maxHandlers))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("communication: invalid server options: %w", err)
	}
	h := NewHandlers()
	if err := h.Include(cfg.handlers...); err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		h:         h,
		log:       cfg.logger,
		ctx:       ctx,
		stop:      stop,
		nego:      newNegotiations(cfg.handshakeTimeout, maxPendingNegotiations),
		handlers:  newLimiter(cfg.maxHandlers),
		tel:       newTelemetry(sideServer, &cfg.common, cfg.logger),
		conns:     make(map[string]*serverConn),
		instances: make(map[string]*serverConn),
		accepting: make(map[string]*serverConn),
		sse:       make(map[string]*serverConn),
	}
	if s.cfg.state == nil {
		// No option can fail: there are none.
		s.cfg.state, _ = NewClientState[struct{}]()
	}
	s.cfg.state.setLogger(s.log)
	switch {
	case cfg.validator != nil:
		s.validator = cfg.validator
	case len(cfg.keys) > 0:
		s.validator = newConfiguredKeys(cfg.keys)
	}
	// philippseith runs the SignalR session (handshake, keep-alive,
	// timeouts, close) on connections this Server accepts and feeds
	// itself: its HTTP handlers are not used, so neither its bound on
	// pending negotiations nor its per-request goroutines apply.
	sr, err := signalr.NewServer(ctx,
		signalr.UseHub(&hub{}),
		signalr.WithHubLifetimeManager(func(signalr.Server) (signalr.HubLifetimeManager, error) {
			return &lifetime{s: s}, nil
		}),
		signalr.KeepAliveInterval(cfg.keepAlive),
		signalr.TimeoutInterval(cfg.timeout),
		signalr.HandshakeTimeout(cfg.handshakeTimeout),
		// Only session traffic reaches philippseith: its per-connection
		// receive buffer need not hold a data message.
		signalr.MaximumReceiveMessageSize(512),
		signalr.Logger(kitLogger{cfg.logger}, debugEnabled(cfg.logger)),
	)
	if err != nil {
		stop()
		return nil, fmt.Errorf("communication: %w", err)
	}
	s.sr = sr
	if cfg.backplane != nil {
		s.tel.withBackplane(cfg.meterProvider)
		if err := s.joinCluster(cfg.backplane, cfg.nodeName); err != nil {
			stop()
			return nil, err
		}
	}
	return s, nil
}

// Handlers returns the server's own handler set, to register into.
func (s *Server) Handlers() *Handlers { return s.h }

// Pattern returns the path the hub is meant to be mounted at (WithPattern),
// with a leading slash and no trailing one.
func (s *Server) Pattern() string { return s.cfg.pattern }

// Mount registers the server on an http.ServeMux: GET and POST at its
// pattern, POST at pattern + "/negotiate". The patterns name their methods,
// so that they live beside an application's own ("GET /" included). With
// another router, route those paths to the Server yourself: it serves any
// path ending in "/negotiate" as negotiate and any other as the hub.
func (s *Server) Mount(mux *http.ServeMux) {
	p := s.cfg.pattern
	mux.Handle("GET "+p, s)
	mux.Handle("POST "+p, s)
	mux.Handle("POST "+p+"/negotiate", s)
}

// ServeHTTP serves negotiate (a path ending in "/negotiate") and the
// transports (any other path), so that it works under any mux and prefix.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.usable() != nil {
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	key, present, ok := s.authorize(r)
	if strings.HasSuffix(r.URL.Path, "/negotiate") {
		if !ok {
			s.unauthorized(w)
			return
		}
		s.negotiate(w, r, key)
		return
	}
	// A transport request. A key it carries must be valid; without one
	// it rides on the negotiate that handed out its id, which a browser
	// must do (it cannot put headers on a WebSocket or an event stream).
	if !ok && present {
		s.unauthorized(w)
		return
	}
	switch {
	case r.Method == http.MethodGet && headerHasToken(r.Header, "Connection", "upgrade") &&
		strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		s.serveWebSocket(w, r, key, ok)
	case r.Method == http.MethodGet:
		s.serveSSE(w, r, key, ok)
	case r.Method == http.MethodPost:
		s.ssePost(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// announce sets the headers that tell a client what this end does beyond
// SignalR.
func (s *Server) announce(h http.Header) {
	h.Set(correlationHeader, "1")
	h.Set(maxMessageHeader, strconv.Itoa(s.cfg.maxMessage))
}

// transportInfo takes the negotiation of a transport request and returns
// the connection's id and what its client said, or answers the request
// itself and reports false. A request without an id skips negotiation
// (WebSocket only): it then needs a valid key of its own when keys are
// required.
func (s *Server) transportInfo(w http.ResponseWriter, r *http.Request, key KeyInfo, keyOK bool, allowSkip bool) (string, connInfo, bool) {
	id := r.URL.Query().Get("id")
	if id == "" {
		switch {
		case !allowSkip:
			http.Error(w, "missing connection id: negotiate first", http.StatusBadRequest)
			return "", connInfo{}, false
		case !keyOK:
			s.unauthorized(w)
			return "", connInfo{}, false
		}
		info := infoFrom(r)
		info.key = key
		return newConnectionID(), info, true
	}
	n, found := s.nego.take(id)
	if !found {
		if !keyOK {
			s.unauthorized(w)
			return "", connInfo{}, false
		}
		http.Error(w, "unknown, used or expired connection id: negotiate first. "+
			"Behind a load balancer, negotiate and the transport request must reach the same node "+
			"(sticky sessions, or WebSockets with skipNegotiation)", http.StatusNotFound)
		return "", connInfo{}, false
	}
	info := n.info
	info.merge(infoFrom(r))
	if _, present := keyFrom(r); present {
		info.key = key
	}
	return n.connID, info, true
}

// serveWebSocket accepts a WebSocket itself and hands philippseith a
// connection whose reads and writes this library owns (see
// internal/transport): philippseith runs the session on it.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request, key KeyInfo, keyOK bool) {
	connID, info, ok := s.transportInfo(w, r, key, keyOK, true)
	if !ok {
		return
	}
	s.announce(w.Header())
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// Per-message deflate costs about a megabyte per connection for
		// messages this small; browsers and Node offer it by default.
		CompressionMode:    websocket.CompressionDisabled,
		OriginPatterns:     s.cfg.originPatterns,
		InsecureSkipVerify: s.cfg.insecureSkipVerify,
	})
	if err != nil {
		s.log.Debug("communication: WebSocket not accepted", "error", err)
		return
	}
	sc := &serverConn{id: connID, info: info}
	sc.conn = transport.NewConn(s.ctx, ws, s.connConfig(sc))
	if !s.admit(sc) {
		return
	}
	// The connection is hijacked: net/http needs this handler no more.
	// Returning lets go of the request and of the goroutine net/http
	// served it on, whose stack grew with the HTTP work; the session runs
	// on a goroutine of its own (about 6 KB less per idle connection).
	go s.serve(sc)
}

// serveSSE serves the event stream of a server-sent-events session. It is
// the transport request of a negotiate (its token, used once); the
// client's POSTs carry that token too (ssePost).
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request, key KeyInfo, keyOK bool) {
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		http.Error(w, "expected a WebSocket upgrade or an event stream (Accept: text/event-stream)", http.StatusBadRequest)
		return
	}
	token := r.URL.Query().Get("id")
	connID, info, ok := s.transportInfo(w, r, key, keyOK, false)
	if !ok {
		return
	}
	s.announce(w.Header())
	stream := transport.NewSSE(w)
	if !stream.WriteDeadlines() {
		s.log.Warn("communication: the event stream's writes cannot be bounded in time: " +
			"a middleware hides http.ResponseController's SetWriteDeadline (add an Unwrap method)")
	}
	sc := &serverConn{id: connID, info: info, sse: stream, token: token}
	cfg := s.connConfig(sc)
	cfg.TextOnly = true
	sc.conn = transport.NewSSEConn(s.ctx, stream, cfg)
	if s.admit(sc) {
		// The handler holds the event stream: it serves the session.
		s.serve(sc)
	}
	// The handler may return only when nobody writes to w any more.
	stream.Finish()
}

// ssePost reads a server-sent-events client's POST into its session, in
// order with the POSTs before it.
func (s *Server) ssePost(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("id")
	s.mu.RLock()
	sc := s.sse[token]
	s.mu.RUnlock()
	if sc == nil || token == "" {
		http.Error(w, "no server-sent-events session with that id", http.StatusNotFound)
		return
	}
	err := sc.sse.Post(r.Context(), r.Body)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, transport.ErrTooManyPosts):
		s.tel.refusedRequest(http.StatusTooManyRequests)
		http.Error(w, err.Error(), http.StatusTooManyRequests)
	case errors.Is(err, transport.ErrConnClosed):
		http.Error(w, "the session has ended", http.StatusGone)
	default:
		s.log.Debug("communication: server-sent-events POST not read", "connection", sc.id, "error", err)
		http.Error(w, "the POST could not be read", http.StatusBadRequest)
	}
}

// connConfig is the transport configuration of a new connection.
func (s *Server) connConfig(sc *serverConn) transport.ConnConfig {
	peerMax := sc.info.maxMessage
	if peerMax == 0 {
		peerMax = s.cfg.maxMessage
	}
	return transport.ConnConfig{
		Side:           transport.ServerSide,
		ConnectionID:   sc.id,
		MaxMessage:     s.cfg.maxMessage,
		PeerMaxMessage: peerMax,
		QueueLimit:     s.cfg.sendQueueBytes,
		WriteTimeout:   s.cfg.writeTimeout,
		PingEvery:      s.cfg.timeout / 4,
		Inbound:        (*connInbound)(sc),
		// Reachable from the moment the handshake is read: the client may
		// act on its answer before philippseith reports the session.
		OnHandshake: func(wire.Protocol) { s.register(sc) },
		Logger:      s.log,
	}
}

// connInbound is a connection's transport.Inbound: its peer, which is
// made (in serve) after the connection it writes to, before anything is
// read.
type connInbound serverConn

func (c *connInbound) HandleMessage(m *wire.Message) bool { return c.peer.HandleMessage(m) }
func (c *connInbound) Ready() <-chan struct{}             { return c.peer.Ready() }

// serve runs philippseith's session on a new connection until it ends.
// admit takes a new connection in, unless the server is closing; then
// serve must run.
func (s *Server) admit(sc *serverConn) bool {
	table := pending.New(pending.AnyOrder, sc.info.correlation, s.pendingEvents(sc.id))
	sc.peer = newPeer(s.ctx, sc.id, s.h, &s.cfg.common, sc.conn, table, s.handlers)
	sc.peer.tel = s.tel
	sc.conn.SetCrowded(sc.peer.crowded)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sc.conn.Close(ErrClosed)
		return false
	}
	s.accepting[sc.id] = sc
	if sc.sse != nil {
		s.sse[sc.token] = sc
	}
	s.serving.Add(1)
	s.mu.Unlock()
	return true
}

// serve runs an admitted connection's session until it ends.
func (s *Server) serve(sc *serverConn) {
	defer s.serving.Done()
	var err error
	if sc.sse != nil {
		// Registered first: the client POSTs its handshake as soon as
		// the stream opens.
		err = sc.sse.Open()
	}
	if err == nil {
		err = s.sr.Serve(sc.conn)
	}
	// philippseith ends a session with a close message: let it (and
	// whatever was queued before it) reach the client.
	sc.conn.Flush(time.Second)
	sc.conn.Close(err)
	// philippseith reported the end if the session started; this covers
	// a handshake that failed.
	s.drop(sc)
}

// register makes a WebSocket connection reachable, and records its
// client, once its handshake is read: the client may act on the handshake
// answer before philippseith reports the session.
func (s *Server) register(sc *serverConn) {
	s.mu.Lock()
	ok := s.accepting[sc.id] == sc
	if ok {
		delete(s.accepting, sc.id)
		s.conns[sc.id] = sc
		if sc.info.instance != "" {
			s.instances[sc.info.instance] = sc
		}
		sc.opened = time.Now()
	}
	s.mu.Unlock()
	if ok {
		s.tel.connectionOpened(sc.sse != nil)
		s.subscriptionState().joined(sc)
		s.record(sc)
		if s.cluster != nil {
			s.cluster.claim(sc)
		}
	}
}

// record stores the client record of a new connection and fires the
// connect event.
func (s *Server) record(sc *serverConn) {
	sc.connected = time.Now().UTC()
	sc.record = recordFrom(sc.id, sc.info, sc.connected)
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.handshakeTimeout)
	defer cancel()
	s.cfg.state.connect(ctx, sc.record)
	s.log.Debug("communication: client connected", "connection", sc.id, "remote", sc.info.remoteAddr)
}

// connErr gives the package's sentinel to a transport's reason for ending
// a connection, where there is one.
func connErr(err error) error {
	if errors.Is(err, transport.ErrStalled) && !errors.Is(err, ErrSlowConsumer) {
		return fmt.Errorf("%w: %w", ErrSlowConsumer, err)
	}
	return err
}

// disconnected is philippseith's report of a session that ended.
func (s *Server) disconnected(hc signalr.HubConnection) {
	if sc := s.conn(hc.ConnectionID()); sc != nil {
		s.drop(sc)
	}
}

// drop ends a connection's life on the server once: it leaves the maps,
// its pending requests fail, and its record is marked disconnected.
func (s *Server) drop(sc *serverConn) {
	s.mu.Lock()
	opened, shutdown := sc.opened, s.closed
	if s.conns[sc.id] == sc {
		delete(s.conns, sc.id)
	}
	if s.instances[sc.info.instance] == sc {
		delete(s.instances, sc.info.instance)
	}
	if sc.token != "" && s.sse[sc.token] == sc {
		delete(s.sse, sc.token)
	}
	delete(s.accepting, sc.id)
	first := !sc.dropped
	sc.dropped = true
	s.mu.Unlock()
	if !first {
		return
	}
	reason := ErrConnectionLost
	if err := sc.conn.Err(); err != nil {
		reason = fmt.Errorf("%w: %w", ErrConnectionLost, connErr(err))
	}
	sc.peer.close(reason)
	if !opened.IsZero() {
		s.tel.connectionClosed(sc.sse != nil, opened, shutdown, connErr(sc.conn.Err()))
	}
	if sc.connected.IsZero() {
		return // never recorded
	}
	if s.cluster != nil {
		s.cluster.release(sc)
	}
	rec := sc.record
	rec.IsConnected = false
	rec.DisconnectTime = time.Now().UTC()
	// The server's own context may be ending: the record must still be
	// written.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.cfg.handshakeTimeout)
	defer cancel()
	s.cfg.state.disconnect(ctx, rec)
	s.log.Debug("communication: client disconnected", "connection", sc.id)
}

// Clients returns the records of the known clients, connected or kept
// after they disconnected.
func (s *Server) Clients(ctx context.Context) ([]ClientRecord, error) {
	return s.cfg.state.records(ctx)
}

// Client returns the record of the client on connection id.
func (s *Server) Client(ctx context.Context, connectionID string) (ClientRecord, bool, error) {
	return s.cfg.state.record(ctx, connectionID)
}

func (s *Server) conn(id string) *serverConn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.conns[id]
}

// ConnectionIDs returns the ids of the connected clients.
func (s *Server) ConnectionIDs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := make([]string, 0, len(s.conns))
	for id := range s.conns {
		ids = append(ids, id)
	}
	return ids
}

// Post sends msg to one connection, on this node or, with a Backplane,
// wherever it is connected. Posts from one node to a connection arrive in
// the order they were made. On this node Post returns once the message is
// queued, waiting for room in a full queue until ctx ends; to another node
// it returns once the message is published (at most once: see Backplane).
// A connection nobody holds is ErrNotConnected.
func (s *Server) Post(ctx context.Context, connectionID string, msg any) error {
	return s.post(ctx, Location{ConnectionID: connectionID}, msg)
}

// PostToInstance sends msg to the client with the given instance
// (X-Client-Instance) on its newest connection, wherever it is connected,
// as Post does.
func (s *Server) PostToInstance(ctx context.Context, instance string, msg any) error {
	return s.post(ctx, Location{Instance: instance}, msg)
}

// post sends msg to the connection l names (by id, or else by instance):
// on this node, or through the node that holds it.
func (s *Server) post(ctx context.Context, l Location, msg any) error {
	if err := s.usable(); err != nil {
		return err
	}
	if sc := s.local(l); sc != nil {
		return sc.peer.post(ctx, msg)
	}
	if s.cluster == nil {
		return notConnected(l)
	}
	return s.cluster.post(ctx, l, msg)
}

// PostAll sends msg to every connected client, of every node with a
// Backplane, encoded once. A client whose queue is full is waited for
// (after the others are served, until ctx ends) if it is draining, and
// dropped as a slow consumer if it has stopped reading: one stuck client
// neither holds the broadcast nor grows the server's memory. Other nodes
// deliver what they receive in the same way.
func (s *Server) PostAll(ctx context.Context, msg any) error {
	return s.postAll(ctx, msg, "")
}

// PostAllExcept sends msg to every connected client but the one on
// connection connectionID, as PostAll does: typically a handler relaying
// what a client sent to the others, the sender being
// SenderFrom(ctx).ConnectionID. With a Backplane the connection is left out
// on whichever node holds it. An empty connectionID leaves nobody out.
func (s *Server) PostAllExcept(ctx context.Context, connectionID string, msg any) error {
	return s.postAll(ctx, msg, connectionID)
}

func (s *Server) postAll(ctx context.Context, msg any, except string) error {
	w, err := s.wrapOnce(ctx, msg)
	if err != nil {
		return err
	}
	if s.cluster != nil {
		if err := s.cluster.broadcast(ctx, &w, except); err != nil {
			return err
		}
	}
	return s.broadcastLocal(ctx, &w, except)
}

// PostTo sends msg to each of the given connections, encoded once, once
// per connection however often it is listed: those of this node as
// PostAll does (one that stopped reading is dropped as a slow consumer,
// not waited for), those of other nodes, with a Backplane, through the
// node that holds each (as Post does). The connections nobody holds do not
// stop the others: they are reported after, in an error that matches
// ErrNotConnected.
func (s *Server) PostTo(ctx context.Context, connectionIDs []string, msg any) error {
	w, err := s.wrapOnce(ctx, msg)
	if err != nil {
		return err
	}
	seen := make(map[string]struct{}, len(connectionIDs))
	local := make([]*serverConn, 0, len(connectionIDs))
	var elsewhere []string
	s.mu.RLock()
	for _, id := range connectionIDs {
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		if sc := s.conns[id]; sc != nil {
			local = append(local, sc)
		} else {
			elsewhere = append(elsewhere, id)
		}
	}
	s.mu.RUnlock()
	var errs []error
	for _, id := range elsewhere {
		l := Location{ConnectionID: id}
		if s.cluster == nil {
			errs = append(errs, notConnected(l))
			continue
		}
		if err := s.cluster.postWrapper(ctx, l, &w); err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				return errors.Join(errs...)
			}
		}
	}
	if err := s.deliverLocal(ctx, local, &w); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// wrapOnce encodes a message for several connections, once, after
// checking that the server and ctx are still live.
func (s *Server) wrapOnce(ctx context.Context, msg any) (wire.Wrapper, error) {
	if err := s.usable(); err != nil {
		return wire.Wrapper{}, err
	}
	if err := ctx.Err(); err != nil {
		return wire.Wrapper{}, err
	}
	return wrapWith(s.h, msg)
}

func (s *Server) usable() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// local returns the connection of this node that l names, by id or else by
// instance; nil when this node holds none.
func (s *Server) local(l Location) *serverConn {
	if l.ConnectionID != "" {
		return s.conn(l.ConnectionID)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.instances[l.Instance]
}

// To returns the endpoint of one connected client, for Send: on this node
// or, with a Backplane, wherever it is connected (that node runs the
// request and returns its answer).
func (s *Server) To(connectionID string) Endpoint {
	return serverEndpoint{s: s, loc: Location{ConnectionID: connectionID}}
}

// ToInstance returns the endpoint of the client with the given instance,
// on its newest connection, for Send.
func (s *Server) ToInstance(instance string) Endpoint {
	return serverEndpoint{s: s, loc: Location{Instance: instance}}
}

type serverEndpoint struct {
	s   *Server
	loc Location
}

func (e serverEndpoint) observer() (*telemetry, *Handlers) { return e.s.tel, e.s.h }

func (e serverEndpoint) requester() (requester, error) {
	if err := e.s.usable(); err != nil {
		return nil, err
	}
	if sc := e.s.local(e.loc); sc != nil {
		return sc.peer, nil
	}
	if e.s.cluster == nil {
		return nil, notConnected(e.loc)
	}
	return e.s.cluster.remote(e.loc), nil
}

func notConnected(l Location) error {
	if l.ConnectionID != "" {
		return fmt.Errorf("%w: no connection %q", ErrNotConnected, l.ConnectionID)
	}
	return fmt.Errorf("%w: no client with instance %q", ErrNotConnected, l.Instance)
}

// Shutdown stops the server gracefully: it refuses new connections, lets
// running handlers finish until ctx ends, then fails what is still pending
// with ErrClosed and closes every connection. It returns ctx's error if
// handlers were still running when ctx ended.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*serverConn, 0, len(s.conns)+len(s.accepting))
	for _, sc := range s.conns {
		conns = append(conns, sc)
	}
	for _, sc := range s.accepting {
		conns = append(conns, sc)
	}
	s.mu.Unlock()

	var waitErr error
	for _, sc := range conns {
		if err := sc.peer.wait(ctx); err != nil {
			waitErr = err
			break
		}
	}
	for _, sc := range conns {
		sc.peer.close(ErrClosed)
	}
	// Ending the server's context ends every session: philippseith sends
	// each client a close message and our connections close behind it.
	s.stop()
	s.serving.Wait()
	s.subscriptionState().shutdown()
	s.nego.close()
	if s.cluster != nil {
		s.cluster.leave(ctx)
	}
	// Dropped connections queued their disconnect events: let them run
	// (or cancel their contexts when ctx has ended).
	if err := s.cfg.state.wait(ctx); err != nil && waitErr == nil {
		waitErr = err
	}
	return waitErr
}

// Close stops the server at once: Shutdown with an expired context.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Shutdown(ctx)
	return nil
}

// hub is the philippseith hub. It has no methods a client could call: the
// protocol's three targets never reach philippseith (internal/transport
// intercepts them), and everything else is refused there too.
type hub struct{}

func (*hub) Initialize(signalr.HubContext) {}
func (*hub) OnConnected(string)            {}
func (*hub) OnDisconnected(string)         {}

// lifetime is the philippseith HubLifetimeManager: it tells the Server when
// a session starts and ends. Its send methods are unused: our layer writes
// to connections itself, in order and with errors.
type lifetime struct{ s *Server }

// OnConnected has nothing to do: a connection is registered when its
// handshake is read, before philippseith reports it.
func (l *lifetime) OnConnected(signalr.HubConnection) {}

func (l *lifetime) OnDisconnected(hc signalr.HubConnection) {
	// A panic would unwind philippseith's loop, which would take the
	// whole process down.
	defer recovery.Log(l.s.log, "communication: panic in connection callback", func() []any { return []any{"where", "OnDisconnected"} })
	l.s.disconnected(hc)
}

func (l *lifetime) InvokeAll(string, []any)            {}
func (l *lifetime) InvokeClient(string, string, []any) {}
func (l *lifetime) InvokeGroup(string, string, []any)  {}
func (l *lifetime) AddToGroup(string, string)          {}
func (l *lifetime) RemoveFromGroup(string, string)     {}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func newConnectionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
