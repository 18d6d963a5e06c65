package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/philippseith/signalr"

	"github.com/tharga/communication-go/internal/signal"
	"github.com/tharga/communication-go/internal/wire"
)

// Errors of a Conn.
var (
	// ErrQueueFull reports a send queue at its byte limit.
	ErrQueueFull = errors.New("send queue full")
	// ErrConnClosed reports a send on a closed connection.
	ErrConnClosed = errors.New("connection closed")
	// ErrStalled ends a connection whose peer did not take a write within
	// the write timeout: a slow consumer.
	ErrStalled = errors.New("slow consumer")
)

// maxBatch bounds how many bytes of queued frames go out in one WebSocket
// message. Peers split the message into hub messages again; some (raw
// philippseith) refuse a WebSocket message larger than their limit.
const maxBatch = 16 << 10

// ConnConfig configures a Conn.
type ConnConfig struct {
	Side         Side
	ConnectionID string
	Protocol     wire.Protocol // the client's choice; servers learn it
	// MaxMessage bounds one incoming hub message.
	MaxMessage int
	// PeerMaxMessage bounds one outgoing invocation: what the peer said it
	// accepts. Zero means no check.
	PeerMaxMessage int
	// QueueLimit bounds the bytes waiting to be written.
	QueueLimit int
	// WriteTimeout bounds one WebSocket write; a peer that does not take
	// the bytes in time is dropped as a slow consumer.
	WriteTimeout time.Duration
	Inbound      Inbound
	OnHandshake  func(wire.Protocol)
	// TextOnly refuses a handshake for MessagePack (server-sent events
	// carry text only).
	TextOnly bool
	// PingEvery is how often, at most, philippseith is handed a ping of
	// ours while the peer's own traffic is intercepted or not read
	// (backpressure): it must be well within philippseith's timeout.
	// Zero means one second.
	PingEvery time.Duration
	Logger    *slog.Logger
}

// Conn is a signalr.Connection over a coder/websocket connection (or a
// server-sent-events session) that owns the data plane: reads go through
// an Interceptor, and once the handshake is through every write (ours and
// philippseith's) goes through one ordered, byte-bounded queue drained by
// at most one goroutine, which only runs while there is something to
// write. Before it, the handshake's answer (philippseith's, or this end's
// refusal) is written at once, so that nothing overtakes it.
type Conn struct {
	link   link
	ctx    context.Context
	cancel context.CancelFunc
	cfg    ConnConfig
	ic     *Interceptor
	log    *slog.Logger
	proto  atomic.Uint32 // wire.Protocol, 0 until known

	// read side: used only by philippseith's reader goroutines.
	passBuf []byte
	pass    []byte
	busy    bool // the Inbound refused a message: offer it again when ready
	// passed says whether philippseith has read the handshake; after it,
	// innerAt is where in its current frame the next read starts
	// (inner.go: every frame is cut in two reads).
	passed  bool
	innerAt int

	mu       sync.Mutex
	id       string
	mode     signalr.TransferMode
	pending  []byte           // encoded frames waiting for the writer
	spare    []byte           // the writer's other buffer
	writing  bool             // a drain goroutine is running
	space    signal.Broadcast // notified when the queue shrinks
	closeErr error
	closing  bool      // a close frame was queued: close once flushed
	writeAt  time.Time // when the write in progress started; zero when none
	stalled  bool      // a write ran out its timeout: the peer does not read

	// crowdedFn reports whether more senders are about (SetCrowded).
	crowdedFn atomic.Pointer[func() bool]

	// watchdog ends the link under a write that has run out its time:
	// the write then fails, and the Conn ends as a slow consumer.
	watchdog *time.Timer

	closeOnce sync.Once
	done      chan struct{}
	stopWatch func() bool // ends the watch on the parent context; under mu
}

var _ signalr.Connection = (*Conn)(nil)
var _ signalr.ConnectionWithTransferMode = (*Conn)(nil)

// NewConn wraps a WebSocket. ctx bounds the connection's life.
func NewConn(ctx context.Context, ws *websocket.Conn, cfg ConnConfig) *Conn {
	return newConn(ctx, newWSLink(ws), cfg)
}

// NewSSEConn wraps a server-sent-events session (server side, JSON only).
// ctx bounds the connection's life.
func NewSSEConn(ctx context.Context, s *SSE, cfg ConnConfig) *Conn {
	return newConn(ctx, s, cfg)
}

