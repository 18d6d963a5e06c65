package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// recordSeparator ends every record of the SignalR JSON hub protocol.
const recordSeparator = 0x1e

// rawConn is one end of a SignalR JSON-protocol WebSocket, written and
// read frame by frame, as a .NET Tharga peer writes and reads it.
type rawConn struct {
	t      testing.TB
	ws     *websocket.Conn
	frames chan []byte
	done   chan struct{}
	err    error // why reading ended, once done is closed
}

func newRawConn(t testing.TB, ws *websocket.Conn) *rawConn {
	ws.SetReadLimit(1 << 20)
	c := &rawConn{t: t, ws: ws, frames: make(chan []byte, 10000), done: make(chan struct{})}
	go c.readLoop()
	return c
}

func (c *rawConn) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		for _, rec := range bytes.Split(data, []byte{recordSeparator}) {
			if len(rec) > 0 {
				c.frames <- bytes.Clone(rec)
			}
		}
	}
}

// close closes the WebSocket and waits for the reader.
func (c *rawConn) close() {
	_ = c.ws.CloseNow()
	<-c.done
}

// write sends records, each followed by the record separator, in one
// WebSocket message.
func (c *rawConn) write(records ...string) {
	c.t.Helper()
	var b []byte
	for _, r := range records {
		b = append(append(b, r...), recordSeparator)
	}
	require.NoError(c.t, c.ws.Write(context.Background(), websocket.MessageText, b))
}

// nextRecord returns the next record that is not a ping.
func (c *rawConn) nextRecord(d time.Duration) []byte {
	c.t.Helper()
	rec, ok := c.tryNext(d)
	if !ok {
		c.t.Fatalf("no frame within %v (connection: %v)", d, c.readErr())
	}
	return rec
}

// tryNext returns the next record that is not a ping, if one comes
// within d.
func (c *rawConn) tryNext(d time.Duration) ([]byte, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case f := <-c.frames:
			if isPing(f) {
				continue
			}
			return f, true
		case <-c.done:
			// Frames read before the end are still queued.
			select {
			case f := <-c.frames:
				if isPing(f) {
					continue
				}
				return f, true
			default:
				return nil, false
			}
		case <-timer.C:
			return nil, false
		}
	}
}

func (c *rawConn) readErr() any {
	select {
	case <-c.done:
		return c.err
	default:
		return "open"
	}
}

func isPing(f []byte) bool {
	var m struct{ Type int }
	return json.Unmarshal(f, &m) == nil && m.Type == 6
}

// frame is a decoded hub message, as the .NET reader sees it.
type frame struct {
	raw          []byte
	Type         int               `json:"type"`
	Target       string            `json:"target"`
	InvocationID *string           `json:"invocationId"`
	Error        string            `json:"error"`
	Arguments    []json.RawMessage `json:"arguments"`
	// The wrapper, when the frame is an invocation of one argument.
	Wrapper map[string]json.RawMessage `json:"-"`
}

// next returns the next frame that is not a ping.
func (c *rawConn) next(d time.Duration) frame {
	c.t.Helper()
	return parseFrame(c.t, c.nextRecord(d))
}

func parseFrame(t testing.TB, rec []byte) frame {
	t.Helper()
	f := frame{raw: rec}
	require.NoError(t, json.Unmarshal(rec, &f), "not a JSON hub message: %s", rec)
	if len(f.Arguments) == 1 {
		require.NoError(t, json.Unmarshal(f.Arguments[0], &f.Wrapper), "the argument is not an object: %s", rec)
	}
	return f
}

// wrapperType returns the wrapper's "type" as a string.
func (f frame) wrapperType(t testing.TB) string {
	t.Helper()
	var s string
	require.NoError(t, json.Unmarshal(f.Wrapper["type"], &s), "\"type\" is not a string: %s", f.raw)
	return s
}

// payload returns the wrapper's "payload", which the .NET reader requires
// to be a JSON string holding the message's JSON.
func (f frame) payload(t testing.TB) string {
	t.Helper()
	var s string
	require.NoError(t, json.Unmarshal(f.Wrapper["payload"], &s), "\"payload\" is not a JSON string: %s", f.raw)
	return s
}

// correlationID returns the wrapper's correlationId, "" when absent.
func (f frame) correlationID() string {
	var s string
	_ = json.Unmarshal(f.Wrapper["correlationId"], &s)
	return s
}

// requireInvocation checks what a .NET reader needs of a protocol
// invocation: type 1, the target, no invocation id (non-blocking), one
// argument with "type" and "payload" (the .NET reader's required
// members), and returns the wrapper's type and payload.
func requireInvocation(t testing.TB, f frame, target string) (string, string) {
	t.Helper()
	require.Equal(t, 1, f.Type, "not an invocation: %s", f.raw)
	require.Equal(t, target, f.Target, "%s", f.raw)
	require.Nil(t, f.InvocationID, "a protocol invocation must be non-blocking (no invocationId): %s", f.raw)
	require.Len(t, f.Arguments, 1, "%s", f.raw)
	require.Contains(t, f.Wrapper, "type", "%s", f.raw)
	require.Contains(t, f.Wrapper, "payload", "%s", f.raw)
	return f.wrapperType(t), f.payload(t)
}

// requirePascalCase checks that every key of a JSON object payload starts
// with an upper-case letter: System.Text.Json reads them case-sensitively.
func requirePascalCase(t testing.TB, payload string) {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(payload), &m), payload)
	for k := range m {
		require.True(t, k != "" && k[0] >= 'A' && k[0] <= 'Z', "payload key %q is not PascalCase: %s", k, payload)
	}
}

// invocation writes a non-blocking invocation of target with a wrapper,
// as the .NET library does: {"type": name, "payload": payload-as-string},
// escaped as System.Text.Json escapes by default (see stjString).
func invocation(target, typeName, payload string) string {
	return `{"type":1,"target":` + stjString(target) + `,"arguments":[{"type":` + stjString(typeName) +
		`,"payload":` + stjString(payload) + `}]}`
}

// stjPayload serializes a message as System.Text.Json does with default
// options: PascalCase member names as declared, strings escaped by
// stjString. It takes the members in order as name, value pairs.
func stjPayload(members ...any) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(members); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(stjString(members[i].(string)))
		b.WriteByte(':')
		switch v := members[i+1].(type) {
		case string:
			b.WriteString(stjString(v))
		default:
			j, _ := json.Marshal(v)
			b.Write(j)
		}
	}
	b.WriteByte('}')
	return b.String()
}

// stjString quotes s as System.Text.Json's default encoder
// (JavaScriptEncoder.Default) does: only printable Basic Latin stays as
// is; the quote, ampersand, apostrophe, plus, angle brackets, back quote
// and everything outside Basic Latin become \uXXXX escapes in upper-case
// hex (UTF-16, surrogate pairs beyond the BMP); the backslash and the
// usual control characters get their short escapes. ASP.NET Core's
// SignalR JSON hub protocol writes with it.
func stjString(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.WriteByte('"')
	esc := func(r rune) {
		b.WriteString(`\u`)
		b.WriteByte(hex[r>>12&0xf])
		b.WriteByte(hex[r>>8&0xf])
		b.WriteByte(hex[r>>4&0xf])
		b.WriteByte(hex[r&0xf])
	}
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || r >= 0x7f || strings.ContainsRune("\"&'+<>`", r):
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				esc(r1)
				esc(r2)
			} else {
				esc(r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
