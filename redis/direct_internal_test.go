package redis

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// FuzzDirectStream reads what arrives on a direct link, as a node's reader
// does: it never panics, never returns a message larger than the bound or
// than what arrived, and what writeMessage wrote reads back the same.
func FuzzDirectStream(f *testing.F) {
	for _, msgs := range [][]string{{}, {""}, {"a", "bc"}, {"x", "", "yz"}} {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		for _, m := range msgs {
			if err := writeMessage(w, []byte(m)); err != nil {
				f.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Add(binary.AppendUvarint(nil, 1<<40))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := bufio.NewReader(bytes.NewReader(stream))
		var msgs [][]byte
		total := 0
		for {
			m, err := readMessage(r)
			if err != nil {
				if len(m) > maxDirectMessage {
					t.Fatalf("a message of %d bytes past the bound", len(m))
				}
				break
			}
			total += len(m)
			if total > len(stream) {
				t.Fatalf("%d bytes of messages from a stream of %d", total, len(stream))
			}
			msgs = append(msgs, m)
		}
		// What was read writes and reads back the same.
		var again bytes.Buffer
		w := bufio.NewWriter(&again)
		for _, m := range msgs {
			if err := writeMessage(w, m); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		r = bufio.NewReader(&again)
		for i, want := range msgs {
			got, err := readMessage(r)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("message %d: wrote %q, read %q (%v)", i, want, got, err)
			}
		}
		if _, err := readMessage(r); !errors.Is(err, io.EOF) {
			t.Fatalf("after the messages: %v, not the end", err)
		}
	})
}
