package communication

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, e := range []envelope{
		{Kind: envBroadcast, From: "a", Type: "T", Payload: []byte(`{"N":1}`)},
		{Kind: envRequest, From: "node-1", ID: 1 << 40, Conn: "c", Type: "T", Payload: []byte("{}"), RespName: "R", Deadline: 1764720000000},
		{Kind: envReply, From: "b", ID: 7, Err: replyRemote, Code: CodeHandlerError, Message: "boom"},
		{Kind: envSubSet, From: "c", Subs: []subEntry{{Topic: "T", Key: "k", Count: 2}, {Topic: "U", Count: 1}}},
		{Kind: envSubAsk},
		{Kind: envRequest, From: "a", ID: 2, Conn: "c", Type: "T", Payload: []byte("{}"),
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: "k=v"},
	} {
		var got envelope
		require.NoError(t, parseEnvelope(appendEnvelope(nil, &e), &got))
		require.Equal(t, e, got)
	}
}

// FuzzEnvelope: any bytes decode or fail cleanly, and what decodes encodes
// back to the same envelope.
func FuzzEnvelope(f *testing.F) {
	f.Add(appendEnvelope(nil, &envelope{Kind: envRequest, From: "a", ID: 3, Conn: "c", Type: "T", Payload: []byte("{}"), Deadline: -5}))
	f.Add(appendEnvelope(nil, &envelope{Kind: envSubSet, Subs: []subEntry{{Topic: "T", Key: "k", Count: 1}}}))
	f.Add(appendEnvelope(nil, &envelope{Kind: envRequest, TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}))
	f.Add([]byte{envelopeVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e envelope
		if parseEnvelope(b, &e) != nil {
			return
		}
		var again envelope
		require.NoError(t, parseEnvelope(appendEnvelope(nil, &e), &again))
		require.Equal(t, e, again)
	})
}

// TestEnvelopeNamesBounded: the names an envelope's decoding keeps for
// reuse stay bounded whatever the names that come in, and a parse
// allocates no string for a kind or a name it has seen.
func TestEnvelopeNamesBounded(t *testing.T) {
	names := &internTable{m: make(map[string]string)}
	for i := range 3 * maxInterned {
		r := envReader{b: appendEnvString(nil, fmt.Sprintf("node-%d", i))}
		require.Equal(t, fmt.Sprintf("node-%d", i), r.interned(names))
		require.LessOrEqual(t, len(names.m), maxInterned)
	}

	msg := appendEnvelope(nil, &envelope{Kind: envReply, From: "node-a", ID: 1, Type: "T", Err: replyRemote})
	var e envelope
	require.NoError(t, parseEnvelope(msg, &e)) // the names are seen once
	allocs := testing.AllocsPerRun(100, func() { _ = parseEnvelope(msg, &e) })
	require.Zero(t, allocs)
}
