package communication

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// TestInfoKeepsNothingOfHugeHeaders: what a negotiation keeps of a
// request's identity headers is bounded and does not share memory with
// them (a slice of a 600 KB header would keep all of it alive).
func TestInfoKeepsNothingOfHugeHeaders(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("POST", "/hub/negotiate", nil)
	huge := strings.Repeat("x", 600<<10)
	r.Header.Set(HeaderClientMachine, huge)
	r.Header.Set(HeaderClientType, huge)
	r.Header.Set("X-Client-Other", huge)
	info := infoFrom(r)
	require.Len(t, info.machine, maxIdentityValue)
	require.Len(t, info.typ, maxIdentityValue)
	start := uintptr(unsafe.Pointer(unsafe.StringData(huge)))
	for _, v := range []string{info.machine, info.typ} {
		p := uintptr(unsafe.Pointer(unsafe.StringData(v)))
		require.False(t, p >= start && p < start+uintptr(len(huge)), "a kept value points into the header")
	}
}

func TestNegotiationsTakeOnce(t *testing.T) {
	t.Parallel()
	n := newNegotiations(time.Minute, 10)
	defer n.close()
	n.add("a", negotiation{connID: "1"})
	got, ok := n.take("a")
	require.True(t, ok)
	require.Equal(t, "1", got.connID)
	_, ok = n.take("a")
	require.False(t, ok, "a negotiation is used once")
}

// TestNegotiationsExpire: negotiations that are never taken go on a timer,
// which stops once none is left.
func TestNegotiationsExpire(t *testing.T) {
	t.Parallel()
	n := newNegotiations(20*time.Millisecond, 1000)
	defer n.close()
	for i := range 100 {
		n.add(string(rune('a'+i)), negotiation{})
	}
	require.Eventually(t, func() bool { return pendingNegotiations(n) == 0 }, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.timer == nil && len(n.order) == 0
	}, 5*time.Second, time.Millisecond, "the timer stops when nothing is pending")
}

// TestNegotiationsBounded: past the bound the oldest is forgotten, so a
// flood costs bounded memory and refuses nobody.
func TestNegotiationsBounded(t *testing.T) {
	t.Parallel()
	n := newNegotiations(time.Minute, 100)
	defer n.close()
	for i := range 1000 {
		n.add(strings.Repeat("k", i+1), negotiation{})
	}
	require.Equal(t, 100, pendingNegotiations(n))
	_, ok := n.take("k")
	require.False(t, ok, "the oldest is forgotten")
	_, ok = n.take(strings.Repeat("k", 1000))
	require.True(t, ok, "the newest is kept")
	n.mu.Lock()
	require.LessOrEqual(t, len(n.order)-n.head, 100)
	n.mu.Unlock()
}

func pendingNegotiations(n *negotiations) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.byKey)
}

// TestLimiter: a reader that finds no slot gets a channel that the next
// release closes; nothing is missed between the try and the wait.
func TestLimiter(t *testing.T) {
	t.Parallel()
	l := newLimiter(1)
	ok, _ := l.tryAcquire()
	require.True(t, ok)
	ok, wait := l.tryAcquire()
	require.False(t, ok)
	select {
	case <-wait:
		t.Fatal("woken with no slot free")
	default:
	}
	l.release()
	<-wait
	ok, _ = l.tryAcquire()
	require.True(t, ok)
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	require.ErrorIs(t, l.acquire(ctx), context.DeadlineExceeded)
	l.release()
	require.NoError(t, l.acquire(context.Background()))
	require.Equal(t, 1, l.running())
}
