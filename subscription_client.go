package communication

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/tharga/communication-go/internal/recovery"
	"github.com/tharga/communication-go/internal/wire"
)

// SubscriptionChange is a change of the server's subscriptions as a
// Client sees it: the first subscription of a topic/key began, or the last
// one ended.
type SubscriptionChange struct {
	// Topic is the full type name of the subscribed message type, as the
	// server wrote it.
	Topic string
	// Key is the subscription's key; "" for a keyless subscription, which
	// matches every key.
	Key string
	// HasSubscribers tells whether anybody now subscribes to the
	// topic/key.
	HasSubscribers bool
}

// WithSubscriptionHandler sets a function called when the server's
// subscriptions change (see Subscribe): when the first subscription of a
// topic/key begins, when the last one ends, when the server tells a new
// connection what is active, and (with HasSubscribers false) for each
// active topic/key when the connection drops. Calls are made one at a
// time, in order, on the goroutine that runs the state handler (see
// WithStateHandler), never on the connection's reader. Default: none.
func WithSubscriptionHandler(f func(SubscriptionChange)) ClientOption {
	return clientOption(func(c *clientConfig) { c.onSubscription = f })
}

// HasSubscribers reports whether somebody on the server subscribes to
// messages of type T: with no key, to T for every key (a keyless
// subscription); with keys, to T for one of them or for every key.
//
// The client keeps the server's active set per connection, as the server
// announces it: a new connection starts empty and is filled by the
// server's snapshot within moments of connecting; while the client is not
// connected nobody is known to subscribe. The topic is the full type name
// of T's wire name (see RegisterName): client and server must name T the
// same way.
func HasSubscribers[T any](c *Client, key ...string) bool {
	return c.subs.has(wire.MatchKey(c.h.nameOf(reflect.TypeFor[T]())), key)
}

// PostIfSubscribed posts msg to the server (see Post) if somebody there
// subscribes to its type, for one of the keys given or for every key (see
// HasSubscribers); otherwise it does nothing and returns false and no
// error, also while not connected. It reports whether msg was posted.
func (c *Client) PostIfSubscribed(ctx context.Context, msg any, key ...string) (bool, error) {
	if msg == nil {
		return false, fmt.Errorf("%w: nil message", ErrBadMessage)
	}
	if !c.subs.has(wire.MatchKey(c.h.nameOf(reflect.TypeOf(msg))), key) {
		return false, nil
	}
	if err := c.Post(ctx, msg); err != nil {
		return false, err
	}
	return true, nil
}

// clientSubscriptions is a Client's view of the server's active
// subscriptions, for its current connection.
type clientSubscriptions struct {
	// emit orders changes and their callbacks: held across a change and
	// the queueing of its callback, never while a reader checks.
	emit sync.Mutex

	mu     sync.RWMutex
	conn   string            // the connection the set belongs to
	active map[subKey]string // by topic match key and key: the topic as written
}

// handleSubscriptions registers the handler of the server's
// SubscriptionStateChanged posts in the client's handler set. Posts run
// one at a time per connection, in order, off the reader.
func (c *Client) handleSubscriptions() error {
	err := HandlePost(c.h, PostHandlerFunc[subscriptionStateChanged](func(ctx context.Context, m subscriptionStateChanged) error {
		s, _ := SenderFrom(ctx)
		c.subs.apply(c, s.ConnectionID, m)
		return nil
	}), WithName(subscriptionStateChangedName))
	if err != nil {
		return fmt.Errorf("communication: the client handles the server's subscription changes itself: %w", err)
	}
	return nil
}

// connected starts the set of a new connection, empty. It runs when the
// connection's handshake is through, before anything the server sent on
// it is handled; Client.mu is held.
func (s *clientSubscriptions) connected(id string) {
	s.mu.Lock()
	s.conn = id
	clear(s.active)
	s.mu.Unlock()
}

// disconnected clears the set of a connection that has ended and reports
// each active topic/key as without subscribers.
func (s *clientSubscriptions) disconnected(c *Client, id string) {
	s.emit.Lock()
	defer s.emit.Unlock()
	s.mu.Lock()
	if s.conn != id {
		s.mu.Unlock()
		return
	}
	s.conn = ""
	gone := make([]SubscriptionChange, 0, len(s.active))
	for k, topic := range s.active {
		gone = append(gone, SubscriptionChange{Topic: topic, Key: k.key})
	}
	clear(s.active)
	s.mu.Unlock()
	slices.SortFunc(gone, func(a, b SubscriptionChange) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Key, b.Key))
	})
	for _, ch := range gone {
		c.subscriptionEvent(ch)
	}
}

// apply takes one SubscriptionStateChanged of connection conn. A message
// of a connection that has ended is dropped: the next one starts empty.
func (s *clientSubscriptions) apply(c *Client, conn string, m subscriptionStateChanged) {
	if m.Topic == "" {
		c.log.Warn("communication: subscription change without a topic dropped", "connection", conn)
		return
	}
	key := ""
	if m.Key != nil {
		key = *m.Key
	}
	k := subKey{wire.MatchKey(m.Topic), key}
	s.emit.Lock()
	defer s.emit.Unlock()
	s.mu.Lock()
	if conn == "" || conn != s.conn {
		s.mu.Unlock()
		return
	}
	_, had := s.active[k]
	switch {
	case m.HasSubscribers && !had:
		if s.active == nil {
			s.active = make(map[subKey]string)
		}
		s.active[k] = m.Topic
	case !m.HasSubscribers && had:
		delete(s.active, k)
	}
	s.mu.Unlock()
	if had != m.HasSubscribers {
		c.subscriptionEvent(SubscriptionChange{Topic: m.Topic, Key: key, HasSubscribers: m.HasSubscribers})
	}
}

// has reports whether topic (a match key) has a keyless subscription, or
// one for any of keys.
func (s *clientSubscriptions) has(topic string, keys []string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.active[subKey{topic, ""}]; ok {
		return true
	}
	for _, key := range keys {
		if _, ok := s.active[subKey{topic, key}]; ok {
			return true
		}
	}
	return false
}

// subscriptionEvent queues the subscription handler's call on the
// client's event goroutine.
func (c *Client) subscriptionEvent(ch SubscriptionChange) {
	f := c.cfg.onSubscription
	if f == nil {
		return
	}
	_ = c.events.Push(context.Background(), func() {
		defer recovery.Log(c.log, "communication: subscription handler panicked", nil)
		f(ch)
	})
}