func newConn(ctx context.Context, l link, cfg ConnConfig) *Conn {
	ctx, cancel := context.WithCancel(ctx)
	c := &Conn{
		link:   l,
		ctx:    ctx,
		cancel: cancel,
		cfg:    cfg,
		log:    cfg.Logger,
		id:     cfg.ConnectionID,
		done:   make(chan struct{}),
	}
	c.ic = NewInterceptor(InterceptorConfig{
		Side:        cfg.Side,
		Protocol:    cfg.Protocol,
		MaxMessage:  cfg.MaxMessage,
		Inbound:     cfg.Inbound,
		Refuse:      c.refuse,
		Complete:    c.complete,
		OnHandshake: c.handshaken,
		TextOnly:    cfg.TextOnly,
		PingEvery:   cfg.PingEvery,
		Logger:      cfg.Logger,
	})
	if cfg.Side == ClientSide {
		c.proto.Store(uint32(cfg.Protocol))
	}
	c.watchdog = time.AfterFunc(time.Hour, c.writeOverdue)
	c.watchdog.Stop()
	stop := context.AfterFunc(ctx, func() { c.Close(context.Cause(ctx)) })
	c.mu.Lock()
	c.stopWatch = stop
	c.mu.Unlock()
	return c
}

// Context is cancelled when the connection ends.
func (c *Conn) Context() context.Context { return c.ctx }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// ConnectionID implements signalr.Connection.
func (c *Conn) ConnectionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// SetConnectionID implements signalr.Connection.
func (c *Conn) SetConnectionID(id string) {
	c.mu.Lock()
	c.id = id
	c.mu.Unlock()
}

// TransferMode implements signalr.ConnectionWithTransferMode.
func (c *Conn) TransferMode() signalr.TransferMode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mode
}

// SetTransferMode implements signalr.ConnectionWithTransferMode.
// philippseith calls it once the handshake is done.
// Until then the handshake is not through: queued frames wait, so that
// nothing overtakes the handshake answer.
func (c *Conn) SetTransferMode(m signalr.TransferMode) {
	c.mu.Lock()
	c.mode = m
	start := !c.writing && len(c.pending) > 0 && c.closeErr == nil
	c.writing = c.writing || start
	c.mu.Unlock()
	if start {
		go c.drain(false)
	}
}

// QueueBytes returns how many encoded bytes wait to be handed to the
// writer: what a slow reader has let pile up.
func (c *Conn) QueueBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Protocol returns the hub protocol, 0 while a server does not know it yet.
func (c *Conn) Protocol() wire.Protocol { return wire.Protocol(c.proto.Load()) }

// codec returns the Codec of the connection's protocol: JSON's, that of
// the handshake, until a server knows the protocol.
func (c *Conn) codec() wire.Codec { return wire.CodecFor(c.Protocol()) }

func (c *Conn) handshaken(p wire.Protocol) {
	c.proto.Store(uint32(p))
	if c.cfg.OnHandshake != nil {
		c.cfg.OnHandshake(p)
	}
}

// Read implements io.Reader for philippseith's reader goroutine: it reads
// the peer's bytes, dispatches the protocol messages in them and returns
// only the session traffic.
//
// When the Inbound cannot take a message (its handlers are all busy), the
// connection stops reading, which is the backpressure on the peer; while
// it waits, philippseith is handed a ping every PingEvery, so that its
// timeout does not take a healthy but busy connection down.
func (c *Conn) Read(p []byte) (int, error) {
	for len(c.pass) == 0 {
		var err error
		if c.busy {
			if !c.waitReady() {
				c.pass = c.ic.appendPing(c.passBuf[:0])
				c.passBuf = c.pass
				break
			}
			c.busy = false
			c.passBuf, err = c.ic.Feed(nil, c.passBuf[:0])
		} else {
			var data []byte
			data, err = c.link.next()
			if err != nil {
				c.readFailed(err)
				return 0, err
			}
			c.passBuf, err = c.ic.Feed(data, c.passBuf[:0])
			c.link.release()
		}
		c.pass = c.passBuf
		switch {
		case err == nil:
		case errors.Is(err, ErrBusy):
			c.busy = true
		case len(c.pass) == 0:
			c.fail(err)
			return 0, err
		default:
			// Deliver what came before the error, then end.
			defer c.fail(err)
		}
	}
	n := copy(p[:min(len(p), c.nextCut())], c.pass)
	c.advance(n)
	c.pass = c.pass[n:]
	return n, nil
}

// nextCut is how many of the bytes waiting for philippseith one read may
// return: the handshake alone (philippseith reads it with a reader of its
// own and drops what follows it in the same read), then each frame in two
// reads (inner.go).
func (c *Conn) nextCut() int {
	if !c.passed {
		if i := bytes.IndexByte(c.pass, wire.RecordSeparator); i >= 0 {
			return i + 1
		}
		return len(c.pass)
	}
	if c.innerAt < innerCut {
		return innerCut - c.innerAt
	}
	return innerFrame - c.innerAt
}

