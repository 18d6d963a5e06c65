package redis_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
	"github.com/tharga/communication-go/redis"
	"github.com/tharga/communication-go/redis/internal/redistest"
	"github.com/tharga/communication-go/repositorytest"
)

// repoData is the application's record in these tests.
type repoData struct {
	N    int
	Name string
	Tags []string
}

func repoDataOf(i int) repoData {
	return repoData{N: i, Name: fmt.Sprintf("client %d", i), Tags: []string{"a", fmt.Sprint(i)}}
}

// repoPrefixes gives each repository of a test run a prefix of its own.
var repoPrefixes atomic.Int64

func repoPrefix() string { return fmt.Sprintf("test%d", repoPrefixes.Add(1)) }

// repoClient returns a go-redis client of srv, closed when the test ends.
func repoClient(t *testing.T, srv *redistest.Server, opts ...func(*goredis.Options)) *goredis.Client {
	t.Helper()
	o := &goredis.Options{Addr: srv.Addr}
	for _, f := range opts {
		f(o)
	}
	c := goredis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func repoEntry(instance, conn string, i int) communication.ClientEntry[repoData] {
	return communication.ClientEntry[repoData]{
		ClientRecord: communication.ClientRecord{
			Instance:     instance,
			ConnectionID: conn,
			IsConnected:  true,
			ConnectTime:  time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		},
		Data: repoDataOf(i),
	}
}

func TestRepositoryConformance(t *testing.T) {
	client := repoClient(t, redistest.Start(t))
	repositorytest.Run(t, func(t *testing.T) communication.ClientRepository[repoData] {
		return redis.NewRepository[repoData](client, redis.WithRepositoryPrefix(repoPrefix()))
	}, repoDataOf)
}

// With a batch of one, GetAll takes many HSCAN round trips.
func TestRepositoryConformanceSmallBatches(t *testing.T) {
	client := repoClient(t, redistest.Start(t))
	repositorytest.Run(t, func(t *testing.T) communication.ClientRepository[repoData] {
		return redis.NewRepository[repoData](client, redis.WithRepositoryPrefix(repoPrefix()), redis.WithRepositoryBatchSize(1))
	}, repoDataOf)
}

func TestRepositoryDefaultPrefixAndKeyLayout(t *testing.T) {
	ctx := context.Background()
	client := repoClient(t, redistest.Start(t))
	r := redis.NewRepository[repoData](client)
	c := repoEntry("inst", "conn", 1)
	require.NoError(t, r.Upsert(ctx, c))

	keys, err := client.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"{tharga:clients}:by-key", "{tharga:clients}:by-connection"}, keys)
	conns, err := client.HGetAll(ctx, "{tharga:clients}:by-connection").Result()
	require.NoError(t, err)
	require.Equal(t, map[string]string{"conn": "inst"}, conns)
	entry, err := client.HGet(ctx, "{tharga:clients}:by-key", "inst").Result()
	require.NoError(t, err)
	require.JSONEq(t, `{"instance":"inst","connectionId":"conn","isConnected":true,
		"connectTime":"2026-01-02T03:04:05.000000006Z",
		"data":{"N":1,"Name":"client 1","Tags":["a","1"]}}`, entry)
}

// Every field of ClientRecord survives the trip through Redis: a field
// added to ClientRecord and not to the stored form fails here.
func TestRepositoryKeepsEveryField(t *testing.T) {
	ctx := context.Background()
	r := redis.NewRepository[repoData](repoClient(t, redistest.Start(t)), redis.WithRepositoryPrefix(repoPrefix()))
	var rec communication.ClientRecord
	v := reflect.ValueOf(&rec).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch f.Interface().(type) {
		case string:
			f.SetString("value of " + name)
		case bool:
			f.SetBool(true)
		case time.Time:
			f.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 1000+i, time.UTC)))
		default:
			t.Fatalf("ClientRecord.%s has a type this test does not fill: add it to the stored form and here", name)
		}
	}
	want := communication.ClientEntry[repoData]{ClientRecord: rec, Data: repoDataOf(7)}
	require.NoError(t, r.Upsert(ctx, want))
	got, ok, err := r.GetByKey(ctx, want.Key())
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, want, got)
	got, ok, err = r.GetByConnectionID(ctx, want.ConnectionID)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, want, got)
}

