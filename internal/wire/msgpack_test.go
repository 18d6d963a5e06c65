package wire

import (
	"encoding/binary"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// withPrefix prepends the VarInt length of the MessagePack hub protocol.
func withPrefix(body []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
}

// nextFrame splits exactly one frame off buf, failing the test otherwise.
func nextFrame(t testing.TB, buf []byte) []byte {
	t.Helper()
	frame, rest, ok, err := NextMsgPackFrame(buf, 0)
	require.NoError(t, err)
	require.True(t, ok)
	require.Empty(t, rest)
	return frame
}

func TestMsgPackInvocationRoundTrip(t *testing.T) {
	wrappers := []Wrapper{
		{Type: typePingRequest, Payload: []byte(`{"Message":"Ping"}`)},
		{Type: "T", Payload: []byte{}, CorrelationID: "c-1", TimeoutMillis: 1},
		{Type: strings.Repeat("t", 31), Payload: []byte(strings.Repeat("p", 32)), TimeoutMillis: 127},
		{Type: strings.Repeat("t", 255), Payload: []byte(strings.Repeat("p", 256)), CorrelationID: strings.Repeat("c", 65535), TimeoutMillis: 128},
		{Type: "T", Payload: []byte(strings.Repeat("p", 70000)), TimeoutMillis: 1 << 40},
		{Type: "T", Payload: []byte("\xff invalid UTF-8 is kept"), TimeoutMillis: 70000},
	}
	for _, w := range wrappers {
		for _, target := range []string{TargetPost, TargetSend, TargetResponse, strings.Repeat("x", 300)} {
			out := AppendMsgPackInvocation([]byte{1, 2}, target, &w)
			require.Equal(t, []byte{1, 2}, out[:2])
			var m Message
			require.NoError(t, ParseMsgPack(nextFrame(t, out[2:]), &m))
			require.NoError(t, m.WrapperErr)
			require.Equal(t, Message{Type: TypeInvocation, Target: target, ArgCount: 1, Wrapper: w}, m)

			// A generic decoder reads the same structure.
			var generic []any
			require.NoError(t, msgpack.Unmarshal(nextFrame(t, out[2:]), &generic))
			require.Len(t, generic, 6)
			require.EqualValues(t, 1, generic[0])
			require.Equal(t, map[string]any{}, generic[1])
			require.Nil(t, generic[2])
			require.Equal(t, target, generic[3])
			args := generic[4].([]any)
			require.Len(t, args, 1)
			wm := args[0].(map[string]any)
			require.Equal(t, w.Type, wm["type"])
			require.Equal(t, string(w.Payload), wm["payload"])
			require.Empty(t, generic[5])
		}
	}
}

func TestMsgPackInvocationBytes(t *testing.T) {
	w := Wrapper{Type: "T", Payload: []byte("{}"), CorrelationID: "c", TimeoutMillis: 200}
	out := AppendMsgPackInvocation(nil, "Post", &w)
	body := []byte{0x96, 0x01, 0x80, 0xc0, 0xa4, 'P', 'o', 's', 't', 0x91, 0x84,
		0xa4, 't', 'y', 'p', 'e', 0xa1, 'T',
		0xa7, 'p', 'a', 'y', 'l', 'o', 'a', 'd', 0xa2, '{', '}',
		0xad, 'c', 'o', 'r', 'r', 'e', 'l', 'a', 't', 'i', 'o', 'n', 'I', 'd', 0xa1, 'c',
		0xa9, 't', 'i', 'm', 'e', 'o', 'u', 't', 'M', 's', 0xcc, 200,
		0x90}
	require.Equal(t, withPrefix(body), out)
}

func TestMsgPackPingAndCompletion(t *testing.T) {
	out := AppendMsgPackPing(nil)
	require.Equal(t, []byte{0x02, 0x91, 0x06}, out)
	var m Message
	require.NoError(t, ParseMsgPack(nextFrame(t, out), &m))
	require.Equal(t, Message{Type: TypePing}, m)

	out = AppendMsgPackCompletionError(nil, "17", strings.Repeat("e", 40))
	var generic []any
	require.NoError(t, msgpack.Unmarshal(nextFrame(t, out), &generic))
	require.Equal(t, []any{int8(3), map[string]any{}, "17", int8(1), strings.Repeat("e", 40)}, generic)
	require.NoError(t, ParseMsgPack(nextFrame(t, out), &m))
	require.Equal(t, Message{Type: TypeCompletion}, m)
}

func TestMsgPackFromOtherClients(t *testing.T) {
	// Other clients write PascalCase keys, a bin payload, any int width
	// and headers.
	msg := []any{
		uint64(1), map[string]string{"h": "v"}, "inv-1", "SendMessage",
		[]any{map[string]any{"Type": "T", "Payload": []byte(`{"A":1}`), "CorrelationId": "c", "TimeoutMs": int64(3000), "Other": []int{1}}, 42},
		[]string{"s1"},
	}
	body, err := msgpack.Marshal(msg)
	require.NoError(t, err)
	var m Message
	require.NoError(t, ParseMsgPack(body, &m))
	require.NoError(t, m.WrapperErr)
	require.Equal(t, Message{Type: TypeInvocation, Target: TargetSend, InvocationID: "inv-1", ArgCount: 2, StreamIDs: true,
		Wrapper: Wrapper{Type: "T", Payload: []byte(`{"A":1}`), CorrelationID: "c", TimeoutMillis: 3000}}, m)

	body, err = msgpack.Marshal([]any{1, map[string]any{}, nil, "PostMessage", []any{map[string]any{"Type": "T", "Payload": "p"}}})
	require.NoError(t, err)
	require.NoError(t, ParseMsgPack(body, &m))
	require.NoError(t, m.WrapperErr)
	require.Equal(t, Wrapper{Type: "T", Payload: []byte("p")}, m.Wrapper)

	body, err = msgpack.Marshal([]any{7, "bye", true})
	require.NoError(t, err)
	require.NoError(t, ParseMsgPack(body, &m))
	require.Equal(t, Message{Type: TypeClose, CloseError: "bye", AllowReconnect: true}, m)

	body, err = msgpack.Marshal([]any{7, nil})
	require.NoError(t, err)
	require.NoError(t, ParseMsgPack(body, &m))
	require.Equal(t, Message{Type: TypeClose}, m)

	body, err = msgpack.Marshal([]any{3, map[string]any{}, "1", 3, map[string]any{"x": []float64{1.5}}})
	require.NoError(t, err)
	require.NoError(t, ParseMsgPack(body, &m))
	require.Equal(t, Message{Type: TypeCompletion}, m)
}

func TestMsgPackBadWrapper(t *testing.T) {
	cases := map[string]any{
		"not a map":         "T",
		"nil":               nil,
		"missing type":      map[string]any{"payload": "p"},
		"missing payload":   map[string]any{"type": "T"},
		"empty type":        map[string]any{"type": "", "payload": "p"},
		"type int":          map[string]any{"type": 1, "payload": "p"},
		"payload nil":       map[string]any{"type": "T", "payload": nil},
		"payload int":       map[string]any{"type": "T", "payload": 1},
		"payload map":       map[string]any{"type": "T", "payload": map[string]any{}},
		"correlationId int": map[string]any{"type": "T", "payload": "p", "correlationId": 1},
		"timeoutMs neg":     map[string]any{"type": "T", "payload": "p", "timeoutMs": -1},
		"timeoutMs float":   map[string]any{"type": "T", "payload": "p", "timeoutMs": 1.0},
		"timeoutMs huge":    map[string]any{"type": "T", "payload": "p", "timeoutMs": uint64(1 << 63)},
		"timeoutMs str":     map[string]any{"type": "T", "payload": "p", "timeoutMs": "1"},
		"int keys only":     map[int]any{1: "T", 2: "p"},
	}
	for name, arg := range cases {
		t.Run(name, func(t *testing.T) {
			body, err := msgpack.Marshal([]any{1, map[string]any{}, nil, "PostMessage", []any{arg}, []any{}})
			require.NoError(t, err)
			var m Message
			require.NoError(t, ParseMsgPack(body, &m))
			require.ErrorIs(t, m.WrapperErr, ErrBadWrapper)
			require.Equal(t, Wrapper{}, m.Wrapper)
			require.Equal(t, TargetPost, m.Target)
			require.Equal(t, 1, m.ArgCount)
		})
	}
	body, err := msgpack.Marshal([]any{1, map[string]any{}, nil, "PostMessage", []any{}})
	require.NoError(t, err)
	var m Message
	require.NoError(t, ParseMsgPack(body, &m))
	require.ErrorIs(t, m.WrapperErr, ErrBadWrapper)
}

func TestMsgPackMalformed(t *testing.T) {
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		require.NoError(t, err)
		return b
	}
	cases := map[string][]byte{
		"empty":             {},
		"not an array":      enc(map[string]any{"type": 1}),
		"empty array":       {0x90},
		"type not int":      enc([]any{"1"}),
		"type float":        enc([]any{1.0}),
		"type uint64 huge":  {0x91, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"truncated":         enc([]any{1, map[string]any{}, nil, "PostMessage"})[:6],
		"short invocation":  enc([]any{1, map[string]any{}, nil, "PostMessage"}),
		"headers not map":   enc([]any{1, []any{}, nil, "PostMessage", []any{}}),
		"id int":            enc([]any{1, map[string]any{}, 5, "PostMessage", []any{}}),
		"target nil":        enc([]any{1, map[string]any{}, nil, nil, []any{}}),
		"arguments map":     enc([]any{1, map[string]any{}, nil, "x", map[string]any{}}),
		"streamIds string":  enc([]any{1, map[string]any{}, nil, "x", []any{}, "s"}),
		"close error int":   enc([]any{7, 1}),
		"close reconnect":   enc([]any{7, nil, 1}),
		"trailing bytes":    append(enc([]any{6}), 0xc0),
		"reserved 0xc1":     {0x92, 0x03, 0xc1},
		"truncated float":   {0x92, 0x03, 0xcb, 0x00},
		"truncated ext":     {0x92, 0x03, 0xc7, 0x05, 0x01},
		"truncated str":     {0x92, 0x03, 0xa5, 'a'},
		"nested too deep":   append(append([]byte{0x92, 0x03}, []byte(strings.Repeat("\x91", 64))...), 0xc0),
		"deep 100k":         append([]byte{0x92, 0x03}, []byte(strings.Repeat("\x91", 100000))...),
		"truncated id":      {0x95, 0x01, 0x80, 0xa5, 'a'},
		"truncated close":   {0x92, 0x07, 0xa5, 'a'},
		"huge map in close": {0x93, 0x03, 0xdf, 0xff, 0xff, 0xff, 0xff},
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			m := Message{Target: "stale"}
			require.ErrorIs(t, ParseMsgPack(frame, &m), ErrMalformed)
			require.Equal(t, Message{}, m)
		})
	}

	// 63 levels below the message array are fine (64 in all).
	ok := append(append([]byte{0x92, 0x03}, []byte(strings.Repeat("\x91", 63))...), 0xc0)
	var m Message
	require.NoError(t, ParseMsgPack(ok, &m))
	// Other value kinds are skipped in messages that are not decoded.
	skipped := []byte{0x9a, 0x03, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0,
		0xca, 0, 0, 0, 0, 0xd4, 1, 2, 0xc8, 0, 1, 9, 9, 0xc4, 1, 7, 0xdc, 0, 1, 0xc2, 0xde, 0, 1, 0xe0, 0xc3, 0xd9, 1, 'x'}
	require.NoError(t, ParseMsgPack(skipped, &m))
	require.Equal(t, TypeCompletion, m.Type)
}

