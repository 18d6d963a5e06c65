package redis

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	communication "github.com/tharga/communication-go"
)

// Backplane is a communication.Backplane over Redis: messages travel by
// Redis pub/sub (one channel per node and one for all), the directory of
// connections is kept in Redis keys, and each node proves it is alive
// with a key that expires unless it is renewed. When a node stops
// renewing it (it crashed or lost Redis), the first surviving node to
// notice takes its connections (orphans: their clients are reported
// disconnected once) and tells the others, which fail the requests they
// had in flight to it.
//
// Delivery is at most once, as with ASP.NET SignalR's Redis backplane:
// what is published while a node is cut off from Redis is lost; the
// nodes log it. Messages from one node to another keep their order.
//
// With WithDirect, what one node sends to one other node travels on a TCP
// link between the two instead (see WithDirect); broadcasts still cross
// Redis.
type Backplane struct {
	rdb goredis.UniversalClient
	cfg backplaneConfig
}

var _ communication.Backplane = (*Backplane)(nil)

// Defaults of a Backplane.
const (
	DefaultPrefix      = "tharga"
	DefaultHeartbeat   = time.Second
	DefaultNodeTimeout = 5 * time.Second
)

type backplaneConfig struct {
	prefix      string
	heartbeat   time.Duration
	nodeTimeout time.Duration
	log         *slog.Logger
	direct      directConfig
}

// BackplaneOption configures a Backplane.
type BackplaneOption func(*backplaneConfig)

// WithPrefix sets the prefix of every Redis key and channel, so that
// several clusters share one Redis. Default: "tharga".
func WithPrefix(p string) BackplaneOption { return func(c *backplaneConfig) { c.prefix = p } }

// WithHeartbeat sets how often a node renews its liveness and looks for
// nodes that stopped. Default: 1s.
func WithHeartbeat(d time.Duration) BackplaneOption {
	return func(c *backplaneConfig) { c.heartbeat = d }
}

// WithNodeTimeout sets how long a node may go without renewing its
// liveness before the others take it for dead: the bound on how long a
// request to a client of a crashed node waits. It must exceed the
// heartbeat. Default: 5s.
func WithNodeTimeout(d time.Duration) BackplaneOption {
	return func(c *backplaneConfig) { c.nodeTimeout = d }
}

// WithLogger sets the logger. Default: silent.
func WithLogger(l *slog.Logger) BackplaneOption {
	return func(c *backplaneConfig) { c.log = l }
}

