package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// FuzzParseJSON checks that ParseJSON never panics, agrees with the
// encoding/json reference (oracle_test.go), that a bad wrapper keeps no
// more than its correlation id and timeout, and that a decoded wrapper
// survives being written and read again.
func FuzzParseJSON(f *testing.F) {
	for _, rec := range exampleRecords() {
		f.Add([]byte(rec))
	}
	f.Add([]byte(`{"type":1,"target":"x","arguments":[{"type":"\ud800","payload":"\ud83d\ude00\u2028\u0000"}]}`))
	f.Add([]byte(`{"type":1,"target":"SendMessage","arguments":[{"type":"T","correlationId":"c\u0031","timeoutMs":5}]}`))
	f.Fuzz(func(t *testing.T, record []byte) {
		if diff := compareWithOracle(record); diff != "" {
			t.Fatalf("%q: %s", record, diff)
		}
		var m Message
		if ParseJSON(record, &m) != nil || (m.Type != TypeInvocation && m.Type != TypeStreamInvocation) {
			return
		}
		if m.WrapperErr != nil {
			checkBadWrapper(t, m.Wrapper)
			return
		}
		out := AppendJSONInvocation(nil, m.Target, &m.Wrapper)
		rec, rest, ok := NextJSONRecord(out)
		if !ok || len(rest) != 0 {
			t.Fatalf("%q: no single record", out)
		}
		var again Message
		if err := ParseJSON(rec, &again); err != nil || again.WrapperErr != nil {
			t.Fatalf("%q: %v, %v", rec, err, again.WrapperErr)
		}
		if again.Target != m.Target || !sameWrapper(again.Wrapper, m.Wrapper) {
			t.Fatalf("%q: round trip gave %q %#v, want %q %#v", rec, again.Target, again.Wrapper, m.Target, m.Wrapper)
		}
	})
}

// checkBadWrapper checks that what is left of a bad wrapper is at most its
// correlation id and timeout: nothing a handler could run on.
func checkBadWrapper(t *testing.T, w Wrapper) {
	t.Helper()
	if w.Type != "" || w.Payload != nil || w.TimeoutMillis < 0 {
		t.Fatalf("a bad wrapper kept %#v", w)
	}
}

// sameWrapper compares wrappers, an empty payload equal to a nil one.
func sameWrapper(a, b Wrapper) bool {
	return a.Type == b.Type && bytes.Equal(a.Payload, b.Payload) &&
		a.CorrelationID == b.CorrelationID && a.TimeoutMillis == b.TimeoutMillis &&
		a.TraceParent == b.TraceParent && a.TraceState == b.TraceState
}

// FuzzParseMsgPack checks that ParseMsgPack never panics, that its errors
// wrap ErrMalformed, that a bad wrapper keeps no more than its correlation
// id and timeout, and that a decoded wrapper survives being written and
// read again.
func FuzzParseMsgPack(f *testing.F) {
	for _, e := range exampleInvocations {
		frame, _, _, _ := NextMsgPackFrame(AppendMsgPackInvocation(nil, e.target, &e.wrapper), 0)
		f.Add(frame)
	}
	w := Wrapper{Type: "T", Payload: []byte("{}"), CorrelationID: "c", TimeoutMillis: 70000}
	for _, b := range [][]byte{
		AppendMsgPackInvocation(nil, "x", &w),
		AppendMsgPackPing(nil),
		AppendMsgPackCompletionError(nil, "1", "boom"),
	} {
		frame, _, _, _ := NextMsgPackFrame(b, 0)
		f.Add(frame)
	}
	for _, v := range []any{
		[]any{1, map[string]string{"h": "v"}, "id", "SendMessage", []any{map[string]any{"Type": "T", "Payload": []byte("p"), "TimeoutMs": -1}}, []string{"s"}},
		[]any{1, map[string]any{}, nil, "SendMessage", []any{map[string]any{"type": "T", "correlationId": "c", "timeoutMs": 5}}},
		[]any{7, "bye", true},
		[]any{3, map[string]any{}, "1", 3, []any{1.5, float32(2), nil, false, map[int]int{1: 2}}},
	} {
		b, err := msgpack.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var m Message
		err := ParseMsgPack(frame, &m)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v does not wrap ErrMalformed", err)
			}
			return
		}
		if m.WrapperErr != nil {
			if !errors.Is(m.WrapperErr, ErrBadWrapper) {
				t.Fatalf("%v does not wrap ErrBadWrapper", m.WrapperErr)
			}
			checkBadWrapper(t, m.Wrapper)
		}
		if (m.Type != TypeInvocation && m.Type != TypeStreamInvocation) || m.WrapperErr != nil {
			return
		}
		out := AppendMsgPackInvocation(nil, m.Target, &m.Wrapper)
		again, rest, ok, err := NextMsgPackFrame(out, 0)
		if err != nil || !ok || len(rest) != 0 {
			t.Fatalf("%x: %v", out, err)
		}
		var m2 Message
		if err := ParseMsgPack(again, &m2); err != nil || m2.WrapperErr != nil {
			t.Fatalf("%x: %v, %v", again, err, m2.WrapperErr)
		}
		if m2.Target != m.Target || !sameWrapper(m2.Wrapper, m.Wrapper) {
			t.Fatalf("round trip gave %q %#v, want %q %#v", m2.Target, m2.Wrapper, m.Target, m.Wrapper)
		}
		// What we write is MessagePack a generic decoder reads.
		var generic []any
		if err := msgpack.Unmarshal(again, &generic); err != nil {
			t.Fatalf("%x: %v", again, err)
		}
	})
}

