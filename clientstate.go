package communication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tharga/communication-go/internal/recovery"
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
//
// # Ordering
//
// Work is ordered per client, by ClientRecord.Key (the instance, or the
// connection id of a client without one), never across clients: connects
// of different clients run in parallel, so a slow WithBuild holds up only
// its own client. The transitions of one key (a connect, a disconnect, a
// reconnect of the same instance on a new connection racing the end of the
// old one) run one at a time, in the order the server reports them.
//
// WithBuild and WithBuildDisconnect run on the server's goroutine for the
// connection, under its key; the server goes on serving a new connection
// only once its record is stored, so a handler of the connection finds it.
//
// The functions of WithConnectHandler and WithDisconnectHandler run on a
// goroutine of their own, after the transition is stored, so that the
// connection keeps being served meanwhile: the connect handler may Send or
// Post to the new client and wait for its answer. The events of one key
// run one at a time, in the order of their transitions: a connection's
// disconnect event never starts before its connect event ended. Events of
// different keys run in parallel. A message from a new client may be
// handled before or while its connect handler runs.
//
// A callback that panics is recovered and logged.
type ClientState[T any] struct {
	repo            ClientRepository[T]
	build           func(ctx context.Context, rec ClientRecord, previous *ClientEntry[T]) (T, error)
	buildDisconnect func(ctx context.Context, c ClientEntry[T]) (T, error)
	onConnect       func(ctx context.Context, c ClientEntry[T])
	onDisconnect    func(ctx context.Context, c ClientEntry[T])
	retention       time.Duration
	log             *slog.Logger

	keys keyLocks // orders the transitions and events of each client

	// pruning lets one prune run at a time; lastPrune belongs to it.
	pruning   atomic.Bool
	lastPrune time.Time
}

// ClientStateOption configures a ClientState. Options that carry the
// application's data (WithBuild, WithBuildDisconnect, WithRepository,
// WithConnectHandler, WithDisconnectHandler) take their T from their
// argument and are for a ClientState[T] of that T: NewClientState reports
// one given to a ClientState of another type. The others (WithRetention)
// fit any ClientState.
type ClientStateOption interface {
	applyClientState(target any) error
}

// stateOption is an option that carries T.
type stateOption[T any] struct {
	name  string
	apply func(*ClientState[T])
}

func (o stateOption[T]) applyClientState(target any) error {
	s, ok := target.(*ClientState[T])
	if !ok {
		return fmt.Errorf("%s is for a ClientState[%v], not a %T", o.name, reflect.TypeFor[T](), target)
	}
	o.apply(s)
	return nil
}

// WithRepository sets where clients are stored. Default: a
// MemoryRepository.
func WithRepository[T any](r ClientRepository[T]) ClientStateOption {
	return stateOption[T]{"WithRepository", func(s *ClientState[T]) { s.repo = r }}
}

// WithBuild sets how the application's data is built when a client
// connects; previous is the stored client of the same instance, if any.
// Default: previous data, or the zero T.
func WithBuild[T any](f func(ctx context.Context, rec ClientRecord, previous *ClientEntry[T]) (T, error)) ClientStateOption {
	return stateOption[T]{"WithBuild", func(s *ClientState[T]) { s.build = f }}
}

// WithBuildDisconnect sets how the application's data changes when a
// client disconnects (the bookkeeping is already updated in c). Default:
// unchanged.
func WithBuildDisconnect[T any](f func(ctx context.Context, c ClientEntry[T]) (T, error)) ClientStateOption {
	return stateOption[T]{"WithBuildDisconnect", func(s *ClientState[T]) { s.buildDisconnect = f }}
}

// WithConnectHandler sets a function called once per connection, after its
// record is stored. It runs on a goroutine of its own, after the earlier
// events of the same client and before its later ones (see [ClientState]),
// while the connection is already serving: it may Send or Post to the new
// client and wait for the answer. Its context has as much time as the
// connect had left (the server gives a connect its handshake timeout),
// counted from when the event starts, and is cancelled if the server's
// Shutdown gives up waiting for events. Default: none.
func WithConnectHandler[T any](f func(ctx context.Context, c ClientEntry[T])) ClientStateOption {
	return stateOption[T]{"WithConnectHandler", func(s *ClientState[T]) { s.onConnect = f }}
}

// WithDisconnectHandler sets a function called once per connection that
// ends, after its record is updated, even when a newer connection of the
// same instance already took the record. Like the connect handler it runs
// on a goroutine of its own, after the connection's connect event ended.
// Default: none.
func WithDisconnectHandler[T any](f func(ctx context.Context, c ClientEntry[T])) ClientStateOption {
	return stateOption[T]{"WithDisconnectHandler", func(s *ClientState[T]) { s.onDisconnect = f }}
}

