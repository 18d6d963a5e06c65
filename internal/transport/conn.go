package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/philippseith/signalr"

	"github.com/tharga/communication-go/internal/wire"
)

// Errors of a Conn.
var (
	// ErrQueueFull reports a send queue at its byte limit.
	ErrQueueFull = errors.New("send queue full")
	// ErrConnClosed reports a send on a closed connection.
	ErrConnClosed = errors.New("connection closed")
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
	// QueueLimit bounds the bytes waiting to be written.
	QueueLimit int
	// WriteTimeout bounds one WebSocket write; a peer that does not take
	// the bytes in time is dropped as a slow consumer.
	WriteTimeout time.Duration
	Inbound      Inbound
	OnHandshake  func(wire.Protocol)
	// OnClose is called once, with the reason, when the connection ends.
	OnClose func(error)
	Logger  *slog.Logger
}

// Conn is a signalr.Connection over a coder/websocket connection that owns
// the data plane: reads go through an Interceptor, and every write (ours
// and philippseith's) goes through one ordered, byte-bounded queue drained
// by at most one goroutine, which only runs while there is something to
// write.
type Conn struct {
	ws     *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	cfg    ConnConfig
	ic     *Interceptor
	log    *slog.Logger
	proto  atomic.Uint32 // wire.Protocol, 0 until known

	// read side: used only by philippseith's reader goroutine.
	rbuf    []byte
	passBuf []byte
	pass    []byte

	mu       sync.Mutex
	id       string
	mode     signalr.TransferMode
	pending  []byte        // encoded frames waiting for the writer
	spare    []byte        // the writer's other buffer
	writing  bool          // a drain goroutine is running
	space    chan struct{} // closed when the queue shrinks
	closeErr error
	closing  bool      // a close frame was queued: close once flushed
	writeAt  time.Time // when the write in progress started; zero when none

	closeOnce sync.Once
	done      chan struct{}
	stopWatch func() bool // ends the watch on the parent context; under mu
}

var _ signalr.Connection = (*Conn)(nil)
var _ signalr.ConnectionWithTransferMode = (*Conn)(nil)

// NewConn wraps ws. ctx bounds the connection's life.
func NewConn(ctx context.Context, ws *websocket.Conn, cfg ConnConfig) *Conn {
	ctx, cancel := context.WithCancel(ctx)
	c := &Conn{
		ws:     ws,
		ctx:    ctx,
		cancel: cancel,
		cfg:    cfg,
		log:    cfg.Logger,
		id:     cfg.ConnectionID,
		space:  make(chan struct{}),
		done:   make(chan struct{}),
	}
	// Our peers batch up to maxBatch bytes of hub messages in one
	// WebSocket message; one hub message may be MaxMessage long.
	ws.SetReadLimit(int64(cfg.MaxMessage + maxBatch + 4096))
	c.ic = NewInterceptor(InterceptorConfig{
		Side:        cfg.Side,
		Protocol:    cfg.Protocol,
		MaxMessage:  cfg.MaxMessage,
		Inbound:     cfg.Inbound,
		Refuse:      c.refuse,
		Complete:    c.complete,
		OnHandshake: c.handshaken,
		Logger:      cfg.Logger,
	})
	if cfg.Side == ClientSide {
		c.proto.Store(uint32(cfg.Protocol))
	}
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
		go c.drain()
	}
}

// Protocol returns the hub protocol, 0 while a server does not know it yet.
func (c *Conn) Protocol() wire.Protocol { return wire.Protocol(c.proto.Load()) }

func (c *Conn) handshaken(p wire.Protocol) {
	c.proto.Store(uint32(p))
	if c.cfg.OnHandshake != nil {
		c.cfg.OnHandshake(p)
	}
}

// Read implements io.Reader for philippseith's reader goroutine: it reads
// WebSocket messages, dispatches the protocol messages in them and returns
// only the session traffic.
func (c *Conn) Read(p []byte) (int, error) {
	for len(c.pass) == 0 {
		data, err := c.readMessage()
		if err != nil {
			c.Close(err)
			return 0, err
		}
		c.passBuf, err = c.ic.Feed(data, c.passBuf[:0])
		c.pass = c.passBuf
		if err != nil && len(c.pass) == 0 {
			c.Close(err)
			return 0, err
		}
		if err != nil {
			// Deliver what came before the error, then end.
			defer c.Close(err)
		}
	}
	n := copy(p, c.pass)
	c.pass = c.pass[n:]
	return n, nil
}

func (c *Conn) readMessage() ([]byte, error) {
	// No per-read context: Close (and the end of the parent context, see
	// NewConn) unblocks the read by closing the socket.
	_, r, err := c.ws.Reader(context.Background())
	if err != nil {
		return nil, err
	}
	buf := c.rbuf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	// Keep a modest buffer for the next message; let a rare big one go.
	if cap(buf) <= 64<<10 {
		c.rbuf = buf
	} else {
		c.rbuf = nil
	}
	return buf, nil
}