// NewBackplane returns a Backplane over the Redis that rdb reaches.
func NewBackplane(rdb goredis.UniversalClient, opts ...BackplaneOption) (*Backplane, error) {
	cfg := backplaneConfig{
		prefix:      DefaultPrefix,
		heartbeat:   DefaultHeartbeat,
		nodeTimeout: DefaultNodeTimeout,
		log:         slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	var errs []error
	if rdb == nil {
		errs = append(errs, errors.New("a Redis client is required"))
	}
	if cfg.heartbeat <= 0 {
		errs = append(errs, fmt.Errorf("heartbeat must be positive, got %v", cfg.heartbeat))
	}
	if cfg.nodeTimeout <= cfg.heartbeat {
		errs = append(errs, fmt.Errorf("node timeout (%v) must exceed the heartbeat (%v)", cfg.nodeTimeout, cfg.heartbeat))
	}
	if cfg.direct.listen == "" && cfg.direct.advertise != "" {
		errs = append(errs, fmt.Errorf("a direct address to advertise (%q) needs one to listen on", cfg.direct.advertise))
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("redis: invalid backplane options: %w", err)
	}
	return &Backplane{rdb: rdb, cfg: cfg}, nil
}

// The first byte of what travels on a channel.
const (
	frameNodeLeft = 'l' // a node left; the rest is its name
	// frameBatch carries a node's messages for one channel, one or more,
	// in order, each as its length (uvarint) and its bytes: with many
	// messages in flight between two nodes, one PUBLISH and one delivery
	// carry many, which spares Redis and both ends most of their work per
	// message.
	frameBatch = 'b'
)

// maxBatchFrame bounds a batch frame's bytes; a message larger than it
// travels alone, in a frame of its own.
const maxBatchFrame = 256 << 10

// keys names the Redis keys and channels of a cluster.
type keys struct{ p string }

func (k keys) all() string               { return k.p + ":all" }
func (k keys) node(n string) string      { return k.p + ":node:" + n }
func (k keys) alive(n string) string     { return k.p + ":alive:" + n }
func (k keys) nodes() string             { return k.p + ":nodes" }
func (k keys) held(n string) string      { return k.p + ":held:" + n }
func (k keys) conn(id string) string     { return k.p + ":conn:" + id }
func (k keys) instance(i string) string  { return k.p + ":instance:" + i }
func (k keys) addr(n string) string      { return k.p + ":addr:" + n }
func (k keys) secret() string            { return k.p + ":secret" }
func location(node, other string) string { return node + "\x00" + other }
func splitLocation(v string) (string, string) {
	node, other, _ := strings.Cut(v, "\x00")
	return node, other
}

// Join implements communication.Backplane. The node's name must not be in
// use by a live node.
func (b *Backplane) Join(ctx context.Context, name string, h communication.BackplaneHandler) (communication.BackplaneNode, error) {
	k := keys{b.cfg.prefix}
	ok, err := b.rdb.SetNX(ctx, k.alive(name), time.Now().UnixMilli(), b.cfg.nodeTimeout).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: joining as %q: %w", name, err)
	}
	if !ok {
		return nil, fmt.Errorf("redis: a live node is already named %q", name)
	}
	if err := b.rdb.ZAdd(ctx, k.nodes(), goredis.Z{Score: float64(time.Now().UnixMilli()), Member: name}).Err(); err != nil {
		return nil, fmt.Errorf("redis: joining as %q: %w", name, err)
	}
	ps := b.rdb.Subscribe(ctx, k.all(), k.node(name))
	// Wait for both subscriptions: from here on nothing sent to the node
	// is missed.
	for range 2 {
		if _, err := ps.Receive(ctx); err != nil {
			_ = ps.Close()
			return nil, fmt.Errorf("redis: subscribing as %q: %w", name, err)
		}
	}
	life, stop := context.WithCancel(context.Background())
	n := &node{
		b: b, k: k, name: name, h: h, ps: ps,
		life: life, stop: stop,
		inbox: make(chan func(), 1024),
		out:   make(chan *publication, 1024),
		all:   k.all(),
	}
	if b.cfg.direct.listen != "" {
		if err := n.startDirect(ctx, b.cfg.direct); err != nil {
			stop()
			_ = ps.Close()
			_ = b.rdb.Del(ctx, k.alive(name)).Err()
			return nil, err
		}
	}
	n.wg.Add(4)
	go n.receive()
	go n.deliver()
	go n.heartbeat()
	go n.publisher()
	return n, nil
}

// node is one Server's membership.
type node struct {
	b    *Backplane
	k    keys
	name string
	h    communication.BackplaneHandler
	ps   *goredis.PubSub
	// direct is the node's direct links to other nodes (WithDirect), or
	// nil.
	direct *direct

	life context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
	// out feeds the publisher, which sends what is waiting in one
	// pipeline: with many messages in flight, a round trip to Redis
	// carries many of them.
	out chan *publication
	// all and channels are the channel names, made once.
	all      string
	channels sync.Map // node name -> its channel
	// inbox hands the handler's calls, in order, to one goroutine, so
	// that a slow delivery does not stop the subscription being read.
	inbox chan func()
	// calling is held while the handler is called: the inbox's goroutine
	// and the direct links' readers take turns.
	calling sync.Mutex

	mu        sync.Mutex
	lost      bool // the link is down
	leaveOnce sync.Once
}

// publication is one message waiting for the publisher.
type publication struct {
	ch   string
	msg  []byte
	done chan error
}

var publications = sync.Pool{New: func() any { return &publication{done: make(chan error, 1)} }}

// maxPipeline bounds the messages of one pipeline.
const maxPipeline = 256