// retentionOption is WithRetention: it fits a ClientState of any T.
type retentionOption time.Duration

func (o retentionOption) applyClientState(target any) error {
	target.(interface{ setRetention(time.Duration) }).setRetention(time.Duration(o))
	return nil
}

// WithRetention sets how long disconnected clients are kept (connected
// flag off, disconnect time set); 0 removes a client when it disconnects.
// It must not be negative. Default: DefaultRetention (24h).
func WithRetention(d time.Duration) ClientStateOption { return retentionOption(d) }

func (s *ClientState[T]) setRetention(d time.Duration) { s.retention = d }

// NewClientState returns a client-state service keeping data of type T. It
// reports every option that does not fit: one for a ClientState of another
// type, a negative retention.
func NewClientState[T any](opts ...ClientStateOption) (*ClientState[T], error) {
	s := &ClientState[T]{retention: DefaultRetention, log: slog.New(slog.DiscardHandler), keys: newKeyLocks()}
	var errs []error
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyClientState(s); err != nil {
			errs = append(errs, err)
		}
	}
	if s.retention < 0 {
		errs = append(errs, fmt.Errorf("retention must not be negative, got %v", s.retention))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("communication: invalid client state options: %w", err)
	}
	if s.repo == nil {
		s.repo = NewMemoryRepository[T]()
	}
	return s, nil
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
	// dataType is the T of the ClientState.
	dataType() reflect.Type
	// reassert stores the record of a live connection again where the
	// repository lost it or took it for gone (a Redis restart, a node
	// taken for dead during a partition). It fires no event.
	reassert(ctx context.Context, rec ClientRecord)
	// wait returns once every event queued so far has run, or when ctx
	// ends: then the events still running or queued see their context
	// cancelled, and wait returns ctx's error.
	wait(ctx context.Context) error
}

func (s *ClientState[T]) setLogger(l *slog.Logger) { s.log = l }

func (s *ClientState[T]) wait(ctx context.Context) error { return s.keys.wait(ctx) }

