package communication_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// Subscription topics of the tests.
type (
	Farm   struct{ ID string }
	Herd   struct{ Size int }
	Marker struct{}
)

const stateChangedName = "Tharga.Communication.Contract.SubscriptionStateChanged, Tharga.Communication"

// topic is the subscription topic of a Go type that has no .NET name.
func topic[T any]() string { return communication.TypeName(reflect.TypeFor[T]()) }

// subsClient starts a client whose subscription changes arrive on the
// returned channel.
func subsClient(t *testing.T, ts *testServer, opts ...communication.ClientOption) (*communication.Client, <-chan communication.SubscriptionChange) {
	t.Helper()
	changes := make(chan communication.SubscriptionChange, 1<<16)
	opts = append(opts, communication.WithSubscriptionHandler(func(ch communication.SubscriptionChange) { changes <- ch }))
	return startClient(t, ts, opts...), changes
}

// nextChange returns the next subscription change.
func nextChange(t *testing.T, changes <-chan communication.SubscriptionChange) communication.SubscriptionChange {
	t.Helper()
	select {
	case ch := <-changes:
		return ch
	case <-time.After(10 * time.Second):
		t.Fatal("no subscription change within 10s")
		return communication.SubscriptionChange{}
	}
}

// waitChange skips changes until want comes.
func waitChange(t *testing.T, changes <-chan communication.SubscriptionChange, want communication.SubscriptionChange) {
	t.Helper()
	for nextChange(t, changes) != want {
	}
}

func change[T any](key string, has bool) communication.SubscriptionChange {
	return communication.SubscriptionChange{Topic: topic[T](), Key: key, HasSubscribers: has}
}

// noChange checks that nothing is queued before a marker change: subscribe
// to Marker and expect its change next.
func noChange(t *testing.T, ts *testServer, changes <-chan communication.SubscriptionChange) {
	t.Helper()
	m, err := communication.Subscribe[Marker](context.Background(), ts.Server)
	require.NoError(t, err)
	require.Equal(t, change[Marker]("", true), nextChange(t, changes))
	require.NoError(t, m.Close())
	require.Equal(t, change[Marker]("", false), nextChange(t, changes))
}

// TestSubscriptionsGoClient: a Go client follows the server's
// subscriptions: only the 0↔1 transitions of each topic/key, keyless ones
// matching every key.
func TestSubscriptionsGoClient(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	c, changes := subsClient(t, ts)
	ctx := context.Background()

	require.False(t, communication.HasSubscribers[Farm](c, "42"))
	a, err := communication.Subscribe[Farm](ctx, ts.Server, "42")
	require.NoError(t, err)
	require.Equal(t, topic[Farm](), a.Topic())
	require.Equal(t, []string{"42"}, a.Keys())
	require.Equal(t, change[Farm]("42", true), nextChange(t, changes))
	require.True(t, communication.HasSubscribers[Farm](c, "42"))
	require.True(t, communication.HasSubscribers[Farm](c, "7", "42"), "one of the keys")
	require.False(t, communication.HasSubscribers[Farm](c, "7"))
	require.False(t, communication.HasSubscribers[Farm](c), "a keyed subscription is not a keyless one")
	require.False(t, communication.HasSubscribers[Herd](c, "42"), "another topic")

	// A second subscription of the same topic/key is counted, not told.
	b, err := communication.Subscribe[Farm](ctx, ts.Server, "42")
	require.NoError(t, err)
	noChange(t, ts, changes)
	require.Equal(t, []communication.SubscriptionCount{{Topic: topic[Farm](), Key: "42", Count: 2}}, ts.Subscriptions())

	// Keyless: every key.
	all, err := communication.Subscribe[Herd](ctx, ts.Server)
	require.NoError(t, err)
	require.Nil(t, all.Keys())
	require.Equal(t, change[Herd]("", true), nextChange(t, changes))
	require.True(t, communication.HasSubscribers[Herd](c))
	require.True(t, communication.HasSubscribers[Herd](c, "any key"))
	require.Equal(t, []communication.SubscriptionCount{
		{Topic: topic[Farm](), Key: "42", Count: 2},
		{Topic: topic[Herd](), Key: "", Count: 1},
	}, ts.Subscriptions())

	// The last subscription of a topic/key ending is told; Close is
	// idempotent and counts once.
	require.NoError(t, a.Close())
	require.NoError(t, a.Close())
	noChange(t, ts, changes)
	require.True(t, communication.HasSubscribers[Farm](c, "42"))
	require.NoError(t, b.Close())
	require.Equal(t, change[Farm]("42", false), nextChange(t, changes))
	require.False(t, communication.HasSubscribers[Farm](c, "42"))
	require.NoError(t, all.Close())
	require.Equal(t, change[Herd]("", false), nextChange(t, changes))
	require.Empty(t, ts.Subscriptions())
}

