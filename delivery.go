package communication

import (
	"context"
	"errors"
	"fmt"

	"github.com/tharga/communication-go/internal/transport"
)

// delivery is the seam between the Server's API and its connections. The
// in-process implementation writes to the connections of this node; a
// multi-node backplane would implement it by publishing to the other nodes
// and delivering what they publish here, without touching handlers or the
// public API.
type delivery interface {
	// toConnection sends to one connection, in call order; it waits for
	// room in a full queue until ctx ends.
	toConnection(ctx context.Context, connectionID, target string, msg any) error
	// toAll sends to every connection; it waits only on connections that
	// drain, after the others are served, and drops those that do not.
	toAll(ctx context.Context, target string, msg any) error
}

// localDelivery delivers to the connections of this process.
type localDelivery struct{ s *Server }

func (d localDelivery) toConnection(ctx context.Context, id, target string, msg any) error {
	sc := d.s.conn(id)
	if sc == nil {
		return fmt.Errorf("%w: no connection %q", ErrNotConnected, id)
	}
	return sc.peer.post(ctx, msg)
}

func (d localDelivery) toAll(ctx context.Context, target string, msg any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.s.mu.RLock()
	conns := make([]*serverConn, 0, len(d.s.conns))
	for _, sc := range d.s.conns {
		conns = append(conns, sc)
	}
	d.s.mu.RUnlock()
	if len(conns) == 0 {
		return nil
	}
	// Encode once for everybody.
	w, err := conns[0].peer.wrap(msg)
	if err != nil {
		return err
	}
	// First pass: queue without waiting. A connection whose queue is full
	// is either slow for a moment (its writer moves: wait for room, after
	// everybody else is served) or not reading at all (its writer stalls:
	// drop it, rather than hold the broadcast or buffer without limit).
	var full []*serverConn
	for _, sc := range conns {
		if err := sc.peer.out.TrySend(target, &w); errors.Is(err, transport.ErrQueueFull) {
			full = append(full, sc)
		}
	}
	for _, sc := range full {
		if sc.conn != nil && sc.conn.Stalled(d.s.cfg.writeTimeout/2) {
			d.s.log.Warn("communication: client dropped", "connection", sc.id, "reason", "slow consumer: send queue full and not draining")
			sc.conn.Close(fmt.Errorf("%w: send queue full", ErrSlowConsumer))
			continue
		}
		if err := sc.peer.out.Send(ctx, target, &w); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}
