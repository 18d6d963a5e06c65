package otelcheck_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	communication "github.com/tharga/communication-go"
)

// rawConn is a peer that speaks the JSON hub protocol by hand, as a .NET
// client does.
type rawConn struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialRaw(t *testing.T, ts *testServer) *rawConn {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+ts.Pattern(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ws.CloseNow() })
	c := &rawConn{t: t, ws: ws}
	c.write(`{"protocol":"json","version":1}`)
	require.Equal(t, "{}", c.next())
	return c
}

func (c *rawConn) write(record string) {
	c.t.Helper()
	require.NoError(c.t, c.ws.Write(ctxT(c.t, 5*time.Second), websocket.MessageText, append([]byte(record), 0x1e)))
}

// next returns the next record that is not a ping.
func (c *rawConn) next() string {
	c.t.Helper()
	for {
		_, data, err := c.ws.Read(ctxT(c.t, 10*time.Second))
		require.NoError(c.t, err)
		for _, rec := range bytes.Split(data, []byte{0x1e}) {
			if len(rec) > 0 && string(rec) != `{"type":6}` {
				return string(rec)
			}
		}
	}
}

// TestTraceContextOnTheWire: a request from a peer that writes the trace
// context beside the correlation id is handled in that trace; a request
// from a traced server carries it to the client, after the properties a
// .NET peer knows, and nothing else changes in the frame.
func TestTraceContextOnTheWire(t *testing.T) {
	rec, tp := newRecorder(t)
	seen := make(chan trace.SpanContext, 1)
	ts := newServer(t, communication.WithHandlers(pingHandlers(t, seen)), communication.WithTracerProvider(tp))
	peer := dialRaw(t, ts)

	const traceID, spanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	peer.write(`{"type":1,"target":"SendMessage","arguments":[{"type":"` + name[Ping]() +
		`","payload":"{\"Message\":\"hi\"}","correlationId":"c1","traceparent":"00-` + traceID + `-` + spanID + `-01","tracestate":"vendor=1"}]}`)
	answer := peer.next()
	require.Contains(t, answer, `"target":"ResponseMessage"`)
	require.Contains(t, answer, `"correlationId":"c1"`)
	require.NotContains(t, answer, "traceparent", "an answer carries no trace context")
	inHandler := <-seen
	require.Equal(t, traceID, inHandler.TraceID().String())
	require.Equal(t, "vendor=1", inHandler.TraceState().String())
	handle := spanNamed(t, rec, "handle "+name[Ping]())
	require.Equal(t, spanID, handle.Parent().SpanID().String())
	require.True(t, handle.Parent().IsRemote())

	// The server's request to the raw peer, in a trace: the trace context
	// follows the properties .NET peers know.
	id := ts.ConnectionIDs()[0]
	ctx, root := tp.Tracer("test").Start(ctxT(t, 10*time.Second), "caller")
	defer root.End()
	sent := make(chan error, 1)
	go func() {
		_, err := communication.Send[Pong](ctx, ts.To(id), Ping{Message: "to raw"})
		sent <- err
	}()
	var frame struct {
		Arguments []map[string]json.RawMessage `json:"arguments"`
	}
	req := peer.next()
	require.NoError(t, json.Unmarshal([]byte(req), &frame), req)
	require.Regexp(t, `^\{"type":1,"target":"SendMessage","arguments":\[\{"type":"[^"]+","payload":"(?:[^"\\]|\\.)*","correlationId":"[^"]+","timeoutMs":\d+,"traceparent":"00-`+root.SpanContext().TraceID().String()+`-[0-9a-f]{16}-01"\}\]\}$`, req)
	var corr string
	require.NoError(t, json.Unmarshal(frame.Arguments[0]["correlationId"], &corr))
	peer.write(`{"type":1,"target":"ResponseMessage","arguments":[{"type":"` + name[Pong]() + `","payload":"{}","correlationId":"` + corr + `"}]}`)
	require.NoError(t, <-sent)
}
