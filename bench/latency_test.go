package bench_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// latencyRate is the steady rate of BenchmarkLatency's requests.
const latencyRate = 1000

// BenchmarkLatency measures the latency of one request-response round
// trip on a connection that carries a steady latencyRate requests a
// second, one at a time, as a service under moderate load sees it: each
// request starts on its tick (or at once when the one before ran past
// it), and the metrics are the median and the 99th percentile of the
// round trips, in microseconds (p50-us, p99-us). b.N is the number of
// requests, so a run lasts b.N/latencyRate seconds. The round trips are
// those of BenchmarkRequest with 1 in flight: ours, raw philippseith and
// the raw WebSocket echo.
func BenchmarkLatency(b *testing.B) {
	for _, dir := range []string{"client-to-server", "server-to-client"} {
		s2c := dir == "server-to-client"
		name := fmt.Sprintf("%s/rate=%d/", dir, latencyRate)
		for _, p := range protocols {
			b.Run(name+p.name+"/ours", func(b *testing.B) { benchLatency(b, oursRequestOp(b, p, s2c)) })
			b.Run(name+p.name+"/signalr", func(b *testing.B) { benchLatency(b, rawRequestOp(b, p, s2c, 1)) })
		}
		b.Run(name+"json/websocket", func(b *testing.B) {
			from := wsEchoPair(b, s2c)
			ctx := context.Background()
			benchLatency(b, func(_, _ int) error {
				if err := from.Write(ctx, websocket.MessageText, wsMessage); err != nil {
					return err
				}
				_, _, err := from.Read(ctx)
				return err
			})
		})
	}
}

func benchLatency(b *testing.B, op func(worker, i int) error) {
	if err := parallel(warmup, 1, op); err != nil {
		b.Fatal(err)
	}
	took := make([]time.Duration, 0, b.N)
	tick := time.NewTicker(time.Second / latencyRate)
	defer tick.Stop()
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		start := time.Now()
		if err := op(0, i+1); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(took)
	at := func(q float64) float64 {
		return float64(took[min(len(took)-1, int(q*float64(len(took))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50-us")
	b.ReportMetric(at(0.99), "p99-us")
	b.ReportMetric(0, "ns/op") // the time per op is the rate's, not the code's
}
