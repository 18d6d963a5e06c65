package communication

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/philippseith/signalr"

	"github.com/tharga/communication-go/internal/pending"
	"github.com/tharga/communication-go/internal/transport"
	"github.com/tharga/communication-go/internal/wire"
)

// correlationHeader announces, on connect requests and on negotiate and
// WebSocket answers, that this end echoes correlation ids. .NET and plain
// SignalR peers neither send nor read it.
const correlationHeader = "X-Tharga-Correlation"

// innerPath is where philippseith's own HTTP handlers (negotiate and
// server-sent events) live on the Server's private mux.
const innerPath = "/signalr"

// Server is the hub: an http.Handler serving SignalR negotiate, WebSockets
// and server-sent events at one path of the user's mux, and the typed
// messaging with every connected client. Create it with AddServer; stop it
// with Shutdown or Close.
type Server struct {
	cfg   serverConfig
	h     *Handlers
	log   *slog.Logger
	sr    signalr.Server
	inner *http.ServeMux
	ctx   context.Context // the server's lifetime
	stop  context.CancelFunc
	deliv delivery
	// validator checks API keys; nil lets everybody in.
	validator KeyValidator

	mu        sync.RWMutex
	conns     map[string]*serverConn // connected, by connection id
	accepting map[string]*serverConn // WebSockets between accept and handshake
	sse       map[string]*serverConn // server-sent-events sessions, by token
	nego      map[string]negotiation // by negotiate key (token or id)
	closed    bool
	serving   sync.WaitGroup // connections being served
}

// serverConn is one connected client.
type serverConn struct {
	id        string
	peer      *peer
	conn      *transport.Conn // nil for server-sent events
	info      connInfo
	connected time.Time
	record    ClientRecord
	// Server-sent events: the session's POSTs go through ic.
	icMu  sync.Mutex
	ic    *transport.Interceptor
	token string
	// dropped is set, under Server.mu, when the connection has been
	// taken down.
	dropped bool
}

// negotiation is what a negotiate request told us, kept until the
// transport request that follows it.
type negotiation struct {
	connID  string
	info    connInfo
	expires time.Time
}

// connInfo is what a client said about itself when it connected.
type connInfo struct {
	header      http.Header // the X-Client-* headers
	correlation bool        // it echoes correlation ids
	remoteAddr  string
	key         KeyInfo
}

// AddServer builds a Server. Mount it on your mux (see Server.Mount); the
// library never owns the listener. The Server runs from here on: end it
// with Shutdown or Close.
func AddServer(opts ...ServerOption) (*Server, error) {
	cfg := serverConfig{common: defaultCommon(), pattern: "/hub"}
	for _, o := range opts {
		o.applyServer(&cfg)
	}
	errs := []error{cfg.validate(), checkKeyOptions(opts)}
	if !strings.HasPrefix(cfg.pattern, "/") {
		errs = append(errs, fmt.Errorf("pattern must start with '/', got %q", cfg.pattern))
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
		inner:     http.NewServeMux(),
		ctx:       ctx,
		stop:      stop,
		conns:     make(map[string]*serverConn),
		accepting: make(map[string]*serverConn),
		sse:       make(map[string]*serverConn),
		nego:      make(map[string]negotiation),
	}
	s.deliv = localDelivery{s}
	if s.cfg.state == nil {
		s.cfg.state = NewClientState[struct{}]()
	}
	s.cfg.state.setLogger(s.log)
	switch {
	case cfg.validator != nil:
		s.validator = cfg.validator
	case len(cfg.keys) > 0:
		s.validator = newConfiguredKeys(cfg.keys)
	}
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
		signalr.MaximumReceiveMessageSize(4096),
		signalr.HTTPTransports(signalr.TransportWebSockets, signalr.TransportServerSentEvents),
		signalr.Logger(kitLogger{cfg.logger}, debugEnabled(cfg.logger)),
	)
	if err != nil {
		stop()
		return nil, fmt.Errorf("communication: %w", err)
	}
	s.sr = sr
	sr.MapHTTP(signalr.WithHTTPServeMux(s.inner), innerPath)
	return s, nil
}

// Handlers returns the server's own handler set, to register into.
func (s *Server) Handlers() *Handlers { return s.h }

// Pattern returns the path the hub is meant to be mounted at.
func (s *Server) Pattern() string { return s.cfg.pattern }

// Mount registers the server on an http.ServeMux: GET and POST at its
// pattern, POST at pattern + "/negotiate". The patterns name their methods,
// so that they live beside an application's own ("GET /" included). With
// another router, route those paths to the Server yourself: it serves any
// path ending in "/negotiate" as negotiate and any other as the hub.
func (s *Server) Mount(mux *http.ServeMux) {
	p := strings.TrimSuffix(s.cfg.pattern, "/")
	mux.Handle("GET "+p, s)
	mux.Handle("POST "+p, s)
	mux.Handle("POST "+p+"/negotiate", s)
}

