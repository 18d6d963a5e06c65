package wire

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCodecs runs each Codec through what a connection does with it: frame
// what it encodes, parse it back, and drop a message too large to keep
// whichever way it arrives.
func TestCodecs(t *testing.T) {
	w := Wrapper{Type: "T", Payload: []byte(`{"N":1}`), CorrelationID: "c1", TimeoutMillis: 5}
	for _, tc := range []struct {
		proto  Protocol
		codec  Codec
		binary bool
	}{
		{JSON, JSONCodec, false},
		{MessagePack, MsgPackCodec, true},
	} {
		t.Run(tc.proto.String(), func(t *testing.T) {
			c := CodecFor(tc.proto)
			require.Equal(t, tc.codec, c)
			require.Equal(t, tc.proto, c.Protocol())
			require.Equal(t, tc.binary, c.Binary())

			var buf []byte
			buf = c.AppendInvocation(buf, TargetPost, &w)
			buf = c.AppendCompletion(buf, "i1")
			buf = c.AppendCompletionError(buf, "i2", "no")
			buf = c.AppendPing(buf)

			var types []int
			rest := buf
			for len(rest) > 0 {
				frame, r, ok, err := c.Next(rest, 0)
				require.NoError(t, err)
				require.True(t, ok)
				var m Message
				require.NoError(t, c.Parse(frame, &m))
				types = append(types, m.Type)
				if m.Type == TypeInvocation {
					require.NoError(t, m.WrapperErr)
					require.Equal(t, w, m.Wrapper)
					require.Equal(t, TargetPost, m.Target)
				}
				rest = r
			}
			require.Equal(t, []int{TypeInvocation, TypeCompletion, TypeCompletion, TypePing}, types)

			// A part of a message is not a message yet.
			_, _, ok, err := c.Next(buf[:3], 0)
			require.NoError(t, err)
			require.False(t, ok)

			// Too large: reported before the end arrives, then skipped in
			// pieces up to the ping that follows.
			big := c.AppendInvocation(nil, TargetPost, &Wrapper{Type: "T", Payload: make([]byte, 300)})
			stream := c.AppendPing(big)
			_, _, _, err = c.Next(stream[:len(big)-1], 100)
			require.ErrorIs(t, err, ErrTooLarge)
			left, ok := c.SkipLen(stream)
			require.True(t, ok)
			skipped := 0
			for _, piece := range [][]byte{stream[:50], stream[50 : len(big)-1], stream[len(big)-1:]} {
				n, after := c.Skip(piece, left)
				skipped += n
				left = after
				if left == 0 {
					break
				}
			}
			require.Zero(t, left)
			require.Equal(t, len(big), skipped)
		})
	}
}
