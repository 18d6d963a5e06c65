package redis

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The direct links between nodes (WithDirect). What one node sends to one
// other node (a request, its reply, a post to a connection) crosses Redis
// twice and wakes three processes (the sender's acknowledgement, Redis,
// the receiver's subscription); on a direct TCP connection it is one
// write and one read. Redis stays the directory, the heartbeat and the
// path of broadcasts, and the path to nodes that have no direct address.
//
// A link is one-way: node A dials node B to send it messages, and B dials
// A for the other way. One goroutine writes a link, in the order of
// Publish, and one reads it on the other side and calls the node's handler
// with what it reads, in order (taking turns with the inbox's goroutine):
// messages from one node to another keep their order. A link that fails is not replaced by Redis (the order would be
// lost across the switch): its messages fail until it is dialled again.
//
// The nodes prove to each other that they know the cluster's secret, a
// random key kept in Redis (whoever can read Redis can already publish to
// the cluster): the dialler sends its name, the name of the node it
// means to reach and a nonce; the listener answers with a nonce of its own
// and an HMAC-SHA256 of all of them; the dialler answers with its own
// HMAC; the listener confirms with one byte. Neither side sends or
// accepts a message before that. The link is not encrypted: nodes, like
// Redis, belong on a private network.

// directMagic opens a dialler's greeting: the protocol and its version.
var directMagic = [8]byte{'t', 'h', 'r', 'g', 'n', 'o', 'd', '1'}

const (
	// maxDirectMessage bounds a message on a link: a larger one is
	// refused by Publish, and a link that carries one is closed.
	maxDirectMessage = 64 << 20
	// maxNodeName bounds a node's name in a greeting.
	maxNodeName = 1024
	nonceSize   = 32
	directOK    = 1
)

// errLinkDown is the error of a message to a node whose link failed, until
// it is dialled again.
var errLinkDown = errors.New("redis: the direct link to the node is down")

type directConfig struct {
	listen, advertise string
}

// WithDirect makes the node carry what it sends to one other node
// (requests, their replies, posts to a connection) over a TCP connection of
// its own to that node, instead of through Redis: one write and one read
// instead of a PUBLISH, Redis's work and its acknowledgement. Redis stays
// the directory, the heartbeat and the path of broadcasts. listen is the
// address the node accepts other nodes on ("host:port"; port 0 picks a
// free one); advertise is the address the others dial, stored in Redis
// (empty: the listener's own address, right when listen names an address
// the others reach).
//
// Nodes prove to each other that they know a secret kept in Redis; the
// link is not encrypted. Messages to one node keep their order; if its
// link fails, messages to it fail (the error names the cause) until it is
// dialled again, a heartbeat later. A node without WithDirect still
// receives from and sends to nodes with it, through Redis. Default: off.
func WithDirect(listen, advertise string) BackplaneOption {
	return func(c *backplaneConfig) { c.direct = directConfig{listen: listen, advertise: advertise} }
}

// direct is a node's direct links: its listener, the links it dialled
// (one per node it sent to) and the connections it accepted.
type direct struct {
	n         *node
	ln        net.Listener
	advertise string

	// handshakes bounds the connections accepted and not yet checked:
	// a flood of them costs a bounded number of goroutines.
	handshakes chan struct{}

	// links holds the link to each node this node sent to (*link): read
	// without a lock by every message, written under mu.
	links sync.Map

	mu    sync.Mutex
	known []byte                // the cluster's secret, as last read
	conns map[net.Conn]struct{} // accepted and dialled, closed on leave
	wg    sync.WaitGroup
}

// maxHandshakes bounds the handshakes a node's listener runs at once; past
// it, a connection is closed at once.
const maxHandshakes = 64

// link is this node's way to one other node.
type link struct {
	d    *direct
	to   string
	addr string // "": the node has no direct address; use Redis
	// until is when a link without an address, or a failed one, is
	// looked up again. Set when the link is made, and again by fail
	// before it closes dead: read once dead is seen closed, it needs no
	// lock.
	until time.Time
	out   chan []byte
	up    chan struct{} // closed once the link is dialled and checked
	dead  chan struct{} // closed when the link failed
	err   error         // why; set before dead is closed
	once  sync.Once     // fail's
}