// advance records that philippseith read the next n bytes, p's head.
func (c *Conn) advance(n int) {
	if n == 0 {
		return
	}
	if !c.passed {
		c.passed = c.pass[n-1] == wire.RecordSeparator
		return
	}
	c.innerAt = (c.innerAt + n) % innerFrame
}

// readFailed ends the connection over a failed read. A write that times
// out closes the socket under the reader too: when a write has been stuck
// for half the write timeout, or one has run out its timeout, the reason
// is the slow consumer, not the reader's "use of closed network
// connection". The flag covers the moment between the write's return and
// the writer's own Close, when no write is in progress any more.
func (c *Conn) readFailed(err error) {
	if c.isStalled() || c.Stalled(c.writeTimeout()/2) {
		err = fmt.Errorf("%w: a write did not complete in %v (%w)", ErrStalled, c.writeTimeout(), err)
	}
	c.Close(err)
}

// waitReady waits until the Inbound may take the message it refused. It
// reports false when philippseith should be given a ping first.
func (c *Conn) waitReady() bool {
	t := time.NewTimer(c.ic.pingEvery)
	defer t.Stop()
	select {
	case <-c.cfg.Inbound.Ready():
		return true
	case <-c.done:
		return true // Feed sees the closed connection's state next
	case <-t.C:
		return false
	}
}

// fail ends the connection over an error of the incoming stream. A
// handshake this end refuses is answered before the connection closes,
// so that the peer learns why.
func (c *Conn) fail(err error) {
	var he *HandshakeError
	if c.cfg.Side == ServerSide && errors.As(err, &he) {
		ctx, cancel := context.WithTimeout(c.ctx, c.writeTimeout())
		_ = c.link.write(ctx, false, wire.AppendHandshakeError(nil, he.Reason))
		cancel()
	}
	c.Close(err)
}

// Write implements io.Writer for philippseith: the handshake answer, pings
// and close messages. Before the handshake the bytes go out at once, so
// that nothing can overtake the handshake; after it they join the queue
// and count against its bound like everything else: a ping that finds the
// queue full is dropped (the queued frames keep the peer's timeout fed as
// they drain); a close message always goes.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	mode := c.mode
	c.mu.Unlock()
	if mode == 0 {
		out := p
		if c.cfg.Side == ClientSide && bytes.HasSuffix(p, []byte{wire.RecordSeparator}) {
			// philippseith asks for MessagePack (inner.go); the server
			// is asked for the protocol of this end.
			if _, err := wire.ParseHandshakeRequest(p[:len(p)-1]); err == nil {
				out = wire.AppendHandshakeRequest(nil, c.Protocol())
			}
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.writeTimeout())
		defer cancel()
		if err := c.link.write(ctx, false, out); err != nil {
			c.Close(err)
			return 0, err
		}
		return len(p), nil
	}
	// philippseith speaks MessagePack (inner.go): its pings and close
	// messages go out in the peer's protocol.
	codec := c.codec()
	out, isClose, dropped := fromInner(nil, p, codec)
	if dropped > 0 {
		c.log.Debug("communication: session message of philippseith not passed on", "connection", c.ConnectionID(), "count", dropped)
	}
	if len(out) == 0 {
		return len(p), nil
	}
	how := admitTry // a ping that finds the queue full is dropped
	if isClose {
		how = admitAlways
	}
	err := c.enqueue(context.Background(), how, func(dst []byte) []byte { return append(dst, out...) }, false, false)
	if err != nil && !errors.Is(err, ErrQueueFull) {
		return 0, err
	}
	if isClose {
		// philippseith ends the session after a close message: flush it
		// and end the transport too, so that nothing lingers.
		c.mu.Lock()
		c.closing = true
		idle := !c.writing
		c.mu.Unlock()
		if idle {
			c.Close(nil)
		}
	}
	return len(p), nil
}

// Send queues one protocol invocation. It waits for room in a full queue
// until ctx ends. A message larger than the peer accepts is ErrTooLarge.
func (c *Conn) Send(ctx context.Context, target string, w *wire.Wrapper) error {
	return c.enqueue(ctx, admitWait, c.invocation(target, w), true, false)
}

// SendInline is Send for a goroutine that has nothing left to do but
// this send (a handler's answer): when no write is in progress it writes
// the queue itself, once, rather than starting a writer goroutine, which
// spares a goroutine and a hand-off per message when the connection is
// not busy. It may then block for one write, bounded by the write
// timeout rather than by ctx; what is queued meanwhile goes to a writer
// goroutine as usual.
func (c *Conn) SendInline(ctx context.Context, target string, w *wire.Wrapper) error {
	return c.enqueue(ctx, admitWait, c.invocation(target, w), true, true)
}