// Two nodes on one Redis see each other's clients; another prefix sees
// none of them.
func TestRepositoryNodesShareClients(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	prefix := repoPrefix()
	a := redis.NewRepository[repoData](repoClient(t, srv), redis.WithRepositoryPrefix(prefix))
	b := redis.NewRepository[repoData](repoClient(t, srv), redis.WithRepositoryPrefix(prefix))
	other := redis.NewRepository[repoData](repoClient(t, srv), redis.WithRepositoryPrefix(repoPrefix()))

	require.NoError(t, a.Upsert(ctx, repoEntry("on-a", "conn-a", 1)))
	require.NoError(t, b.Upsert(ctx, repoEntry("on-b", "conn-b", 2)))
	for _, r := range []*redis.Repository[repoData]{a, b} {
		all, err := r.GetAll(ctx)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"on-a", "on-b"}, repoKeys(all))
		got, ok, err := r.GetByConnectionID(ctx, "conn-a")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, repoDataOf(1), got.Data)
		got, ok, err = r.GetByKey(ctx, "on-b")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "conn-b", got.ConnectionID)
	}
	all, err := other.GetAll(ctx)
	require.NoError(t, err)
	require.Empty(t, all)

	require.NoError(t, b.Delete(ctx, "on-a"))
	_, ok, err := a.GetByConnectionID(ctx, "conn-a")
	require.NoError(t, err)
	require.False(t, ok)
	all, err = a.GetAll(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"on-b"}, repoKeys(all))
}

// A client that reconnects through another node: the newer connection id
// replaces the index, and the old one finds nothing.
func TestRepositoryReconnectOnAnotherNode(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	prefix := repoPrefix()
	admin := repoClient(t, srv)
	a := redis.NewRepository[repoData](repoClient(t, srv), redis.WithRepositoryPrefix(prefix))
	b := redis.NewRepository[repoData](repoClient(t, srv), redis.WithRepositoryPrefix(prefix))

	require.NoError(t, a.Upsert(ctx, repoEntry("inst", "old", 1)))
	require.NoError(t, b.Upsert(ctx, repoEntry("inst", "new", 2)))
	for _, r := range []*redis.Repository[repoData]{a, b} {
		_, ok, err := r.GetByConnectionID(ctx, "old")
		require.NoError(t, err)
		require.False(t, ok, "the old connection id still finds the client")
		got, ok, err := r.GetByConnectionID(ctx, "new")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, repoDataOf(2), got.Data)
	}
	conns, err := admin.HGetAll(ctx, "{"+prefix+":clients}:by-connection").Result()
	require.NoError(t, err)
	require.Equal(t, map[string]string{"new": "inst"}, conns)
}

// An index another client took is not removed with the client it used to
// point at.
func TestRepositoryKeepsAnIndexAnotherClientTook(t *testing.T) {
	ctx := context.Background()
	r := redis.NewRepository[repoData](repoClient(t, redistest.Start(t)), redis.WithRepositoryPrefix(repoPrefix()))
	require.NoError(t, r.Upsert(ctx, repoEntry("first", "shared", 1)))
	require.NoError(t, r.Upsert(ctx, repoEntry("second", "shared", 2)))
	require.NoError(t, r.Upsert(ctx, repoEntry("first", "elsewhere", 1)))
	require.NoError(t, r.Delete(ctx, "first"))
	got, ok, err := r.GetByConnectionID(ctx, "shared")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "second", got.Instance)
	_, ok, err = r.GetByConnectionID(ctx, "elsewhere")
	require.NoError(t, err)
	require.False(t, ok)
}

