package communication

import (
	"cmp"
	"slices"
	"sync"
)

// subKey is one topic/key; key "" is the keyless subscription.
type subKey struct{ topic, key string }

// subscriptionCounter is the seam between subscribers and the clients that
// are told about them: where reference counts live and where transitions
// come from. The Server calls add for its own subscribers; the counter
// reports each 0→1 and 1→0 transition of a count to the transitionSink it
// was made with, which tells this node's clients (and remembers the active
// set for the clients that connect later).
//
// memoryCounter is the single-node implementation: the counts of this
// process. A multi-node backplane would implement it by publishing each
// add to the cluster and keeping cluster-wide counts (in Redis, say), and
// by reporting the cluster-wide transitions to every node's sink: a
// subscriber on node A then makes the clients of node B see
// HasSubscribers, with no change to Subscribe, Subscription, the snapshot
// for late joiners or the client. Its contract:
//
//   - add changes this node's count of topic/key by delta (+1 or -1) and
//     never blocks on clients.
//   - transitions reach the sink one at a time, in the order the count
//     changed (a true after a false for one topic/key is never reported
//     before it): an implementation calls the sink under its own lock, or
//     from a single goroutine.
//   - a transition is reported only when the count crosses 0↔1, so that
//     for each topic/key the reports alternate true, false, true...
//   - counts lists the topic/keys with subscribers and their counts, as the
//     counter knows them (cluster-wide for a backplane).
type subscriptionCounter interface {
	add(topic, key string, delta int)
	counts() []SubscriptionCount
}

// transitionSink receives the transitions of a subscriptionCounter.
type transitionSink interface {
	transition(topic, key string, hasSubscribers bool)
}

// memoryCounter counts the subscriptions of this process: the single-node
// subscriptionCounter. Behind a load balancer, clients of another node
// never learn of the subscribers here.
type memoryCounter struct {
	mu   sync.Mutex
	n    map[subKey]int
	sink transitionSink
}

var _ subscriptionCounter = (*memoryCounter)(nil)

func newMemoryCounter(sink transitionSink) *memoryCounter {
	return &memoryCounter{n: make(map[subKey]int), sink: sink}
}

func (m *memoryCounter) add(topic, key string, delta int) {
	k := subKey{topic, key}
	m.mu.Lock()
	defer m.mu.Unlock()
	before := m.n[k]
	after := before + delta
	if after <= 0 {
		delete(m.n, k)
		after = 0
	} else {
		m.n[k] = after
	}
	// Under the lock: transitions leave in the order the counts changed.
	switch {
	case before == 0 && after > 0:
		m.sink.transition(topic, key, true)
	case before > 0 && after == 0:
		m.sink.transition(topic, key, false)
	}
}

func (m *memoryCounter) counts() []SubscriptionCount {
	m.mu.Lock()
	out := make([]SubscriptionCount, 0, len(m.n))
	for k, n := range m.n {
		out = append(out, SubscriptionCount{Topic: k.topic, Key: k.key, Count: n})
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b SubscriptionCount) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Key, b.Key))
	})
	return out
}
