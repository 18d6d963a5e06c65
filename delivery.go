package communication

import (
	"context"
	"errors"
	"fmt"

	"github.com/tharga/communication-go/internal/transport"
	"github.com/tharga/communication-go/internal/wire"
)

// broadcastLocal sends an encoded post to every connection of this node
// but except (none when except is ""), as deliverLocal does.
func (s *Server) broadcastLocal(ctx context.Context, w *wire.Wrapper, except string) error {
	s.mu.RLock()
	conns := make([]*serverConn, 0, len(s.conns))
	for id, sc := range s.conns {
		if id != except {
			conns = append(conns, sc)
		}
	}
	s.mu.RUnlock()
	return s.deliverLocal(ctx, conns, w)
}

// deliverLocal sends an encoded post to connections of this node. It
// waits only on connections that drain, after the others are served, and
// drops those that do not: one stuck client neither holds the others nor
// grows the server's memory. It reports how many connections refused the
// message as too large.
func (s *Server) deliverLocal(ctx context.Context, conns []*serverConn, w *wire.Wrapper) error {
	// First pass: queue without waiting. A connection whose queue is full
	// is either slow for a moment (its writer moves: wait for room, after
	// everybody else is served) or not reading at all (its writer stalls:
	// drop it, rather than hold the broadcast or buffer without limit).
	var full []*serverConn
	tooLarge, sent := 0, 0
	defer func() { s.tel.messagesSent(ctx, sent, w.Type) }()
	for _, sc := range conns {
		switch err := sc.conn.TrySend(wire.TargetPost, w); {
		case err == nil:
			sent++
		case errors.Is(err, transport.ErrQueueFull):
			full = append(full, sc)
		case errors.Is(err, wire.ErrTooLarge):
			tooLarge++
		}
	}
	for _, sc := range full {
		if sc.conn.Stalled(s.cfg.writeTimeout / 2) {
			s.log.Warn("communication: client dropped", "connection", sc.id, "reason", "slow consumer: send queue full and not draining")
			sc.conn.Close(fmt.Errorf("%w: send queue full", ErrSlowConsumer))
			continue
		}
		err := sc.conn.Send(ctx, wire.TargetPost, w)
		if err == nil {
			sent++
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if tooLarge > 0 {
		return fmt.Errorf("%w: %d connections accept no message this large", ErrTooLarge, tooLarge)
	}
	return nil
}
