package communication_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

const (
	pingName = "MyApp.PingRequest, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
	pongName = "MyApp.PingResponse, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
	noteName = "MyApp.MyNotification, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
)

// dotNetServer is a server whose types carry the .NET names of PROTOCOL.md.
func dotNetServer(t *testing.T, notes chan<- Note) *testServer {
	ts := newServer(t)
	h := ts.Handlers()
	require.NoError(t, communication.HandleSend(h, communication.SendHandlerFunc[Ping, Pong](func(ctx context.Context, p Ping) (Pong, error) {
		return Pong{Reply: "Pong: " + p.Message}, nil
	}), communication.WithName(pingName), communication.WithResponseName(pongName)))
	require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[Note](func(ctx context.Context, n Note) error {
		notes <- n
		return nil
	}), communication.WithName(noteName)))
	return ts
}

// TestDotNetClientFrames plays a .NET Tharga client with the exact frames
// of PROTOCOL.md.
func TestDotNetClientFrames(t *testing.T) {
	t.Parallel()
	notes := make(chan Note, 1)
	ts := dotNetServer(t, notes)
	p := dialRaw(t, ts, http.Header{"X-Client-Instance": {"0f8fad5b-d9cb-469f-a165-70867728950e"}})

	// A post, with another assembly version: matched by full name.
	p.write(`{"type":1,"target":"PostMessage","arguments":[{"type":"MyApp.MyNotification, MyApp, Version=2.0.0.0, Culture=neutral, PublicKeyToken=null","payload":"{\"Text\":\"Hello from client\"}"}]}`)
	select {
	case n := <-notes:
		require.Equal(t, "Hello from client", n.Text)
	case <-time.After(10 * time.Second):
		t.Fatal("post not handled")
	}

	// A request: answered with ResponseMessage, the response's .NET name
	// and a PascalCase payload.
	p.write(`{"type":1,"target":"SendMessage","arguments":[{"type":"` + pingName + `","payload":"{\"Message\":\"Ping\"}"}]}`)
	f, w := p.nextFrame(10 * time.Second)
	require.Equal(t, 1, f.Type)
	require.Equal(t, "ResponseMessage", f.Target)
	require.Empty(t, f.InvocationID)
	require.Equal(t, pongName, w.Type)
	require.JSONEq(t, `{"Reply":"Pong: Ping"}`, w.Payload)

	// An unknown type: the .NET error form, in the request's type.
	p.write(`{"type":1,"target":"SendMessage","arguments":[{"type":"MyApp.Unknown, MyApp","payload":"{}"}]}`)
	f, w = p.nextFrame(10 * time.Second)
	require.Equal(t, "ResponseMessage", f.Target)
	require.Equal(t, "MyApp.Unknown, MyApp", w.Type)
	var e map[string]string
	require.NoError(t, json.Unmarshal([]byte(w.Payload), &e))
	require.Equal(t, "Cannot find handler for type 'MyApp.Unknown'.", e["Error"])

	// Our extension: the correlation id is echoed.
	p.write(`{"type":1,"target":"sendmessage","arguments":[{"Type":"` + pingName + `","Payload":"{\"Message\":\"x\"}","correlationId":"c-7"}]}`)
	_, w = p.nextFrame(10 * time.Second)
	require.Equal(t, "c-7", w.CorrelationID)
	require.JSONEq(t, `{"Reply":"Pong: x"}`, w.Payload)
}

// TestOnlyProtocolMethodsInvocable tries the methods a philippseith hub
// would expose: each is refused, and the connection goes on working.
func TestOnlyProtocolMethodsInvocable(t *testing.T) {
	t.Parallel()
	notes := make(chan Note, 1)
	ts := dotNetServer(t, notes)
	p := dialRaw(t, ts, nil)
	for i, call := range []string{
		`"target":"Abort","arguments":[]`,
		`"target":"Close","arguments":["bye",false]`,
		`"target":"OnDisconnected","arguments":["x"]`,
		`"target":"OnConnected","arguments":["x"]`,
		`"target":"Initialize","arguments":[null]`,
		`"target":"Clients","arguments":[]`,
		`"target":"Items","arguments":[]`,
		`"target":"ConnectionID","arguments":[]`,
		`"target":"Logger","arguments":[]`,
		`"target":"PostMessage","arguments":[]`,
	} {
		id := strings.Repeat("i", i+1)
		p.write(`{"type":1,"invocationId":"` + id + `",` + call + `}`)
		f, _ := p.nextFrame(10 * time.Second)
		require.Equal(t, 3, f.Type, call)
		require.Equal(t, id, f.InvocationID)
		require.NotEmpty(t, f.Error)
	}
	// Still connected and served.
	p.write(`{"type":1,"target":"SendMessage","arguments":[{"type":"` + pingName + `","payload":"{\"Message\":\"alive\"}"}]}`)
	_, w := p.nextFrame(10 * time.Second)
	require.JSONEq(t, `{"Reply":"Pong: alive"}`, w.Payload)
	require.Len(t, ts.ConnectionIDs(), 1)
}

// TestBadInputKeepsConnection sends malformed and oversized messages: each
// is answered or dropped, and the connection goes on.
func TestBadInputKeepsConnection(t *testing.T) {
	t.Parallel()
	notes := make(chan Note, 1)
	ts := dotNetServer(t, notes)
	p := dialRaw(t, ts, nil)
	p.write(`{"type":1,"target":"PostMessage","arguments":[{"payload":"{}"}]}`)            // no type
	p.write(`{"type":1,"target":"PostMessage","arguments":[{"type":"` + noteName + `"}]}`) // no payload
	p.write(`{"type":1,"target":"PostMessage","arguments":[{"type":"` + noteName + `","payload":"[1,2]"}]}`)
	p.write(`{not json at all`)
	p.write(`{"type":1,"target":"SendMessage","arguments":[{"type":"` + pingName + `","payload":"{\"Message\":` + strings.Repeat("x", 40<<10) + `\"}"}]}`)
	p.write(`{"type":1,"target":"SendMessage","arguments":[{"type":"` + pingName + `"}]}`)
	f, w := p.nextFrame(10 * time.Second)
	require.Equal(t, "ResponseMessage", f.Target)
	require.Contains(t, w.Payload, "Error")

	p.write(`{"type":1,"target":"SendMessage","arguments":[{"type":"` + pingName + `","payload":"{\"Message\":\"ok\"}"}]}`)
	_, w = p.nextFrame(10 * time.Second)
	require.JSONEq(t, `{"Reply":"Pong: ok"}`, w.Payload)
	select {
	case n := <-notes:
		t.Fatalf("a malformed post was handled: %+v", n)
	default:
	}
}
