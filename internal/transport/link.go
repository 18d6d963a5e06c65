package transport

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// link carries the bytes of a Conn: a WebSocket, or a server-sent-events
// stream with the POSTs that feed it. A Conn reads it from one goroutine
// and writes it from one goroutine at a time.
type link interface {
	// next blocks until bytes arrive from the peer and returns them; they
	// stay valid until release. Message boundaries do not matter: the
	// Interceptor splits the stream into hub messages itself.
	next() ([]byte, error)
	// release gives back the bytes of the last next.
	release()
	// write sends one transport message, giving up when ctx ends.
	write(ctx context.Context, binary bool, p []byte) error
	// close ends the link and unblocks next and write.
	close()
}

// chunkSize is how many bytes one next returns at most. Reads go into
// pooled buffers, so an idle connection holds none.
const chunkSize = 32 << 10

var chunks = sync.Pool{New: func() any {
	b := make([]byte, chunkSize)
	return &b
}}

// wsLink is a link over a coder/websocket connection. Messages of any size
// are read in chunks: the Interceptor bounds what it keeps, so a peer
// cannot make us buffer a huge message, and one that is too large is
// skipped rather than ending the connection.
type wsLink struct {
	ws   *websocket.Conn
	r    io.Reader // the message being read; nil between messages
	held *[]byte
}

func newWSLink(ws *websocket.Conn) *wsLink {
	ws.SetReadLimit(-1)
	return &wsLink{ws: ws}
}

func (l *wsLink) next() ([]byte, error) {
	if l.r == nil {
		// No per-read context: close unblocks the read by closing the
		// socket.
		_, r, err := l.ws.Reader(context.Background())
		if err != nil {
			return nil, err
		}
		l.r = r
	}
	bp := chunks.Get().(*[]byte)
	buf := *bp
	n := 0
	for n < len(buf) {
		m, err := l.r.Read(buf[n:])
		n += m
		if err == io.EOF {
			l.r = nil
			break
		}
		if err != nil {
			chunks.Put(bp)
			return nil, err
		}
	}
	l.held = bp
	return buf[:n], nil
}

func (l *wsLink) release() {
	if l.held != nil {
		chunks.Put(l.held)
		l.held = nil
	}
}

func (l *wsLink) write(ctx context.Context, binary bool, p []byte) error {
	typ := websocket.MessageText
	if binary {
		typ = websocket.MessageBinary
	}
	return l.ws.Write(ctx, typ, p)
}

func (l *wsLink) close() { _ = l.ws.CloseNow() }

// Errors of a server-sent-events stream.
var (
	// ErrTooManyPosts reports a POST refused because the session already
	// has as many POSTs waiting as it allows.
	ErrTooManyPosts = errors.New("too many POSTs waiting on this session")
)

// maxWaitingPosts bounds the POSTs of one session that wait while an
// earlier one is read: the client sends one at a time, so more is a
// misbehaving peer, and each waiting POST holds a socket.
const maxWaitingPosts = 4

// SSE is the server end of a server-sent-events session: the event stream
// of one GET (written through the Conn's queue, with the Conn's write
// timeout) and the bodies of the client's POSTs (read, in order, as the
// Conn's incoming byte stream).
type SSE struct {
	w  http.ResponseWriter
	rc *http.ResponseController

	in      chan []byte   // POST bytes, handed to next
	ack     chan struct{} // next's bytes are released
	posting chan struct{} // one POST is read at a time
	waiting atomic.Int32
	done    chan struct{}
	once    sync.Once

	wmu    sync.Mutex // held across a write
	ended  bool       // under wmu: no write may start
	ev     []byte     // the event being written
	noDead bool       // the ResponseWriter cannot take write deadlines
}

// NewSSE prepares an event stream on w; Open starts it.
func NewSSE(w http.ResponseWriter) *SSE {
	return &SSE{
		w:       w,
		rc:      http.NewResponseController(w),
		in:      make(chan []byte),
		ack:     make(chan struct{}),
		posting: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
}

// Open writes the headers and an empty comment, which the client waits
// for before it sends its handshake: the session must take POSTs by then.
func (s *SSE) Open() error {
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	s.w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(s.w, ":\r\n\r\n"); err != nil {
		return err
	}
	return s.rc.Flush()
}

// WriteDeadlines reports whether writes to the stream can be bounded in
// time. A ResponseWriter wrapped by middleware that hides
// http.ResponseController's methods cannot: a client that stops reading
// then holds its stream until TCP gives up (the Conn is dropped all the
// same, and nobody waits on it).
func (s *SSE) WriteDeadlines() bool {
	return s.rc.SetWriteDeadline(time.Time{}) == nil
}

// Post feeds the body of one client POST to the session's reader, in
// order with the POSTs before it. It returns once the reader has taken all
// of it, or with ctx's error, ErrConnClosed or ErrTooManyPosts.
func (s *SSE) Post(ctx context.Context, body io.Reader) error {
	if s.waiting.Add(1) > maxWaitingPosts {
		s.waiting.Add(-1)
		return ErrTooManyPosts
	}
	defer s.waiting.Add(-1)
	select {
	case s.posting <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrConnClosed
	}
	defer func() { <-s.posting }()
	bp := chunks.Get().(*[]byte)
	defer chunks.Put(bp)
	for {
		n, err := io.ReadFull(body, *bp)
		if n > 0 {
			select {
			case s.in <- (*bp)[:n]:
			case <-ctx.Done():
				return ctx.Err()
			case <-s.done:
				return ErrConnClosed
			}
			// The reader has the bytes: wait until it is done with
			// them before the buffer is used again.
			select {
			case <-s.ack:
			case <-s.done:
				return ErrConnClosed
			}
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return nil
		case err != nil:
			return err
		}
	}
}

func (s *SSE) next() ([]byte, error) {
	select {
	case b := <-s.in:
		return b, nil
	case <-s.done:
		return nil, ErrConnClosed
	}
}

func (s *SSE) release() {
	select {
	case s.ack <- struct{}{}:
	case <-s.done:
	}
}

// write sends p as one event. Its lines become data lines (our frames
// have none, but philippseith's may end in a newline).
func (s *SSE) write(ctx context.Context, _ bool, p []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.ended {
		return ErrConnClosed
	}
	if dl, ok := ctx.Deadline(); ok && !s.noDead {
		if err := s.rc.SetWriteDeadline(dl); errors.Is(err, http.ErrNotSupported) {
			s.noDead = true
		}
	}
	ev := s.ev[:0]
	for len(p) > 0 {
		line := p
		rest := []byte(nil)
		for i, c := range p {
			if c == '\n' {
				line, rest = p[:i], p[i+1:]
				break
			}
		}
		ev = append(ev, "data: "...)
		ev = append(ev, line...)
		ev = append(ev, '\n')
		p = rest
	}
	ev = append(ev, '\n')
	if cap(ev) <= 64<<10 {
		s.ev = ev
	} else {
		s.ev = nil
	}
	_, err := s.w.Write(ev)
	if err == nil {
		err = s.rc.Flush()
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// close ends the session: the reader and POSTs are released, and a write
// in progress is cut short where the ResponseWriter allows it.
func (s *SSE) close() {
	s.once.Do(func() {
		close(s.done)
		_ = s.rc.SetWriteDeadline(time.Now())
	})
}

// Finish waits for a write in progress to end and lets none start: after
// it, the GET handler may return, as nobody uses its ResponseWriter any
// more.
func (s *SSE) Finish() {
	s.close()
	s.wmu.Lock()
	s.ended = true
	s.wmu.Unlock()
}