func TestMsgPackHugeLengthsDoNotAllocate(t *testing.T) {
	frames := [][]byte{
		{0x96, 0x01, 0x80, 0xc0, 0xdb, 0xff, 0xff, 0xff, 0xff},            // str32 target of 4 GB
		{0x96, 0x01, 0x80, 0xc0, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff}, // 4 G arguments
		{0x96, 0x01, 0xdf, 0xff, 0xff, 0xff, 0xff},                        // 4 G headers
		{0x96, 0x01, 0x80, 0xc0, 0xa1, 'x', 0x91, 0x82, 0xa4, 't', 'y', 'p', 'e', // wrapper with a 4 GB bin payload
			0xa1, 'T', 0xa7, 'p', 'a', 'y', 'l', 'o', 'a', 'd', 0xc6, 0xff, 0xff, 0xff, 0xff},
		{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01},
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 100 {
		for _, f := range frames {
			var m Message
			if err := ParseMsgPack(f, &m); err == nil {
				t.Fatal("accepted")
			}
		}
	}
	runtime.ReadMemStats(&after)
	// Only the error values are allocated.
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20))

	// The length prefix alone is refused before any body arrives.
	prefix := binary.AppendUvarint(nil, 1<<32)
	_, _, ok, err := NextMsgPackFrame(prefix, 0)
	require.False(t, ok)
	require.ErrorIs(t, err, ErrTooLarge)
	allocs := testing.AllocsPerRun(100, func() {
		_, _, _, _ = NextMsgPackFrame([]byte{0x85, 0x01, 0x00}, 0) // incomplete: 133 bytes declared
	})
	require.Zero(t, allocs)
}

