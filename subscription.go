package communication

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/tharga/communication-go/internal/transport"
	"github.com/tharga/communication-go/internal/wire"
)

// SubscriptionCount is one topic/key with subscribers on a Server.
type SubscriptionCount struct {
	// Topic is the full type name of the subscribed message type.
	Topic string
	// Key is the subscription's key; "" for a keyless subscription, which
	// matches every key.
	Key string
	// Count is how many subscriptions hold the topic/key.
	Count int
}

// Subscription tells the clients of a Server that somebody on the server
// consumes messages of one type, for every key or for some keys. It is
// counted per topic/key: clients learn only when the first subscription
// of a topic/key begins and when the last one ends. Make one with
// Subscribe; end it with Close or by ending the context given to
// Subscribe. It is safe for concurrent use.
type Subscription struct {
	subs  *serverSubscriptions
	topic string
	keys  []string // "" for keyless
	once  sync.Once
	stop  func() bool
}

// Subscribe subscribes to messages of type T, for the given keys (entity
// ids), or for every key when none is given. While it lasts, clients see
// HasSubscribers for T (and those keys) and PostIfSubscribed posts
// messages of T; a client that connects later is told at once.
//
// It is a signal, not a delivery: messages of T posted by clients reach
// the handler registered for T (HandlePost), whether or not anybody
// subscribes, as with the .NET library. Subscribe does not block: clients
// are told in the background, in the order subscriptions begin and end.
//
// The subscription ends with ctx (a request's or a page's lifetime) or
// with Close, whichever comes first; Subscribe returns ctx's error if ctx
// has already ended, and ErrClosed once the server is shut down.
//
// The topic is the full type name of T's wire name (see TypeName, WithName
// and RegisterName): "MyApp.FarmDetails" for a type registered as
// "MyApp.FarmDetails, MyApp, Version=1.0.0.0, ...". Clients must name T
// the same way. Keys must not be empty; a key given twice counts once.
func Subscribe[T any](ctx context.Context, srv *Server, keys ...string) (*Subscription, error) {
	if err := srv.usable(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ks, err := subscriptionKeys(keys)
	if err != nil {
		return nil, err
	}
	ss := srv.subscriptionState()
	sub := &Subscription{
		subs:  ss,
		topic: topicOf(srv.h, reflect.TypeFor[T]()),
		keys:  ks,
	}
	for _, k := range sub.keys {
		ss.counter.add(sub.topic, k, +1)
	}
	sub.stop = context.AfterFunc(ctx, sub.end)
	return sub, nil
}

// subscriptionKeys checks and deduplicates keys; none is the keyless
// subscription [""].
func subscriptionKeys(keys []string) ([]string, error) {
	if len(keys) == 0 {
		return []string{""}, nil
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if k == "" {
			return nil, errors.New("communication: empty subscription key (subscribe without keys for every key)")
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

// topicOf is the subscription topic of t: the full type name of its wire
// name in h.
func topicOf(h *Handlers, t reflect.Type) string {
	return wire.FullName(h.nameOf(t))
}

// Close ends the subscription. It is idempotent and returns nil; it does
// not block: clients are told in the background.
func (s *Subscription) Close() error {
	s.stop()
	s.end()
	return nil
}

// end drops the subscription's counts, once.
func (s *Subscription) end() {
	s.once.Do(func() {
		for _, k := range s.keys {
			s.subs.counter.add(s.topic, k, -1)
		}
	})
}

// Topic returns the full type name the subscription is for.
func (s *Subscription) Topic() string { return s.topic }

// Keys returns the subscription's keys; none for a keyless subscription.
func (s *Subscription) Keys() []string {
	if len(s.keys) == 1 && s.keys[0] == "" {
		return nil
	}
	return slices.Clone(s.keys)
}

// Subscriptions returns the topic/keys with subscribers and how many
// subscriptions hold each, sorted by topic and key.
func (s *Server) Subscriptions() []SubscriptionCount {
	return s.subscriptionState().counter.counts()
}

// serverSubscriptions tells this node's clients about subscription
// transitions: it is the transitionSink of the Server's counter.
//
// Order. Transitions arrive one at a time in the order the counts changed
// (see subscriptionCounter) and are appended to an outbox under mu; one
// goroutine, running only while the outbox is not empty, sends them in
// that order, each to every connection before the next one starts. Posts
// to one connection are written in the order they were queued, so each
// client gets a topic/key's transitions in order: a true after a false is
// never overtaken by it. The goroutine may wait for a connection whose
// queue is full but draining; one that has stopped reading is dropped as a
// slow consumer (it reconnects and gets the snapshot), as by PostAll.
// Subscribe and Close never wait for clients.
//
// Snapshot. A connection that becomes reachable (joined, from
// Server.register) gets the active set as SubscriptionStateChanged
// messages with HasSubscribers true, the same type .NET clients handle.
// The snapshot is taken and appended to the same outbox under the same
// lock as transitions, so it reflects exactly the transitions before it
// in the outbox, and everything after it reaches the new connection after
// it. A transition from before the snapshot that is still being sent may
// reach the connection too, before or after the snapshot, but in order;
// so the last message the client gets for a topic/key always carries its
// current state: the client ends up right, whatever the race.
type serverSubscriptions struct {
	once    sync.Once
	srv     *Server
	counter subscriptionCounter

	mu      sync.Mutex
	active  map[subKey]struct{} // with subscribers, as the clients are told
	outbox  []subscriptionSend
	sending bool
	idle    chan struct{} // closed when the sending goroutine has exited
	closed  bool
}

// subscriptionSend is one entry of the outbox: a transition for every
// connection, or the snapshot for one.
type subscriptionSend struct {
	to   *serverConn // nil: every connection
	msgs []wire.Wrapper
}

var _ transitionSink = (*serverSubscriptions)(nil)

// subscriptionState returns the server's subscription state, made on
// first use: with the cluster's counter when the Server has a Backplane
// (counts are then cluster-wide), else with the single-node counter.
func (s *Server) subscriptionState() *serverSubscriptions {
	ss := &s.subs
	ss.once.Do(func() {
		ss.srv = s
		ss.active = make(map[subKey]struct{})
		ss.idle = make(chan struct{})
		close(ss.idle)
		if s.cluster != nil {
			ss.counter = newClusterCounter(s.cluster, ss)
		} else {
			ss.counter = newMemoryCounter(ss)
		}
	})
	return ss
}

func (ss *serverSubscriptions) transition(topic, key string, has bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	k := subKey{topic, key}
	if has {
		ss.active[k] = struct{}{}
	} else {
		delete(ss.active, k)
	}
	if ss.closed {
		return
	}
	ss.outbox = append(ss.outbox, subscriptionSend{msgs: []wire.Wrapper{subscriptionWrapper(topic, key, has)}})
	ss.kickLocked()
}

// joined queues the snapshot of the active set for a connection that has
// just become reachable. It does not block.
func (ss *serverSubscriptions) joined(sc *serverConn) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed || len(ss.active) == 0 {
		return
	}
	keys := make([]subKey, 0, len(ss.active))
	for k := range ss.active {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b subKey) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.key, b.key))
	})
	msgs := make([]wire.Wrapper, len(keys))
	for i, k := range keys {
		msgs[i] = subscriptionWrapper(k.topic, k.key, true)
	}
	ss.outbox = append(ss.outbox, subscriptionSend{to: sc, msgs: msgs})
	ss.kickLocked()
}

