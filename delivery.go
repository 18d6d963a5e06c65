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
	// toAll sends to every connection without waiting on any of them.
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
	for _, sc := range conns {
		// Never wait on one client: a full queue is a slow consumer.
		err := sc.peer.out.TrySend(target, &w)
		if errors.Is(err, transport.ErrQueueFull) {
			d.s.log.Warn("communication: client dropped", "connection", sc.id, "reason", "slow consumer: send queue full")
			if sc.conn != nil {
				sc.conn.Close(fmt.Errorf("%w: send queue full", ErrSlowConsumer))
			}
		}
	}
	return nil
}
