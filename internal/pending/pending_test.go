package pending

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tharga/communication-go/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// outstanding returns how many requests are outstanding, tombstones
// included.
func outstanding(t *Table) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.byID)
	for _, c := range t.line {
		if c.abandoned {
			n++
		}
	}
	return n
}

func add(t *testing.T, tb *Table, req, resp string) *Call {
	t.Helper()
	c, err := tb.Add(context.Background(), req, resp, func(string) error { return nil })
	require.NoError(t, err)
	return c
}

func answer(typ, id, payload string) *wire.Wrapper {
	return &wire.Wrapper{Type: typ, CorrelationID: id, Payload: []byte(payload)}
}

func TestCorrelated(t *testing.T) {
	tb := New(InOrder, true, nil)
	a, b := add(t, tb, "Req", "Resp"), add(t, tb, "Req", "Resp")
	require.True(t, tb.Resolve(answer("Resp", b.ID(), "b")))
	require.True(t, tb.Resolve(answer("Resp", a.ID(), "a")))
	require.Equal(t, "a", string(a.Wait(context.Background()).Wrapper.Payload))
	require.Equal(t, "b", string(b.Wait(context.Background()).Wrapper.Payload))
	require.False(t, tb.Resolve(answer("Resp", a.ID(), "again")), "an answer matched twice")
	require.Zero(t, outstanding(tb))
}

// TestInOrderTombstone: a .NET server answers in order and echoes no id; a
// request whose caller gave up keeps its place, and its late answer is
// dropped instead of reaching the next request.
func TestInOrderTombstone(t *testing.T) {
	tb := New(InOrder, false, nil)
	a := add(t, tb, "MyApp.Req, MyApp", "MyApp.Resp, MyApp")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, a.Wait(ctx).Err, context.Canceled)
	b := add(t, tb, "MyApp.Req, MyApp", "MyApp.Resp, MyApp")
	require.Equal(t, 2, outstanding(tb), "the abandoned request must keep its place")
	require.False(t, tb.Resolve(answer("MyApp.Resp, MyApp, Version=1.0.0.0", "", "late a")))
	require.True(t, tb.Resolve(answer("MyApp.Resp, MyApp", "", "b")))
	require.Equal(t, "b", string(b.Wait(context.Background()).Wrapper.Payload))
	require.Zero(t, outstanding(tb))
}

// TestAnyOrderGating: a .NET client answers in any order and echoes no id;
// requests that could be answered with the same type wait for each other,
// others overlap, and the answer's type picks its request.
func TestAnyOrderGating(t *testing.T) {
	tb := New(AnyOrder, false, nil)
	ping := add(t, tb, "Ping", "Pong")
	status := add(t, tb, "Status", "Report") // different types: no wait

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := tb.Add(ctx, "Ping", "Pong", func(string) error { return nil })
	require.ErrorIs(t, err, context.DeadlineExceeded, "a second Ping must wait for the first")

	second := make(chan *Call, 1)
	go func() {
		c, err := tb.Add(context.Background(), "Ping", "Pong", func(string) error { return nil })
		if err == nil {
			second <- c
		}
	}()
	require.True(t, tb.Resolve(answer("Report", "", "r")))
	require.True(t, tb.Resolve(answer("Ping", "", `{"Error":"x"}`)), "an error answer carries the request type")
	require.Equal(t, "r", string(status.Wait(context.Background()).Wrapper.Payload))
	require.Equal(t, `{"Error":"x"}`, string(ping.Wait(context.Background()).Wrapper.Payload))
	c := <-second
	require.True(t, tb.Resolve(answer("Pong", "", "p2")))
	require.Equal(t, "p2", string(c.Wait(context.Background()).Wrapper.Payload))
}

func TestEchoSwitchDropsTombstones(t *testing.T) {
	tb := New(InOrder, false, nil)
	a := add(t, tb, "Req", "Resp")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.Wait(ctx)
	b := add(t, tb, "Req", "Resp")
	require.True(t, tb.Resolve(answer("Resp", b.ID(), "b")))
	require.Zero(t, outstanding(tb), "a peer that echoes ids needs no tombstones")
}

