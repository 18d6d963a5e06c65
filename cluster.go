package communication

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tharga/communication-go/internal/timerpool"
	"github.com/tharga/communication-go/internal/wire"
)

// The kinds of message one node sends another through the Backplane.
const (
	envBroadcast = "all"  // a post to every client of the receiving node, but Conn
	envPost      = "post" // a post to one connection or instance
	envRequest   = "req"  // a request to one connection or instance
	envReply     = "rep"  // the outcome of a request
	envGone      = "gone" // a connection of the sending node ended
)

// What a reply's Err says went wrong, for the requesting node to turn
// back into the package's errors.
const (
	replyNotConnected   = "not_connected"
	replyConnectionLost = "connection_lost"
	replyTimeout        = "timeout"
	replyRemote         = "remote"
	replyTooLarge       = "too_large"
	replyFailed         = "failed"
)

// envelope is one message between nodes (encoded by appendEnvelope). A request
// carries the encoded request (type and payload, as on the wire) and its
// deadline; the node that holds the connection runs it as its own
// request, so correlation, ordering and .NET matching stay where they are
// on one node.
type envelope struct {
	Kind     string
	From     string
	ID       uint64
	Conn     string
	Type     string
	Payload  []byte
	RespName string
	Deadline int64 // Unix milliseconds
	Err      string
	Code     Code
	Message  string
	// Subs are subscription counts (see clusterCounter).
	Subs []subEntry
	// TraceParent and TraceState carry a request's W3C trace context to
	// the node that runs it, which passes it on in the wrapper it sends,
	// so that the client's handler continues the caller's trace.
	TraceParent, TraceState string
}

// maxServedRemote bounds the requests from other nodes that this node runs
// at once; past it they are answered with an error at once.
const maxServedRemote = 10_000

// cluster is a Server's part of a cluster: it routes what is not local
// through the Backplane and runs what other nodes send.
type cluster struct {
	s      *Server
	name   string
	node   BackplaneNode
	served *limiter

	nextID  atomic.Uint64
	mu      sync.Mutex
	calls   map[uint64]*remoteCall
	dropped atomic.Uint64 // messages for connections this node no longer holds

	// where caches which node holds a connection of another node: a
	// connection id lives on one node for its whole life, so an entry is
	// right until the connection ends (its node says so: envGone) or its
	// node leaves. It saves a round trip to the Backplane per message.
	whereMu sync.Mutex
	where   map[string]string
}

// maxWhere bounds the cache of connection locations; past it, it starts
// again empty.
const maxWhere = 100_000

type remoteCall struct {
	node string
	ch   chan envelope
}

func (s *Server) joinCluster(b Backplane, name string) error {
	if name == "" {
		name = newConnectionID()
	}
	c := &cluster{s: s, name: name, served: newLimiter(maxServedRemote), calls: make(map[uint64]*remoteCall), where: make(map[string]string)}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.handshakeTimeout)
	defer cancel()
	node, err := b.Join(ctx, name, clusterHandler{c})
	if err != nil {
		return fmt.Errorf("communication: joining the cluster: %w", err)
	}
	c.node = node
	s.cluster = c
	// Learn the subscriptions of the nodes already there.
	c.subscriptions().sync()
	return nil
}

// subscriptions is the node's subscription counter.
func (c *cluster) subscriptions() *clusterCounter {
	return c.s.subscriptionState().counter.(*clusterCounter)
}

func (c *cluster) publish(ctx context.Context, node string, e *envelope) error {
	e.From = c.name
	start := c.s.tel.backplaneStart()
	return c.s.tel.backplaneCall(opPublish, start, c.node.Publish(ctx, node, appendEnvelope(nil, e)))
}

// claim tells the cluster that this node holds a new connection.
func (c *cluster) claim(sc *serverConn) {
	ctx, cancel := context.WithTimeout(c.s.ctx, c.s.cfg.handshakeTimeout)
	defer cancel()
	if err := c.s.tel.backplaneCall(opClaim, time.Time{}, c.node.Claim(ctx, c.location(sc))); err != nil {
		c.s.log.Warn("communication: the cluster was not told of a connection", "connection", sc.id, "error", err)
	}
}

