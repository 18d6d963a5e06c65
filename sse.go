package communication

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/philippseith/signalr"

	"github.com/tharga/communication-go/internal/pending"
	"github.com/tharga/communication-go/internal/transport"
	"github.com/tharga/communication-go/internal/wire"
)

// Server-sent events are served by philippseith: the event stream and the
// session are its own. Our layer reads the client's POSTs itself (the same
// interception as on a WebSocket, so the order of posts holds) and writes
// through philippseith's connection, one invocation at a time.

// sseConnected registers a server-sent-events session that philippseith
// accepted; hc's id is the negotiate token.
func (s *Server) sseConnected(hc signalr.HubConnection) *serverConn {
	token := hc.ConnectionID()
	n, ok := s.take(token)
	if !ok {
		n = negotiation{connID: token}
	}
	sc := &serverConn{id: n.connID, info: n.info, token: token}
	sink := &hubSink{hc: hc}
	table := pending.New(pending.AnyOrder, n.info.correlation, s.pendingEvents(n.connID))
	sc.peer = newPeer(s.ctx, sc.id, s.h, &s.cfg.common, sink, table)
	sc.ic = transport.NewInterceptor(transport.InterceptorConfig{
		Side:       transport.ServerSide,
		Protocol:   wire.JSON, // the only format over server-sent events
		Handshaken: true,
		MaxMessage: s.cfg.maxMessage,
		Inbound:    sc.peer,
		Refuse: func(id, msg string) {
			_ = hc.Completion(id, nil, msg)
		},
		Complete: func(id string) {
			_ = hc.Completion(id, nil, "")
		},
		Logger: s.log,
	})
	s.mu.Lock()
	s.sse[token] = sc
	s.conns[sc.id] = sc
	s.mu.Unlock()
	return sc
}

// ssePost reads a server-sent-events client's POST: the protocol messages
// go to the connection's peer, the session traffic (handshake, pings) on
// to philippseith.
func (s *Server) ssePost(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("id")
	s.mu.RLock()
	sc := s.sse[token]
	s.mu.RUnlock()
	if sc == nil {
		// The handshake, before the session exists.
		s.forward(w, r, innerPath)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.maxMessage)+64<<10))
	if err != nil {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}
	sc.icMu.Lock()
	pass, err := sc.ic.Feed(body, nil)
	sc.icMu.Unlock()
	if err != nil {
		s.log.Warn("communication: bad server-sent-events POST", "connection", sc.id, "error", err)
	}
	if len(pass) == 0 {
		w.WriteHeader(http.StatusOK)
		return
	}
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(pass))
	r2.ContentLength = int64(len(pass))
	s.forward(w, r2, innerPath)
}

// hubSink writes invocations through philippseith's connection, one at a
// time, so that they leave in call order and report their errors.
type hubSink struct {
	mu sync.Mutex
	hc signalr.HubConnection
}

func (h *hubSink) Send(ctx context.Context, target string, w *wire.Wrapper) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	arg := json.RawMessage(appendWrapperJSON(nil, w))
	return h.hc.SendInvocation("", target, []any{arg})
}

func (h *hubSink) TrySend(target string, w *wire.Wrapper) error {
	return h.Send(context.Background(), target, w)
}

// appendWrapperJSON appends w as the JSON wrapper object.
func appendWrapperJSON(dst []byte, w *wire.Wrapper) []byte {
	dst = append(dst, `{"type":`...)
	dst = wire.AppendJSONString(dst, w.Type)
	dst = append(dst, `,"payload":`...)
	dst = wire.AppendJSONStringBytes(dst, w.Payload)
	if w.CorrelationID != "" {
		dst = append(dst, `,"correlationId":`...)
		dst = wire.AppendJSONString(dst, w.CorrelationID)
	}
	if w.TimeoutMillis > 0 {
		dst = append(dst, `,"timeoutMs":`...)
		dst = strconv.AppendInt(dst, w.TimeoutMillis, 10)
	}
	return append(dst, '}')
}
