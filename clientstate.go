package communication

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// DefaultRetention is how long a ClientState keeps a disconnected client.
const DefaultRetention = 24 * time.Hour

// ClientState is the server's client-state service (the .NET original's
// ClientStateServiceBase<T>): it keeps a record per client in a
// ClientRepository, with the application's own data of type T beside the
// bookkeeping. The application decides how its data is built on connect
// (WithBuild) and how it changes on disconnect (WithBuildDisconnect); the
// service does the rest: connected flag, times, reconnects of the same
// instance, retention of disconnected clients, events.
//
// Hand it to the server with WithClientState. It is safe for concurrent use.
type ClientState[T any] struct {
	repo            ClientRepository[T]
	build           func(ctx context.Context, rec ClientRecord, previous *ClientEntry[T]) (T, error)
	buildDisconnect func(ctx context.Context, c ClientEntry[T]) (T, error)
	onConnect       func(ctx context.Context, c ClientEntry[T])
	onDisconnect    func(ctx context.Context, c ClientEntry[T])
	retention       time.Duration
	log             *slog.Logger

	mu        sync.Mutex // orders the transitions of the clients
	lastPrune time.Time
}

// ClientStateOption configures a ClientState.
type ClientStateOption[T any] func(*ClientState[T])

// WithRepository sets where clients are stored. Default: a
// MemoryRepository.
func WithRepository[T any](r ClientRepository[T]) ClientStateOption[T] {
	return func(s *ClientState[T]) { s.repo = r }
}

// WithBuild sets how the application's data is built when a client
// connects; previous is the stored client of the same instance, if any.
// Default: previous data, or the zero T.
func WithBuild[T any](f func(ctx context.Context, rec ClientRecord, previous *ClientEntry[T]) (T, error)) ClientStateOption[T] {
	return func(s *ClientState[T]) { s.build = f }
}

// WithBuildDisconnect sets how the application's data changes when a
// client disconnects (the bookkeeping is already updated in c). Default:
// unchanged.
func WithBuildDisconnect[T any](f func(ctx context.Context, c ClientEntry[T]) (T, error)) ClientStateOption[T] {
	return func(s *ClientState[T]) { s.buildDisconnect = f }
}

// OnClientConnected sets a function called once per connection, after its
// record is stored. Default: none.
func OnClientConnected[T any](f func(ctx context.Context, c ClientEntry[T])) ClientStateOption[T] {
	return func(s *ClientState[T]) { s.onConnect = f }
}

// OnClientDisconnected sets a function called once per connection that
// ends, after its record is updated. Default: none.
func OnClientDisconnected[T any](f func(ctx context.Context, c ClientEntry[T])) ClientStateOption[T] {
	return func(s *ClientState[T]) { s.onDisconnect = f }
}

// WithRetention sets how long disconnected clients are kept (connected
// flag off, disconnect time set); 0 removes a client when it disconnects.
// Default: DefaultRetention (24h).
func WithRetention[T any](d time.Duration) ClientStateOption[T] {
	return func(s *ClientState[T]) { s.retention = d }
}

