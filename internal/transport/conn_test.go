package transport

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/philippseith/signalr"
	"github.com/stretchr/testify/require"

	"github.com/tharga/communication-go/internal/wire"
)

type nopInbound struct{}

func (nopInbound) HandleMessage(*wire.Message) bool { return true }
func (nopInbound) Ready() <-chan struct{}           { return nil }

// pair returns the server end of a WebSocket, as a Conn past its
// handshake, and the raw client end. Both close when the test ends.
func pair(t *testing.T, cfg ConnConfig) (*Conn, *websocket.Conn) {
	t.Helper()
	accepted := make(chan *websocket.Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		require.NoError(t, err)
		accepted <- ws
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	require.NoError(t, err)
	cfg.Side = ServerSide
	cfg.Inbound = nopInbound{}
	cfg.Logger = slog.New(slog.DiscardHandler)
	c := NewConn(context.Background(), <-accepted, cfg)
	c.SetTransferMode(signalr.TextTransferMode)
	t.Cleanup(func() {
		c.Close(nil)
		_ = client.CloseNow()
		hs.Close()
	})
	return c, client
}

// stuckPair returns the server end of a WebSocket whose client end never
// reads, as a Conn past its handshake.
func stuckPair(t *testing.T, cfg ConnConfig) *Conn {
	c, _ := pair(t, cfg)
	return c
}

// TestEverythingCountsAgainstTheBound: answers to invocations a peer makes
// (refusals, completions) wait for room like any send, so a peer that
// invokes without reading cannot grow the queue past its bound; it is
// dropped by the write timeout instead.
func TestEverythingCountsAgainstTheBound(t *testing.T) {
	const limit = 8 << 10
	c := stuckPair(t, ConnConfig{QueueLimit: limit, WriteTimeout: 300 * time.Millisecond})
	most := 0
	for i := 0; c.Err() == nil; i++ {
		if i%2 == 0 {
			c.refuse("id", "Unknown method 'Abort'.")
		} else {
			c.complete("id")
		}
		c.mu.Lock()
		most = max(most, len(c.pending))
		c.mu.Unlock()
		require.Less(t, i, 10_000_000, "the connection was never dropped")
	}
	require.LessOrEqual(t, most, limit+128, "queued bytes past the bound")
	require.ErrorIs(t, c.Err(), ErrStalled)

	// philippseith's pings are dropped, not queued, when the queue is full.
	c = stuckPair(t, ConnConfig{QueueLimit: limit, WriteTimeout: time.Hour})
	ping := wire.AppendJSONPing(nil)
	for i := 0; i < 1_000_000; i++ {
		_, err := c.Write(ping)
		require.NoError(t, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	require.LessOrEqual(t, len(c.pending), limit+len(ping))
}

// TestTooLargeForThePeer: an invocation larger than the peer accepts is
// refused before it is queued.
func TestTooLargeForThePeer(t *testing.T) {
	c := stuckPair(t, ConnConfig{QueueLimit: 1 << 20, PeerMaxMessage: 1024, WriteTimeout: time.Hour})
	err := c.TrySend(wire.TargetPost, &wire.Wrapper{Type: "T", Payload: make([]byte, 2000)})
	require.ErrorIs(t, err, wire.ErrTooLarge)
	c.mu.Lock()
	queued := len(c.pending)
	c.mu.Unlock()
	require.Zero(t, queued)
	require.NoError(t, c.TrySend(wire.TargetPost, &wire.Wrapper{Type: "T", Payload: []byte("{}")}))
}

// TestSendInlineKeepsOrder: senders that write the queue themselves
// (SendInline) and senders that leave it to the writer goroutine (Send)
// share one queue: every frame arrives once, each sender's in order.
func TestSendInlineKeepsOrder(t *testing.T) {
	c, client := pair(t, ConnConfig{QueueLimit: 64 << 10, WriteTimeout: 10 * time.Second})
	client.SetReadLimit(-1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const senders, each = 8, 300
	for s := range senders {
		go func() {
			for i := range each {
				w := &wire.Wrapper{Type: strconv.Itoa(s), Payload: []byte(strconv.Itoa(i))}
				send := c.Send
				if (s+i)%2 == 0 {
					send = c.SendInline
				}
				if err := send(ctx, wire.TargetPost, w); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	next := make([]int, senders)
	codec := wire.CodecFor(wire.JSON)
	for got := 0; got < senders*each; {
		_, data, err := client.Read(ctx)
		require.NoError(t, err)
		for len(data) > 0 {
			frame, rest, ok, err := codec.Next(data, 0)
			require.NoError(t, err)
			require.True(t, ok, "a frame split across messages")
			var m wire.Message
			require.NoError(t, codec.Parse(frame, &m))
			s, err := strconv.Atoi(m.Wrapper.Type)
			require.NoError(t, err)
			require.Equal(t, strconv.Itoa(next[s]), string(m.Wrapper.Payload), "sender %d out of order", s)
			next[s]++
			got++
			data = rest
		}
	}
	for s, n := range next {
		require.Equal(t, each, n, "sender %d", s)
	}
}