// An entry that is not what the repository wrote (written by hand, or by
// a program with another T) is an error to read, is overwritten by
// Upsert, and an index left pointing at it finds nothing.
func TestRepositoryUnreadableEntry(t *testing.T) {
	ctx := context.Background()
	prefix := repoPrefix()
	admin := repoClient(t, redistest.Start(t))
	r := redis.NewRepository[repoData](admin, redis.WithRepositoryPrefix(prefix))
	require.NoError(t, admin.HSet(ctx, "{"+prefix+":clients}:by-key", "inst", "{broken").Err())
	require.NoError(t, admin.HSet(ctx, "{"+prefix+":clients}:by-connection", "old", "inst").Err())

	_, _, err := r.GetByKey(ctx, "inst")
	require.Error(t, err)
	_, err = r.GetAll(ctx)
	require.ErrorContains(t, err, `"inst"`)

	require.NoError(t, r.Upsert(ctx, repoEntry("inst", "new", 1)))
	_, ok, err := r.GetByConnectionID(ctx, "old")
	require.NoError(t, err)
	require.False(t, ok)
	got, ok, err := r.GetByConnectionID(ctx, "new")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, repoDataOf(1), got.Data)
	require.NoError(t, r.Delete(ctx, "inst"))
	all, err := r.GetAll(ctx)
	require.NoError(t, err)
	require.Empty(t, all)
}