// TestSubscriptionsSeveralKeys: one subscription holds each of its keys
// once.
func TestSubscriptionsSeveralKeys(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	c, changes := subsClient(t, ts)
	sub, err := communication.Subscribe[Farm](context.Background(), ts.Server, "1", "2", "1")
	require.NoError(t, err)
	require.Equal(t, []string{"1", "2"}, sub.Keys())
	require.Equal(t, change[Farm]("1", true), nextChange(t, changes))
	require.Equal(t, change[Farm]("2", true), nextChange(t, changes))
	require.True(t, communication.HasSubscribers[Farm](c, "2"))
	require.Equal(t, []communication.SubscriptionCount{
		{Topic: topic[Farm](), Key: "1", Count: 1},
		{Topic: topic[Farm](), Key: "2", Count: 1},
	}, ts.Subscriptions())
	require.NoError(t, sub.Close())
	require.Equal(t, change[Farm]("1", false), nextChange(t, changes))
	require.Equal(t, change[Farm]("2", false), nextChange(t, changes))
}

// TestSubscriptionLifetime: a subscription ends with its context; bad
// calls are refused.
func TestSubscriptionLifetime(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	c, changes := subsClient(t, ts)

	ctx, cancel := context.WithCancel(context.Background())
	_, err := communication.Subscribe[Farm](ctx, ts.Server, "9")
	require.NoError(t, err)
	require.Equal(t, change[Farm]("9", true), nextChange(t, changes))
	cancel()
	require.Equal(t, change[Farm]("9", false), nextChange(t, changes))
	require.False(t, communication.HasSubscribers[Farm](c, "9"))
	require.Empty(t, ts.Subscriptions())

	_, err = communication.Subscribe[Farm](ctx, ts.Server)
	require.ErrorIs(t, err, context.Canceled)
	_, err = communication.Subscribe[Farm](context.Background(), ts.Server, "")
	require.Error(t, err)
	require.Empty(t, ts.Subscriptions())

	require.NoError(t, ts.Close())
	_, err = communication.Subscribe[Farm](context.Background(), ts.Server)
	require.ErrorIs(t, err, communication.ErrClosed)
}

// TestSubscriptionsAreAHint: posts reach the server's handler whether or
// not anybody subscribes; PostIfSubscribed posts only when somebody does.
func TestSubscriptionsAreAHint(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	farms := make(chan Farm, 10)
	require.NoError(t, communication.HandlePost(ts.Handlers(), communication.PostHandlerFunc[Farm](func(_ context.Context, f Farm) error {
		farms <- f
		return nil
	})))
	c, changes := subsClient(t, ts)
	ctx := ctxT(t, 10*time.Second)

	require.NoError(t, c.Post(ctx, Farm{ID: "nobody listens"}))
	require.Equal(t, "nobody listens", recvFarm(t, farms).ID)

	sent, err := c.PostIfSubscribed(ctx, Farm{ID: "skipped"}, "42")
	require.NoError(t, err)
	require.False(t, sent)

	sub, err := communication.Subscribe[Farm](ctx, ts.Server, "42")
	require.NoError(t, err)
	require.Equal(t, change[Farm]("42", true), nextChange(t, changes))
	sent, err = c.PostIfSubscribed(ctx, Farm{ID: "7 is not subscribed"}, "7")
	require.NoError(t, err)
	require.False(t, sent)
	sent, err = c.PostIfSubscribed(ctx, Farm{ID: "sent"}, "42")
	require.NoError(t, err)
	require.True(t, sent)
	require.Equal(t, "sent", recvFarm(t, farms).ID, "posts in order: the skipped ones never went")
	require.NoError(t, sub.Close())

	_, err = c.PostIfSubscribed(ctx, nil)
	require.ErrorIs(t, err, communication.ErrBadMessage)
}

func recvFarm(t *testing.T, farms <-chan Farm) Farm {
	t.Helper()
	select {
	case f := <-farms:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no post within 10s")
		return Farm{}
	}
}

