package communication

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tharga/communication-go/internal/transport"
	"github.com/tharga/communication-go/internal/wire"
)

// recordingSink is a transitionSink that keeps every transition.
type recordingSink struct {
	mu  sync.Mutex
	got map[subKey][]bool
}

func (r *recordingSink) transition(topic, key string, has bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := subKey{topic, key}
	r.got[k] = append(r.got[k], has)
}

// testCounterContract checks what Server relies on of a
// subscriptionCounter (see its doc), for the single-node counter here and
// for a backplane's later: under concurrent adds, each topic/key's
// transitions alternate true, false, ... and end with the count; counts
// are exact.
func testCounterContract(t *testing.T, newCounter func(transitionSink) subscriptionCounter) {
	sink := &recordingSink{got: make(map[subKey][]bool)}
	c := newCounter(sink)
	keys := []string{"", "a", "b"}
	c.add("T", "held", +1)
	var wg sync.WaitGroup
	for w := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				k := keys[(w+i)%len(keys)]
				c.add("T", k, +1)
				c.add("T", k, -1)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, []SubscriptionCount{{Topic: "T", Key: "held", Count: 1}}, c.counts())
	for k, got := range sink.got {
		for i, has := range got {
			require.Equal(t, i%2 == 0, has, "%v: transition %d of %v out of order", k, i, got)
		}
		want := 0
		if k.key == "held" {
			want = 1
		}
		require.Equal(t, want, len(got)%2, "%v ends wrong: %v", k, got)
	}
	c.add("T", "held", -1)
	require.Empty(t, c.counts())
	require.Equal(t, []bool{true, false}, sink.got[subKey{"T", "held"}])
}

func TestMemoryCounterContract(t *testing.T) {
	t.Parallel()
	testCounterContract(t, func(s transitionSink) subscriptionCounter { return newMemoryCounter(s) })
}

// fakeOut is a connection's outbound that records what is queued on it.
// While blocked, its queue is full: TrySend fails and Send waits.
type fakeOut struct {
	mu      sync.Mutex
	got     []string // "key=true", "<keyless>=false"
	blocked chan struct{}
	waiting chan struct{} // signalled when a Send starts waiting
}

func (f *fakeOut) record(w *wire.Wrapper) {
	var m subscriptionStateChanged
	if err := json.Unmarshal(w.Payload, &m); err != nil {
		panic(err)
	}
	k := "<keyless>"
	if m.Key != nil {
		k = *m.Key
	}
	f.mu.Lock()
	f.got = append(f.got, fmt.Sprintf("%s=%v", k, m.HasSubscribers))
	f.mu.Unlock()
}

func (f *fakeOut) TrySend(_ string, w *wire.Wrapper) error {
	if f.blocked != nil {
		select {
		case <-f.blocked:
		default:
			return transport.ErrQueueFull
		}
	}
	f.record(w)
	return nil
}

func (f *fakeOut) Send(ctx context.Context, _ string, w *wire.Wrapper) error {
	if f.blocked != nil {
		select {
		case f.waiting <- struct{}{}:
		default:
		}
		select {
		case <-f.blocked:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.record(w)
	return nil
}

func (f *fakeOut) SendInline(ctx context.Context, target string, w *wire.Wrapper) error {
	return f.Send(ctx, target, w)
}

func (f *fakeOut) posts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

// TestSnapshotRacesTransitions: a connection joins while transitions are
// still on their way (the sender waits for a slow connection): it gets the
// transitions that were queued before its snapshot and the snapshot and
// the later transitions, all in one order, so that it ends with the
// current state; the slow connection gets every transition in order.
func TestSnapshotRacesTransitions(t *testing.T) {
	t.Parallel()
	srv, err := AddServer()
	require.NoError(t, err)
	slow := &fakeOut{blocked: make(chan struct{}), waiting: make(chan struct{}, 1)}
	joiner := &fakeOut{}
	add := func(id string, out outbound) *serverConn {
		sc := &serverConn{id: id, peer: &peer{out: out}}
		srv.mu.Lock()
		srv.conns[id] = sc
		srv.mu.Unlock()
		return sc
	}
	t.Cleanup(func() {
		srv.mu.Lock()
		clear(srv.conns) // not real connections: Shutdown must not close them
		srv.mu.Unlock()
		require.NoError(t, srv.Close())
	})
	add("slow", slow)
	ctx := context.Background()

	first, err := Subscribe[struct{}](ctx, srv, "k") // true: the sender waits for the slow connection
	require.NoError(t, err)
	select {
	case <-slow.waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the sender never waited for the slow connection")
	}
	require.NoError(t, first.Close()) // false, queued
	second, err := Subscribe[struct{}](ctx, srv, "k")
	require.NoError(t, err) // true, queued
	srv.subscriptionState().joined(add("joiner", joiner))
	require.NoError(t, second.Close()) // false, after the snapshot

	ss := srv.subscriptionState()
	ss.mu.Lock()
	idle := ss.idle
	ss.mu.Unlock()
	close(slow.blocked)
	select {
	case <-idle:
	case <-time.After(10 * time.Second):
		t.Fatal("the sender did not finish")
	}
	require.Equal(t, []string{"k=true", "k=false", "k=true", "k=false"}, slow.posts())
	// The joiner was reachable for the second and third transitions; its
	// snapshot (k=true) stands where it was taken.
	require.Equal(t, []string{"k=false", "k=true", "k=true", "k=false"}, joiner.posts())
}