// Write implements io.Writer for philippseith: the handshake answer, pings
// and close messages. Before the handshake the bytes go out at once, so
// that nothing can overtake the handshake; after it they join the queue.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	mode := c.mode
	c.mu.Unlock()
	if mode == 0 {
		ctx, cancel := context.WithTimeout(c.ctx, c.writeTimeout())
		defer cancel()
		if err := c.ws.Write(ctx, websocket.MessageText, p); err != nil {
			c.Close(err)
			return 0, err
		}
		return len(p), nil
	}
	isClose := isCloseFrame(p, c.Protocol())
	err := c.enqueue(func(dst []byte) []byte { return append(dst, p...) }, false, nil)
	if err != nil {
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
// until ctx ends.
func (c *Conn) Send(ctx context.Context, target string, w *wire.Wrapper) error {
	return c.enqueue(c.invocation(target, w), true, ctx)
}

// TrySend queues one protocol invocation without waiting: a full queue is
// ErrQueueFull.
func (c *Conn) TrySend(target string, w *wire.Wrapper) error {
	return c.enqueue(c.invocation(target, w), true, nil)
}

func (c *Conn) invocation(target string, w *wire.Wrapper) func([]byte) []byte {
	proto := c.Protocol()
	return func(dst []byte) []byte {
		if proto == wire.MessagePack {
			return wire.AppendMsgPackInvocation(dst, target, w)
		}
		return wire.AppendJSONInvocation(dst, target, w)
	}
}

func (c *Conn) refuse(invocationID, message string) {
	proto := c.Protocol()
	_ = c.enqueue(func(dst []byte) []byte {
		if proto == wire.MessagePack {
			return wire.AppendMsgPackCompletionError(dst, invocationID, message)
		}
		return wire.AppendJSONCompletionError(dst, invocationID, message)
	}, false, nil)
}

func (c *Conn) complete(invocationID string) {
	proto := c.Protocol()
	_ = c.enqueue(func(dst []byte) []byte {
		if proto == wire.MessagePack {
			return wire.AppendMsgPackCompletion(dst, invocationID)
		}
		return wire.AppendJSONCompletion(dst, invocationID)
	}, false, nil)
}

// enqueue appends one encoded frame to the queue under the lock, so that
// frames leave in the order their senders were admitted.
func (c *Conn) enqueue(encode func([]byte) []byte, limited bool, ctx context.Context) error {
	c.mu.Lock()
	for {
		if c.closeErr != nil || c.closing {
			c.mu.Unlock()
			return ErrConnClosed
		}
		if !limited || c.cfg.QueueLimit <= 0 || len(c.pending) < c.cfg.QueueLimit {
			break
		}
		if ctx == nil {
			c.mu.Unlock()
			return ErrQueueFull
		}
		space := c.space
		c.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return ErrConnClosed
		}
		c.mu.Lock()
	}
	c.pending = encode(c.pending)
	start := !c.writing && c.mode != 0
	c.writing = c.writing || start
	c.mu.Unlock()
	if start {
		go c.drain()
	}
	return nil
}

// drain writes the queue until it is empty, then exits.
func (c *Conn) drain() {
	for {
		// Let the senders that are ready queue their frames first: one
		// WebSocket write then carries several (a write is a syscall).
		runtime.Gosched()
		c.mu.Lock()
		if len(c.pending) == 0 || c.closeErr != nil {
			c.writing = false
			closing := c.closing && c.closeErr == nil
			close(c.space) // wakes Flush
			c.space = make(chan struct{})
			c.mu.Unlock()
			if closing {
				c.Close(nil)
			}
			return
		}
		batch := c.pending
		c.pending = c.spare[:0]
		c.spare = nil
		close(c.space)
		c.space = make(chan struct{})
		c.mu.Unlock()

		typ := websocket.MessageText
		if c.Protocol() == wire.MessagePack {
			typ = websocket.MessageBinary
		}
		err := c.writeBatches(typ, batch)

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
func (c *Conn) writeBatches(typ websocket.MessageType, buf []byte) error {
	proto := c.Protocol()
	for len(buf) > 0 {
		n := len(buf)
		if n > maxBatch {
			n = splitPoint(buf, proto)
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.writeTimeout())
		c.mu.Lock()
		c.writeAt = time.Now()
		c.mu.Unlock()
		err := c.ws.Write(ctx, typ, buf[:n])
		c.mu.Lock()
		c.writeAt = time.Time{}
		c.mu.Unlock()
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && c.ctx.Err() == nil {
				return fmt.Errorf("slow consumer: a write did not complete in %v", c.writeTimeout())
			}
			return err
		}
		buf = buf[n:]
	}
	return nil
}

// splitPoint returns the end of the last whole hub message within maxBatch
// bytes, or of the first message when it alone is larger.
func splitPoint(buf []byte, proto wire.Protocol) int {
	end := 0
	for end < len(buf) {
		var next int
		if proto == wire.MessagePack {
			_, rest, ok, err := wire.NextMsgPackFrame(buf[end:], 0)
			if err != nil || !ok {
				return len(buf)
			}
			next = len(buf) - len(rest)
		} else {
			i := bytes.IndexByte(buf[end:], wire.RecordSeparator)
			if i < 0 {
				return len(buf)
			}
			next = end + i + 1
		}
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
		idle := (!c.writing && (len(c.pending) == 0 || c.mode == 0)) || c.closeErr != nil
		space := c.space
		c.mu.Unlock()
		if idle {
			return
		}
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
		close(c.space)
		c.space = make(chan struct{})
		stop := c.stopWatch
		c.mu.Unlock()
		close(c.done)
		if stop != nil {
			stop()
		}
		c.cancel()
		_ = c.ws.CloseNow()
		c.log.Debug("communication: connection closed", "connection", c.ConnectionID(), "reason", reason)
		if c.cfg.OnClose != nil {
			c.cfg.OnClose(reason)
		}
	})
}

// isCloseFrame tells whether p is a SignalR close message.
func isCloseFrame(p []byte, proto wire.Protocol) bool {
	var m wire.Message
	if proto == wire.MessagePack {
		frame, _, ok, err := wire.NextMsgPackFrame(p, 0)
		if err != nil || !ok {
			return false
		}
		return wire.ParseMsgPack(frame, &m) == nil && m.Type == wire.TypeClose
	}
	rec, _, ok := wire.NextJSONRecord(p)
	return ok && bytes.Contains(rec, []byte(`"type":7`)) && wire.ParseJSON(rec, &m) == nil && m.Type == wire.TypeClose
}
