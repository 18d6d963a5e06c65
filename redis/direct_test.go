package redis_test

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
	"github.com/tharga/communication-go/redis"
	"github.com/tharga/communication-go/redis/internal/redistest"
)

// publishes is how many PUBLISH commands Redis has run.
func publishes(t *testing.T, addr string) int {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rdb.Close()
	info, err := rdb.Info(ctxT(t, 5*time.Second), "commandstats").Result()
	require.NoError(t, err)
	m := regexp.MustCompile(`cmdstat_publish:calls=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return n
}

// TestDirectCarriesNodeToNode: with WithDirect, requests, their replies
// and posts between two nodes do not cross Redis (its count of PUBLISH
// stays put), and broadcasts still do; without it, each crosses Redis.
func TestDirectCarriesNodeToNode(t *testing.T) {
	const n = 200
	crossings := map[string]int{}
	eachMode(t, func(t *testing.T, m linkMode) {
		rs, a, _, c := twoNodes(t, m)

		before := publishes(t, rs.Addr)
		for i := range n {
			got, err := communication.Send[EchoBack](ctxT(t, 10*time.Second), a.To(c.ConnectionID()), Echo{N: i})
			require.NoError(t, err)
			require.Equal(t, i*10+1, got.N)
			require.NoError(t, a.Post(ctxT(t, 10*time.Second), c.ConnectionID(), Note{Text: strconv.Itoa(i)}))
		}
		for i := range n {
			require.Equal(t, strconv.Itoa(i), recv(t, c.notes, "post").Text, "posts keep their order")
		}
		crossings[t.Name()] = publishes(t, rs.Addr) - before

		require.NoError(t, a.PostAll(ctxT(t, 10*time.Second), Note{Text: "all"}))
		require.Equal(t, "all", recv(t, c.notes, "broadcast").Text)
	})
	require.GreaterOrEqual(t, crossings["TestDirectCarriesNodeToNode/redis"], 3*n, "through Redis: a PUBLISH for each request, reply and post")
	require.Less(t, crossings["TestDirectCarriesNodeToNode/direct"], 10, "direct: nothing between the two nodes crossed Redis")
}

// logRecorder keeps the messages logged at warning level or above.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	r.mu.Lock()
	r.msgs = append(r.msgs, b.String())
	r.mu.Unlock()
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// count is how many logged messages contain s.
func (r *logRecorder) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// text is every message logged, one a line.
func (r *logRecorder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.msgs, "\n")
}

// directNode starts a node with direct links that logs to rec.
func directNode(t *testing.T, addr, name string, rec *logRecorder, opts ...redis.BackplaneOption) *node {
	t.Helper()
	m := append(linkMode{redis.WithDirect("127.0.0.1:0", ""), redis.WithLogger(slog.New(rec))}, opts...)
	return newNode(t, addr, name, m)
}

// dialNode opens a TCP connection to a node's direct listener, found in
// Redis as the other nodes find it.
func dialNode(t *testing.T, redisAddr, name string) net.Conn {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	defer rdb.Close()
	addr, err := rdb.Get(ctxT(t, 5*time.Second), redis.DefaultPrefix+":addr:"+name).Result()
	require.NoError(t, err)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// requireClosed waits for the node to close c, reading what it sends
// meanwhile.
func requireClosed(t *testing.T, c net.Conn, why string) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		t.Fatal(why)
	}
}

func appendName(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// proof is the handshake's HMAC, as the protocol defines it.
func proof(secret []byte, side, from, to string, dialNonce, acceptNonce []byte) []byte {
	m := hmac.New(sha256.New, secret)
	for _, s := range []string{side, from, to} {
		m.Write(appendName(nil, s))
	}
	m.Write(dialNonce)
	m.Write(acceptNonce)
	return m.Sum(nil)
}

// greet performs the dialler's side of the handshake with secret, and
// reports whether the node confirmed the link.
func greet(t *testing.T, c net.Conn, secret []byte, from, to string) bool {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	nonce := make([]byte, 32)
	_, _ = rand.Read(nonce)
	hello := append([]byte("thrgnod1"), appendName(appendName(nil, from), to)...)
	_, err := c.Write(append(hello, nonce...))
	require.NoError(t, err)
	answer := make([]byte, 64)
	if _, err := io.ReadFull(c, answer); err != nil {
		return false
	}
	if !hmac.Equal(answer[32:], proof(secret, "accept", from, to, nonce, answer[:32])) {
		t.Fatal("the node's proof does not check out with the cluster's secret")
	}
	if _, err := c.Write(proof(secret, "dial", from, to, nonce, answer[:32])); err != nil {
		return false
	}
	ok := make([]byte, 1)
	if _, err := io.ReadFull(c, ok); err != nil {
		return false
	}
	require.NoError(t, c.SetDeadline(time.Time{}))
	return ok[0] == 1
}

// TestDirectRefusesStrangers: a node's direct listener closes, with a
// logged reason, a connection that does not speak the protocol, one that
// names another node, and one that does not know the cluster's secret; a
// peer that knows it but sends a malformed message or announces one past
// the bound loses its link, and the cluster keeps working through all of
// it.
func TestDirectRefusesStrangers(t *testing.T) {
	rs := redistest.Start(t)
	var rec logRecorder
	a := directNode(t, rs.Addr, "a", &rec)
	b := directNode(t, rs.Addr, "b", &logRecorder{})
	c := connect(t, b, 1)
	located(t, a, c)

	garbage := dialNode(t, rs.Addr, "a")
	_, err := garbage.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	require.NoError(t, err)
	requireClosed(t, garbage, "a connection speaking HTTP was not closed")

	wrongNode := dialNode(t, rs.Addr, "a")
	require.False(t, greet(t, wrongNode, make([]byte, 32), "b", "z"), "a link meant for another node was confirmed")

	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	hexSecret, err := rdb.Get(ctxT(t, 5*time.Second), redis.DefaultPrefix+":secret").Result()
	require.NoError(t, err)
	secret, err := hex.DecodeString(hexSecret)
	require.NoError(t, err)

	stranger := dialNode(t, rs.Addr, "a")
	nonce := make([]byte, 32)
	hello := append([]byte("thrgnod1"), appendName(appendName(nil, "b"), "a")...)
	_, err = stranger.Write(append(hello, nonce...))
	require.NoError(t, err)
	answer := make([]byte, 64)
	_, err = io.ReadFull(stranger, answer)
	require.NoError(t, err)
	_, err = stranger.Write(make([]byte, 32)) // not the proof
	require.NoError(t, err)
	requireClosed(t, stranger, "a dialler without the secret was not closed")

	// A peer that knows the secret: a malformed message is dropped and
	// logged, and a message announced past the bound ends the link.
	peer := dialNode(t, rs.Addr, "a")
	require.True(t, greet(t, peer, secret, "b", "a"), "a dialler with the secret was refused")
	w := bufio.NewWriter(peer)
	_, _ = w.Write(appendName(nil, "not an envelope"))
	_, _ = w.Write(binary.AppendUvarint(nil, 1<<40))
	require.NoError(t, w.Flush())
	requireClosed(t, peer, "a link announcing a message past the bound was not closed")

	require.Eventually(t, func() bool {
		return rec.count("refused a direct link") >= 3 && rec.count("a direct link from a node ended") >= 1
	}, 10*time.Second, 10*time.Millisecond, "refusals not logged: %s", rec.text())
	require.Contains(t, rec.text(), "does not know the cluster's secret")
	require.Contains(t, rec.text(), "but this is a")

	got, err := communication.Send[EchoBack](ctxT(t, 10*time.Second), a.To(c.ConnectionID()), Echo{N: 3})
	require.NoError(t, err)
	require.Equal(t, 31, got.N)
	got, err = communication.Send[EchoBack](ctxT(t, 10*time.Second), b.To(connect(t, a, 0).ConnectionID()), Echo{N: 4})
	require.NoError(t, err)
	require.Equal(t, 40, got.N)
}

// TestDirectLinkDown: a node that advertises an address nobody listens on
// cannot be reached directly: a request or post to its client fails at
// once (ErrConnectionLost for the request), with the cause, not at the
// request's deadline; the failure is logged.
func TestDirectLinkDown(t *testing.T) {
	rs := redistest.Start(t)
	var rec logRecorder
	a := directNode(t, rs.Addr, "a", &rec)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	nowhere := ln.Addr().String()
	require.NoError(t, ln.Close())
	b := newNode(t, rs.Addr, "b", linkMode{redis.WithDirect("127.0.0.1:0", nowhere)})
	c := connect(t, b, 1)

	// Its client is found in Redis, but a message to it cannot go.
	var sendErr error
	require.Eventually(t, func() bool {
		_, sendErr = communication.Send[EchoBack](ctxT(t, time.Minute), a.To(c.ConnectionID()), Echo{})
		return !errors.Is(sendErr, communication.ErrNotConnected)
	}, 10*time.Second, 10*time.Millisecond)
	require.ErrorIs(t, sendErr, communication.ErrConnectionLost)
	require.Contains(t, sendErr.Error(), "direct link")
	start := time.Now()
	_, err = communication.Send[EchoBack](ctxT(t, time.Minute), a.To(c.ConnectionID()), Echo{})
	require.ErrorIs(t, err, communication.ErrConnectionLost)
	require.Error(t, a.Post(ctxT(t, time.Minute), c.ConnectionID(), Note{}))
	require.Less(t, time.Since(start), 30*time.Second, "the request waited for its deadline")
	require.Eventually(t, func() bool { return rec.count("no direct link to a node") >= 1 }, 10*time.Second, 10*time.Millisecond)
	require.Contains(t, rec.text(), nowhere)
}

// TestDirectOptions: an address to advertise without one to listen on is
// refused, and a listen address that cannot be bound fails Join (and so
// AddServer) with the cause.
func TestDirectOptions(t *testing.T) {
	rs := redistest.Start(t)
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	_, err := redis.NewBackplane(rdb, redis.WithDirect("", "10.0.0.1:7000"))
	require.ErrorContains(t, err, "needs one to listen on")

	bp, err := redis.NewBackplane(rdb, redis.WithDirect("256.0.0.1:0", ""))
	require.NoError(t, err)
	_, err = communication.AddServer(communication.WithBackplane(bp), communication.WithNodeName("x"))
	require.ErrorContains(t, err, "listening for other nodes")
	// The name is free again at once.
	bp, err = redis.NewBackplane(rdb)
	require.NoError(t, err)
	srv, err := communication.AddServer(communication.WithBackplane(bp), communication.WithNodeName("x"))
	require.NoError(t, err)
	require.NoError(t, srv.Close())
}

// cutter is a TCP proxy to target whose connections a test can cut, as a
// network fault would.
type cutter struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutter{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutter) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *cutter) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// cut closes every connection through the proxy.
func (p *cutter) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestDirectLinkCutFailsRequests: when the link that carries b's replies
// to a is cut while b stays in the cluster, a's requests waiting on b
// fail at once with ErrConnectionLost (not at their deadline, a minute
// away, nor at a node timeout: b never stops renewing its liveness); then
// b dials a again and requests go through.
func TestDirectLinkCutFailsRequests(t *testing.T) {
	rs := redistest.Start(t)
	// a listens behind a proxy: b's link to a goes through it.
	listen := freeAddr(t)
	proxy := newCutter(t, listen)
	a := newNode(t, rs.Addr, "a", linkMode{redis.WithDirect(listen, proxy.ln.Addr().String())})
	b := newNode(t, rs.Addr, "b", viaDirect)
	c := connect(t, b, 1)
	located(t, a, c)
	got, err := communication.Send[EchoBack](ctxT(t, 10*time.Second), a.To(c.ConnectionID()), Echo{N: 1})
	require.NoError(t, err)
	require.Equal(t, 11, got.N)

	done := hangOn(t, a, c)
	proxy.cut()
	select {
	case err := <-done:
		require.ErrorIs(t, err, communication.ErrConnectionLost)
		require.ErrorContains(t, err, "direct link from b ended")
	case <-time.After(20 * time.Second):
		t.Fatal("the request waited on after the link carrying its reply was cut")
	}

	// b's next reply finds its link cut (and is lost); a heartbeat later
	// it dials a again.
	require.Eventually(t, func() bool {
		got, err := communication.Send[EchoBack](ctxT(t, time.Second), a.To(c.ConnectionID()), Echo{N: 2})
		return err == nil && got.N == 21
	}, 20*time.Second, 10*time.Millisecond, "requests never went through again")
}