// FuzzNextMsgPackFrame checks NextMsgPackFrame against encoding/binary.
func FuzzNextMsgPackFrame(f *testing.F) {
	f.Add(AppendMsgPackPing(nil), 0)
	f.Add(AppendMsgPackInvocation(nil, TargetPost, &exampleInvocations[0].wrapper), 100)
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 0)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 0)
	f.Add([]byte{0x00}, -1)
	f.Fuzz(func(t *testing.T, buf []byte, max int) {
		frame, rest, ok, err := NextMsgPackFrame(buf, max)
		n, size := binary.Uvarint(buf)
		switch {
		case size > maxVarintLen || size < 0 || (size == 0 && len(buf) >= maxVarintLen):
			if !errors.Is(err, ErrMalformed) || ok {
				t.Fatalf("%x: long prefix: %v %v", buf, ok, err)
			}
		case size == 0: // incomplete prefix
			if err != nil || ok {
				t.Fatalf("%x: incomplete prefix: %v %v", buf, ok, err)
			}
		case n == 0:
			if !errors.Is(err, ErrMalformed) || ok {
				t.Fatalf("%x: zero length: %v %v", buf, ok, err)
			}
		case n > 1<<31-1 || (max > 0 && n > uint64(max)):
			if !errors.Is(err, ErrTooLarge) || ok {
				t.Fatalf("%x max %d: too large: %v %v", buf, max, ok, err)
			}
		case n > uint64(len(buf)-size):
			if err != nil || ok || !bytes.Equal(rest, buf) {
				t.Fatalf("%x: incomplete body: %v %v", buf, ok, err)
			}
		default:
			if err != nil || !ok || !bytes.Equal(frame, buf[size:size+int(n)]) || !bytes.Equal(rest, buf[size+int(n):]) {
				t.Fatalf("%x: %v %v %x %x", buf, ok, err, frame, rest)
			}
		}
	})
}

// FuzzFullName checks that FullName never panics, returns a trimmed prefix
// of its input without a top-level comma, and is idempotent.
func FuzzFullName(f *testing.F) {
	for _, s := range []string{
		typePingRequest, "MyApp.Outer+Inner, MyApp", "A]], B", "A[[B, C], D", " , ",
		"System.Collections.Generic.Dictionary`2[[System.String, System.Private.CoreLib],[MyApp.Item, MyApp]], System.Private.CoreLib",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := FullName(s)
		if !strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), got) {
			t.Fatalf("%q: %q is not a trimmed prefix", s, got)
		}
		if strings.Trim(got, " \t\r\n") != got {
			t.Fatalf("%q: %q is not trimmed", s, got)
		}
		if again := FullName(got); again != got {
			t.Fatalf("%q: FullName(%q) = %q", s, got, again)
		}
		if !SameType(s, got) {
			t.Fatalf("%q: not the same type as its full name", s)
		}
	})
}

// FuzzErrorPayload checks that an error payload reads back as written.
func FuzzErrorPayload(f *testing.F) {
	f.Add("Cannot find handler for type 'MyApp.PingRequest'.", "")
	f.Add("bad \"x\"\n\u2028", "E42")
	f.Add("\xff", "\x00")
	f.Fuzz(func(t *testing.T, message, code string) {
		payload := AppendErrorPayload(nil, message, code)
		if !json.Valid(payload) {
			t.Fatalf("%q: invalid JSON", payload)
		}
		msg, cd, ok := ParseErrorPayload(payload)
		if !ok {
			t.Fatalf("%q: not recognised", payload)
		}
		if utf8.ValidString(message) && utf8.ValidString(code) && (msg != message || cd != code) {
			t.Fatalf("%q: got %q %q, want %q %q", payload, msg, cd, message, code)
		}
	})
}

// FuzzJSONString checks AppendJSONString against encoding/json.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\", "\n\r\t\b\f\x00\x1f\x7f", "a\xffb", "\u2028\u2029", "é€😀<&>", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendJSONString(nil, s)
		if !bytes.Equal(out, AppendJSONStringBytes(nil, []byte(s))) {
			t.Fatalf("%q: string and bytes forms differ", s)
		}
		if !utf8.Valid(out) || bytes.Contains(out, []byte("\u2028")) || bytes.Contains(out, []byte("\u2029")) {
			t.Fatalf("%q: %q is not safe UTF-8", s, out)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q: %q: %v", s, out, err)
		}
		if want := string([]rune(s)); back != want { // invalid bytes read back as U+FFFD
			t.Fatalf("%q: read back %q, want %q", s, back, want)
		}
	})
}

// FuzzParseJSONWrapper puts fuzzed JSON fragments into the wrapper
// properties, where random mutation of whole frames rarely reaches, and
// checks ParseJSON against the encoding/json reference.
func FuzzParseJSONWrapper(f *testing.F) {
	f.Add(`"MyApp.Ping, MyApp"`, `"{\"A\":1}"`, `"c"`, `100`)
	f.Add(`"\u0041\ud83d\ude00"`, `{"A":[1,{"b":null}]}`, `null`, `-0`)
	f.Add(`""`, `[1,2]`, `1`, `1.5`)
	f.Add(`"T"`, `"\ud800\u0041\\\/"`, `"\u2028"`, `9223372036854775808`)
	f.Fuzz(func(t *testing.T, typ, payload, corr, timeout string) {
		for _, rec := range []string{
			`{"type":1,"target":"x","arguments":[{"type":` + typ + `,"payload":` + payload + `,"correlationId":` + corr + `,"timeoutMs":` + timeout + `}]}`,
			`{"arguments":[{"Payload":` + payload + `,"TYPE":` + typ + `}],"target":` + corr + `,"type":` + timeout + `}`,
		} {
			if diff := compareWithOracle([]byte(rec)); diff != "" {
				t.Fatalf("%q: %s", rec, diff)
			}
		}
	})
}