func TestNextMsgPackFrame(t *testing.T) {
	w := Wrapper{Type: "T", Payload: []byte(strings.Repeat("p", 200))} // a 2-byte prefix
	stream := AppendMsgPackInvocation(nil, TargetPost, &w)
	one := len(stream)
	stream = AppendMsgPackPing(stream)

	// Split at every position: incomplete until the first frame is whole.
	for i := 0; i <= len(stream); i++ {
		frame, rest, ok, err := NextMsgPackFrame(stream[:i], 0)
		require.NoError(t, err)
		if i < one {
			require.False(t, ok, i)
			require.Equal(t, stream[:i], rest)
			continue
		}
		require.True(t, ok, i)
		require.Equal(t, stream[2:one], frame)
		require.Equal(t, stream[one:i], rest)
	}

	_, _, ok, err := NextMsgPackFrame(stream, one-3)
	require.False(t, ok)
	require.ErrorIs(t, err, ErrTooLarge)
	frame, _, ok, err := NextMsgPackFrame(stream, one-2)
	require.NoError(t, err)
	require.True(t, ok)
	require.Len(t, frame, one-2)

	_, _, _, err = NextMsgPackFrame([]byte{0x00, 0x91, 0x06}, 0)
	require.ErrorIs(t, err, ErrMalformed)
	_, _, _, err = NextMsgPackFrame([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 0)
	require.ErrorIs(t, err, ErrMalformed)
	_, _, _, err = NextMsgPackFrame([]byte{0xff, 0xff, 0xff, 0xff, 0x7f}, 0) // 2^35-1
	require.ErrorIs(t, err, ErrTooLarge)
	_, _, _, err = NextMsgPackFrame([]byte{0x80, 0x80, 0x80, 0x80, 0x08}, 0) // 2^31
	require.ErrorIs(t, err, ErrTooLarge)
	_, _, ok, err = NextMsgPackFrame([]byte{0xff, 0xff, 0xff, 0xff, 0x07}, 0) // 2^31-1: allowed, incomplete
	require.NoError(t, err)
	require.False(t, ok)
	_, _, ok, err = NextMsgPackFrame([]byte{0x80, 0x80, 0x80, 0x80}, 0)
	require.NoError(t, err)
	require.False(t, ok)
}

func TestAppendMsgPackNoAllocation(t *testing.T) {
	w := Wrapper{Type: typePingRequest, Payload: []byte(`{"Message":"Ping"}`), CorrelationID: "abc", TimeoutMillis: 10}
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendMsgPackInvocation(buf[:0], TargetSend, &w)
		buf = AppendMsgPackCompletionError(buf, "1", "e")
		buf = AppendMsgPackPing(buf)
	})
	require.Zero(t, allocs)
}
