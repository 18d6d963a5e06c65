package communication

import (
	"cmp"
	"context"
	"reflect"
	"slices"
	"time"
)

// DefaultDiagnosticsLimit is how many clients, and how many pending
// requests, a Diagnostics snapshot lists at most by default.
const DefaultDiagnosticsLimit = 500

// Diagnostics is a snapshot of a Server for its operators: who is
// connected, what it handles, who subscribes and what waits. Lists are
// bounded (see Server.Diagnostics); the counts are not.
type Diagnostics struct {
	// Time is when the snapshot was taken (UTC).
	Time time.Time
	// Node is the Server's name in its cluster; "" without a Backplane.
	Node string
	// Clients are the known clients, connected ones first, newest first,
	// at most the snapshot's limit of them.
	Clients []ClientStatus
	// ClientCount is how many clients are known (connected, or kept after
	// they left); ConnectedCount how many of them are connected.
	ClientCount, ConnectedCount int
	// Subscriptions are the topics and keys with subscribers.
	Subscriptions []SubscriptionCount
	// Handlers are the message types the Server handles; Names the wire
	// names of the other types it knows (RegisterName, response types):
	// what it sends.
	Handlers []HandlerInfo
	Names    []TypeNameInfo
	// Pending are the requests the Server waits on, oldest first, at most
	// the snapshot's limit of them; PendingCount is how many there are.
	Pending      []PendingRequest
	PendingCount int
}

// ClientStatus is a client's record and, while it is connected to this
// node, the state of its connection.
type ClientStatus struct {
	ClientRecord
	// Transport is "web_sockets" or "server_sent_events" (the names of
	// the SignalR conventions); "" when the client is not connected to
	// this node.
	Transport string
	// Protocol is the hub protocol, "json" or "messagepack".
	Protocol string
	// QueueBytes is how many bytes wait to be written to the client.
	QueueBytes int
	// PendingRequests is how many requests to the client wait for an
	// answer.
	PendingRequests int
}

// HandlerInfo is one registered handler.
type HandlerInfo struct {
	// Type is the message type's wire name.
	Type string
	// GoType is the Go type it decodes into.
	GoType string
	// Kind is "post" for a PostHandler, "send" for a SendHandler.
	Kind string
}

// TypeNameInfo is the wire name of a Go type.
type TypeNameInfo struct {
	Type   string
	GoType string
}

// Diagnostics takes a snapshot of the server. It lists at most limit
// clients and limit pending requests (DefaultDiagnosticsLimit when limit
// is not positive), so that a fleet of thousands gives a bounded answer;
// the counts are whole. Client records come from the client state's
// repository, which ctx bounds.
func (s *Server) Diagnostics(ctx context.Context, limit int) (Diagnostics, error) {
	if limit <= 0 {
		limit = DefaultDiagnosticsLimit
	}
	d := Diagnostics{Time: time.Now().UTC(), Subscriptions: s.Subscriptions()}
	d.Handlers, d.Names = s.h.infos()
	if s.cluster != nil {
		d.Node = s.cluster.name
	}
	recs, err := s.Clients(ctx)
	if err != nil {
		return Diagnostics{}, err
	}
	d.ClientCount = len(recs)
	slices.SortFunc(recs, func(a, b ClientRecord) int {
		if a.IsConnected != b.IsConnected {
			if a.IsConnected {
				return -1
			}
			return 1
		}
		return cmp.Or(b.ConnectTime.Compare(a.ConnectTime), cmp.Compare(a.ConnectionID, b.ConnectionID))
	})
	for _, r := range recs {
		if r.IsConnected {
			d.ConnectedCount++
		}
	}
	d.Clients = make([]ClientStatus, 0, min(limit, len(recs)))
	for _, r := range recs[:min(limit, len(recs))] {
		cs := ClientStatus{ClientRecord: r}
		if sc := s.conn(r.ConnectionID); sc != nil {
			cs.Transport = transportNames[transportOf(sc.sse != nil)]
			cs.Protocol = sc.conn.Protocol().String()
			cs.QueueBytes = sc.conn.QueueBytes()
			cs.PendingRequests = len(sc.peer.pending.List())
		}
		d.Clients = append(d.Clients, cs)
	}
	pending := s.Pending()
	d.PendingCount = len(pending)
	slices.SortFunc(pending, func(a, b PendingRequest) int {
		return cmp.Or(a.Started.Compare(b.Started), cmp.Compare(a.CorrelationID, b.CorrelationID))
	})
	d.Pending = pending[:min(limit, len(pending))]
	return d, nil
}

// infos lists the handlers of h and the names of the types it knows
// without a handler, by wire name.
func (h *Handlers) infos() ([]HandlerInfo, []TypeNameInfo) {
	h.mu.RLock()
	handlers := make([]HandlerInfo, 0, len(h.byType))
	for t, e := range h.byType {
		hi := HandlerInfo{Type: e.name, GoType: goTypeName(t), Kind: "post"}
		if e.send != nil {
			hi.Kind = "send"
		}
		handlers = append(handlers, hi)
	}
	names := make([]TypeNameInfo, 0, len(h.names))
	for t, n := range h.names {
		if _, handled := h.byType[t]; !handled {
			names = append(names, TypeNameInfo{Type: n, GoType: goTypeName(t)})
		}
	}
	h.mu.RUnlock()
	slices.SortFunc(handlers, func(a, b HandlerInfo) int { return cmp.Compare(a.Type, b.Type) })
	slices.SortFunc(names, func(a, b TypeNameInfo) int { return cmp.Compare(a.Type, b.Type) })
	return handlers, names
}

func goTypeName(t reflect.Type) string {
	if t.Name() != "" && t.PkgPath() != "" {
		return t.PkgPath() + "." + t.Name()
	}
	return t.String()
}