func (n *node) Publish(ctx context.Context, to string, msg []byte) error {
	if to != "" && n.direct != nil {
		if ok, err := n.direct.publish(ctx, to, msg); ok {
			return err
		}
	}
	ch := n.all
	if to != "" {
		c, ok := n.channels.Load(to)
		if !ok {
			c, _ = n.channels.LoadOrStore(to, n.k.node(to))
		}
		ch = c.(string)
	}
	p := publications.Get().(*publication)
	p.ch, p.msg = ch, msg
	// ctx is asked only when the publisher is behind: a context may set
	// up its timer only once something waits on it.
	select {
	case n.out <- p:
	default:
		select {
		case n.out <- p:
		case <-ctx.Done():
			publications.Put(p)
			return ctx.Err()
		case <-n.life.Done():
			publications.Put(p)
			return errors.New("redis: the node has left")
		}
	}
	var err error
	select {
	case err = <-p.done:
	case <-n.life.Done():
		// The publisher may have stopped before it took p (or may still
		// answer it): p is not reused.
		return errors.New("redis: the node has left")
	}
	p.ch, p.msg = "", nil
	publications.Put(p)
	if errors.Is(err, errNoReceiver) {
		if to != "" {
			return fmt.Errorf("%w: %q", communication.ErrNoSuchNode, to)
		}
		return nil
	}
	return err
}

// errNoReceiver is a PUBLISH nobody received.
var errNoReceiver = errors.New("no receiver")

// publisher sends the waiting publications in pipelines, in the order
// they came: messages from this node to another keep their order.
// Publications to one channel that wait together travel as one batch
// frame.
func (n *node) publisher() {
	defer n.wg.Done()
	var (
		batch  = make([]*publication, 0, maxPipeline)
		groups []group
		cmds   = make([]*goredis.IntCmd, 0, maxPipeline)
		frames [][]byte // the batch frames' buffers, kept for the next round
	)
	for {
		batch = batch[:0]
		select {
		case p := <-n.out:
			batch = append(batch, p)
		case <-n.life.Done():
			n.drainPublications(errors.New("redis: the node has left"))
			return
		}
		batch = gather(n.out, batch, maxPipeline)
		groups, frames = groupPublications(batch, groups[:0], frames)
		ctx, cancel := context.WithTimeout(n.life, n.b.cfg.nodeTimeout)
		cmds = cmds[:0]
		_, err := n.b.rdb.Pipelined(ctx, func(pl goredis.Pipeliner) error {
			for _, g := range groups {
				cmds = append(cmds, pl.Publish(ctx, g.ch, g.frame))
			}
			return nil
		})
		cancel()
		for i, g := range groups {
			var perr error
			switch {
			case i < len(cmds) && cmds[i].Err() == nil && cmds[i].Val() == 0:
				perr = errNoReceiver
			case i < len(cmds) && cmds[i].Err() == nil:
			case i < len(cmds):
				perr = fmt.Errorf("redis: publishing: %w", cmds[i].Err())
			default:
				perr = fmt.Errorf("redis: publishing: %w", err)
			}
			for _, p := range batch[g.from:g.to] {
				if p != nil {
					p.done <- perr
				}
			}
		}
		clear(batch)
	}
}

// gather appends to batch what waits on ch, up to max in all, after
// letting the senders that are ready queue theirs first: one round trip (a
// pipeline, a write) then carries several.
func gather[T any](ch <-chan T, batch []T, max int) []T {
	runtime.Gosched()
	for len(batch) < max {
		select {
		case v := <-ch:
			batch = append(batch, v)
		default:
			return batch
		}
	}
	return batch
}

// group is one PUBLISH: the publications batch[from:to] that share a
// channel (the others in that range are nil), in one frame.
type group struct {
	ch       string
	frame    []byte
	from, to int
}

