package timerpool

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSyncTimers: this module's go.mod names Go 1.23 or later, so its
// tests get the timers that may be reused.
func TestSyncTimers(t *testing.T) {
	require.True(t, syncTimers)
}

// TestReusedTimerFiresOnce: a timer put back after it fired, or before,
// fires again only after its new duration, never at once from a tick left
// over.
func TestReusedTimerFiresOnce(t *testing.T) {
	fired := Get(time.Nanosecond)
	<-fired.C
	Put(fired)
	unfired := Get(time.Hour)
	Put(unfired)
	for range 10 {
		tm := Get(time.Hour)
		select {
		case <-tm.C:
			t.Fatal("a reused timer fired before its time")
		default:
		}
		Put(tm)
	}
	tm := Get(time.Millisecond)
	<-tm.C
	Put(tm)
}
