package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	communication "github.com/tharga/communication-go"
)

// Defaults of a Repository. Each option's doc names its default.
const (
	// DefaultRepositoryPrefix begins the name of every Redis key a
	// Repository uses.
	DefaultRepositoryPrefix = "tharga"
	// DefaultRepositoryBatchSize is how many clients GetAll asks Redis
	// for at a time.
	DefaultRepositoryBatchSize = 500
)

// RepositoryOption configures a Repository.
type RepositoryOption interface{ applyRepository(*repositoryConfig) }

type repositoryConfig struct {
	prefix string
	batch  int
}

type repositoryOption func(*repositoryConfig)

func (o repositoryOption) applyRepository(c *repositoryConfig) { o(c) }

// WithRepositoryPrefix sets what the Repository's Redis keys begin with.
// Servers that share clients must use the same prefix; different
// applications (or the same application with a different T) on one Redis
// must use different ones. It must not contain '{' or '}', which Redis
// Cluster reads as a hash tag. Default: DefaultRepositoryPrefix ("tharga").
func WithRepositoryPrefix(prefix string) RepositoryOption {
	return repositoryOption(func(c *repositoryConfig) { c.prefix = prefix })
}

// WithRepositoryBatchSize sets how many clients GetAll reads from Redis per
// round trip (the COUNT of HSCAN, which Redis treats as a hint). It bounds
// the size of each reply, not of GetAll's result. It must be positive.
// Default: DefaultRepositoryBatchSize (500).
func WithRepositoryBatchSize(n int) RepositoryOption {
	return repositoryOption(func(c *repositoryConfig) { c.batch = n })
}

// Repository is a [communication.ClientRepository] in Redis, shared by
// every server node that uses the same Redis and prefix: each node's
// GetAll sees the clients of all of them. Hand it to the client-state
// service with [communication.WithRepository].
//
// Clients are stored as JSON (so T must round-trip through encoding/json)
// in two Redis hashes, named after the prefix P:
//
//	{P:clients}:by-key         client key (ClientRecord.Key) -> JSON entry
//	{P:clients}:by-connection  connection id -> client key
//
// GetByKey and GetByConnectionID take one round trip each; Upsert and
// Delete run as Lua scripts, so the connection index always agrees with
// the entries, whatever other nodes do at the same time. The hash tag
// keeps both hashes in one slot of a Redis Cluster, where the scripts
// need them together.
//
// Nothing expires on its own: disconnected clients stay until the
// client-state service's retention prunes them.
//
// Every method gives up with the context's error once the context is done
// before it reaches Redis, while it waits for a connection of the pool and
// between retries. A command already sent waits for its answer up to the
// client's ReadTimeout, unless the client was made with
// ContextTimeoutEnabled, which bounds it by the context's deadline as well.
// A call that failed because the context ended may still have taken
// effect.
//
// It is safe for concurrent use. When Redis is down its methods return
// errors; they work again once the client has reconnected (go-redis,
// after failing to dial, tries Redis again about once a second).
type Repository[T any] struct {
	rdb     goredis.UniversalClient
	entries string // hash: client key -> JSON entry
	conns   string // hash: connection id -> client key
	batch   int
}

var _ communication.ClientRepository[struct{}] = (*Repository[struct{}])(nil)

// NewRepository returns a Repository that stores clients through client.
// It does not own client: closing it is the caller's. It panics if client
// is nil or an option is invalid.
func NewRepository[T any](client goredis.UniversalClient, opts ...RepositoryOption) *Repository[T] {
	cfg := repositoryConfig{prefix: DefaultRepositoryPrefix, batch: DefaultRepositoryBatchSize}
	for _, o := range opts {
		o.applyRepository(&cfg)
	}
	var errs []error
	if client == nil {
		errs = append(errs, errors.New("the Redis client is nil"))
	}
	if strings.ContainsAny(cfg.prefix, "{}") {
		errs = append(errs, fmt.Errorf("the key prefix %q contains '{' or '}'", cfg.prefix))
	}
	if cfg.batch <= 0 {
		errs = append(errs, fmt.Errorf("the batch size must be positive, got %d", cfg.batch))
	}
	if err := errors.Join(errs...); err != nil {
		panic("communication/redis: NewRepository: " + err.Error())
	}
	// The hash tag puts both hashes in one slot, so that the scripts may
	// touch both on a Redis Cluster.
	tag := "{" + cfg.prefix + ":clients}"
	return &Repository[T]{rdb: client, entries: tag + ":by-key", conns: tag + ":by-connection", batch: cfg.batch}
}

