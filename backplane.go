package communication

import (
	"context"
	"errors"
	"sync"

	"github.com/tharga/communication-go/internal/serial"
)

// Backplane joins Server nodes into a cluster: it carries messages between
// them and knows which node holds which connection, so that a broadcast
// reaches the clients of every node and a post or request reaches a client
// wherever it is connected. It moves opaque messages: what they mean is
// the Server's business, so an implementation is small.
//
// A Server without one (the default) is a single node and pays nothing
// for clustering. [NewMemoryBackplane] joins Servers of one process; the
// module github.com/tharga/communication-go/redis joins processes over
// Redis.
type Backplane interface {
	// Join makes a node of the cluster under a name unique in it, and
	// delivers to h what other nodes send it, until Leave.
	Join(ctx context.Context, node string, h BackplaneHandler) (BackplaneNode, error)
}

// BackplaneNode is one node's membership of a cluster.
type BackplaneNode interface {
	// Publish sends msg to node, or to every other node when node is "".
	// Messages from one node to another node arrive in the order they
	// were published, and so do broadcasts from one node; a message to
	// one node and a broadcast may arrive in either order (an
	// implementation may carry them apart). Delivery is at most once: a
	// message published while a node is unreachable is lost. msg is handed over: the caller does not
	// touch it again, so the implementation may keep it without a copy.
	Publish(ctx context.Context, node string, msg []byte) error
	// Claim records that this node holds a connection. For a client
	// instance the newest claim wins.
	Claim(ctx context.Context, c Location) error
	// Release forgets a connection this node held; a connection another
	// node has claimed since is left alone.
	Release(ctx context.Context, c Location) error
	// Locate finds where a connection is held, by connection id or, when
	// connectionID is empty, by client instance.
	Locate(ctx context.Context, connectionID, instance string) (Location, bool, error)
	// Leave ends the membership: the other nodes are told that this node
	// and its connections are gone.
	Leave(ctx context.Context) error
}

// BackplaneHandler is how a Backplane tells a node what happens in the
// cluster. Its methods are called one at a time, in order.
type BackplaneHandler interface {
	// Receive takes a message published to this node or to all.
	Receive(msg []byte)
	// NodeLeft reports a node that left or stopped answering. orphans are
	// the connections it held, given to exactly one surviving node (empty
	// for the others), so that each is reported disconnected once across
	// the cluster.
	NodeLeft(node string, orphans []Location)
	// LinkLost reports that this node lost its link to the cluster:
	// messages and requests in flight between nodes are lost.
	LinkLost(err error)
	// LinkRestored reports that the link is back: the node claims its
	// connections again, as the cluster may have forgotten them.
	LinkRestored()
	// MessagesLost reports that messages from node may have been lost
	// although node may still be in the cluster (a connection that
	// carried them ended): the requests waiting on node fail with
	// ErrConnectionLost rather than at their deadline.
	MessagesLost(node string, err error)
}

// Location is where a connection is held.
type Location struct {
	Node         string
	ConnectionID string
	Instance     string
}

// MemoryBackplane joins the Servers of one process: a cluster in memory,
// for tests and for several hubs in one program. A single Server on it
// behaves as one without a backplane. Nodes only leave by Leave (no node
// dies without a word in one process).
type MemoryBackplane struct {
	mu        sync.Mutex
	nodes     map[string]*memoryNode
	conns     map[string]Location
	instances map[string]Location
}

var _ Backplane = (*MemoryBackplane)(nil)

// NewMemoryBackplane returns an empty in-memory cluster.
func NewMemoryBackplane() *MemoryBackplane {
	return &MemoryBackplane{
		nodes:     make(map[string]*memoryNode),
		conns:     make(map[string]Location),
		instances: make(map[string]Location),
	}
}

type memoryNode struct {
	b    *MemoryBackplane
	name string
	h    BackplaneHandler
	// inbox delivers to h one message at a time, in order, on a
	// goroutine that exists only while there is something to deliver.
	inbox *serial.Queue
}

// memoryInbox bounds the messages waiting for one node.
const memoryInbox = 1 << 16

// Join implements Backplane.
func (b *MemoryBackplane) Join(_ context.Context, node string, h BackplaneHandler) (BackplaneNode, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.nodes[node]; ok {
		return nil, errors.New("communication: a node named " + node + " is already in the cluster")
	}
	n := &memoryNode{b: b, name: node, h: h, inbox: serial.New(memoryInbox, nil, "")}
	b.nodes[node] = n
	return n, nil
}

func (n *memoryNode) Publish(ctx context.Context, node string, msg []byte) error {
	n.b.mu.Lock()
	var to []*memoryNode
	if node == "" {
		for name, m := range n.b.nodes {
			if name != n.name {
				to = append(to, m)
			}
		}
	} else if m, ok := n.b.nodes[node]; ok {
		to = append(to, m)
	}
	n.b.mu.Unlock()
	if node != "" && len(to) == 0 {
		return ErrNoSuchNode
	}
	for _, m := range to {
		h := m.h
		if err := m.inbox.Push(ctx, func() { h.Receive(msg) }); err != nil && !errors.Is(err, serial.ErrClosed) {
			return err
		}
	}
	return nil
}

func (n *memoryNode) Claim(_ context.Context, c Location) error {
	c.Node = n.name
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	n.b.conns[c.ConnectionID] = c
	if c.Instance != "" {
		n.b.instances[c.Instance] = c
	}
	return nil
}

func (n *memoryNode) Release(_ context.Context, c Location) error {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	if l, ok := n.b.conns[c.ConnectionID]; ok && l.Node == n.name {
		delete(n.b.conns, c.ConnectionID)
	}
	if l, ok := n.b.instances[c.Instance]; ok && l.Node == n.name && l.ConnectionID == c.ConnectionID {
		delete(n.b.instances, c.Instance)
	}
	return nil
}

func (n *memoryNode) Locate(_ context.Context, connectionID, instance string) (Location, bool, error) {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	var l Location
	var ok bool
	if connectionID != "" {
		l, ok = n.b.conns[connectionID]
	} else {
		l, ok = n.b.instances[instance]
	}
	return l, ok, nil
}

func (n *memoryNode) Leave(ctx context.Context) error {
	n.b.mu.Lock()
	if n.b.nodes[n.name] != n {
		n.b.mu.Unlock()
		return nil
	}
	delete(n.b.nodes, n.name)
	var orphans []Location
	for id, l := range n.b.conns {
		if l.Node == n.name {
			orphans = append(orphans, l)
			delete(n.b.conns, id)
		}
	}
	for inst, l := range n.b.instances {
		if l.Node == n.name {
			delete(n.b.instances, inst)
		}
	}
	var heir *memoryNode
	others := make([]*memoryNode, 0, len(n.b.nodes))
	for _, m := range n.b.nodes {
		others = append(others, m)
		if heir == nil || m.name < heir.name {
			heir = m
		}
	}
	n.b.mu.Unlock()
	n.inbox.Close()
	for _, m := range others {
		h, o := m.h, []Location(nil)
		if m == heir {
			o = orphans
		}
		_ = m.inbox.Push(ctx, func() { h.NodeLeft(n.name, o) })
	}
	return n.inbox.Wait(ctx)
}
