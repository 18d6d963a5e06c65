package signal

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBroadcast(t *testing.T) {
	var b Broadcast
	b.Notify() // nobody waits: nothing to wake, nothing kept

	first, second := b.Wait(), b.Wait()
	require.Equal(t, first, second, "waiters before a Notify share its channel")
	select {
	case <-first:
		t.Fatal("closed before Notify")
	default:
	}

	woken := make(chan struct{})
	go func() {
		<-second
		close(woken)
	}()
	b.Notify()
	<-first
	<-woken

	next := b.Wait()
	require.NotEqual(t, first, next, "a Wait after Notify waits for the next one")
	select {
	case <-next:
		t.Fatal("a later Wait saw an earlier Notify")
	default:
	}
}