func (c *cluster) release(sc *serverConn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.s.ctx), c.s.cfg.handshakeTimeout)
	defer cancel()
	if err := c.s.tel.backplaneCall(opRelease, time.Time{}, c.node.Release(ctx, c.location(sc))); err != nil {
		c.s.log.Warn("communication: the cluster was not told a connection ended", "connection", sc.id, "error", err)
	}
	// The other nodes forget where it was.
	if err := c.publish(ctx, "", &envelope{Kind: envGone, Conn: sc.id}); err != nil {
		c.s.log.Debug("communication: the cluster was not told a connection ended", "connection", sc.id, "error", err)
	}
}

func (c *cluster) cached(connID string) (string, bool) {
	c.whereMu.Lock()
	defer c.whereMu.Unlock()
	n, ok := c.where[connID]
	return n, ok
}

func (c *cluster) remember(connID, node string) {
	c.whereMu.Lock()
	defer c.whereMu.Unlock()
	if len(c.where) >= maxWhere {
		clear(c.where)
	}
	c.where[connID] = node
}

// forgetWhere drops the cached location of one connection, or of every
// connection of node when connID is "", or everything when both are "".
func (c *cluster) forgetWhere(connID, node string) {
	c.whereMu.Lock()
	defer c.whereMu.Unlock()
	switch {
	case connID != "":
		delete(c.where, connID)
	case node != "":
		for id, n := range c.where {
			if n == node {
				delete(c.where, id)
			}
		}
	default:
		clear(c.where)
	}
}

func (c *cluster) location(sc *serverConn) Location {
	inst := sc.record.Instance
	return Location{Node: c.name, ConnectionID: sc.id, Instance: inst}
}

// locate finds the node holding l; a connection nobody holds (or that this
// node held a moment ago) is ErrNotConnected.
func (c *cluster) locate(ctx context.Context, l Location) (Location, error) {
	if l.ConnectionID != "" {
		if node, ok := c.cached(l.ConnectionID); ok {
			return Location{Node: node, ConnectionID: l.ConnectionID}, nil
		}
	}
	start := c.s.tel.backplaneStart()
	found, ok, err := c.node.Locate(ctx, l.ConnectionID, l.Instance)
	if c.s.tel.backplaneCall(opLocate, start, err) != nil {
		return Location{}, fmt.Errorf("communication: locating the connection: %w", err)
	}
	if !ok || found.Node == c.name {
		return Location{}, notConnected(l)
	}
	c.remember(found.ConnectionID, found.Node)
	return found, nil
}

func (c *cluster) post(ctx context.Context, l Location, msg any) error {
	w, err := wrapWith(c.s.h, msg)
	if err != nil {
		return err
	}
	return c.postWrapper(ctx, l, &w)
}

// postWrapper publishes an encoded post to the node that holds l.
func (c *cluster) postWrapper(ctx context.Context, l Location, w *wire.Wrapper) error {
	at, err := c.locate(ctx, l)
	if err != nil {
		return err
	}
	err = c.publish(ctx, at.Node, &envelope{Kind: envPost, Conn: at.ConnectionID, Type: w.Type, Payload: w.Payload})
	return c.gone(at, err)
}

// gone turns a publication to a node that is no longer in the cluster into
// ErrNotConnected, and forgets where the connection was.
func (c *cluster) gone(at Location, err error) error {
	if errors.Is(err, ErrNoSuchNode) {
		c.forgetWhere(at.ConnectionID, "")
		return fmt.Errorf("%w: %w", notConnected(at), err)
	}
	return err
}

// broadcast publishes a post to every client of the other nodes but the
// connection except (none when it is "").
func (c *cluster) broadcast(ctx context.Context, w *wire.Wrapper, except string) error {
	return c.publish(ctx, "", &envelope{Kind: envBroadcast, Conn: except, Type: w.Type, Payload: w.Payload})
}

// remote returns the requester for a client on another node.
func (c *cluster) remote(l Location) requester { return remoteRequester{c: c, l: l} }

type remoteRequester struct {
	c *cluster
	l Location
}