func TestCloseFailsEverything(t *testing.T) {
	var events []bool
	tb := New(InOrder, true, func(_ Info, added bool) { events = append(events, added) })
	a := add(t, tb, "Req", "Resp")
	lost := errors.New("lost")
	tb.Close(lost)
	require.ErrorIs(t, a.Wait(context.Background()).Err, lost)
	_, err := tb.Add(context.Background(), "Req", "Resp", func(string) error { return nil })
	require.ErrorIs(t, err, lost)
	require.Equal(t, []bool{true, false}, events)
	require.Empty(t, tb.List())
}

func TestSendFailureLeavesNothing(t *testing.T) {
	tb := New(InOrder, false, nil)
	boom := errors.New("boom")
	_, err := tb.Add(context.Background(), "Req", "Resp", func(string) error { return boom })
	require.ErrorIs(t, err, boom)
	require.Zero(t, outstanding(tb))
}

// TestSlowSendHoldsNoLock: while a request's send waits for a slow
// connection, answers are still matched, the table listed and callers may
// give up; a later request of an InOrder peer waits for its turn, so that
// the sends still leave in line order and answers reach the right caller.
func TestSlowSendHoldsNoLock(t *testing.T) {
	tb := New(InOrder, false, nil)
	a := add(t, tb, "Req", "Resp")

	var mu sync.Mutex
	var sent []string
	record := func(name string) {
		mu.Lock()
		sent = append(sent, name)
		mu.Unlock()
	}
	sending, release := make(chan struct{}), make(chan struct{})
	type added struct {
		c   *Call
		err error
	}
	bDone := make(chan added, 1)
	go func() {
		c, err := tb.Add(context.Background(), "Req", "Resp", func(string) error {
			close(sending)
			<-release
			record("b")
			return nil
		})
		bDone <- added{c, err}
	}()
	<-sending

	require.True(t, tb.Resolve(answer("Resp", "", "a")), "an answer is matched while a send waits")
	require.Equal(t, "a", string(a.Wait(context.Background()).Wrapper.Payload))
	require.Len(t, tb.List(), 1)

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := tb.Add(gone, "Req", "Resp", func(string) error {
		t.Error("sent after its caller gave up")
		return nil
	})
	require.ErrorIs(t, err, context.Canceled, "a caller waiting for its turn may give up")

	cDone := make(chan added, 1)
	go func() {
		c, err := tb.Add(context.Background(), "Req", "Resp", func(string) error {
			record("c")
			return nil
		})
		cDone <- added{c, err}
	}()
	close(release)
	b, c := <-bDone, <-cDone
	require.NoError(t, b.err)
	require.NoError(t, c.err)
	require.Equal(t, []string{"b", "c"}, sent)

	require.True(t, tb.Resolve(answer("Resp", "", "b")))
	require.True(t, tb.Resolve(answer("Resp", "", "c")))
	require.Equal(t, "b", string(b.c.Wait(context.Background()).Wrapper.Payload))
	require.Equal(t, "c", string(c.c.Wait(context.Background()).Wrapper.Payload))
	require.Zero(t, outstanding(tb))
}

// TestWaitFor: the answer when it comes in time; otherwise, after d,
// context.DeadlineExceeded, the request abandoned (its late answer
// dropped); waits after one that timed out are not cut short.
func TestWaitFor(t *testing.T) {
	tb := New(InOrder, true, nil)
	require.True(t, tb.Echoes())

	a := add(t, tb, "Req", "Resp")
	go tb.Resolve(answer("Resp", a.ID(), "a"))
	require.Equal(t, "a", string(a.WaitFor(context.Background(), time.Minute).Wrapper.Payload))

	b := add(t, tb, "Req", "Resp")
	r := b.WaitFor(context.Background(), 10*time.Millisecond)
	require.Equal(t, context.DeadlineExceeded, r.Err)
	require.False(t, tb.Resolve(answer("Resp", b.ID(), "late")), "a late answer taken")
	require.Zero(t, outstanding(tb))

	// A wait right after one that timed out gets its answer, not a tick
	// left over.
	for range 100 {
		c := add(t, tb, "Req", "Resp")
		go tb.Resolve(answer("Resp", c.ID(), "c"))
		require.NoError(t, c.WaitFor(context.Background(), time.Minute).Err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := add(t, tb, "Req", "Resp")
	require.ErrorIs(t, d.WaitFor(ctx, time.Minute).Err, context.Canceled)

	require.False(t, New(AnyOrder, false, nil).Echoes())
}