// TestSubscriptionsLateJoiner: a client that connects, or reconnects,
// gets the active set at once; a connection that drops clears it.
func TestSubscriptionsLateJoiner(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	ctx := context.Background()
	keyless, err := communication.Subscribe[Herd](ctx, ts.Server)
	require.NoError(t, err)
	keyed, err := communication.Subscribe[Farm](ctx, ts.Server, "42")
	require.NoError(t, err)

	c, changes := subsClient(t, ts)
	got := map[communication.SubscriptionChange]bool{nextChange(t, changes): true, nextChange(t, changes): true}
	require.Equal(t, map[communication.SubscriptionChange]bool{change[Herd]("", true): true, change[Farm]("42", true): true}, got)
	require.True(t, communication.HasSubscribers[Farm](c, "42"))
	require.True(t, communication.HasSubscribers[Herd](c, "1"))

	// The connection drops: the set is cleared and the handler told.
	ts.killConnections()
	got = map[communication.SubscriptionChange]bool{nextChange(t, changes): true, nextChange(t, changes): true}
	require.Equal(t, map[communication.SubscriptionChange]bool{change[Herd]("", false): true, change[Farm]("42", false): true}, got)
	require.NoError(t, keyed.Close()) // while away, or just back

	// Back: the snapshot has what is active now. The marker arrives by
	// broadcast or in the snapshot, after everything before it.
	marker, err := communication.Subscribe[Marker](ctx, ts.Server)
	require.NoError(t, err)
	waitChange(t, changes, change[Marker]("", true))
	require.True(t, communication.HasSubscribers[Herd](c))
	require.False(t, communication.HasSubscribers[Farm](c, "42"))
	require.NoError(t, marker.Close())
	require.NoError(t, keyless.Close())
	// Under load the client may have reconnected once more after the
	// kill, and been given the snapshot again: skip what repeats it.
	waitChange(t, changes, change[Marker]("", false))
	waitChange(t, changes, change[Herd]("", false))
	require.False(t, communication.HasSubscribers[Herd](c))
	require.False(t, communication.HasSubscribers[Marker](c))
}

// TestSubscriptionFrames: the SubscriptionStateChanged posts byte for byte,
// as a .NET client reads them: the contract's .NET name, a payload as
// System.Text.Json writes the record (its escaping included), Key null
// when keyless; and the snapshot a late joiner gets.
func TestSubscriptionFrames(t *testing.T) {
	t.Parallel()
	type Nested struct{}
	ts := newServer(t)
	require.NoError(t, communication.RegisterName[Note](ts.Handlers(), noteName))
	require.NoError(t, communication.RegisterName[Nested](ts.Handlers(),
		"MyApp.Orders+Shipped, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"))
	p := dialRaw(t, ts, http.Header{"X-Client-Instance": {"0f8fad5b-d9cb-469f-a165-70867728950e"}})
	ctx := context.Background()
	frame := func(payload string) string {
		b, _ := json.Marshal(payload)
		return `{"type":1,"target":"PostMessage","arguments":[{"type":"` + stateChangedName + `","payload":` + string(b) + `}]}`
	}

	keyed, err := communication.Subscribe[Note](ctx, ts.Server, "42")
	require.NoError(t, err)
	require.Equal(t,
		`{"type":1,"target":"PostMessage","arguments":[{"type":"Tharga.Communication.Contract.SubscriptionStateChanged, Tharga.Communication","payload":"{\"Topic\":\"MyApp.MyNotification\",\"Key\":\"42\",\"HasSubscribers\":true}"}]}`,
		string(p.next(10*time.Second)))
	keyless, err := communication.Subscribe[Note](ctx, ts.Server)
	require.NoError(t, err)
	require.Equal(t, frame(`{"Topic":"MyApp.MyNotification","Key":null,"HasSubscribers":true}`), string(p.next(10*time.Second)))
	// System.Text.Json escapes '+' (nested types), '<', '&', quotes and
	// everything beyond ASCII; so does the payload here.
	nested, err := communication.Subscribe[Nested](ctx, ts.Server, `<"Grüße" & +>`)
	require.NoError(t, err)
	require.Equal(t,
		`{"type":1,"target":"PostMessage","arguments":[{"type":"Tharga.Communication.Contract.SubscriptionStateChanged, Tharga.Communication","payload":"{\"Topic\":\"MyApp.Orders\\u002BShipped\",\"Key\":\"\\u003C\\u0022Gr\\u00FC\\u00DFe\\u0022 \\u0026 \\u002B\\u003E\",\"HasSubscribers\":true}"}]}`,
		string(p.next(10*time.Second)))

	// A late joiner gets the snapshot, sorted by topic and key.
	late := dialRaw(t, ts, nil)
	require.Equal(t, frame(`{"Topic":"MyApp.MyNotification","Key":null,"HasSubscribers":true}`), string(late.next(10*time.Second)))
	require.Equal(t, frame(`{"Topic":"MyApp.MyNotification","Key":"42","HasSubscribers":true}`), string(late.next(10*time.Second)))
	require.Equal(t, frame(`{"Topic":"MyApp.Orders\u002BShipped","Key":"\u003C\u0022Gr\u00FC\u00DFe\u0022 \u0026 \u002B\u003E","HasSubscribers":true}`), string(late.next(10*time.Second)))

	require.NoError(t, keyed.Close())
	for _, c := range []*rawPeer{p, late} {
		require.Equal(t, frame(`{"Topic":"MyApp.MyNotification","Key":"42","HasSubscribers":false}`), string(c.next(10*time.Second)))
	}
	require.NoError(t, keyless.Close())
	require.NoError(t, nested.Close())
	for _, c := range []*rawPeer{p, late} {
		require.Equal(t, frame(`{"Topic":"MyApp.MyNotification","Key":null,"HasSubscribers":false}`), string(c.next(10*time.Second)))
		require.Contains(t, string(c.next(10*time.Second)), `\"HasSubscribers\":false}`)
	}
}

