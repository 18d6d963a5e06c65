package wire

import (
	"strings"
	"testing"
)

// benchWrapper is a typical SendMessage: a .NET type name and a payload of
// about 100 bytes.
var benchWrapper = Wrapper{
	Type:          "MyApp.Contracts.OrderPlaced, MyApp.Contracts, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null",
	Payload:       []byte(`{"OrderId":"5b3f0c1e-8a7d-4f5e-9c2b-1d6e7f8a9b0c","Customer":"Contoso Ltd","Total":1234.5,"Lines":3}`),
	CorrelationID: "8f14e45fceea167a",
	TimeoutMillis: 30000,
}

func BenchmarkParseJSON(b *testing.B) {
	rec := AppendJSONInvocation(nil, TargetPost, &benchWrapper)
	rec = rec[:len(rec)-1]
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	var m Message
	for b.Loop() {
		if err := ParseJSON(rec, &m); err != nil || m.WrapperErr != nil {
			b.Fatal(err, m.WrapperErr)
		}
	}
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
	frame, _, _, _ := NextMsgPackFrame(AppendMsgPackInvocation(nil, TargetPost, &benchWrapper), 0)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	var m Message
	for b.Loop() {
		if err := ParseMsgPack(frame, &m); err != nil || m.WrapperErr != nil {
			b.Fatal(err, m.WrapperErr)
		}
	}
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