// NewClientState returns a client-state service.
func NewClientState[T any](opts ...ClientStateOption[T]) *ClientState[T] {
	s := &ClientState[T]{retention: DefaultRetention, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	if s.repo == nil {
		s.repo = NewMemoryRepository[T]()
	}
	return s
}

// GetAll returns every known client, connected or kept after disconnect.
func (s *ClientState[T]) GetAll(ctx context.Context) ([]ClientEntry[T], error) {
	return s.repo.GetAll(ctx)
}

// GetByConnectionID returns the client on connection id.
func (s *ClientState[T]) GetByConnectionID(ctx context.Context, id string) (ClientEntry[T], bool, error) {
	return s.repo.GetByConnectionID(ctx, id)
}

// GetByInstance returns the client with the given instance id.
func (s *ClientState[T]) GetByInstance(ctx context.Context, instance string) (ClientEntry[T], bool, error) {
	return s.repo.GetByKey(ctx, instance)
}

// Sender returns the record of the client whose message a handler is
// handling.
func (s *ClientState[T]) Sender(ctx context.Context) (ClientEntry[T], bool, error) {
	snd, ok := SenderFrom(ctx)
	if !ok {
		return ClientEntry[T]{}, false, nil
	}
	return s.repo.GetByConnectionID(ctx, snd.ConnectionID)
}

// clientTracker is what the Server needs of a ClientState, whatever its T.
type clientTracker interface {
	connect(ctx context.Context, rec ClientRecord)
	disconnect(ctx context.Context, rec ClientRecord)
	records(ctx context.Context) ([]ClientRecord, error)
	record(ctx context.Context, connectionID string) (ClientRecord, bool, error)
	setLogger(*slog.Logger)
}

func (s *ClientState[T]) setLogger(l *slog.Logger) { s.log = l }

func (s *ClientState[T]) connect(ctx context.Context, rec ClientRecord) {
	s.mu.Lock()
	var previous *ClientEntry[T]
	if old, ok, err := s.repo.GetByKey(ctx, rec.Key()); err != nil {
		s.log.Warn("communication: client repository failed", "op", "get", "error", err)
	} else if ok {
		previous = &old
	}
	c := ClientEntry[T]{ClientRecord: rec}
	switch {
	case s.build != nil:
		data, err := s.callBuild(ctx, rec, previous)
		if err != nil {
			s.log.Warn("communication: building the client record failed", "connection", rec.ConnectionID, "error", err)
		}
		c.Data = data
	case previous != nil:
		c.Data = previous.Data
	}
	if err := s.repo.Upsert(ctx, c); err != nil {
		s.log.Warn("communication: client repository failed", "op", "upsert", "connection", rec.ConnectionID, "error", err)
	}
	s.mu.Unlock()
	s.event(ctx, s.onConnect, c)
}

func (s *ClientState[T]) disconnect(ctx context.Context, rec ClientRecord) {
	s.mu.Lock()
	c, ok, err := s.repo.GetByKey(ctx, rec.Key())
	if err != nil {
		s.mu.Unlock()
		s.log.Warn("communication: client repository failed", "op", "get", "error", err)
		return
	}
	if !ok || c.ConnectionID != rec.ConnectionID {
		// A newer connection of the same instance owns the record (the
		// client reconnected before this end was noticed): leave it, but
		// tell the application this connection ended.
		s.mu.Unlock()
		gone := ClientEntry[T]{ClientRecord: rec, Data: c.Data}
		s.event(ctx, s.onDisconnect, gone)
		return
	}
	c.IsConnected = false
	c.DisconnectTime = rec.DisconnectTime
	if s.buildDisconnect != nil {
		data, err := s.callBuildDisconnect(ctx, c)
		if err != nil {
			s.log.Warn("communication: updating the client record failed", "connection", rec.ConnectionID, "error", err)
		} else {
			c.Data = data
		}
	}
	if s.retention == 0 {
		err = s.repo.Delete(ctx, c.Key())
	} else {
		err = s.repo.Upsert(ctx, c)
	}
	if err != nil {
		s.log.Warn("communication: client repository failed", "op", "disconnect", "connection", rec.ConnectionID, "error", err)
	}
	s.prune(ctx, rec.DisconnectTime)
	s.mu.Unlock()
	s.event(ctx, s.onDisconnect, c)
}

// prune removes clients disconnected longer than the retention, at most
// once per tenth of it.
func (s *ClientState[T]) prune(ctx context.Context, now time.Time) {
	if s.retention <= 0 || now.Sub(s.lastPrune) < s.retention/10 {
		return
	}
	s.lastPrune = now
	all, err := s.repo.GetAll(ctx)
	if err != nil {
		return
	}
	for _, c := range all {
		if !c.IsConnected && !c.DisconnectTime.IsZero() && now.Sub(c.DisconnectTime) > s.retention {
			_ = s.repo.Delete(ctx, c.Key())
		}
	}
}

func (s *ClientState[T]) callBuild(ctx context.Context, rec ClientRecord, prev *ClientEntry[T]) (data T, err error) {
	defer s.recover("build", &err)
	return s.build(ctx, rec, prev)
}

func (s *ClientState[T]) callBuildDisconnect(ctx context.Context, c ClientEntry[T]) (data T, err error) {
	defer s.recover("build disconnect", &err)
	return s.buildDisconnect(ctx, c)
}

func (s *ClientState[T]) event(ctx context.Context, f func(context.Context, ClientEntry[T]), c ClientEntry[T]) {
	if f == nil {
		return
	}
	var err error
	defer s.recover("event", &err)
	f(ctx, c)
}

// recover keeps an application callback's panic from reaching the
// connection's loop.
func (s *ClientState[T]) recover(where string, err *error) {
	if v := recover(); v != nil {
		s.log.Error("communication: client-state callback panicked", "where", where, "panic", v, "stack", string(debug.Stack()))
		if err != nil {
			*err = errPanicked
		}
	}
}

func (s *ClientState[T]) records(ctx context.Context) ([]ClientRecord, error) {
	all, err := s.repo.GetAll(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ClientRecord, len(all))
	for i, c := range all {
		out[i] = c.ClientRecord
	}
	return out, nil
}

func (s *ClientState[T]) record(ctx context.Context, id string) (ClientRecord, bool, error) {
	c, ok, err := s.repo.GetByConnectionID(ctx, id)
	return c.ClientRecord, ok, err
}

// WithClientState sets the server's client-state service. Default: a
// ClientState with no application data and a MemoryRepository.
func WithClientState[T any](s *ClientState[T]) ServerOption {
	return serverOption(func(c *serverConfig) { c.state = s })
}