// TestSubscriptionChurn: at least 1,000 subscribe/close cycles from many
// goroutines, with clients connecting meanwhile, leave exact counts; every
// client sees each topic/key's transitions in order (true, false, true,
// ...), and every client, including those whose snapshot raced with the
// transitions, ends with the server's state.
func TestSubscriptionChurn(t *testing.T) {
	t.Parallel()
	ts := newServer(t)
	raw := collectPosts(dialRaw(t, ts, nil))
	first, firstChanges := subsClient(t, ts)
	ctx := context.Background()
	keys := []string{"a", "b", "c", "d"}

	// Held throughout: counts that must survive the churn.
	var held []*communication.Subscription
	for _, k := range keys[:2] {
		s, err := communication.Subscribe[Farm](ctx, ts.Server, k)
		require.NoError(t, err)
		held = append(held, s)
	}

	// Each worker makes at least its share of the 1,000 cycles, and goes
	// on until the late clients are connected (or the cycles reach a
	// bound that keeps the posts within the clients' buffers).
	const workers, cycles, most = 50, 20, 20_000
	var joined atomic.Bool
	var wg sync.WaitGroup
	var total atomic.Int64
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < cycles || !joined.Load() && total.Load() < most; i++ {
				var s *communication.Subscription
				var err error
				if (w+i)%5 == 0 {
					s, err = communication.Subscribe[Farm](ctx, ts.Server) // keyless
				} else {
					s, err = communication.Subscribe[Farm](ctx, ts.Server, keys[(w+i)%len(keys)])
				}
				if err != nil {
					errs <- err
					return
				}
				_ = s.Close()
				total.Add(1)
			}
		}()
	}
	// Clients that connect during the churn: their snapshots race with
	// the transitions.
	lateRaw := make([]<-chan any, 16)
	for i := range lateRaw {
		lateRaw[i] = collectPosts(dialRaw(t, ts, nil))
	}
	late := make([]*communication.Client, 4)
	lateChanges := make([]<-chan communication.SubscriptionChange, 4)
	for i := range late {
		late[i], lateChanges[i] = subsClient(t, ts)
	}
	joined.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.GreaterOrEqual(t, total.Load(), int64(workers*cycles))
	t.Logf("%d subscribe/close cycles", total.Load())
	want := []communication.SubscriptionCount{
		{Topic: topic[Farm](), Key: "a", Count: 1},
		{Topic: topic[Farm](), Key: "b", Count: 1},
	}
	require.Equal(t, want, ts.Subscriptions())

	// Everything told before the marker has been handled once the marker
	// is: posts to a connection keep their order.
	marker, err := communication.Subscribe[Marker](ctx, ts.Server)
	require.NoError(t, err)
	clients := append([]*communication.Client{first}, late...)
	changes := append([]<-chan communication.SubscriptionChange{firstChanges}, lateChanges...)
	for i, c := range clients {
		waitChange(t, changes[i], change[Marker]("", true))
		require.True(t, communication.HasSubscribers[Farm](c, "a"), "client %d", i)
		require.True(t, communication.HasSubscribers[Farm](c, "b"), "client %d", i)
		require.False(t, communication.HasSubscribers[Farm](c, "c"), "client %d", i)
		require.False(t, communication.HasSubscribers[Farm](c, "d"), "client %d", i)
		require.False(t, communication.HasSubscribers[Farm](c), "client %d", i)
	}
	final := map[string]bool{"a": true, "b": true, "c": false, "d": false, "<keyless>": false}
	// The raw client connected before the churn saw every transition, in
	// order per topic/key; the late ones end right.
	require.Equal(t, final, rawStates(t, raw, true))
	for i, p := range lateRaw {
		require.Equal(t, final, rawStates(t, p, false), "late raw client %d", i)
	}

	for _, s := range held {
		require.NoError(t, s.Close())
	}
	require.NoError(t, marker.Close())
	require.Empty(t, ts.Subscriptions())
}