// ServeHTTP serves negotiate (a path ending in "/negotiate") and the
// transports (any other path), so that it works under any mux and prefix.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/negotiate") {
		key, _, ok := s.authorize(r)
		if !ok {
			unauthorized(w)
			return
		}
		s.negotiate(w, r, key)
		return
	}
	// A transport request: a key it carries must be valid; without one, it
	// rides on the negotiate that handed out its id (a browser cannot put
	// headers on a WebSocket or an event stream).
	id := r.URL.Query().Get("id")
	key, present, ok := s.authorize(r)
	if !ok && (present || !s.negotiated(id)) {
		unauthorized(w)
		return
	}
	if r.Method == http.MethodGet && headerHasToken(r.Header, "Connection", "upgrade") &&
		strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		s.serveWebSocket(w, r, key, present)
		return
	}
	if r.Method == http.MethodPost {
		s.ssePost(w, r)
		return
	}
	// Server-sent events: philippseith serves the stream.
	s.forward(w, r, innerPath)
}

// negotiated reports whether id was handed out by negotiate, or is a live
// server-sent-events session.
func (s *Server) negotiated(id string) bool {
	if id == "" {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.sse[id]; ok {
		return true
	}
	n, ok := s.nego[id]
	return ok && time.Now().Before(n.expires)
}

func (s *Server) forward(w http.ResponseWriter, r *http.Request, path string) {
	r2 := r.Clone(r.Context())
	r2.URL.Path = path
	r2.URL.RawPath = ""
	s.inner.ServeHTTP(w, r2)
}

// negotiate lets philippseith answer, and remembers who asked, so that the
// transport request that follows (which a browser cannot give headers)
// is tied to what was said here.
func (s *Server) negotiate(w http.ResponseWriter, r *http.Request, key KeyInfo) {
	rec := &captureWriter{header: http.Header{}}
	s.forward(rec, r, innerPath+"/negotiate")
	if rec.status == http.StatusOK {
		var nr struct {
			ConnectionID    string `json:"connectionId"`
			ConnectionToken string `json:"connectionToken"`
		}
		if err := json.Unmarshal(rec.body.Bytes(), &nr); err == nil && nr.ConnectionID != "" {
			k := nr.ConnectionToken
			if k == "" {
				k = nr.ConnectionID
			}
			info := infoFrom(r)
			info.key = key
			s.remember(k, negotiation{
				connID:  nr.ConnectionID,
				info:    info,
				expires: time.Now().Add(s.cfg.handshakeTimeout + s.cfg.timeout),
			})
		}
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.Header().Set(correlationHeader, "1")
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

func (s *Server) remember(key string, n negotiation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for k, v := range s.nego {
		if now.After(v.expires) {
			delete(s.nego, k)
		}
	}
	s.nego[key] = n
}

func (s *Server) take(key string) (negotiation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nego[key]
	if ok {
		delete(s.nego, key)
		if time.Now().After(n.expires) {
			return negotiation{}, false
		}
	}
	return n, ok
}

func infoFrom(r *http.Request) connInfo {
	h := http.Header{}
	for k, v := range r.Header {
		if strings.HasPrefix(k, "X-Client-") {
			h[k] = v
		}
	}
	return connInfo{
		header:      h,
		correlation: r.Header.Get(correlationHeader) == "1",
		remoteAddr:  r.RemoteAddr,
	}
}

// serveWebSocket accepts a WebSocket itself and hands philippseith a
// connection whose reads and writes this library owns (see
// internal/transport): philippseith runs the session on it.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request, key KeyInfo, keyPresent bool) {
	var connID string
	var info connInfo
	if id := r.URL.Query().Get("id"); id != "" {
		n, ok := s.take(id)
		if !ok {
			http.Error(w, "unknown or expired connection id: negotiate first", http.StatusNotFound)
			return
		}
		connID, info = n.connID, n.info
		// Headers on the WebSocket request itself (non-browser clients)
		// complete what negotiate said.
		for k, v := range infoFrom(r).header {
			if _, ok := info.header[k]; !ok {
				info.header[k] = v
			}
		}
		info.correlation = info.correlation || r.Header.Get(correlationHeader) == "1"
		if keyPresent {
			info.key = key
		}
	} else {
		connID, info = newConnectionID(), infoFrom(r) // skip-negotiation clients
		info.key = key
	}
	w.Header().Set(correlationHeader, "1")
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
	table := pending.New(pending.AnyOrder, info.correlation, s.pendingEvents(connID))
	conn := transport.NewConn(s.ctx, ws, transport.ConnConfig{
		Side:         transport.ServerSide,
		ConnectionID: connID,
		MaxMessage:   s.cfg.maxMessage,
		QueueLimit:   s.cfg.sendQueueBytes,
		WriteTimeout: s.cfg.writeTimeout,
		Inbound:      inboundFunc(func(m *wire.Message) { sc.peer.HandleMessage(m) }),
		// Reachable from the moment the handshake is read: the client may
		// act on its answer before philippseith reports the session.
		OnHandshake: func(wire.Protocol) { s.register(sc) },
		Logger:      s.log,
	})
	sc.conn = conn
	sc.peer = newPeer(s.ctx, connID, s.h, &s.cfg.common, conn, table)

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close(ErrClosed)
		return
	}
	s.accepting[connID] = sc
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()

	err = s.sr.Serve(conn)
	// philippseith ends a session with a close message: let it (and
	// whatever was queued before it) reach the client.
	conn.Flush(time.Second)
	conn.Close(err)
	// philippseith reported the end if the session started; this covers
	// a handshake that failed.
	s.drop(sc)
}

// inboundFunc adapts a function to transport.Inbound.
type inboundFunc func(*wire.Message)

func (f inboundFunc) HandleMessage(m *wire.Message) { f(m) }

// register makes a WebSocket connection reachable, and records its
// client, once its handshake is read: the client may act on the handshake
// answer before philippseith reports the session.
func (s *Server) register(sc *serverConn) {
	s.mu.Lock()
	ok := s.accepting[sc.id] == sc
	if ok {
		delete(s.accepting, sc.id)
		s.conns[sc.id] = sc
	}
	s.mu.Unlock()
	if ok {
		s.record(sc)
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

// connected is philippseith's report of a session that started: a
// WebSocket registered at its handshake, or a server-sent-events session,
// whose id is the negotiate token.
func (s *Server) connected(hc signalr.HubConnection) {
	s.mu.RLock()
	sc, ok := s.conns[hc.ConnectionID()]
	s.mu.RUnlock()
	if ok && sc.conn != nil {
		return
	}
	s.record(s.sseConnected(hc))
}

// disconnected is philippseith's report of a session that ended.
func (s *Server) disconnected(hc signalr.HubConnection) {
	id := hc.ConnectionID()
	s.mu.RLock()
	if sc, ok := s.sse[id]; ok {
		id = sc.id
	}
	sc := s.conns[id]
	s.mu.RUnlock()
	if sc != nil {
		s.drop(sc)
	}
}

// drop ends a connection's life on the server once: it leaves the maps,
// its pending requests fail, and its record is marked disconnected.
func (s *Server) drop(sc *serverConn) {
	s.mu.Lock()
	if s.conns[sc.id] == sc {
		delete(s.conns, sc.id)
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
	if sc.conn != nil && sc.conn.Err() != nil {
		reason = fmt.Errorf("%w: %v", ErrConnectionLost, sc.conn.Err())
	}
	sc.peer.close(reason)
	if sc.connected.IsZero() {
		return // never recorded
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

// Post sends msg to one connection. Posts to a connection arrive in the
// order they were made. Post returns once the message is queued; it waits
// for room in a full queue until ctx ends.
func (s *Server) Post(ctx context.Context, connectionID string, msg any) error {
	if err := s.usable(); err != nil {
		return err
	}
	return s.deliv.toConnection(ctx, connectionID, wire.TargetPost, msg)
}

// PostAll sends msg to every connected client, encoded once. A client
// whose queue is full is waited for (after the others are served, until
// ctx ends) if it is draining, and dropped as a slow consumer if it has
// stopped reading: one stuck client neither holds the broadcast nor grows
// the server's memory.
func (s *Server) PostAll(ctx context.Context, msg any) error {
	if err := s.usable(); err != nil {
		return err
	}
	return s.deliv.toAll(ctx, wire.TargetPost, msg)
}

func (s *Server) usable() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// To returns the endpoint of one connected client, for Send.
func (s *Server) To(connectionID string) Endpoint {
	return serverEndpoint{s: s, id: connectionID}
}

type serverEndpoint struct {
	s  *Server
	id string
}

func (e serverEndpoint) peerFor() (*peer, error) {
	if err := e.s.usable(); err != nil {
		return nil, err
	}
	sc := e.s.conn(e.id)
	if sc == nil {
		return nil, fmt.Errorf("%w: no connection %q", ErrNotConnected, e.id)
	}
	return sc.peer, nil
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

func (l *lifetime) OnConnected(hc signalr.HubConnection) {
	defer l.recover("OnConnected")
	l.s.connected(hc)
}

func (l *lifetime) OnDisconnected(hc signalr.HubConnection) {
	defer l.recover("OnDisconnected")
	l.s.disconnected(hc)
}

// recover keeps a panic in a callback from unwinding philippseith's loop,
// which would take the whole process down.
func (l *lifetime) recover(where string) {
	if v := recover(); v != nil {
		l.s.log.Error("communication: panic in connection callback", "where", where, "panic", v, "stack", string(debug.Stack()))
	}
}

func (l *lifetime) InvokeAll(string, []any)            {}
func (l *lifetime) InvokeClient(string, string, []any) {}
func (l *lifetime) InvokeGroup(string, string, []any)  {}
func (l *lifetime) AddToGroup(string, string)          {}
func (l *lifetime) RemoveFromGroup(string, string)     {}

// captureWriter records a response of philippseith's negotiate handler.
type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}
func (c *captureWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.body.Write(p)
}

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
