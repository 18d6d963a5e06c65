package transport

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tharga/communication-go/internal/wire"
)

type collect struct{ got []wire.Message }

func (c *collect) HandleMessage(m *wire.Message) {
	cp := *m
	cp.Wrapper.Payload = append([]byte(nil), m.Wrapper.Payload...)
	c.got = append(c.got, cp)
}

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
	require.Equal(t, wire.JSON, ic.Protocol())
	require.Len(t, in.got, 3)
	for i, m := range in.got {
		require.Equal(t, wire.TargetPost, m.Target)
		require.Equal(t, `{"N":`+string(rune('0'+i))+`}`, string(m.Wrapper.Payload))
	}
	require.Equal(t, "{\"protocol\":\"json\",\"version\":1}\x1e{\"type\":6}\x1e", string(pass), "only the session traffic passes")
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

	// A record longer than the maximum with no end in sight is an error.
	_, err = ic.Feed(make([]byte, 2048), nil)
	require.ErrorIs(t, err, wire.ErrTooLarge)
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
	require.Equal(t, "{\"type\":6}\x1e", string(pass), "intercepted traffic keeps philippseith's idle timer alive")
}