// connect stores the record of a new connection and queues its connect
// event. The record is stored when connect returns; the event may not have
// run yet.
func (s *ClientState[T]) connect(ctx context.Context, rec ClientRecord) {
	key := rec.Key()
	k := s.keys.lock(key)
	defer s.keys.unlock(k)
	var previous *ClientEntry[T]
	if old, ok, err := s.repo.GetByKey(ctx, key); err != nil {
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
	// Queued while the key is held, so that the next transition's event
	// comes after this one.
	s.queueEvent(ctx, k, s.onConnect, c)
}

func (s *ClientState[T]) reassert(ctx context.Context, rec ClientRecord) {
	key := rec.Key()
	k := s.keys.lock(key)
	defer s.keys.unlock(k)
	old, ok, err := s.repo.GetByKey(ctx, key)
	if err != nil {
		s.log.Warn("communication: client repository failed", "op", "get", "error", err)
		return
	}
	switch {
	case ok && old.ConnectionID == rec.ConnectionID && old.IsConnected:
		return // as it should be
	case ok && old.ConnectionID != rec.ConnectionID && old.ConnectTime.After(rec.ConnectTime):
		return // a newer connection of the client holds the record
	}
	c := ClientEntry[T]{ClientRecord: rec}
	if ok {
		c.Data = old.Data
	}
	if err := s.repo.Upsert(ctx, c); err != nil {
		s.log.Warn("communication: client repository failed", "op", "upsert", "connection", rec.ConnectionID, "error", err)
	}
}

// disconnect updates the record of a connection that ended and queues its
// disconnect event.
func (s *ClientState[T]) disconnect(ctx context.Context, rec ClientRecord) {
	k := s.keys.lock(rec.Key())
	c := s.disconnected(ctx, rec)
	s.queueEvent(ctx, k, s.onDisconnect, c)
	s.keys.unlock(k)
	s.prune(ctx, rec.DisconnectTime)
}

// disconnected is disconnect's repository work, with the key held; it
// returns what the disconnect event reports.
func (s *ClientState[T]) disconnected(ctx context.Context, rec ClientRecord) ClientEntry[T] {
	c, ok, err := s.repo.GetByKey(ctx, rec.Key())
	if err != nil {
		// The connection ended all the same: the application hears of it.
		s.log.Warn("communication: client repository failed", "op", "get", "error", err)
		return ClientEntry[T]{ClientRecord: rec}
	}
	if !ok || c.ConnectionID != rec.ConnectionID {
		// A newer connection of the same instance owns the record (the
		// client reconnected before this end was noticed): leave it, but
		// tell the application this connection ended.
		return ClientEntry[T]{ClientRecord: rec, Data: c.Data}
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
	return c
}

// prune removes clients disconnected longer than the retention, at most
// once per tenth of it. It holds no lock while it reads the repository,
// so connects go on meanwhile, and only one prune runs at a time; each
// removal takes its client's key and checks again, so that a client that
// reconnected since the read keeps its record.
func (s *ClientState[T]) prune(ctx context.Context, now time.Time) {
	if s.retention <= 0 || !s.pruning.CompareAndSwap(false, true) {
		return
	}
	defer s.pruning.Store(false)
	if now.Sub(s.lastPrune) < s.retention/10 {
		return
	}
	s.lastPrune = now
	all, err := s.repo.GetAll(ctx)
	if err != nil {
		s.log.Warn("communication: client repository failed", "op", "prune", "error", err)
		return
	}
	for _, c := range all {
		if s.expired(c, now) {
			s.pruneKey(ctx, c.Key(), now)
		}
	}
}

func (s *ClientState[T]) pruneKey(ctx context.Context, key string, now time.Time) {
	k := s.keys.lock(key)
	defer s.keys.unlock(k)
	c, ok, err := s.repo.GetByKey(ctx, key)
	if err == nil && ok && s.expired(c, now) {
		err = s.repo.Delete(ctx, key)
	}
	if err != nil {
		s.log.Warn("communication: client repository failed", "op", "prune", "error", err)
	}
}

func (s *ClientState[T]) expired(c ClientEntry[T], now time.Time) bool {
	return !c.IsConnected && !c.DisconnectTime.IsZero() && now.Sub(c.DisconnectTime) > s.retention
}

func (s *ClientState[T]) callBuild(ctx context.Context, rec ClientRecord, prev *ClientEntry[T]) (data T, err error) {
	defer recovery.Log(s.log, msgCallbackPanicked, func() []any { err = errPanicked; return []any{"where", "build"} })
	return s.build(ctx, rec, prev)
}

func (s *ClientState[T]) callBuildDisconnect(ctx context.Context, c ClientEntry[T]) (data T, err error) {
	defer recovery.Log(s.log, msgCallbackPanicked, func() []any { err = errPanicked; return []any{"where", "build disconnect"} })
	return s.buildDisconnect(ctx, c)
}

// queueEvent queues f(c) behind the earlier events of k's client. The
// transition's context is over by the time the event runs: the event gets
// its values and as much time as it had left, counted from when the event
// starts, and is cancelled if wait gives up.
func (s *ClientState[T]) queueEvent(ctx context.Context, k *keyLock, f func(context.Context, ClientEntry[T]), c ClientEntry[T]) {
	if f == nil {
		return
	}
	base := context.WithoutCancel(ctx)
	budget, timed := time.Duration(0), false
	if d, ok := ctx.Deadline(); ok {
		budget, timed = time.Until(d), true
	}
	s.keys.queue(k, func(stop context.Context) {
		ectx, cancel := context.WithCancel(base)
		defer cancel()
		defer context.AfterFunc(stop, cancel)()
		if timed {
			var cancelTimeout context.CancelFunc
			ectx, cancelTimeout = context.WithTimeout(ectx, budget)
			defer cancelTimeout()
		}
		s.event(ectx, f, c)
	})
}

func (s *ClientState[T]) event(ctx context.Context, f func(context.Context, ClientEntry[T]), c ClientEntry[T]) {
	defer recovery.Log(s.log, msgCallbackPanicked, func() []any { return []any{"where", "event"} })
	f(ctx, c)
}

// msgCallbackPanicked is logged when a callback panics: the panic does not
// reach the connection's loop or an event goroutine.
const msgCallbackPanicked = "communication: client-state callback panicked"

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
	return serverOption(func(c *serverConfig) {
		if s == nil {
			c.invalid = append(c.invalid, errors.New("WithClientState: the client state is nil"))
			return
		}
		c.state = s
	})
}

// Lookup returns the client on connection connectionID with the
// application's data of type T, from the server's ClientState[T]
// (WithClientState), so that a handler needs no reference to it. It is an
// error when the server keeps another type (a server without
// WithClientState keeps struct{}). With a Backplane it finds the clients of
// other nodes where the repository is shared (the redis module's).
func Lookup[T any](ctx context.Context, srv *Server, connectionID string) (ClientEntry[T], bool, error) {
	s, err := stateOf[T](srv)
	if err != nil {
		return ClientEntry[T]{}, false, err
	}
	return s.GetByConnectionID(ctx, connectionID)
}

// LookupInstance returns the client with the given instance
// (X-Client-Instance), as Lookup does.
func LookupInstance[T any](ctx context.Context, srv *Server, instance string) (ClientEntry[T], bool, error) {
	s, err := stateOf[T](srv)
	if err != nil {
		return ClientEntry[T]{}, false, err
	}
	return s.GetByInstance(ctx, instance)
}

// stateOf returns the server's ClientState, if it keeps data of type T.
func stateOf[T any](srv *Server) (*ClientState[T], error) {
	s, ok := srv.cfg.state.(*ClientState[T])
	if !ok {
		return nil, fmt.Errorf("communication: the server's client state keeps %v, not %v (see WithClientState)",
			srv.cfg.state.dataType(), reflect.TypeFor[T]())
	}
	return s, nil
}

func (s *ClientState[T]) dataType() reflect.Type { return reflect.TypeFor[T]() }

// keyLocks orders work per client key. A key's entry lives while a
// transition holds or waits for it or events of the key are queued, and is
// removed after: the map holds the clients that are changing, not the
// fleet.
type keyLocks struct {
	mu   sync.Mutex
	keys map[string]*keyLock
	// busy counts the event goroutines; idle is closed when it drops to
	// zero. stop is the context given to events queued from now on;
	// wait cancels it when it gives up.
	busy       int
	idle       chan struct{}
	stop       context.Context
	cancelStop context.CancelFunc
}

// keyLock is one key's entry in keyLocks.
type keyLock struct {
	key  string
	mu   sync.Mutex // held by the key's transition under way
	refs int        // transitions holding or awaiting mu, plus a running event goroutine
	// events waits to run on the key's event goroutine, which runs
	// while running is set.
	events  []queuedEvent
	running bool
}

type queuedEvent struct {
	run  func(stop context.Context)
	stop context.Context
}

func newKeyLocks() keyLocks {
	stop, cancel := context.WithCancel(context.Background())
	return keyLocks{keys: make(map[string]*keyLock), stop: stop, cancelStop: cancel}
}

// lock returns key's entry, held.
func (l *keyLocks) lock(key string) *keyLock {
	l.mu.Lock()
	k := l.keys[key]
	if k == nil {
		k = &keyLock{key: key}
		l.keys[key] = k
	}
	k.refs++
	l.mu.Unlock()
	k.mu.Lock()
	return k
}

// unlock releases what lock returned.
func (l *keyLocks) unlock(k *keyLock) {
	k.mu.Unlock()
	l.mu.Lock()
	l.release(k)
	l.mu.Unlock()
}

// release drops a reference to k; l.mu is held.
func (l *keyLocks) release(k *keyLock) {
	k.refs--
	if k.refs == 0 {
		delete(l.keys, k.key)
	}
}

// queue adds run to k's events; k is held, so events are queued in the
// order of the key's transitions. A goroutine runs the key's events while
// there are any, one at a time, and ends when none are left.
func (l *keyLocks) queue(k *keyLock, run func(stop context.Context)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k.events = append(k.events, queuedEvent{run: run, stop: l.stop})
	if k.running {
		return
	}
	k.running = true
	k.refs++
	if l.busy == 0 {
		l.idle = make(chan struct{})
	}
	l.busy++
	go l.runEvents(k)
}

func (l *keyLocks) runEvents(k *keyLock) {
	for {
		l.mu.Lock()
		if len(k.events) == 0 {
			k.running = false
			k.events = nil
			l.release(k)
			l.busy--
			if l.busy == 0 {
				close(l.idle)
			}
			l.mu.Unlock()
			return
		}
		e := k.events[0]
		k.events[0] = queuedEvent{}
		k.events = k.events[1:]
		l.mu.Unlock()
		e.run(e.stop)
	}
}

// wait returns once no event is queued or running, or when ctx ends: then
// it cancels the context of the events queued so far, running or not, and
// returns ctx's error without waiting for them.
func (l *keyLocks) wait(ctx context.Context) error {
	l.mu.Lock()
	if l.busy == 0 {
		l.mu.Unlock()
		return nil
	}
	idle := l.idle
	l.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	l.cancelStop()
	// Events queued after this wait are not born cancelled.
	l.stop, l.cancelStop = context.WithCancel(context.Background())
	l.mu.Unlock()
	return ctx.Err()
}
