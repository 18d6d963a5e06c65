package transport

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tharga/communication-go/internal/wire"
)

// protocol returns the hub protocol the handshake chose, 0 before it.
func protocol(ic *Interceptor) wire.Protocol {
	if !ic.handshaken {
		return 0
	}
	return ic.proto
}

// collect takes every message unless refuse says no.
type collect struct {
	got    []wire.Message
	refuse bool
	ready  chan struct{}
}

func (c *collect) HandleMessage(m *wire.Message) bool {
	if c.refuse {
		return false
	}
	cp := *m
	cp.Wrapper.Payload = append([]byte(nil), m.Wrapper.Payload...)
	c.got = append(c.got, cp)
	return true
}

func (c *collect) Ready() <-chan struct{} { return c.ready }

func newIC(side Side, in Inbound, refused *[]string) *Interceptor {
	return NewInterceptor(InterceptorConfig{
		Side:       side,
		Protocol:   wire.JSON,
		MaxMessage: 1024,
		Inbound:    in,
		Refuse:     func(id, msg string) { *refused = append(*refused, id) },
		Logger:     slog.New(slog.DiscardHandler),
		PingEvery:  time.Hour,
	})
}

// TestSplitAcrossReads feeds a handshake and messages one byte at a time:
// the result is the same as feeding them whole.
func TestSplitAcrossReads(t *testing.T) {
	stream := []byte("{\"protocol\":\"json\",\"version\":1}\x1e")
	for i := range 3 {
		stream = wire.AppendJSONInvocation(stream, wire.TargetPost, &wire.Wrapper{Type: "T", Payload: []byte(`{"N":` + string(rune('0'+i)) + `}`)})
	}
	stream = wire.AppendJSONPing(stream)
	in := &collect{}
	var refused []string
	ic := newIC(ServerSide, in, &refused)
	var pass []byte
	for _, b := range stream {
		var err error
		pass, err = ic.Feed([]byte{b}, pass)
		require.NoError(t, err)
	}
	require.Equal(t, wire.JSON, protocol(ic))
	require.Len(t, in.got, 3)
	for i, m := range in.got {
		require.Equal(t, wire.TargetPost, m.Target)
		require.Equal(t, `{"N":`+string(rune('0'+i))+`}`, string(m.Wrapper.Payload))
	}
	// philippseith gets a MessagePack session (inner.go).
	require.Equal(t, string(innerHandshake)+string(innerAlive), string(pass), "only the session traffic passes")
}

func TestRefusalsAndDrops(t *testing.T) {
	in := &collect{}
	var refused []string
	ic := newIC(ServerSide, in, &refused)
	_, err := ic.Feed([]byte("{\"protocol\":\"json\",\"version\":1}\x1e"), nil)
	require.NoError(t, err)
	pass, err := ic.Feed([]byte(
		"{\"type\":1,\"invocationId\":\"a\",\"target\":\"Abort\",\"arguments\":[]}\x1e"+
			"{\"type\":4,\"invocationId\":\"b\",\"target\":\"PostMessage\",\"arguments\":[{\"type\":\"T\",\"payload\":\"{}\"}]}\x1e"+
			"{\"type\":1,\"invocationId\":\"c\",\"target\":\"SendMessage\",\"arguments\":[1,2]}\x1e"+
			"{\"type\":3,\"invocationId\":\"x\",\"result\":1}\x1e"+
			"{not json}\x1e"+
			"{\"type\":1,\"target\":\"postmessage\",\"arguments\":[{\"type\":\"T\",\"payload\":\"{}\"}]}\x1e"), nil)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c"}, refused)
	require.Len(t, in.got, 1, "the valid post, in any letter case, still goes through")
	require.Equal(t, wire.TargetPost, in.got[0].Target)
	require.Empty(t, pass, "nothing of this reaches philippseith")

}

// TestOversizedSkipped: a hub message over the maximum is dropped as it
// streams by, whatever its size and however it is split, and the messages
// around it go through.
func TestOversizedSkipped(t *testing.T) {
	post := func(n int) []byte {
		return wire.AppendJSONInvocation(nil, wire.TargetPost, &wire.Wrapper{Type: "T", Payload: []byte(`{"N":` + string(rune('0'+n)) + `}`)})
	}
	for _, chunk := range []int{1, 7, 1000, 64 << 10, 4 << 20} {
		// The maximum is 1024: a few kilobytes are as oversized as a
		// megabyte, and byte-at-a-time feeding stays quick.
		size := 1 << 20
		if chunk < 1000 {
			size = 5000
		}
		huge := wire.AppendJSONInvocation(nil, wire.TargetPost, &wire.Wrapper{Type: "T", Payload: make([]byte, size)})
		stream := append(append(append(post(1), huge...), post(2)...), huge[:3000]...)
		stream = append(append(stream, huge[3000:]...), post(3)...)
		in := &collect{}
		ic := newIC(ServerSide, in, new([]string))
		_, err := ic.Feed([]byte("{\"protocol\":\"json\",\"version\":1}\x1e"), nil)
		require.NoError(t, err)
		for i := 0; i < len(stream); i += chunk {
			_, err := ic.Feed(stream[i:min(i+chunk, len(stream))], nil)
			require.NoError(t, err)
			require.LessOrEqual(t, cap(ic.rest), 4*chunkSize+2*chunk, "an oversized message is not buffered")
		}
		require.Len(t, in.got, 3, "chunk %d", chunk)
		for i, m := range in.got {
			require.Equal(t, `{"N":`+string(rune('1'+i))+`}`, string(m.Wrapper.Payload))
		}
	}
}