// groupPublications gathers batch into one group per channel, each
// written as a batch frame into a reused buffer, keeping the order of each
// channel's publications. It reorders batch so that each group's
// publications are contiguous. A group's frame holds at most maxBatchFrame
// bytes, or one larger message alone.
func groupPublications(batch []*publication, groups []group, frames [][]byte) ([]group, [][]byte) {
	if len(batch) > 1 {
		partitionByChannel(batch)
	}
	used := 0
	for i := 0; i < len(batch); {
		j := i + 1
		size := len(batch[i].msg) + binary.MaxVarintLen32
		for j < len(batch) && batch[j].ch == batch[i].ch && size+len(batch[j].msg)+binary.MaxVarintLen32 <= maxBatchFrame {
			size += len(batch[j].msg) + binary.MaxVarintLen32
			j++
		}
		if used == len(frames) {
			frames = append(frames, nil)
		}
		f := append(frames[used][:0], frameBatch)
		for _, p := range batch[i:j] {
			f = binary.AppendUvarint(f, uint64(len(p.msg)))
			f = append(f, p.msg...)
		}
		if cap(f) > 2*maxBatchFrame {
			frames[used] = nil // an outsized buffer is not kept
		} else {
			frames[used] = f
		}
		used++
		groups = append(groups, group{ch: batch[i].ch, frame: f, from: i, to: j})
		i = j
	}
	return groups, frames
}

// partitionByChannel reorders batch in place so that each channel's
// publications are contiguous, in order of the channels' first appearance
// and in their order within each; it allocates nothing. Few channels (one
// per node) and at most maxPipeline publications keep the moves cheap.
func partitionByChannel(batch []*publication) {
	for start := 0; start < len(batch); {
		ch := batch[start].ch
		end := start + 1
		for j := end; j < len(batch); j++ {
			if p := batch[j]; p.ch == ch {
				copy(batch[end+1:j+1], batch[end:j])
				batch[end] = p
				end++
			}
		}
		start = end
	}
}

// drainPublications answers what is still waiting when the node stops.
func (n *node) drainPublications(err error) {
	for {
		select {
		case p := <-n.out:
			p.done <- err
		default:
			return
		}
	}
}

// claimScript records a connection: its location, the node's set of held
// connections, and the instance's newest connection.
// The node is (re)entered in the set of nodes too, so that a node that
// dies holding connections is noticed even when Redis lost its heartbeat
// (a restart) before it died.
var claimScript = goredis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[4]) end
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])
return 1`)

func (n *node) Claim(ctx context.Context, c communication.Location) error {
	err := claimScript.Run(ctx, n.b.rdb,
		[]string{n.k.conn(c.ConnectionID), n.k.held(n.name), n.k.instance(c.Instance), n.k.nodes()},
		location(n.name, c.Instance), c.ConnectionID, c.Instance, location(n.name, c.ConnectionID),
		time.Now().UnixMilli(), n.name).Err()
	if err != nil {
		return fmt.Errorf("redis: claiming %s: %w", c.ConnectionID, err)
	}
	return nil
}

// releaseScript forgets a connection a node held, leaving alone what
// another node has claimed since.
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('HDEL', KEYS[2], ARGV[2])
if redis.call('GET', KEYS[3]) == ARGV[3] then redis.call('DEL', KEYS[3]) end
return 1`)

func (n *node) Release(ctx context.Context, c communication.Location) error {
	err := releaseScript.Run(ctx, n.b.rdb,
		[]string{n.k.conn(c.ConnectionID), n.k.held(n.name), n.k.instance(c.Instance)},
		location(n.name, c.Instance), c.ConnectionID, location(n.name, c.ConnectionID)).Err()
	if err != nil {
		return fmt.Errorf("redis: releasing %s: %w", c.ConnectionID, err)
	}
	return nil
}