// kickLocked starts the sending goroutine if it is not running; ss.mu is
// held.
func (ss *serverSubscriptions) kickLocked() {
	if ss.sending {
		return
	}
	ss.sending = true
	ss.idle = make(chan struct{})
	go ss.send(ss.idle)
}

// send empties the outbox in order, then exits.
func (ss *serverSubscriptions) send(idle chan struct{}) {
	defer close(idle)
	for {
		ss.mu.Lock()
		if len(ss.outbox) == 0 || ss.closed {
			ss.outbox = nil
			ss.sending = false
			ss.mu.Unlock()
			return
		}
		next := ss.outbox[0]
		ss.outbox[0] = subscriptionSend{}
		ss.outbox = ss.outbox[1:]
		ss.mu.Unlock()
		if next.to != nil {
			ss.sendSnapshot(next.to, next.msgs)
		} else {
			ss.broadcast(&next.msgs[0])
		}
	}
}

// sendSnapshot queues the snapshot on one connection, waiting for room.
func (ss *serverSubscriptions) sendSnapshot(sc *serverConn, msgs []wire.Wrapper) {
	for i := range msgs {
		if err := sc.peer.out.Send(ss.srv.ctx, wire.TargetPost, &msgs[i]); err != nil {
			ss.srv.log.Debug("communication: subscription snapshot not sent", "connection", sc.id, "error", err)
			return
		}
	}
}

// broadcast queues one transition on every connection of this node: at
// once where there is room, then on the connections whose queue is full,
// waiting for those that drain and dropping those that have stopped
// reading, as PostAll does.
func (ss *serverSubscriptions) broadcast(w *wire.Wrapper) {
	s := ss.srv
	s.mu.RLock()
	conns := make([]*serverConn, 0, len(s.conns))
	for _, sc := range s.conns {
		conns = append(conns, sc)
	}
	s.mu.RUnlock()
	var full []*serverConn
	for _, sc := range conns {
		if err := sc.peer.out.TrySend(wire.TargetPost, w); errors.Is(err, transport.ErrQueueFull) {
			full = append(full, sc)
		}
	}
	for _, sc := range full {
		if sc.conn != nil && sc.conn.Stalled(s.cfg.writeTimeout/2) {
			s.log.Warn("communication: client dropped", "connection", sc.id, "reason", "slow consumer: send queue full and not draining")
			sc.conn.Close(fmt.Errorf("%w: send queue full", ErrSlowConsumer))
			continue
		}
		if err := sc.peer.out.Send(s.ctx, wire.TargetPost, w); err != nil {
			s.log.Debug("communication: subscription change not sent", "connection", sc.id, "error", err)
		}
	}
}

// shutdown stops telling clients and waits for the sending goroutine to
// exit. The server's context has ended, so that it does not wait long.
// Subscriptions that end later are still counted. Call it through
// Server.subscriptionState, so that the state is made first.
func (ss *serverSubscriptions) shutdown() {
	ss.mu.Lock()
	ss.closed = true
	ss.outbox = nil
	idle := ss.idle
	ss.mu.Unlock()
	if idle != nil {
		<-idle
	}
}