func TestOversizedSkippedMsgPack(t *testing.T) {
	post := func(n int) []byte {
		return wire.AppendMsgPackInvocation(nil, wire.TargetPost, &wire.Wrapper{Type: "T", Payload: []byte{'0' + byte(n)}})
	}
	for _, chunk := range []int{1, 3, 4096, 4 << 20} {
		size := 1 << 20
		if chunk < 1000 {
			size = 5000
		}
		huge := wire.AppendMsgPackInvocation(nil, wire.TargetPost, &wire.Wrapper{Type: "T", Payload: make([]byte, size)})
		stream := append(append(append(post(1), huge...), post(2)...), huge...)
		stream = append(stream, post(3)...)
		in := &collect{}
		ic := newIC(ServerSide, in, new([]string))
		_, err := ic.Feed([]byte("{\"protocol\":\"messagepack\",\"version\":1}\x1e"), nil)
		require.NoError(t, err)
		for i := 0; i < len(stream); i += chunk {
			_, err := ic.Feed(stream[i:min(i+chunk, len(stream))], nil)
			require.NoError(t, err)
		}
		require.Len(t, in.got, 3, "chunk %d", chunk)
		for i, m := range in.got {
			require.Equal(t, []byte{'1' + byte(i)}, m.Wrapper.Payload)
		}
	}
}

// TestStrictHandshake: a handshake this parser refuses ends the
// connection, even where philippseith would have taken it.
func TestStrictHandshake(t *testing.T) {
	for _, hs := range []string{
		`{"protocol":"json","version":0}`,
		`{"Protocol":"json","version":1}`,
		`{"protocol":"json"}`,
		`{"protocol":"blazorpack","version":1}`,
		`not json`,
	} {
		in := &collect{}
		ic := newIC(ServerSide, in, new([]string))
		pass, err := ic.Feed([]byte(hs+"\x1e"+"{\"type\":1,\"target\":\"Abort\",\"arguments\":[]}\x1e"), nil)
		var he *HandshakeError
		require.ErrorAs(t, err, &he, hs)
		require.ErrorIs(t, err, ErrHandshake)
		require.Empty(t, pass, "nothing reaches philippseith: %s", hs)
		require.Equal(t, wire.Protocol(0), protocol(ic))
	}
	ic := NewInterceptor(InterceptorConfig{Side: ServerSide, Inbound: &collect{}, TextOnly: true, Logger: slog.New(slog.DiscardHandler)})
	_, err := ic.Feed([]byte("{\"protocol\":\"messagepack\",\"version\":1}\x1e"), nil)
	require.ErrorIs(t, err, ErrHandshake, "MessagePack over a text-only transport")
}

// TestBusyKeepsMessage: a message the Inbound refuses is kept, with what
// follows it, and offered again in order.
func TestBusyKeepsMessage(t *testing.T) {
	in := &collect{}
	ic := newIC(ServerSide, in, new([]string))
	_, err := ic.Feed([]byte("{\"protocol\":\"json\",\"version\":1}\x1e"), nil)
	require.NoError(t, err)
	var stream []byte
	for i := range 3 {
		stream = wire.AppendJSONInvocation(stream, wire.TargetPost, &wire.Wrapper{Type: "T", Payload: []byte{'0' + byte(i)}})
	}
	stream = wire.AppendJSONPing(stream)
	half := len(stream) / 2
	_, err = ic.Feed(stream[:half], nil)
	require.NoError(t, err)
	in.refuse = true
	pass, err := ic.Feed(stream[half:], nil)
	require.ErrorIs(t, err, ErrBusy)
	require.Empty(t, pass)
	pass, err = ic.Feed(nil, nil)
	require.ErrorIs(t, err, ErrBusy, "still busy: nothing is lost or skipped")
	require.Empty(t, pass)
	in.refuse = false
	pass, err = ic.Feed(nil, nil)
	require.NoError(t, err)
	require.Equal(t, string(innerAlive), string(pass))
	require.Len(t, in.got, 3)
	for i, m := range in.got {
		require.Equal(t, []byte{'0' + byte(i)}, m.Wrapper.Payload)
	}
}

func TestClientSideClose(t *testing.T) {
	ic := newIC(ClientSide, &collect{}, new([]string))
	_, err := ic.Feed([]byte("{}\x1e"), nil)
	require.NoError(t, err)
	_, err = ic.Feed([]byte("{\"type\":7,\"error\":\"bye\",\"allowReconnect\":true}\x1e"), nil)
	var closed *ClosedByPeerError
	require.ErrorAs(t, err, &closed)
	require.Equal(t, "bye", closed.Message)

	ic = newIC(ClientSide, &collect{}, new([]string))
	_, err = ic.Feed([]byte("{\"error\":\"protocol not supported\"}\x1e"), nil)
	require.ErrorIs(t, err, ErrHandshake)
}

func TestSyntheticPing(t *testing.T) {
	in := &collect{}
	ic := NewInterceptor(InterceptorConfig{Side: ServerSide, Inbound: in, Logger: slog.New(slog.DiscardHandler), PingEvery: time.Nanosecond})
	_, err := ic.Feed([]byte("{\"protocol\":\"json\",\"version\":1}\x1e"), nil)
	require.NoError(t, err)
	pass, err := ic.Feed(wire.AppendJSONInvocation(nil, wire.TargetPost, &wire.Wrapper{Type: "T", Payload: []byte("{}")}), nil)
	require.NoError(t, err)
	require.Equal(t, string(innerAlive), string(pass), "intercepted traffic keeps philippseith's idle timer alive")
}
