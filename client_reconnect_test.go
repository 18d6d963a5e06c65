package communication_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// TestReconnectJitterOption: the jitter must be between 0 and 1.
func TestReconnectJitterOption(t *testing.T) {
	for _, f := range []float64{0, 0.25, 0.5, 1} {
		_, err := communication.AddClient(communication.WithServerAddress("http://x"), communication.WithReconnectJitter(f))
		require.NoError(t, err, f)
	}
	for _, f := range []float64{-0.1, 1.01, math.NaN(), math.Inf(1)} {
		_, err := communication.AddClient(communication.WithServerAddress("http://x"), communication.WithReconnectJitter(f))
		require.ErrorContains(t, err, "jitter", f)
	}
}

// TestJitteredDelay: a delay d with jitter f is spread over
// [d(1-f), d(1+f)]; zero stays zero; no jitter keeps d.
func TestJitteredDelay(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2)).Float64
	d := time.Second
	require.Equal(t, time.Duration(0), communication.JitteredDelay(0, 0.5, rnd))
	require.Equal(t, d, communication.JitteredDelay(d, 0, rnd))
	lo, hi := d, d
	for range 10000 {
		got := communication.JitteredDelay(d, 0.5, rnd)
		require.GreaterOrEqual(t, got, d/2)
		require.LessOrEqual(t, got, 3*d/2)
		lo, hi = min(lo, got), max(hi, got)
	}
	require.Less(t, lo, 11*d/20, "not spread down to d/2")
	require.Greater(t, hi, 29*d/20, "not spread up to 3d/2")
	require.Equal(t, time.Duration(math.MaxInt64), communication.JitteredDelay(time.Duration(math.MaxInt64), 1, func() float64 { return 0.99 }))
}