// Nodes racing on the same clients (reconnects through different nodes,
// deletes) leave no index that points at a client on another connection,
// and no client whose connection finds nothing.
func TestRepositoryRacingNodesLeaveNoDanglingIndex(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	prefix := repoPrefix()
	admin := repoClient(t, srv)
	const nodes, clients, rounds = 4, 8, 100
	var wg sync.WaitGroup
	for n := range nodes {
		r := redis.NewRepository[repoData](repoClient(t, srv), redis.WithRepositoryPrefix(prefix))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				inst := fmt.Sprintf("inst-%d", i%clients)
				var err error
				if i%5 == 4 {
					err = r.Delete(ctx, inst)
				} else {
					err = r.Upsert(ctx, repoEntry(inst, fmt.Sprintf("conn-%d-%d", n, i), i))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()

	entries, err := admin.HGetAll(ctx, "{"+prefix+":clients}:by-key").Result()
	require.NoError(t, err)
	conns, err := admin.HGetAll(ctx, "{"+prefix+":clients}:by-connection").Result()
	require.NoError(t, err)
	r := redis.NewRepository[repoData](admin, redis.WithRepositoryPrefix(prefix))
	all, err := r.GetAll(ctx)
	require.NoError(t, err)
	require.Len(t, all, len(entries))
	require.Len(t, conns, len(entries), "one index per stored client")
	for _, c := range all {
		require.Equal(t, c.Key(), conns[c.ConnectionID], "client %s is not found by its connection", c.Key())
	}
}

// While Redis is down every call fails with an error; once it is back the
// same repository works again.
func TestRepositoryRedisRestart(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	r := redis.NewRepository[repoData](repoClient(t, srv), redis.WithRepositoryPrefix(repoPrefix()))
	require.NoError(t, r.Upsert(ctx, repoEntry("inst", "conn", 1)))

	srv.Kill()
	repoCalls(t, r, func(op string, err error) { require.Error(t, err, op) })

	// Redis comes back empty (the test server keeps nothing on disk) and
	// without the scripts loaded. go-redis, having failed to dial, probes
	// Redis about once a second and fails fast until a probe gets through.
	srv.Restart()
	require.Eventually(t, func() bool {
		return r.Upsert(ctx, repoEntry("inst", "conn", 1)) == nil
	}, 10*time.Second, 50*time.Millisecond, "no reconnect after Redis came back")
	repoCalls(t, r, func(op string, err error) { require.NoError(t, err, op) })
	got, ok, err := r.GetByConnectionID(ctx, "conn")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, repoDataOf(1), got.Data)
}

// repoCalls makes each call of r once, with a bound on how long Redis
// being down may hold it, and reports each error to check.
func repoCalls(t *testing.T, r *redis.Repository[repoData], check func(op string, err error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	check("upsert", r.Upsert(ctx, repoEntry("inst", "conn", 1)))
	_, _, err := r.GetByKey(ctx, "inst")
	check("get by key", err)
	_, _, err = r.GetByConnectionID(ctx, "conn")
	check("get by connection id", err)
	_, err = r.GetAll(ctx)
	check("get all", err)
	check("delete", r.Delete(ctx, "other"))
	require.NoError(t, ctx.Err(), "a call was held until the test's bound")
}

// A done context fails every call with its error, and nothing is written.
func TestRepositoryCancelledContext(t *testing.T) {
	r := redis.NewRepository[repoData](repoClient(t, redistest.Start(t)), redis.WithRepositoryPrefix(repoPrefix()))
	require.NoError(t, r.Upsert(context.Background(), repoEntry("kept", "kept-conn", 1)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	require.ErrorIs(t, r.Upsert(ctx, repoEntry("inst", "conn", 1)), context.Canceled)
	require.ErrorIs(t, r.Delete(ctx, "kept"), context.Canceled)
	_, _, err := r.GetByKey(ctx, "kept")
	require.ErrorIs(t, err, context.Canceled)
	_, _, err = r.GetByConnectionID(ctx, "kept-conn")
	require.ErrorIs(t, err, context.Canceled)
	_, err = r.GetAll(ctx)
	require.ErrorIs(t, err, context.Canceled)

	all, err := r.GetAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"kept"}, repoKeys(all))
}

// A deadline cuts short a call Redis does not answer, when the client has
// ContextTimeoutEnabled; and while Redis is down, whatever the client.
func TestRepositoryDeadline(t *testing.T) {
	srv := redistest.Start(t)
	admin := repoClient(t, srv)
	r := redis.NewRepository[repoData](repoClient(t, srv, func(o *goredis.Options) { o.ContextTimeoutEnabled = true }),
		redis.WithRepositoryPrefix(repoPrefix()))
	plain := redis.NewRepository[repoData](repoClient(t, srv), redis.WithRepositoryPrefix(repoPrefix()))
	require.NoError(t, r.Upsert(context.Background(), repoEntry("inst", "conn", 1)))
	require.NoError(t, plain.Upsert(context.Background(), repoEntry("inst", "conn", 1)))

	within := func(t *testing.T, r *redis.Repository[repoData], call func(ctx context.Context, r *redis.Repository[repoData]) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := call(ctx, r)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), 1500*time.Millisecond)
	}
	calls := map[string]func(ctx context.Context, r *redis.Repository[repoData]) error{
		"upsert": func(ctx context.Context, r *redis.Repository[repoData]) error {
			return r.Upsert(ctx, repoEntry("inst", "conn", 2))
		},
		"get all": func(ctx context.Context, r *redis.Repository[repoData]) error {
			_, err := r.GetAll(ctx)
			return err
		},
		"get by connection id": func(ctx context.Context, r *redis.Repository[repoData]) error {
			_, _, err := r.GetByConnectionID(ctx, "conn")
			return err
		},
	}
	for op, call := range calls {
		t.Run("paused "+op, func(t *testing.T) {
			// Redis holds every command (UNPAUSE too) for 2s: it is up
			// but does not answer. The next PAUSE waits for this one to
			// end.
			require.NoError(t, admin.Do(context.Background(), "CLIENT", "PAUSE", "2000", "ALL").Err())
			within(t, r, call)
		})
	}
	srv.Kill()
	for op, call := range calls {
		t.Run("down "+op, func(t *testing.T) {
			within(t, r, call)
			within(t, plain, call)
		})
	}
}

func TestNewRepositoryRefusesBadOptions(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = client.Close() })
	for name, f := range map[string]func(){
		"nil client":     func() { redis.NewRepository[repoData](nil) },
		"hash tag":       func() { redis.NewRepository[repoData](client, redis.WithRepositoryPrefix("a{b}")) },
		"zero batch":     func() { redis.NewRepository[repoData](client, redis.WithRepositoryBatchSize(0)) },
		"negative batch": func() { redis.NewRepository[repoData](client, redis.WithRepositoryBatchSize(-1)) },
	} {
		t.Run(name, func(t *testing.T) { require.Panics(t, f) })
	}
	require.NotPanics(t, func() { redis.NewRepository[repoData](client, redis.WithRepositoryPrefix("")) })
}

func repoKeys(all []communication.ClientEntry[repoData]) []string {
	keys := make([]string, len(all))
	for i, c := range all {
		keys[i] = c.Key()
	}
	return keys
}