// TrySend queues one protocol invocation without waiting: a full queue is
// ErrQueueFull. A message larger than the peer accepts is ErrTooLarge.
func (c *Conn) TrySend(target string, w *wire.Wrapper) error {
	return c.enqueue(context.Background(), admitTry, c.invocation(target, w), true, false)
}

func (c *Conn) invocation(target string, w *wire.Wrapper) func([]byte) []byte {
	codec := c.codec()
	return func(dst []byte) []byte { return codec.AppendInvocation(dst, target, w) }
}

// refuse and complete answer invocations the peer made with an id. They
// run on the read goroutine and wait for room like any sender: a peer that
// invokes without reading its answers stops being read, and is dropped by
// the write timeout if it never reads again.
func (c *Conn) refuse(invocationID, message string) {
	codec := c.codec()
	_ = c.enqueue(c.ctx, admitWait, func(dst []byte) []byte {
		return codec.AppendCompletionError(dst, invocationID, message)
	}, false, false)
}

func (c *Conn) complete(invocationID string) {
	codec := c.codec()
	_ = c.enqueue(c.ctx, admitWait, func(dst []byte) []byte {
		return codec.AppendCompletion(dst, invocationID)
	}, false, false)
}

// closedErr is what a send on the closed connection returns: ErrConnClosed,
// with the reason the connection ended when it was not a plain close.
// c.mu is held.
func (c *Conn) closedErr() error {
	if c.closeErr == nil || errors.Is(c.closeErr, ErrConnClosed) {
		return ErrConnClosed
	}
	return fmt.Errorf("%w: %w", ErrConnClosed, c.closeErr)
}

// admit is what enqueue does when the queue is at its bound.
type admit uint8

const (
	admitWait   admit = iota // wait for room until ctx ends
	admitTry                 // ErrQueueFull
	admitAlways              // queue it anyway (a close message, once)
)

// enqueue appends one encoded frame to the queue under the lock, so that
// frames leave in the order their senders were admitted. checkSize refuses
// a frame larger than the peer accepts (ConnConfig.PeerMaxMessage).
// inline makes the caller the writer when none is running (SendInline).
func (c *Conn) enqueue(ctx context.Context, how admit, encode func([]byte) []byte, checkSize, inline bool) error {
	c.mu.Lock()
	for {
		if c.closeErr != nil || c.closing {
			err := c.closedErr()
			c.mu.Unlock()
			return err
		}
		if how == admitAlways || c.cfg.QueueLimit <= 0 || len(c.pending) < c.cfg.QueueLimit {
			break
		}
		if how != admitWait {
			c.mu.Unlock()
			return ErrQueueFull
		}
		space := c.space.Wait()
		c.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			c.mu.Lock()
			err := c.closedErr()
			c.mu.Unlock()
			return err
		}
		c.mu.Lock()
	}
	before := len(c.pending)
	c.pending = encode(c.pending)
	if size := len(c.pending) - before; checkSize && c.cfg.PeerMaxMessage > 0 && size-1 > c.cfg.PeerMaxMessage {
		c.pending = c.pending[:before]
		c.mu.Unlock()
		return fmt.Errorf("%w: %d bytes, the peer accepts %d", wire.ErrTooLarge, size-1, c.cfg.PeerMaxMessage)
	}
	start := !c.writing && c.mode != 0
	c.writing = c.writing || start
	c.mu.Unlock()
	switch {
	case start && inline:
		c.drain(true)
	case start:
		go c.drain(false)
	}
	return nil
}

// drain writes the queue until it is empty, then exits. once (a sender
// writing inline) writes one batch and leaves the rest to a writer
// goroutine.
func (c *Conn) drain(once bool) {
	for wrote := false; ; wrote = true {
		if once && wrote {
			c.mu.Lock()
			more := len(c.pending) > 0 && c.closeErr == nil
			c.mu.Unlock()
			if more {
				go c.drain(false)
				return
			}
		}
		// Let the senders that are ready queue their frames first: one
		// WebSocket write then carries several (a write is a syscall).
		// A writer started for one frame yields only when more senders
		// are about (Crowded): a broadcast, or a single request in
		// flight, would pay a trip through the scheduler for nothing.
		if once || wrote || c.crowded() {
			runtime.Gosched()
		}
		c.mu.Lock()
		if len(c.pending) == 0 || c.closeErr != nil {
			c.writing = false
			closing := c.closing && c.closeErr == nil
			c.space.Notify() // wakes Flush
			c.mu.Unlock()
			if closing {
				c.Close(nil)
			}
			return
		}
		batch := c.pending
		c.pending = c.spare[:0]
		c.spare = nil
		c.space.Notify()
		c.mu.Unlock()

		err := c.writeBatches(batch)

		c.mu.Lock()
		if cap(batch) <= 256<<10 {
			c.spare = batch[:0]
		}
		c.mu.Unlock()
		if err != nil {
			c.log.Warn("communication: connection dropped", "connection", c.ConnectionID(), "reason", "write failed", "error", err)
			c.Close(err)
		}
	}
}