func (r remoteRequester) names() *Handlers { return r.c.s.h }

// request publishes the request to the node that holds the connection and
// waits for its reply. It fails at once when no node holds it, when that
// node leaves or stops answering, and when this node loses its link.
func (r remoteRequester) request(ctx context.Context, req any, respType reflect.Type) (wire.Wrapper, error) {
	c := r.c
	w, err := wrapWith(c.s.h, req)
	if err != nil {
		return wire.Wrapper{}, err
	}
	// Without a deadline the request gets the send timeout: a context
	// that sets up its timer only if something waits on it (locating an
	// uncached connection, a full queue), and a pooled timer for the
	// answer.
	wait, parent := time.Duration(0), ctx
	if _, ok := ctx.Deadline(); !ok {
		wait = c.s.cfg.sendTimeout
		hc := newHandlerContext(ctx, wait, Sender{})
		defer hc.end()
		ctx = hc
	}
	at, err := c.locate(ctx, r.l)
	if err != nil {
		return wire.Wrapper{}, err
	}
	id := c.nextID.Add(1)
	call := &remoteCall{node: at.Node, ch: make(chan envelope, 1)}
	c.mu.Lock()
	c.calls[id] = call
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.calls, id)
		c.mu.Unlock()
	}()
	dl, _ := ctx.Deadline()
	injectTrace(ctx, &w)
	err = c.publish(ctx, at.Node, &envelope{
		Kind: envRequest, ID: id, Conn: at.ConnectionID, Type: w.Type, Payload: w.Payload,
		RespName: c.s.h.nameOf(respType), Deadline: dl.UnixMilli(),
		TraceParent: w.TraceParent, TraceState: w.TraceState,
	})
	if err := c.gone(at, err); errors.Is(err, ErrNotConnected) {
		return wire.Wrapper{}, err
	} else if err != nil {
		return wire.Wrapper{}, fmt.Errorf("%w: publishing the request: %w", ErrConnectionLost, err)
	}
	var expired <-chan time.Time
	if wait > 0 {
		select {
		case rep := <-call.ch: // answered already: no timer
			return c.replied(w.Type, at, rep)
		default:
		}
		t := timerpool.Get(time.Until(dl))
		defer timerpool.Put(t)
		expired = t.C
		ctx = parent
	}
	select {
	case rep := <-call.ch:
		return c.replied(w.Type, at, rep)
	case <-expired:
		return wire.Wrapper{}, &timeoutError{typ: w.Type, cause: context.DeadlineExceeded}
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return wire.Wrapper{}, &timeoutError{typ: w.Type, cause: ctx.Err()}
		}
		return wire.Wrapper{}, ctx.Err()
	}
}

// replied returns what a reply from the node at says.
func (c *cluster) replied(typ string, at Location, rep envelope) (wire.Wrapper, error) {
	if rep.Err == replyNotConnected {
		c.forgetWhere(at.ConnectionID, "")
	}
	return replyResult(typ, rep)
}

// replyResult turns a reply back into what a local request returns.
func replyResult(typ string, rep envelope) (wire.Wrapper, error) {
	switch rep.Err {
	case "":
		return wire.Wrapper{Type: rep.Type, Payload: rep.Payload}, nil
	case replyNotConnected:
		return wire.Wrapper{}, fmt.Errorf("%w: %s", ErrNotConnected, rep.Message)
	case replyConnectionLost:
		return wire.Wrapper{}, fmt.Errorf("%w: %s", ErrConnectionLost, rep.Message)
	case replyTimeout:
		return wire.Wrapper{}, &timeoutError{typ: typ, cause: context.DeadlineExceeded}
	case replyRemote:
		return wire.Wrapper{}, &RemoteError{Type: typ, Message: rep.Message, Code: rep.Code}
	case replyTooLarge:
		return wire.Wrapper{}, fmt.Errorf("%w: %s", ErrTooLarge, rep.Message)
	}
	return wire.Wrapper{}, fmt.Errorf("communication: the node holding the connection failed the request: %s", rep.Message)
}

