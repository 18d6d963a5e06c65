// Command prometheus shows the library's metrics in Prometheus: the
// OpenTelemetry SDK with its Prometheus exporter is the application's
// choice (the library speaks the OpenTelemetry API only), wired here into
// a server and a few clients that post, request and leave for a short
// run. It then scrapes its own /metrics and prints the library's series.
//
//	go run .            # three clients
//	go run . -clients 5
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	communication "github.com/tharga/communication-go"
)

// The messages of the run.
type (
	Reading struct{ Celsius float64 }
	Status  struct{ Query string }
	Report  struct{ Healthy bool }
	Notice  struct{ Text string }
)

func main() {
	clients := flag.Int("clients", 3, "how many clients run")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout, *clients); err != nil {
		fmt.Fprintln(os.Stderr, "prometheus:", err)
		os.Exit(1)
	}
}

// run starts a server and n clients, makes them talk, lets one leave, and
// writes the library's series from /metrics to out.
func run(ctx context.Context, out io.Writer, n int) error {
	// The application's side: a Prometheus registry, the OpenTelemetry
	// exporter that feeds it, and a meter provider reading from it.
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.Background())

	// The server, told where its metrics go; it says when a client has
	// left.
	left := make(chan string, n)
	state, err := communication.NewClientState[struct{}](communication.WithDisconnectHandler(func(_ context.Context, c communication.ClientEntry[struct{}]) {
		left <- c.ConnectionID
	}))
	if err != nil {
		return err
	}
	srv, err := communication.AddServer(communication.WithMeterProvider(mp), communication.WithClientState(state))
	if err != nil {
		return err
	}
	defer srv.Close()
	readings := make(chan Reading, 100)
	if err := communication.HandlePost(srv.Handlers(), communication.PostHandlerFunc[Reading](func(_ context.Context, r Reading) error {
		readings <- r
		return nil
	})); err != nil {
		return err
	}
	mux := http.NewServeMux()
	srv.Mount(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	defer func() {
		_ = srv.Close()
		_ = hs.Close()
		<-served
	}()
	base := "http://" + ln.Addr().String()

	// The clients: each answers the server's status query and posts
	// readings; they share the meter provider here because they share
	// the process.
	var clients []*communication.Client
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	for i := range n {
		h := communication.NewHandlers()
		if err := communication.HandleSend(h, communication.SendHandlerFunc[Status, Report](func(context.Context, Status) (Report, error) {
			return Report{Healthy: true}, nil
		})); err != nil {
			return err
		}
		if err := communication.HandlePost(h, communication.PostHandlerFunc[Notice](func(context.Context, Notice) error { return nil })); err != nil {
			return err
		}
		c, err := communication.AddClient(communication.WithServerAddress(base), communication.WithHandlers(h),
			communication.WithMeterProvider(mp), communication.WithClientMachine(fmt.Sprintf("sensor-%d", i+1)))
		if err != nil {
			return err
		}
		clients = append(clients, c)
		if err := c.Start(ctx); err != nil {
			return err
		}
	}
	for _, c := range clients {
		for i := range 5 {
			if err := c.Post(ctx, Reading{Celsius: 20 + float64(i)}); err != nil {
				return err
			}
		}
	}
	for range 5 * n {
		select {
		case <-readings:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, c := range clients {
		if _, err := communication.Send[Report](ctx, srv.To(c.ConnectionID()), Status{Query: "health"}); err != nil {
			return err
		}
	}
	if err := srv.PostAll(ctx, Notice{Text: "maintenance at noon"}); err != nil {
		return err
	}
	// A request nobody can answer: the client is not connected.
	if _, err := communication.Send[Report](ctx, srv.To("gone"), Status{}); !errors.Is(err, communication.ErrNotConnected) {
		return fmt.Errorf("a request to nobody: %v", err)
	}
	// The last client leaves.
	last := clients[len(clients)-1]
	clients = clients[:len(clients)-1]
	id := last.ConnectionID()
	if err := last.Close(); err != nil {
		return err
	}
	select {
	case gone := <-left:
		if gone != id {
			return fmt.Errorf("client %s left, not %s", gone, id)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	return scrape(ctx, base+"/metrics", out)
}

// scrape fetches url and writes the library's series (and their HELP and
// TYPE lines) to out.
func scrape(ctx context.Context, url string, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/metrics answered %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name := strings.TrimPrefix(strings.TrimPrefix(line, "# HELP "), "# TYPE ")
		if strings.HasPrefix(name, "signalr_") || strings.HasPrefix(name, "tharga_") {
			fmt.Fprintln(out, line)
		}
	}
	return sc.Err()
}