// writeBatches writes buf in WebSocket messages of at most maxBatch bytes,
// split at hub-message boundaries.
func (c *Conn) writeBatches(buf []byte) error {
	codec := c.codec()
	for len(buf) > 0 {
		n := len(buf)
		if n > maxBatch {
			n = splitPoint(buf, codec)
		}
		c.mu.Lock()
		c.writeAt = time.Now()
		c.mu.Unlock()
		// The write timeout is the watchdog's, not a context's: a
		// context per write (and the watch coder/websocket puts on it)
		// cost more than the rest of a small write.
		c.watchdog.Reset(c.writeTimeout())
		err := c.link.write(context.Background(), codec.Binary(), buf[:n])
		c.watchdog.Stop()
		c.mu.Lock()
		if err != nil && time.Since(c.writeAt) >= c.writeTimeout() {
			c.stalled = true
		}
		c.writeAt = time.Time{}
		c.mu.Unlock()
		if err != nil {
			if c.isStalled() {
				return fmt.Errorf("%w: a write did not complete in %v", ErrStalled, c.writeTimeout())
			}
			return err
		}
		buf = buf[n:]
	}
	return nil
}

// splitPoint returns the end of the last whole hub message within maxBatch
// bytes, or of the first message when it alone is larger.
func splitPoint(buf []byte, codec wire.Codec) int {
	end := 0
	for end < len(buf) {
		_, rest, ok, err := codec.Next(buf[end:], 0)
		if err != nil || !ok {
			return len(buf)
		}
		next := len(buf) - len(rest)
		if next > maxBatch && end > 0 {
			return end
		}
		end = next
	}
	return end
}

// Stalled reports whether a write has been waiting on the peer for longer
// than d: a peer that does not read.
func (c *Conn) Stalled(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.writeAt.IsZero() && time.Since(c.writeAt) > d
}

func (c *Conn) isStalled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stalled
}

// SetCrowded tells the Conn how to know that more frames are on their
// way (requests of its own in flight, handlers running): a writer then
// waits for them to be queued before its first write, so that one write
// carries them all. Without it, a writer never waits before its first
// write.
func (c *Conn) SetCrowded(f func() bool) { c.crowdedFn.Store(&f) }

func (c *Conn) crowded() bool {
	f := c.crowdedFn.Load()
	return f != nil && (*f)()
}

// writeOverdue is the watchdog's: when the write in progress has run out
// its time, the peer is a slow consumer; ending the link makes the write
// fail. A watchdog that fires as a write ends, or for an earlier write,
// finds none overdue and does nothing.
func (c *Conn) writeOverdue() {
	c.mu.Lock()
	overdue := !c.writeAt.IsZero() && time.Since(c.writeAt) >= c.writeTimeout()
	if overdue {
		c.stalled = true
	}
	c.mu.Unlock()
	if overdue {
		c.link.close()
	}
}

func (c *Conn) writeTimeout() time.Duration {
	if c.cfg.WriteTimeout > 0 {
		return c.cfg.WriteTimeout
	}
	return 10 * time.Second
}

// Flush waits, at most d, until everything queued has been written.
func (c *Conn) Flush(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if (!c.writing && (len(c.pending) == 0 || c.mode == 0)) || c.closeErr != nil {
			c.mu.Unlock()
			return
		}
		space := c.space.Wait()
		c.mu.Unlock()
		select {
		case <-space:
		case <-timer.C:
			return
		}
	}
}

// Close ends the connection once; reason nil means a normal close.
func (c *Conn) Close(reason error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		if reason == nil {
			reason = ErrConnClosed
		}
		c.closeErr = reason
		c.space.Notify()
		stop := c.stopWatch
		c.mu.Unlock()
		close(c.done)
		if stop != nil {
			stop()
		}
		c.cancel()
		c.link.close()
		c.log.Debug("communication: connection closed", "connection", c.ConnectionID(), "reason", reason)
	})
}