// replyTo turns the outcome of a request run here for another node into
// its reply.
func replyTo(w wire.Wrapper, err error) envelope {
	rep := envelope{Kind: envReply}
	var re *RemoteError
	switch {
	case err == nil:
		rep.Type, rep.Payload = w.Type, w.Payload
		return rep
	case errors.As(err, &re):
		rep.Err, rep.Code, rep.Message = replyRemote, re.Code, re.Message
		return rep
	case errors.Is(err, ErrTimeout):
		rep.Err = replyTimeout
	case errors.Is(err, ErrNotConnected):
		rep.Err = replyNotConnected
	case errors.Is(err, ErrConnectionLost), errors.Is(err, ErrClosed):
		rep.Err = replyConnectionLost
	case errors.Is(err, ErrTooLarge):
		rep.Err = replyTooLarge
	default:
		rep.Err = replyFailed
	}
	rep.Message = err.Error()
	return rep
}

// serveRequest runs a request another node sent for a connection of this
// node, and publishes the reply.
func (c *cluster) serveRequest(e envelope) {
	// The request runs within its deadline, bounded by a timer rather than
	// a context of its own (cheaper: nothing to register with the
	// server's context): past it nobody waits for the reply.
	until := time.UnixMilli(e.Deadline)
	ctx := c.s.ctx
	if e.TraceParent != "" {
		ctx = traceContext.Extract(ctx, wrapperCarrier{&wire.Wrapper{TraceParent: e.TraceParent, TraceState: e.TraceState}})
	}
	reply := func(w wire.Wrapper, err error) {
		rep := replyTo(w, err)
		rep.ID = e.ID
		if err := c.publish(ctx, e.From, &rep); err != nil {
			c.s.log.Debug("communication: reply to another node not sent", "node", e.From, "error", err)
		}
	}
	// Replies go out on goroutines of their own: the caller is the
	// Backplane's delivery, which a publication waiting for room (or for
	// a link to the node to be dialled) must not hold up.
	sc := c.s.conn(e.Conn)
	if sc == nil {
		go reply(wire.Wrapper{}, notConnected(Location{ConnectionID: e.Conn}))
		return
	}
	if ok, _ := c.served.tryAcquire(); !ok {
		go reply(wire.Wrapper{}, errTooManyRemote)
		return
	}
	go func() {
		defer c.served.release()
		reply(sc.peer.requestWrapper(ctx, wire.Wrapper{Type: e.Type, Payload: e.Payload}, e.RespName, until))
	}()
}

// errTooManyRemote refuses a request from another node past maxServedRemote.
var errTooManyRemote = errors.New("communication: the node holding the connection has too many requests from other nodes in flight")

// deliver posts an encoded message that another node sent to a connection
// of this node. It waits for room at most a write timeout: the inbox of
// the node is behind it.
func (c *cluster) deliver(e envelope) {
	ctx, cancel := context.WithTimeout(c.s.ctx, c.s.cfg.writeTimeout)
	defer cancel()
	w := wire.Wrapper{Type: e.Type, Payload: e.Payload}
	if e.Kind == envBroadcast {
		if err := c.s.broadcastLocal(ctx, &w, e.Conn); err != nil {
			c.s.log.Debug("communication: broadcast from another node not delivered to all", "node", e.From, "error", err)
		}
		return
	}
	sc := c.s.conn(e.Conn)
	if sc == nil {
		n := c.dropped.Add(1)
		c.s.log.Warn("communication: post from another node dropped: the connection is gone", "node", e.From, "connection", e.Conn, "dropped", n)
		return
	}
	if err := sc.conn.Send(ctx, wire.TargetPost, &w); err != nil {
		c.s.log.Warn("communication: post from another node not delivered", "node", e.From, "connection", e.Conn, "error", err)
	} else {
		c.s.tel.messageSent(ctx, wire.TargetPost, w.Type)
	}
}

// fail ends the requests this node waits on at node (every one when node
// is ""), with err.
func (c *cluster) fail(node string, err error) {
	rep := envelope{Kind: envReply, Err: replyConnectionLost, Message: err.Error()}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, call := range c.calls {
		if node == "" || call.node == node {
			select {
			case call.ch <- rep:
			default:
			}
		}
	}
}

