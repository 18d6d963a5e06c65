package communication

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// The kinds of envelope that keep subscription counts cluster-wide.
const (
	envSubCount = "sub"    // a node's count of one topic/key changed
	envSubAsk   = "subask" // a node asks every other for its counts
	envSubSet   = "subset" // a node's whole set of counts, in answer
)

// subEntry is one topic/key's count of one node, in an envelope.
type subEntry struct {
	Topic string `msgpack:"t"`
	Key   string `msgpack:"k,omitempty"`
	Count int    `msgpack:"n"`
}

// clusterCounter is the subscriptionCounter of a node in a cluster: each
// node counts its own subscribers and tells the others each change of
// those counts; every node sums them, and reports to its sink the 0↔1
// transitions of the cluster-wide total. A subscriber on one node thus
// makes the clients of every node see HasSubscribers. A node that joins,
// or whose link comes back, asks the others for their counts; a node that
// leaves takes its counts with it.
type clusterCounter struct {
	c    *cluster
	sink transitionSink

	mu sync.Mutex // held while publishing, so that changes leave in order
	// n is every node's count per topic/key, this node's included.
	n map[subKey]map[string]int
}

var _ subscriptionCounter = (*clusterCounter)(nil)

func newClusterCounter(c *cluster, sink transitionSink) *clusterCounter {
	return &clusterCounter{c: c, sink: sink, n: make(map[subKey]map[string]int)}
}

// set records node's count of k and reports a transition of the total;
// cc.mu is held.
func (cc *clusterCounter) set(k subKey, node string, count int) {
	before := cc.totalLocked(k)
	if count > 0 {
		if cc.n[k] == nil {
			cc.n[k] = make(map[string]int)
		}
		cc.n[k][node] = count
	} else if m := cc.n[k]; m != nil {
		delete(m, node)
		if len(m) == 0 {
			delete(cc.n, k)
		}
	}
	after := cc.totalLocked(k)
	switch {
	case before == 0 && after > 0:
		cc.sink.transition(k.topic, k.key, true)
	case before > 0 && after == 0:
		cc.sink.transition(k.topic, k.key, false)
	}
}

func (cc *clusterCounter) totalLocked(k subKey) int {
	t := 0
	for _, n := range cc.n[k] {
		t += n
	}
	return t
}

func (cc *clusterCounter) add(topic, key string, delta int) {
	k := subKey{topic, key}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	mine := max(cc.n[k][cc.c.name]+delta, 0)
	cc.set(k, cc.c.name, mine)
	cc.publish("", &envelope{Kind: envSubCount, Subs: []subEntry{{Topic: topic, Key: key, Count: mine}}})
}

// publish sends e; cc.mu is held. A change the cluster misses (its link is
// down) is sent again with the whole set when the link comes back.
func (cc *clusterCounter) publish(node string, e *envelope) {
	ctx, cancel := context.WithTimeout(cc.c.s.ctx, cc.c.s.cfg.writeTimeout)
	defer cancel()
	if err := cc.c.publish(ctx, node, e); err != nil {
		cc.c.s.log.Warn("communication: a subscription change was not told to the cluster", "error", err)
	}
}

func (cc *clusterCounter) counts() []SubscriptionCount {
	cc.mu.Lock()
	out := make([]SubscriptionCount, 0, len(cc.n))
	for k := range cc.n {
		out = append(out, SubscriptionCount{Topic: k.topic, Key: k.key, Count: cc.totalLocked(k)})
	}
	cc.mu.Unlock()
	slices.SortFunc(out, func(a, b SubscriptionCount) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Key, b.Key))
	})
	return out
}

// mineLocked is this node's own counts; cc.mu is held.
func (cc *clusterCounter) mineLocked() []subEntry {
	var out []subEntry
	for k, m := range cc.n {
		if n := m[cc.c.name]; n > 0 {
			out = append(out, subEntry{Topic: k.topic, Key: k.key, Count: n})
		}
	}
	return out
}

// receive applies what another node said.
func (cc *clusterCounter) receive(e envelope) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	switch e.Kind {
	case envSubCount:
		for _, s := range e.Subs {
			cc.set(subKey{s.Topic, s.Key}, e.From, s.Count)
		}
	case envSubSet:
		cc.replaceLocked(e.From, e.Subs)
	case envSubAsk:
		// To every node, not to the one asking: counts travel only as
		// broadcasts, so that a whole set and the changes around it keep
		// their order on a backplane that carries messages to one node
		// apart from broadcasts. Setting a set again changes nothing.
		cc.publish("", &envelope{Kind: envSubSet, Subs: cc.mineLocked()})
	}
}

// replaceLocked sets node's whole set of counts; cc.mu is held.
func (cc *clusterCounter) replaceLocked(node string, subs []subEntry) {
	seen := make(map[subKey]bool, len(subs))
	for _, s := range subs {
		k := subKey{s.Topic, s.Key}
		seen[k] = true
		cc.set(k, node, s.Count)
	}
	for k, m := range cc.n {
		if _, ok := m[node]; ok && !seen[k] {
			cc.set(k, node, 0)
		}
	}
}

// sync tells every node this node's counts and asks for theirs: on
// joining, and when the link comes back.
func (cc *clusterCounter) sync() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.publish("", &envelope{Kind: envSubSet, Subs: cc.mineLocked()})
	cc.publish("", &envelope{Kind: envSubAsk})
}

// nodeLeft forgets a node's counts.
func (cc *clusterCounter) nodeLeft(node string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.replaceLocked(node, nil)
}
