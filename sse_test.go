package communication_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// ssePeer speaks the SignalR JSON protocol over server-sent events by hand.
type ssePeer struct {
	t      *testing.T
	post   string
	header http.Header
	frames chan []byte
}

func dialSSE(t *testing.T, ts *testServer, header http.Header) *ssePeer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	base := ts.URL + ts.Pattern()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/negotiate?negotiateVersion=1", nil)
	require.NoError(t, err)
	req.Header = header.Clone()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var nr struct{ ConnectionToken string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&nr))
	resp.Body.Close()

	req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"?id="+nr.ConnectionToken, nil)
	require.NoError(t, err)
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Accept", "text/event-stream")
	stream, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, stream.StatusCode)
	p := &ssePeer{t: t, post: base + "?id=" + nr.ConnectionToken, header: header, frames: make(chan []byte, 1000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stream.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "data: ") {
				continue
			}
			for _, rec := range bytes.Split([]byte(strings.TrimPrefix(line, "data: ")), []byte{0x1e}) {
				if len(rec) > 0 && string(rec) != `{"type":6}` {
					p.frames <- rec
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		stream.Body.Close()
		<-done
	})
	p.write(`{"protocol":"json","version":1}`)
	require.Equal(t, "{}", string(p.next()))
	return p
}

func (p *ssePeer) write(records ...string) {
	p.t.Helper()
	var body []byte
	for _, r := range records {
		body = append(append(body, r...), 0x1e)
	}
	req, err := http.NewRequest(http.MethodPost, p.post, bytes.NewReader(body))
	require.NoError(p.t, err)
	for k, v := range p.header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(p.t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(p.t, http.StatusOK, resp.StatusCode)
}

func (p *ssePeer) next() []byte {
	p.t.Helper()
	select {
	case f := <-p.frames:
		return f
	case <-time.After(10 * time.Second):
		p.t.Fatal("no server-sent event within 10s")
		return nil
	}
}

func TestServerSentEvents(t *testing.T) {
	t.Parallel()
	seen := make(chan int, 100)
	ts := newServer(t)
	require.NoError(t, communication.HandlePost(ts.Handlers(), communication.PostHandlerFunc[Seq](func(ctx context.Context, s Seq) error {
		seen <- s.N
		return nil
	}), communication.WithName("Seq")))
	require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Ping, Pong](func(ctx context.Context, p Ping) (Pong, error) {
		return Pong{Reply: "Pong: " + p.Message}, nil
	}), communication.WithName("Ping"), communication.WithResponseName("Pong")))
	p := dialSSE(t, ts, nil)

	// Posts in one POST and in several keep their order.
	var batch []string
	for i := range 20 {
		batch = append(batch, `{"type":1,"target":"PostMessage","arguments":[{"type":"Seq","payload":"{\"N\":`+strconv.Itoa(i)+`}"}]}`)
	}
	p.write(batch...)
	for i := 20; i < 30; i++ {
		p.write(`{"type":1,"target":"PostMessage","arguments":[{"type":"Seq","payload":"{\"N\":` + strconv.Itoa(i) + `}"}]}`)
	}
	for want := range 30 {
		require.Equal(t, want, <-seen)
	}

	p.write(`{"type":1,"target":"SendMessage","arguments":[{"type":"Ping","payload":"{\"Message\":\"sse\"}","correlationId":"9"}]}`)
	var f rawFrame
	require.NoError(t, json.Unmarshal(p.next(), &f))
	require.Equal(t, "ResponseMessage", f.Target)
	var w rawWrapper
	require.NoError(t, json.Unmarshal(f.Arguments[0], &w))
	require.Equal(t, "Pong", w.Type)
	require.Equal(t, "9", w.CorrelationID)
	require.JSONEq(t, `{"Reply":"Pong: sse"}`, w.Payload)

	// The server posts to the session; refused methods are answered.
	ids := ts.ConnectionIDs()
	require.Len(t, ids, 1)
	require.NoError(t, ts.Post(ctxT(t, 10*time.Second), ids[0], Note{Text: "to sse"}))
	require.NoError(t, json.Unmarshal(p.next(), &f))
	require.Equal(t, "PostMessage", f.Target)
	p.write(`{"type":1,"invocationId":"x","target":"Abort","arguments":[]}`)
	require.NoError(t, json.Unmarshal(p.next(), &f))
	require.Equal(t, 3, f.Type)
	require.Equal(t, "x", f.InvocationID)
	require.NotEmpty(t, f.Error)
}