// storedClient is the JSON of a stored client. Its names are the storage
// format, fixed here rather than taken from the Go fields, so that nodes
// of different versions read each other's entries. repoUpsertScript and
// repoDeleteScript read connectionId.
type storedClient[T any] struct {
	Instance       string    `json:"instance,omitempty"`
	ConnectionID   string    `json:"connectionId"`
	Machine        string    `json:"machine,omitempty"`
	Type           string    `json:"type,omitempty"`
	Version        string    `json:"version,omitempty"`
	KeyID          string    `json:"keyId,omitempty"`
	KeyName        string    `json:"keyName,omitempty"`
	IsConnected    bool      `json:"isConnected"`
	ConnectTime    time.Time `json:"connectTime"`
	DisconnectTime time.Time `json:"disconnectTime,omitzero"`
	Data           T         `json:"data"`
}

func encodeStoredClient[T any](c communication.ClientEntry[T]) ([]byte, error) {
	return json.Marshal(storedClient[T]{
		Instance:       c.Instance,
		ConnectionID:   c.ConnectionID,
		Machine:        c.Machine,
		Type:           c.Type,
		Version:        c.Version,
		KeyID:          c.KeyID,
		KeyName:        c.KeyName,
		IsConnected:    c.IsConnected,
		ConnectTime:    c.ConnectTime,
		DisconnectTime: c.DisconnectTime,
		Data:           c.Data,
	})
}

func decodeStoredClient[T any](b []byte) (communication.ClientEntry[T], error) {
	var s storedClient[T]
	if err := json.Unmarshal(b, &s); err != nil {
		return communication.ClientEntry[T]{}, err
	}
	return communication.ClientEntry[T]{
		ClientRecord: communication.ClientRecord{
			Instance:       s.Instance,
			ConnectionID:   s.ConnectionID,
			Machine:        s.Machine,
			Type:           s.Type,
			Version:        s.Version,
			KeyID:          s.KeyID,
			KeyName:        s.KeyName,
			IsConnected:    s.IsConnected,
			ConnectTime:    s.ConnectTime,
			DisconnectTime: s.DisconnectTime,
		},
		Data: s.Data,
	}, nil
}

// repoOldConnection is the Lua that sets oc to the connection id of the entry
// stored under key, or to false. An entry it cannot read has none: it is
// overwritten or removed all the same.
const repoOldConnection = `
local oc = false
local old = redis.call('HGET', KEYS[1], key)
if old then
	local ok, dec = pcall(cjson.decode, old)
	if ok and type(dec) == 'table' and type(dec.connectionId) == 'string' and dec.connectionId ~= '' then
		oc = dec.connectionId
	end
end
`

// repoUpsertScript stores an entry and points its connection id at it,
// removing the index of the connection it replaces if that still points
// at this key. KEYS: entries, connections. ARGV: key, JSON, connection id.
var repoUpsertScript = goredis.NewScript(`
local key, entry, conn = ARGV[1], ARGV[2], ARGV[3]
` + repoOldConnection + `
if oc and oc ~= conn and redis.call('HGET', KEYS[2], oc) == key then
	redis.call('HDEL', KEYS[2], oc)
end
redis.call('HSET', KEYS[1], key, entry)
if conn ~= '' then
	redis.call('HSET', KEYS[2], conn, key)
end
return 1
`)

// repoDeleteScript removes an entry and its connection index, if that still
// points at this key. KEYS: entries, connections. ARGV: key.
var repoDeleteScript = goredis.NewScript(`
local key = ARGV[1]
` + repoOldConnection + `
if oc and redis.call('HGET', KEYS[2], oc) == key then
	redis.call('HDEL', KEYS[2], oc)
end
return redis.call('HDEL', KEYS[1], key)
`)

// repoByConnectionScript returns the entry a connection id points at, or nil.
// KEYS: entries, connections. ARGV: connection id.
var repoByConnectionScript = goredis.NewScript(`
local key = redis.call('HGET', KEYS[2], ARGV[1])
if not key then
	return false
end
return redis.call('HGET', KEYS[1], key)
`)

// repoError wraps an error of op; when the context is done it wraps the
// context's error too, so that errors.Is finds context.Canceled or
// context.DeadlineExceeded whatever go-redis reported.
func repoError(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("communication/redis: %s: %w: %w", op, cerr, err)
	}
	return fmt.Errorf("communication/redis: %s: %w", op, err)
}