// locateScript returns where a connection or instance is held, when its
// node is alive: one round trip.
var locateScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return false end
local node = string.match(v, '^([^%z]*)')
if redis.call('EXISTS', ARGV[1] .. node) == 1 then return v end
return false`)

// Locate implements communication.BackplaneNode. A connection held by a
// node that is no longer alive is not found.
func (n *node) Locate(ctx context.Context, connectionID, instance string) (communication.Location, bool, error) {
	key := n.k.instance(instance)
	if connectionID != "" {
		key = n.k.conn(connectionID)
	}
	v, err := locateScript.Run(ctx, n.b.rdb, []string{key}, n.k.alive("")).Text()
	if errors.Is(err, goredis.Nil) {
		return communication.Location{}, false, nil
	}
	if err != nil {
		return communication.Location{}, false, fmt.Errorf("redis: locating: %w", err)
	}
	l := communication.Location{ConnectionID: connectionID, Instance: instance}
	if connectionID != "" {
		l.Node, l.Instance = splitLocation(v)
	} else {
		l.Node, l.ConnectionID = splitLocation(v)
	}
	return l, true, nil
}

// Leave implements communication.BackplaneNode: the node stops, forgets
// what it held and tells the others.
func (n *node) Leave(ctx context.Context) error {
	var err error
	n.leaveOnce.Do(func() {
		n.stop()
		_ = n.ps.Close()
		n.wg.Wait()
		var delAddr error
		if n.direct != nil {
			n.direct.close()
			delAddr = n.b.rdb.Del(ctx, n.k.addr(n.name)).Err()
		}
		orphans, e := n.forget(ctx, n.name)
		if e == nil && len(orphans) > 0 {
			n.b.cfg.log.Warn("redis: a leaving node still held connections", "node", n.name, "connections", len(orphans))
		}
		err = errors.Join(e, delAddr,
			n.b.rdb.Del(ctx, n.k.alive(n.name)).Err(),
			n.b.rdb.ZRem(ctx, n.k.nodes(), n.name).Err(),
			n.b.rdb.Publish(ctx, n.k.all(), string(frameNodeLeft)+n.name).Err())
	})
	if err != nil {
		return fmt.Errorf("redis: leaving: %w", err)
	}
	return nil
}

// forget removes what a node held from the directory and returns it.
func (n *node) forget(ctx context.Context, name string) ([]communication.Location, error) {
	held, err := n.b.rdb.HGetAll(ctx, n.k.held(name)).Result()
	if err != nil {
		return nil, err
	}
	orphans := make([]communication.Location, 0, len(held))
	for conn, inst := range held {
		l := communication.Location{Node: name, ConnectionID: conn, Instance: inst}
		if err := releaseScript.Run(ctx, n.b.rdb,
			[]string{n.k.conn(conn), n.k.held(name), n.k.instance(inst)},
			location(name, inst), conn, location(name, conn)).Err(); err != nil {
			return orphans, err
		}
		orphans = append(orphans, l)
	}
	return orphans, n.b.rdb.Del(ctx, n.k.held(name)).Err()
}

// handle queues a call of the handler, in order.
func (n *node) handle(f func()) {
	select {
	case n.inbox <- f:
	case <-n.life.Done():
	}
}

func (n *node) deliver() {
	defer n.wg.Done()
	for {
		select {
		case f := <-n.inbox:
			n.calling.Lock()
			f()
			n.calling.Unlock()
		case <-n.life.Done():
			return
		}
	}
}

// setLost records the state of the link and reports the change to the
// handler once.
func (n *node) setLost(lost bool, err error) {
	n.mu.Lock()
	changed := n.lost != lost
	n.lost = lost
	n.mu.Unlock()
	if !changed {
		return
	}
	if lost {
		n.b.cfg.log.Warn("redis: lost the link to Redis", "node", n.name, "error", err)
		n.handle(func() { n.h.LinkLost(err) })
	} else {
		n.b.cfg.log.Info("redis: the link to Redis is back", "node", n.name)
		n.handle(n.h.LinkRestored)
	}
}

// receive reads the node's subscriptions. go-redis reconnects and
// subscribes again after an error; the subscription confirmations that
// follow tell that the link is back.
func (n *node) receive() {
	defer n.wg.Done()
	// Made stopped: with the timers of a Go before 1.23 (a go.mod may ask
	// for them), one that had fired unread would cut the first wait short.
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		msg, err := n.ps.Receive(n.life)
		if n.life.Err() != nil {
			return
		}
		if err != nil {
			n.setLost(true, err)
			retry.Reset(n.b.cfg.heartbeat / 4)
			select {
			case <-retry.C:
			case <-n.life.Done():
				return
			}
			continue
		}
		switch m := msg.(type) {
		case *goredis.Subscription:
			n.setLost(false, nil)
		case *goredis.Message:
			n.frame(m.Payload)
		}
	}
}

func (n *node) frame(p string) {
	if p == "" {
		return
	}
	switch p[0] {
	case frameBatch:
		msgs, err := splitBatch([]byte(p[1:]))
		if err != nil {
			n.b.cfg.log.Warn("redis: malformed batch from the cluster dropped", "node", n.name, "error", err)
		}
		if len(msgs) > 0 {
			n.handle(func() {
				for _, m := range msgs {
					n.h.Receive(m)
				}
			})
		}
	case frameNodeLeft:
		name := p[1:]
		if name == n.name {
			// The others took this node for dead: it is not. Claim
			// its connections again.
			n.handle(n.h.LinkRestored)
			return
		}
		n.forgetLink(name)
		n.handle(func() { n.h.NodeLeft(name, nil) })
	}
}

// splitBatch returns the messages of a batch frame's body, sharing its
// bytes; on a malformed body, those before the fault and the error.
func splitBatch(b []byte) ([][]byte, error) {
	msgs := make([][]byte, 0, 8)
	for len(b) > 0 {
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return msgs, errors.New("a message's length runs past the frame")
		}
		b = b[n:]
		msgs = append(msgs, b[:size:size])
		b = b[size:]
	}
	return msgs, nil
}

// forgetLink drops the direct link to a node that left.
func (n *node) forgetLink(name string) {
	if n.direct != nil {
		n.direct.forget(name)
	}
}

// heartbeat renews the node's liveness and takes over nodes that stopped.
func (n *node) heartbeat() {
	defer n.wg.Done()
	t := time.NewTicker(n.b.cfg.heartbeat)
	defer t.Stop()
	last := time.Now() // the last beat that went through
	for {
		select {
		case <-t.C:
		case <-n.life.Done():
			return
		}
		// A beat may take up to half the node timeout: a busy Redis or
		// client pool is not a lost link.
		ctx, cancel := context.WithTimeout(n.life, n.b.cfg.nodeTimeout/2)
		err := n.beat(ctx)
		if err == nil {
			last = time.Now()
			err = n.reap(ctx)
		}
		cancel()
		if n.life.Err() != nil {
			return
		}
		switch {
		case err == nil:
		case time.Since(last) >= n.b.cfg.nodeTimeout/2:
			// The others will soon take this node for dead: what is in
			// flight between nodes is lost.
			n.setLost(true, err)
		default:
			n.b.cfg.log.Debug("redis: heartbeat failed", "node", n.name, "error", err)
		}
	}
}

func (n *node) beat(ctx context.Context) error {
	now := time.Now()
	_, err := n.b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, n.k.alive(n.name), now.UnixMilli(), n.b.cfg.nodeTimeout)
		p.ZAdd(ctx, n.k.nodes(), goredis.Z{Score: float64(now.UnixMilli()), Member: n.name})
		if n.direct != nil {
			p.Set(ctx, n.k.addr(n.name), n.direct.advertise, n.b.cfg.nodeTimeout)
		}
		return nil
	})
	return err
}

// reap takes over the nodes whose liveness expired: the one node whose
// ZREM removes a dead node reports its connections as orphans, once.
func (n *node) reap(ctx context.Context) error {
	cutoff := time.Now().Add(-n.b.cfg.nodeTimeout).UnixMilli()
	dead, err := n.b.rdb.ZRangeByScore(ctx, n.k.nodes(), &goredis.ZRangeBy{Min: "-inf", Max: fmt.Sprint(cutoff)}).Result()
	if err != nil {
		return err
	}
	for _, d := range dead {
		if d == n.name {
			continue
		}
		if alive, err := n.b.rdb.Exists(ctx, n.k.alive(d)).Result(); err != nil || alive == 1 {
			continue
		}
		won, err := n.b.rdb.ZRem(ctx, n.k.nodes(), d).Result()
		if err != nil || won == 0 {
			continue
		}
		orphans, err := n.forget(ctx, d)
		if err != nil {
			n.b.cfg.log.Warn("redis: taking over a dead node's connections", "node", d, "error", err)
		}
		n.b.cfg.log.Warn("redis: a node stopped answering; its connections are gone", "node", d, "connections", len(orphans))
		n.forgetLink(d)
		n.handle(func() { n.h.NodeLeft(d, orphans) })
		if err := n.b.rdb.Publish(ctx, n.k.all(), string(frameNodeLeft)+d).Err(); err != nil {
			return err
		}
	}
	return nil
}