// subscriptionPost is one SubscriptionStateChanged post a raw client got.
type subscriptionPost struct {
	Topic          string
	Key            *string
	HasSubscribers bool
}

// collectPosts reads a raw client's frames as they come (so that its
// buffer never fills) up to the Marker's SubscriptionStateChanged, and
// delivers the posts before it; a frame that is anything else is an error.
func collectPosts(p *rawPeer) <-chan any {
	out := make(chan any, 1)
	go func() {
		var posts []subscriptionPost
		for {
			var rec []byte
			select {
			case rec = <-p.frames:
			case <-p.done:
				out <- fmt.Errorf("connection ended after %d posts, before the marker", len(posts))
				return
			}
			var f rawFrame
			if err := json.Unmarshal(rec, &f); err != nil {
				out <- err
				return
			}
			if f.Type == 6 {
				continue
			}
			var w rawWrapper
			var m subscriptionPost
			if f.Target != "PostMessage" || len(f.Arguments) != 1 || json.Unmarshal(f.Arguments[0], &w) != nil ||
				w.Type != stateChangedName || json.Unmarshal([]byte(w.Payload), &m) != nil {
				out <- fmt.Errorf("not a SubscriptionStateChanged post: %s", rec)
				return
			}
			if m.Topic == topic[Marker]() {
				out <- posts
				return
			}
			posts = append(posts, m)
		}
	}()
	return out
}

// rawStates folds the posts collectPosts delivers into the state of each
// key of Farm ("<keyless>" for the keyless subscription). With alternate,
// each key's states must alternate, beginning with true: no transition was
// reordered or repeated.
func rawStates(t *testing.T, posts <-chan any, alternate bool) map[string]bool {
	t.Helper()
	var got any
	select {
	case got = <-posts:
	case <-time.After(10 * time.Second):
		t.Fatal("the marker did not come within 10s")
	}
	if err, ok := got.(error); ok {
		t.Fatal(err)
	}
	state := map[string]bool{"a": false, "b": false, "c": false, "d": false, "<keyless>": false}
	for _, m := range got.([]subscriptionPost) {
		require.Equal(t, topic[Farm](), m.Topic)
		k := "<keyless>"
		if m.Key != nil {
			k = *m.Key
		}
		if alternate {
			require.NotEqual(t, state[k], m.HasSubscribers, "key %s: %v twice in a row: transitions out of order", k, m.HasSubscribers)
		}
		state[k] = m.HasSubscribers
	}
	return state
}

// TestSubscriptionHandlerName: the client's own handler of the contract
// cannot be replaced by accident.
func TestSubscriptionHandlerName(t *testing.T) {
	t.Parallel()
	type Mine struct{}
	h := communication.NewHandlers()
	require.NoError(t, communication.HandlePost(h, communication.PostHandlerFunc[Mine](func(context.Context, Mine) error { return nil }),
		communication.WithName(stateChangedName)))
	_, err := communication.AddClient(communication.WithServerAddress("http://127.0.0.1:1"), communication.WithHandlers(h))
	require.ErrorIs(t, err, communication.ErrDuplicateType)
}
