package redis

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGroupPublications: publications to one channel travel together, in
// their order; each channel's group holds exactly its publications; a
// message over the frame bound travels in a frame of its own; the frames'
// buffers are reused.
func TestGroupPublications(t *testing.T) {
	pub := func(ch, body string) *publication { return &publication{ch: ch, msg: []byte(body)} }
	big := string(bytes.Repeat([]byte("x"), 2*maxBatchFrame))
	batch := []*publication{
		pub("a", "a1"), pub("b", "b1"), pub("a", "a2"), pub("c", big),
		pub("b", "b2"), pub("a", "a3"), pub("c", "c2"),
	}
	groups, frames := groupPublications(batch, nil, nil)

	got := map[string][]string{}
	var order []string
	for _, g := range groups {
		order = append(order, g.ch)
		for _, p := range batch[g.from:g.to] {
			require.Equal(t, g.ch, p.ch, "a publication in another channel's group")
		}
		require.Equal(t, byte(frameBatch), g.frame[0])
		msgs, err := splitBatch(g.frame[1:])
		require.NoError(t, err)
		require.Len(t, msgs, g.to-g.from)
		for _, m := range msgs {
			got[g.ch] = append(got[g.ch], string(m))
		}
	}
	require.Equal(t, []string{"a", "b", "c", "c"}, order, "one group per channel, the oversized message alone")
	require.Equal(t, []string{"a1", "a2", "a3"}, got["a"])
	require.Equal(t, []string{"b1", "b2"}, got["b"])
	require.Equal(t, []string{big, "c2"}, got["c"])
	require.Len(t, frames, 4)
	require.True(t, frames[2] == nil, "an outsized frame's buffer is not kept")

	// The next round writes into the same buffers.
	one := []*publication{pub("a", "alone")}
	kept := &frames[0][:1][0]
	groups, _ = groupPublications(one, groups[:0], frames)
	require.Len(t, groups, 1)
	require.Same(t, kept, &groups[0].frame[0], "the buffer of the round before is reused")
	msgs, err := splitBatch(groups[0].frame[1:])
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte("alone")}, msgs)
}

// TestSplitBatchMalformed: a length running past the frame keeps the
// messages before it and reports the fault.
func TestSplitBatchMalformed(t *testing.T) {
	f := binary.AppendUvarint(nil, 2)
	f = append(f, "ok"...)
	f = binary.AppendUvarint(f, 100)
	f = append(f, "short"...)
	msgs, err := splitBatch(f)
	require.Error(t, err)
	require.Equal(t, [][]byte{[]byte("ok")}, msgs)

	_, err = splitBatch([]byte{0x80}) // a varint that never ends
	require.Error(t, err)
}

// FuzzSplitBatch: any frame body splits without a panic, into messages
// within the body, and a well-formed body round-trips.
func FuzzSplitBatch(f *testing.F) {
	for _, msgs := range [][]string{{}, {""}, {"a", "bc"}, {"x", "", "yz"}} {
		var b []byte
		for _, m := range msgs {
			b = binary.AppendUvarint(b, uint64(len(m)))
			b = append(b, m...)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := splitBatch(body)
		total := 0
		for _, m := range msgs {
			total += len(m)
		}
		if total > len(body) {
			t.Fatalf("messages of %d bytes from a body of %d", total, len(body))
		}
		if err != nil {
			return
		}
		var again []byte
		for _, m := range msgs {
			again = binary.AppendUvarint(again, uint64(len(m)))
			again = append(again, m...)
		}
		if !bytes.Equal(again, body) && !nonMinimalVarint(body) {
			t.Fatalf("%q split into %s and back into %q", body, fmt.Sprint(msgs), again)
		}
	})
}

// nonMinimalVarint reports a body whose lengths are written with more
// bytes than needed: it splits well but encodes back shorter.
func nonMinimalVarint(b []byte) bool {
	for len(b) > 0 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return false
		}
		if n != len(binary.AppendUvarint(nil, v)) {
			return true
		}
		b = b[n+int(v):]
	}
	return false
}
