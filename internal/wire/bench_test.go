package wire

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// benchWrapper is a typical SendMessage: a .NET type name and a payload of
// about 100 bytes.
var benchWrapper = Wrapper{
	Type:          "MyApp.Contracts.OrderPlaced, MyApp.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null",
	Payload:       []byte(`{"OrderId":"5b3f0c1e-8a7d-4f5e-9c2b-1d6e7f8a9b0c","Customer":"Contoso Ltd","Total":1234.5,"Lines":3}`),
	CorrelationID: "8f14e45fceea167a",
	TimeoutMillis: 30000,
}

// The parse benchmarks write their loops out rather than share a harness
// that takes the parser as a function value: that indirect call added
// 5-15% to the figures of the parsers it measured.

// benchFrame is benchWrapper's invocation as codec frames it, without the
// framing.
func benchFrame(codec Codec) []byte {
	frame, _, _, _ := codec.Next(codec.AppendInvocation(nil, TargetPost, &benchWrapper), 0)
	return frame
}

// checkDecoded fails b unless m holds benchWrapper's invocation.
func checkDecoded(b *testing.B, m *Message) {
	if !sameWrapper(m.Wrapper, benchWrapper) || m.Target != TargetPost {
		b.Fatalf("decoded %q %#v", m.Target, m.Wrapper)
	}
}

func BenchmarkParseJSON(b *testing.B) {
	rec := benchFrame(JSONCodec)
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	var m Message
	for b.Loop() {
		if err := ParseJSON(rec, &m); err != nil || m.WrapperErr != nil {
			b.Fatal(err, m.WrapperErr)
		}
	}
	checkDecoded(b, &m)
}

func BenchmarkAppendJSONInvocation(b *testing.B) {
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSONInvocation(buf[:0], TargetPost, &benchWrapper)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkParseMsgPack(b *testing.B) {
	frame := benchFrame(MsgPackCodec)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	var m Message
	for b.Loop() {
		if err := ParseMsgPack(frame, &m); err != nil || m.WrapperErr != nil {
			b.Fatal(err, m.WrapperErr)
		}
	}
	checkDecoded(b, &m)
}

func BenchmarkAppendMsgPackInvocation(b *testing.B) {
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendMsgPackInvocation(buf[:0], TargetPost, &benchWrapper)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkFullName(b *testing.B) {
	name := "System.Collections.Generic.List`1[[System.String, System.Private.CoreLib, Version=8.0.0.0]], System.Private.CoreLib, Version=8.0.0.0"
	b.ReportAllocs()
	for b.Loop() {
		if !strings.HasPrefix(FullName(name), "System") {
			b.Fatal()
		}
	}
}

// BenchmarkParseMsgPackLibrary decodes the frame of BenchmarkParseMsgPack
// into the same Message with github.com/vmihailenco/msgpack/v5's streaming
// Decoder (the leanest way to use it: decoder and reader reused, no
// reflection), to weigh the hand-written reader of msgpackread.go against
// it.
func BenchmarkParseMsgPackLibrary(b *testing.B) {
	frame := benchFrame(MsgPackCodec)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	r := bytes.NewReader(nil)
	dec := msgpack.NewDecoder(r)
	var m Message
	for b.Loop() {
		r.Reset(frame)
		dec.Reset(r)
		if err := parseMsgPackLibrary(dec, r, &m); err != nil || m.WrapperErr != nil {
			b.Fatal(err, m.WrapperErr)
		}
	}
	checkDecoded(b, &m)
}

// parseMsgPackLibrary is the invocation path of ParseMsgPack written on
// vmihailenco's Decoder, for the benchmark only.
func parseMsgPackLibrary(dec *msgpack.Decoder, r *bytes.Reader, m *Message) error {
	*m = Message{}
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 5 {
		return ErrMalformed
	}
	if m.Type, err = dec.DecodeInt(); err != nil || m.Type != TypeInvocation {
		return ErrMalformed
	}
	if err := dec.Skip(); err != nil { // headers
		return err
	}
	if m.InvocationID, err = dec.DecodeString(); err != nil { // nil decodes as ""
		return err
	}
	if m.Target, err = dec.DecodeString(); err != nil {
		return err
	}
	if m.ArgCount, err = dec.DecodeArrayLen(); err != nil {
		return err
	}
	for i := range m.ArgCount {
		if i > 0 {
			if err := dec.Skip(); err != nil {
				return err
			}
			continue
		}
		pairs, err := dec.DecodeMapLen()
		if err != nil {
			return err
		}
		w := &m.Wrapper
		for range pairs {
			key, err := dec.DecodeString()
			if err != nil {
				return err
			}
			switch {
			case strings.EqualFold(key, "type"):
				w.Type, err = dec.DecodeString()
			case strings.EqualFold(key, "payload"):
				w.Payload, err = dec.DecodeBytes()
			case strings.EqualFold(key, "correlationId"):
				w.CorrelationID, err = dec.DecodeString()
			case strings.EqualFold(key, "timeoutMs"):
				w.TimeoutMillis, err = dec.DecodeInt64()
			default:
				err = dec.Skip()
			}
			if err != nil {
				return err
			}
		}
	}
	if n > 5 {
		ids, err := dec.DecodeArrayLen()
		if err != nil {
			return err
		}
		m.StreamIDs = ids > 0
		for range ids {
			if err := dec.Skip(); err != nil {
				return err
			}
		}
	}
	if r.Len() != 0 {
		return ErrMalformed
	}
	return nil
}

// BenchmarkParseJSONLibrary decodes the record of BenchmarkParseJSON with
// encoding/json into structs (its field matching ignores case, as the
// wrapper's does), to weigh the hand-written scanner of jsonscan.go
// against it.
func BenchmarkParseJSONLibrary(b *testing.B) {
	rec := benchFrame(JSONCodec)
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	var m Message
	for b.Loop() {
		if err := parseJSONLibrary(rec, &m); err != nil {
			b.Fatal(err)
		}
	}
	checkDecoded(b, &m)
}

// parseJSONLibrary is ParseJSON for an invocation written on encoding/json,
// for the benchmark only.
func parseJSONLibrary(rec []byte, m *Message) error {
	var msg struct {
		Type         int               `json:"type"`
		Target       string            `json:"target"`
		InvocationID string            `json:"invocationId"`
		Arguments    []json.RawMessage `json:"arguments"`
		StreamIDs    []json.RawMessage `json:"streamIds"`
	}
	var w struct {
		Type          string `json:"type"`
		Payload       string `json:"payload"`
		CorrelationID string `json:"correlationId"`
		TimeoutMs     int64  `json:"timeoutMs"`
	}
	if err := json.Unmarshal(rec, &msg); err != nil {
		return err
	}
	if len(msg.Arguments) == 0 {
		return ErrMalformed
	}
	if err := json.Unmarshal(msg.Arguments[0], &w); err != nil {
		return err
	}
	*m = Message{
		Type: msg.Type, Target: msg.Target, InvocationID: msg.InvocationID,
		ArgCount: len(msg.Arguments), StreamIDs: len(msg.StreamIDs) > 0,
		Wrapper: Wrapper{Type: w.Type, Payload: []byte(w.Payload), CorrelationID: w.CorrelationID, TimeoutMillis: w.TimeoutMs},
	}
	return nil
}
