package communication

import (
	"time"

	"github.com/tharga/communication-go/internal/pending"
	"github.com/tharga/communication-go/internal/recovery"
)

// PendingRequest is a request the server sent to a client and still waits
// for (the .NET original's GetPendingAsync).
type PendingRequest struct {
	ConnectionID string
	// CorrelationID is the request's correlation id on its connection.
	CorrelationID string
	// Type is the request's wire type (full name).
	Type    string
	Started time.Time
}

// PendingEvent reports a request added to or removed from the pending
// requests (the .NET original's PendingRequestEvent).
type PendingEvent struct {
	PendingRequest
	// Added is true when the request was sent, false when it left:
	// answered, timed out, cancelled or failed with its connection.
	Added bool
}

// WithPendingHandler sets a function called on every PendingEvent. It runs
// on the path of the request: keep it short. Default: none.
func WithPendingHandler(f func(PendingEvent)) ServerOption {
	return serverOption(func(c *serverConfig) { c.onPending = f })
}

// Pending returns the requests the server waits on, over all connections.
func (s *Server) Pending() []PendingRequest {
	s.mu.RLock()
	peers := make([]*peer, 0, len(s.conns))
	for _, sc := range s.conns {
		peers = append(peers, sc.peer)
	}
	s.mu.RUnlock()
	var out []PendingRequest
	for _, p := range peers {
		for _, in := range p.pending.List() {
			out = append(out, PendingRequest{ConnectionID: p.id, CorrelationID: in.ID, Type: in.Type, Started: in.Started})
		}
	}
	return out
}

// pendingEvents returns the table callback that reports a connection's
// pending requests, or nil when nobody listens.
func (s *Server) pendingEvents(connID string) func(pending.Info, bool) {
	f := s.cfg.onPending
	if f == nil {
		return nil
	}
	return func(in pending.Info, added bool) {
		defer recovery.Log(s.log, "communication: pending handler panicked", nil)
		f(PendingEvent{
			PendingRequest: PendingRequest{ConnectionID: connID, CorrelationID: in.ID, Type: in.Type, Started: in.Started},
			Added:          added,
		})
	}
}
