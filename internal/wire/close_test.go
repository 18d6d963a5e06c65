package wire

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCloseRoundTrip: a close message each codec writes parses back with
// its reason and reconnect flag, and the JSON one is the record ASP.NET
// Core writes.
func TestCloseRoundTrip(t *testing.T) {
	require.Equal(t, `{"type":7}`+"\x1e", string(AppendJSONClose(nil, "", false)))
	require.Equal(t, `{"type":7,"error":"bye \"now\"","allowReconnect":true}`+"\x1e", string(AppendJSONClose(nil, `bye "now"`, true)))
	for _, codec := range []Codec{JSONCodec, MsgPackCodec} {
		for _, reason := range []string{"", "going away", strings.Repeat("r", 300)} {
			for _, again := range []bool{false, true} {
				b := codec.AppendClose(nil, reason, again)
				frame, rest, ok, err := codec.Next(b, 0)
				require.NoError(t, err)
				require.True(t, ok)
				require.Empty(t, rest)
				var m Message
				require.NoError(t, codec.Parse(frame, &m))
				require.Equal(t, TypeClose, m.Type)
				require.Equal(t, reason, m.CloseError)
				require.Equal(t, again, m.AllowReconnect)
			}
		}
	}
}

// TestParseSessionMsgPack reads philippseith's close messages, whose
// headers map the protocol does not have, its pings, and ours.
func TestParseSessionMsgPack(t *testing.T) {
	for _, tc := range []struct {
		frame  []byte
		typ    int
		reason string
		again  bool
	}{
		{[]byte{0x91, 0x06}, TypePing, "", false},
		// philippseith: array of 3, then type, headers, error, allowReconnect.
		{[]byte{0x93, 0x07, 0x80, 0xa3, 'b', 'y', 'e', 0xc3}, TypeClose, "bye", true},
		{[]byte{0x93, 0x07, 0x80, 0xa0, 0xc2}, TypeClose, "", false},
		{AppendMsgPackClose(nil, "gone", true)[1:], TypeClose, "gone", true},
		{[]byte{0x91, 0x07}, TypeClose, "", false},
	} {
		typ, reason, again, err := ParseSessionMsgPack(tc.frame)
		require.NoError(t, err, "% x", tc.frame)
		require.Equal(t, tc.typ, typ)
		require.Equal(t, tc.reason, reason)
		require.Equal(t, tc.again, again)
	}
	for _, bad := range [][]byte{nil, {0x06}, {0x91}, {0x93, 0x07, 0x81}, {0x93, 0x07, 0x80, 0x05}} {
		_, _, _, err := ParseSessionMsgPack(bad)
		require.Error(t, err, "% x", bad)
	}
	require.Equal(t, `{"protocol":"messagepack","version":1}`+"\x1e", string(AppendHandshakeRequest(nil, MessagePack)))
	p, err := ParseHandshakeRequest(AppendHandshakeRequest(nil, JSON)[:len(AppendHandshakeRequest(nil, JSON))-1])
	require.NoError(t, err)
	require.Equal(t, JSON, p)
}