// leave ends the node's membership once its connections are gone.
func (c *cluster) leave(ctx context.Context) {
	c.fail("", errors.New("the server is shutting down"))
	if err := c.node.Leave(context.WithoutCancel(ctx)); err != nil {
		c.s.log.Warn("communication: leaving the cluster", "error", err)
	}
}

// clusterHandler is the node's BackplaneHandler.
type clusterHandler struct{ c *cluster }

func (h clusterHandler) Receive(msg []byte) {
	c := h.c
	var e envelope
	if err := parseEnvelope(msg, &e); err != nil {
		c.s.log.Warn("communication: malformed message from the cluster dropped", "error", err)
		return
	}
	if e.From == c.name {
		return // our own broadcast: delivered here already
	}
	switch e.Kind {
	case envBroadcast, envPost:
		c.deliver(e)
	case envRequest:
		c.serveRequest(e)
	case envSubCount, envSubSet, envSubAsk:
		c.subscriptions().receive(e)
	case envGone:
		c.forgetWhere(e.Conn, "")
	case envReply:
		c.mu.Lock()
		call := c.calls[e.ID]
		c.mu.Unlock()
		if call != nil {
			select {
			case call.ch <- e:
			default:
			}
		}
	default:
		c.s.log.Warn("communication: unknown message from the cluster dropped", "kind", e.Kind, "node", e.From)
	}
}

// NodeLeft fails the requests waiting on the node, and, on the one node
// given its orphans, marks their records disconnected: once across the
// cluster.
func (h clusterHandler) NodeLeft(node string, orphans []Location) {
	c := h.c
	c.fail(node, fmt.Errorf("the node %s holding the connection left the cluster", node))
	c.forgetWhere("", node)
	c.subscriptions().nodeLeft(node)
	if len(orphans) > 0 {
		c.s.log.Info("communication: a node left; marking its clients disconnected", "node", node, "clients", len(orphans))
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.s.ctx), c.s.cfg.handshakeTimeout)
	defer cancel()
	now := time.Now().UTC()
	for _, o := range orphans {
		rec, ok, err := c.s.cfg.state.record(ctx, o.ConnectionID)
		if err != nil || !ok || !rec.IsConnected {
			continue
		}
		rec.IsConnected = false
		rec.DisconnectTime = now
		c.s.cfg.state.disconnect(ctx, rec)
	}
}

// MessagesLost fails the requests waiting on the node: their replies may
// have been among what was lost.
func (h clusterHandler) MessagesLost(node string, err error) {
	h.c.s.log.Warn("communication: messages from a node may have been lost; its requests fail", "node", node, "error", err)
	h.c.fail(node, fmt.Errorf("messages from the node %s holding the connection were lost: %w", node, err))
}

func (h clusterHandler) LinkLost(err error) {
	h.c.s.log.Warn("communication: lost the link to the cluster", "error", err)
	_ = h.c.s.tel.backplaneCall(opLink, time.Time{}, err)
	h.c.fail("", fmt.Errorf("lost the link to the cluster: %w", err))
	// Nodes may leave unseen meanwhile.
	h.c.forgetWhere("", "")
}

// LinkRestored claims this node's connections again, and stores their
// records again where the repository lost them.
func (h clusterHandler) LinkRestored() {
	c := h.c
	c.s.mu.RLock()
	conns := make([]*serverConn, 0, len(c.s.conns))
	for _, sc := range c.s.conns {
		conns = append(conns, sc)
	}
	c.s.mu.RUnlock()
	c.s.log.Info("communication: the link to the cluster is back; claiming connections again", "connections", len(conns))
	ctx, cancel := context.WithTimeout(c.s.ctx, c.s.cfg.handshakeTimeout)
	defer cancel()
	for _, sc := range conns {
		c.claim(sc)
		// A shared repository may have lost the record, or another node
		// may have marked it disconnected meanwhile.
		c.s.cfg.state.reassert(ctx, sc.record)
	}
	// What changed meanwhile may not have reached the cluster.
	c.subscriptions().sync()
}