// GetAll implements communication.ClientRepository: it returns the
// clients of every node, read in batches (see WithRepositoryBatchSize).
// A client stored or removed while it runs may or may not be in the
// result; every other client is in it once.
func (r *Repository[T]) GetAll(ctx context.Context) ([]communication.ClientEntry[T], error) {
	if err := ctx.Err(); err != nil {
		return nil, repoError(ctx, "get all", err)
	}
	var out []communication.ClientEntry[T]
	// HSCAN may return a field twice; seen keeps each client once.
	seen := make(map[string]struct{})
	var cursor uint64
	for {
		kv, next, err := r.rdb.HScan(ctx, r.entries, cursor, "", int64(r.batch)).Result()
		if err != nil {
			return nil, repoError(ctx, "get all", err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if _, dup := seen[kv[i]]; dup {
				continue
			}
			seen[kv[i]] = struct{}{}
			c, err := decodeStoredClient[T]([]byte(kv[i+1]))
			if err != nil {
				return nil, fmt.Errorf("communication/redis: get all: client %q: %w", kv[i], err)
			}
			out = append(out, c)
		}
		if next == 0 {
			return out, nil
		}
		cursor = next
		if err := ctx.Err(); err != nil {
			return nil, repoError(ctx, "get all", err)
		}
	}
}

// GetByConnectionID implements communication.ClientRepository in one
// round trip.
func (r *Repository[T]) GetByConnectionID(ctx context.Context, id string) (communication.ClientEntry[T], bool, error) {
	if err := ctx.Err(); err != nil {
		return communication.ClientEntry[T]{}, false, repoError(ctx, "get by connection id", err)
	}
	v, err := repoByConnectionScript.Run(ctx, r.rdb, []string{r.entries, r.conns}, id).Text()
	c, ok, err := r.found(ctx, "get by connection id", v, err)
	if ok && c.ConnectionID != id {
		// Only an index the scripts could not clear (beside an entry
		// they could not read) gets here; it is not this connection.
		return communication.ClientEntry[T]{}, false, nil
	}
	return c, ok, err
}

// GetByKey implements communication.ClientRepository in one round trip.
func (r *Repository[T]) GetByKey(ctx context.Context, key string) (communication.ClientEntry[T], bool, error) {
	if err := ctx.Err(); err != nil {
		return communication.ClientEntry[T]{}, false, repoError(ctx, "get by key", err)
	}
	v, err := r.rdb.HGet(ctx, r.entries, key).Result()
	return r.found(ctx, "get by key", v, err)
}

// found decodes what a lookup returned; redis.Nil is "not stored".
func (r *Repository[T]) found(ctx context.Context, op, v string, err error) (communication.ClientEntry[T], bool, error) {
	if errors.Is(err, goredis.Nil) {
		return communication.ClientEntry[T]{}, false, nil
	}
	if err != nil {
		return communication.ClientEntry[T]{}, false, repoError(ctx, op, err)
	}
	c, err := decodeStoredClient[T]([]byte(v))
	if err != nil {
		return communication.ClientEntry[T]{}, false, fmt.Errorf("communication/redis: %s: %w", op, err)
	}
	return c, true, nil
}

// Upsert implements communication.ClientRepository: in one atomic step it
// stores c under c.Key(), points c.ConnectionID at it and drops the index
// of the connection id it replaces.
func (r *Repository[T]) Upsert(ctx context.Context, c communication.ClientEntry[T]) error {
	if err := ctx.Err(); err != nil {
		return repoError(ctx, "upsert", err)
	}
	b, err := encodeStoredClient(c)
	if err != nil {
		return fmt.Errorf("communication/redis: upsert: %w", err)
	}
	if err := repoUpsertScript.Run(ctx, r.rdb, []string{r.entries, r.conns}, c.Key(), b, c.ConnectionID).Err(); err != nil {
		return repoError(ctx, "upsert", err)
	}
	return nil
}

// Delete implements communication.ClientRepository: in one atomic step it
// removes the client and its connection index. A missing key is no error.
func (r *Repository[T]) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return repoError(ctx, "delete", err)
	}
	if err := repoDeleteScript.Run(ctx, r.rdb, []string{r.entries, r.conns}, key).Err(); err != nil {
		return repoError(ctx, "delete", err)
	}
	return nil
}