func (n *node) startDirect(ctx context.Context, cfg directConfig) error {
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("redis: listening for other nodes: %w", err)
	}
	d := &direct{n: n, ln: ln, advertise: cfg.advertise, handshakes: make(chan struct{}, maxHandshakes),
		conns: make(map[net.Conn]struct{})}
	if d.advertise == "" {
		d.advertise = ln.Addr().String()
	}
	if _, err := d.secret(ctx); err != nil {
		_ = ln.Close()
		return fmt.Errorf("redis: the cluster's secret: %w", err)
	}
	if err := n.b.rdb.Set(ctx, n.k.addr(n.name), d.advertise, n.b.cfg.nodeTimeout).Err(); err != nil {
		_ = ln.Close()
		return fmt.Errorf("redis: announcing the node's address: %w", err)
	}
	n.direct = d
	d.wg.Add(1)
	go d.accept()
	return nil
}

// secret returns the cluster's secret. When Redis lost it (a restart),
// the node puts back the one it knows, so that the nodes that know it keep
// agreeing; the first node ever makes one. When Redis cannot be reached,
// the one the node knows serves: links keep being made while Redis is
// down.
func (d *direct) secret(ctx context.Context) ([]byte, error) {
	rdb, key := d.n.b.rdb, d.n.k.secret()
	for range 2 {
		s, err := rdb.Get(ctx, key).Result()
		if err == nil {
			secret, err := hex.DecodeString(s)
			if err != nil {
				return nil, fmt.Errorf("the secret in %s is not hex: %w", key, err)
			}
			d.mu.Lock()
			d.known = secret
			d.mu.Unlock()
			return secret, nil
		}
		d.mu.Lock()
		known := d.known
		d.mu.Unlock()
		if !errors.Is(err, goredis.Nil) {
			if known != nil {
				return known, nil
			}
			return nil, err
		}
		if known == nil {
			known = make([]byte, 32)
			_, _ = rand.Read(known)
		}
		if err := rdb.SetNX(ctx, key, hex.EncodeToString(known), 0).Err(); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("the secret vanished as it was made")
}

// close stops the listener, the links and the connections, and waits for
// their goroutines. The node's life has ended.
func (d *direct) close() {
	_ = d.ln.Close()
	d.mu.Lock()
	for c := range d.conns {
		_ = c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

// track records a connection to close on leave; false when the node is
// leaving already.
func (d *direct) track(c net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n.life.Err() != nil {
		return false
	}
	d.conns[c] = struct{}{}
	return true
}

func (d *direct) untrack(c net.Conn) {
	d.mu.Lock()
	delete(d.conns, c)
	d.mu.Unlock()
	_ = c.Close()
}

// forget drops the link to a node that left, so that the next message to
// it looks it up again.
func (d *direct) forget(node string) {
	d.mu.Lock()
	v, ok := d.links.LoadAndDelete(node)
	d.mu.Unlock()
	if l, _ := v.(*link); ok && l.addr != "" {
		l.fail(fmt.Errorf("%w: the node %s left", errLinkDown, node))
	}
}

// publish queues msg for node's link and returns: the link writes it
// soon after, with what else is queued. ok is false when the node has no
// direct address: the caller uses Redis. Like a PUBLISH, a message handed
// over is delivered at most once: one queued as the link fails is lost
// (and logged); what is published after fails with the link's error.
func (d *direct) publish(ctx context.Context, node string, msg []byte) (ok bool, err error) {
	l, err := d.link(ctx, node)
	if err != nil {
		return true, err
	}
	if l == nil {
		return false, nil
	}
	if len(msg) > maxDirectMessage {
		return true, fmt.Errorf("redis: a message of %d bytes is larger than a direct link carries (%d)", len(msg), maxDirectMessage)
	}
	// ctx is asked only when the link is new or behind: a context may set
	// up its timer only once something waits on it.
	select {
	case <-l.up:
	default:
		// The first messages wait for the link to be up: a node that
		// cannot be reached fails them at once, with the cause.
		select {
		case <-l.up:
		case <-l.dead:
			return true, l.err
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
	select {
	case l.out <- msg:
		return true, nil
	default:
	}
	select {
	case l.out <- msg:
		return true, nil
	case <-ctx.Done():
		return true, ctx.Err()
	case <-l.dead:
		return true, l.err
	}
}

// standing returns what link returns for the link to node while that
// stands: a live link, or one that failed or found no address less than a
// heartbeat ago. A live link costs no lock and no clock.
func (d *direct) standing(node string) (l *link, ok bool, err error) {
	v, found := d.links.Load(node)
	if !found {
		return nil, false, nil
	}
	l = v.(*link)
	select {
	case <-l.dead:
		return nil, time.Now().Before(l.until), l.err
	default:
	}
	if l.addr != "" {
		return l, true, nil
	}
	return nil, time.Now().Before(l.until), nil
}

// link returns the live link to node, dialling it (on the link's
// goroutine) when there is none; nil when node has no direct address, and
// the link's error when it failed less than a heartbeat ago.
func (d *direct) link(ctx context.Context, node string) (*link, error) {
	if l, ok, err := d.standing(node); ok {
		return l, err
	}
	addr, err := d.n.b.rdb.Get(ctx, d.n.k.addr(node)).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("redis: looking up the address of node %s: %w", node, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if l, ok, err := d.standing(node); ok {
		return l, err // another publisher made one meanwhile
	}
	if d.n.life.Err() != nil {
		return nil, errors.New("redis: the node has left")
	}
	l := &link{d: d, to: node, addr: addr, until: time.Now().Add(d.n.b.cfg.heartbeat), up: make(chan struct{}), dead: make(chan struct{})}
	if addr != "" {
		l.out = make(chan []byte, 1024)
	}
	d.links.Store(node, l)
	if addr == "" {
		return nil, nil
	}
	d.wg.Add(1)
	go l.run()
	return l, nil
}

// fail marks the link down with err, once, which releases what waits on
// it.
func (l *link) fail(err error) {
	l.once.Do(func() {
		l.err = err
		l.until = time.Now().Add(l.d.n.b.cfg.heartbeat)
		close(l.dead)
	})
}

// run dials the link and writes what is published to it, in order, each
// round's messages in one write.
func (l *link) run() {
	d := l.d
	defer d.wg.Done()
	c, err := d.dial(l)
	if err != nil {
		if d.n.life.Err() == nil {
			d.n.b.cfg.log.Warn("redis: no direct link to a node; messages to it fail until it is dialled again",
				"node", d.n.name, "to", l.to, "address", l.addr, "error", err)
		}
		l.fail(fmt.Errorf("%w: %s at %s: %w", errLinkDown, l.to, l.addr, err))
		l.drop(0)
		return
	}
	defer d.untrack(c)
	close(l.up)
	w := bufio.NewWriterSize(c, 64<<10)
	batch := make([][]byte, 0, maxPipeline)
	for {
		select {
		case m := <-l.out:
			batch = append(batch[:0], m)
		case <-l.dead:
			l.drop(0)
			return
		case <-d.n.life.Done():
			l.fail(errors.New("redis: the node has left"))
			l.drop(0)
			return
		}
		batch = gather(l.out, batch, maxPipeline)
		err := c.SetWriteDeadline(time.Now().Add(d.n.b.cfg.nodeTimeout))
		for _, m := range batch {
			if err == nil {
				err = writeMessage(w, m)
			}
		}
		if err == nil {
			err = w.Flush()
		}
		written := len(batch)
		clear(batch) // the messages are not kept past their write
		if err != nil {
			err = fmt.Errorf("%w: %s: %w", errLinkDown, l.to, err)
			if d.n.life.Err() == nil {
				d.n.b.cfg.log.Warn("redis: the direct link to a node failed; what was queued on it is lost",
					"node", d.n.name, "to", l.to, "error", err)
			}
			l.fail(err)
			l.drop(written)
			return
		}
	}
}

// drop discards what is still queued on a failed link, and logs how many
// messages were lost with it: those and inFlight, the ones of the write
// that failed (some of which may have arrived).
func (l *link) drop(inFlight int) {
	lost := inFlight
	for {
		select {
		case <-l.out:
			lost++
		default:
			if lost > 0 && l.d.n.life.Err() == nil {
				l.d.n.b.cfg.log.Warn("redis: messages to a node lost with its direct link", "node", l.d.n.name, "to", l.to, "lost", lost)
			}
			return
		}
	}
}

// writeMessage writes one message of a link: its length (uvarint), then
// its bytes.
func writeMessage(w *bufio.Writer, msg []byte) error {
	var n [binary.MaxVarintLen64]byte
	if _, err := w.Write(n[:binary.PutUvarint(n[:], uint64(len(msg)))]); err != nil {
		return err
	}
	_, err := w.Write(msg)
	return err
}

// dial connects to the link's node and proves each side to the other.
func (d *direct) dial(l *link) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(d.n.life, d.n.b.cfg.nodeTimeout/2)
	defer cancel()
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "tcp", l.addr)
	if err != nil {
		return nil, err
	}
	if !d.track(c) {
		_ = c.Close()
		return nil, errors.New("redis: the node has left")
	}
	// The handshake is bounded as the dial is, and ends with the node's
	// life.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	err = d.greet(ctx, c, l.to)
	if !stop() || err != nil {
		d.untrack(c)
		return nil, firstErr(err, ctx.Err())
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// firstErr is err, or alt when err is nil.
func firstErr(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

// greet is the dialler's side of the handshake.
func (d *direct) greet(ctx context.Context, c net.Conn, to string) error {
	secret, err := d.secret(ctx)
	if err != nil {
		return fmt.Errorf("the cluster's secret: %w", err)
	}
	var mine [nonceSize]byte
	_, _ = rand.Read(mine[:])
	hello := append([]byte(nil), directMagic[:]...)
	hello = appendName(hello, d.n.name)
	hello = appendName(hello, to)
	hello = append(hello, mine[:]...)
	if _, err := c.Write(hello); err != nil {
		return err
	}
	var answer [nonceSize + sha256.Size]byte
	if _, err := io.ReadFull(c, answer[:]); err != nil {
		return fmt.Errorf("the node refused the link (is %s the address of %s?): %w", c.RemoteAddr(), to, err)
	}
	theirs := answer[:nonceSize]
	if !hmac.Equal(answer[nonceSize:], proof(secret, "accept", d.n.name, to, mine[:], theirs)) {
		return errors.New("the node at the address does not know the cluster's secret")
	}
	if _, err := c.Write(proof(secret, "dial", d.n.name, to, mine[:], theirs)); err != nil {
		return err
	}
	var ok [1]byte
	if _, err := io.ReadFull(c, ok[:]); err != nil || ok[0] != directOK {
		return fmt.Errorf("the node refused the link: %v", firstErr(err, errors.New("no confirmation")))
	}
	return nil
}

func appendName(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func readName(r *bufio.Reader) (string, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return "", err
	}
	if n > maxNodeName {
		return "", fmt.Errorf("a node name of %d bytes", n)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return string(b), err
}

// proof is what a side of the handshake sends to show it knows secret.
func proof(secret []byte, side, from, to string, dialNonce, acceptNonce []byte) []byte {
	m := hmac.New(sha256.New, secret)
	for _, s := range [...]string{side, from, to} {
		_, _ = m.Write(appendName(nil, s))
	}
	_, _ = m.Write(dialNonce)
	_, _ = m.Write(acceptNonce)
	return m.Sum(nil)
}

// accept takes other nodes' links until the node leaves.
func (d *direct) accept() {
	defer d.wg.Done()
	for {
		c, err := d.ln.Accept()
		if err != nil {
			if d.n.life.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors, say: wait a moment rather than spin.
			d.n.b.cfg.log.Warn("redis: accepting a direct link", "node", d.n.name, "error", err)
			select {
			case <-time.After(50 * time.Millisecond):
			case <-d.n.life.Done():
				return
			}
			continue
		}
		select {
		case d.handshakes <- struct{}{}:
		default:
			d.n.b.cfg.log.Warn("redis: refused a direct link: too many handshakes at once", "node", d.n.name,
				"remote", c.RemoteAddr().String(), "limit", maxHandshakes)
			_ = c.Close()
			continue
		}
		if !d.track(c) {
			_ = c.Close()
			return
		}
		d.wg.Add(1)
		go d.serve(c)
	}
}

// serve checks a link another node dialled, then calls the node's handler
// with what arrives on it, in order.
func (d *direct) serve(c net.Conn) {
	defer d.wg.Done()
	defer d.untrack(c)
	r := bufio.NewReaderSize(c, 64<<10)
	_ = c.SetDeadline(time.Now().Add(d.n.b.cfg.nodeTimeout / 2))
	from, err := d.welcome(c, r)
	<-d.handshakes
	if err != nil {
		if d.n.life.Err() == nil {
			d.n.b.cfg.log.Warn("redis: refused a direct link", "node", d.n.name, "remote", c.RemoteAddr().String(), "error", err)
		}
		return
	}
	_ = c.SetDeadline(time.Time{})
	// What has arrived together is handed over together: one turn of the
	// handler for a round of the sender's writes.
	msgs := make([][]byte, 0, maxPipeline)
	for {
		msg, err := readMessage(r)
		if err != nil {
			if d.n.life.Err() != nil {
				return
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				d.n.b.cfg.log.Warn("redis: a direct link from a node ended", "node", d.n.name, "from", from, "error", err)
			}
			// What the node sent after the last message read is lost:
			// replies among it would leave requests waiting for their
			// deadline.
			d.n.calling.Lock()
			d.n.h.MessagesLost(from, fmt.Errorf("the direct link from %s ended: %w", from, err))
			d.n.calling.Unlock()
			return
		}
		msgs = append(msgs, msg)
		if r.Buffered() > 0 && len(msgs) < maxPipeline {
			continue
		}
		d.n.calling.Lock()
		for _, m := range msgs {
			d.n.h.Receive(m)
		}
		d.n.calling.Unlock()
		clear(msgs)
		msgs = msgs[:0]
	}
}

// readMessage reads one message of a link.
func readMessage(r *bufio.Reader) ([]byte, error) {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if size > maxDirectMessage {
		return nil, fmt.Errorf("a message of %d bytes, more than a link carries (%d)", size, maxDirectMessage)
	}
	msg := make([]byte, size)
	_, err = io.ReadFull(r, msg)
	return msg, err
}

// welcome is the listener's side of the handshake; it returns the
// dialler's name.
func (d *direct) welcome(c net.Conn, r *bufio.Reader) (string, error) {
	var magic [len(directMagic)]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return "", err
	}
	if magic != directMagic {
		return "", errors.New("not a node of this cluster (unknown greeting)")
	}
	from, err := readName(r)
	if err != nil {
		return "", err
	}
	to, err := readName(r)
	if err != nil {
		return "", err
	}
	if to != d.n.name {
		return "", fmt.Errorf("%s dialled %s, but this is %s", from, to, d.n.name)
	}
	var theirs [nonceSize]byte
	if _, err := io.ReadFull(r, theirs[:]); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(d.n.life, d.n.b.cfg.nodeTimeout/2)
	secret, err := d.secret(ctx)
	cancel()
	if err != nil {
		return "", fmt.Errorf("the cluster's secret: %w", err)
	}
	var mine [nonceSize]byte
	_, _ = rand.Read(mine[:])
	if _, err := c.Write(append(mine[:], proof(secret, "accept", from, to, theirs[:], mine[:])...)); err != nil {
		return "", err
	}
	var got [sha256.Size]byte
	if _, err := io.ReadFull(r, got[:]); err != nil {
		return "", err
	}
	if !hmac.Equal(got[:], proof(secret, "dial", from, to, theirs[:], mine[:])) {
		return "", fmt.Errorf("%s does not know the cluster's secret", from)
	}
	_, err = c.Write([]byte{directOK})
	return from, err
}
