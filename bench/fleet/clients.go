package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	communication "github.com/tharga/communication-go"
)

// member is one client of the fleet and what happened to it.
type member struct {
	c *communication.Client

	mu        sync.Mutex
	startDone bool
	startErr  error
	firstConn time.Time // first Connected
	connected bool      // in Connected state now
	atMark    bool      // connected when mark-restart came
	lostAt    time.Time // first connection loss after mark-restart
	backAt    time.Time // first Connected after mark-restart
}

// fleet is the clients process.
type fleet struct {
	members []*member
	storm   time.Time // when the Starts were released
	within  time.Duration

	marked atomic.Bool
	markMu sync.Mutex
	markAt time.Time

	startErrs   tally // Start errors by text
	attemptErrs tally // failed connection attempts (state changes with an error) by text
	http        tally // answers by route and status: "negotiate 429"
	httpErrs    tally // requests that got no answer, by route and error
	notes       atomic.Int64
	fds         fdWatch
}

// clientsReport is the answer to "report".
type clientsReport struct {
	Event       string `json:"event"` // "report"
	UnixNS      int64  `json:"unix_ns"`
	StormUnixNS int64  `json:"storm_unix_ns"`
	Clients     int    `json:"clients"`
	// Connected is how many are in the Connected state now; EverConnected
	// how many connected at least once.
	Connected     int `json:"connected"`
	EverConnected int `json:"ever_connected"`
	StartsDone    int `json:"starts_done"`
	StartsFailed  int `json:"starts_failed"`
	// Connect is the time from the storm to each client's first
	// connection; AllConnectedMS its maximum once all are connected
	// (-1 before).
	Connect        dist             `json:"connect"`
	AllConnectedMS float64          `json:"all_connected_ms"`
	StartErrors    map[string]int64 `json:"start_errors,omitempty"`
	AttemptErrors  map[string]int64 `json:"attempt_errors,omitempty"`
	HTTP           map[string]int64 `json:"http"`
	HTTPErrors     map[string]int64 `json:"http_errors,omitempty"`
	NotesReceived  int64            `json:"notes_received"`
	Restart        *restartReport   `json:"restart,omitempty"`
	Mem            *memFigures      `json:"mem,omitempty"`
	Files          files            `json:"files"`
}

// restartReport is what happened since mark-restart to the clients that
// were connected then (AtMark): how many lost their connection and got it
// back, and when, from SinceUnixNS (the restart, as the orchestrator gives
// it). Clients that had never connected before the mark and connected
// since are counted apart, in FirstTime.
type restartReport struct {
	MarkUnixNS  int64   `json:"mark_unix_ns"`
	SinceUnixNS int64   `json:"since_unix_ns"`
	AtMark      int     `json:"at_mark"`
	Lost        int     `json:"lost"`
	Back        int     `json:"back"`
	Reconnect   dist    `json:"reconnect"`
	WithinMS    float64 `json:"within_ms"`
	BackWithin  int     `json:"back_within"`
	FirstTime   int     `json:"first_time"`
}

// memFigures is a process's live heap, goroutine stacks and goroutines
// after two GCs.
type memFigures struct {
	HeapAlloc  uint64 `json:"heap_alloc"`
	StackInuse uint64 `json:"stack_inuse"`
	Goroutines int    `json:"goroutines"`
}

func readMem() *memFigures {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return &memFigures{HeapAlloc: m.HeapAlloc, StackInuse: m.StackInuse, Goroutines: runtime.NumGoroutine()}
}

func clientsMain(args []string) error {
	fs := flag.NewFlagSet("fleet clients", flag.ExitOnError)
	addr := fs.String("addr", "", "the server, http://127.0.0.1:port")
	n := fs.Int("clients", 1000, "clients to start")
	startTimeout := fs.Duration("start-timeout", 60*time.Second, "context of each Start")
	within := fs.Duration("within", 20*time.Second, "reconnects counted as back in time")
	_ = fs.Parse(args)
	if err := checkLoopbackURL(*addr); err != nil {
		return err
	}
	if *n < 1 {
		return errors.New("-clients must be at least 1")
	}
	f := &fleet{within: *within}
	go f.fds.run()

	hc := f.httpClient()
	f.members = make([]*member, *n)
	for i := range f.members {
		m := &member{}
		c, err := communication.AddClient(
			communication.WithServerAddress(*addr),
			communication.WithHTTPClient(hc),
			// One instance per client: the server keys its records by
			// instance, which is one per process by default.
			communication.WithClientInstance(uuid.NewString()),
			communication.WithStateHandler(func(sc communication.StateChange) { f.onState(m, sc) }),
		)
		if err != nil {
			return err
		}
		err = errors.Join(
			communication.HandlePost(c.Handlers(), communication.PostHandlerFunc[Note](func(context.Context, Note) error {
				f.notes.Add(1)
				return nil
			})),
			communication.HandleSend(c.Handlers(), communication.SendHandlerFunc[Ping, Pong](func(_ context.Context, p Ping) (Pong, error) {
				return Pong(p), nil
			})),
		)
		if err != nil {
			return err
		}
		m.c = c
		f.members[i] = m
	}

	out := newLineWriter()
	f.startAll(*startTimeout)
	out.write(map[string]any{"event": "storm", "unix_ns": f.storm.UnixNano(), "clients": *n})

	// Commands, one per line. The end of stdin means the orchestrator is
	// gone: exit at once, the kernel closes the connections.
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "report":
			var since int64
			gc := false
			for _, a := range fields[1:] {
				if a == "gc" {
					gc = true
				} else if v, err := strconv.ParseInt(a, 10, 64); err == nil {
					since = v
				}
			}
			out.write(f.report(since, gc))
		case "mark-restart":
			out.write(map[string]any{"event": "marked", "unix_ns": f.mark().UnixNano()})
		case "quit":
			start := time.Now()
			closed := f.closeAll(60 * time.Second)
			out.write(map[string]any{"event": "bye", "closed": closed, "close_ms": ms(time.Since(start))})
			return nil
		default:
			out.write(map[string]any{"event": "error", "error": "unknown command " + fields[0]})
		}
	}
	return errors.New("stdin closed: the orchestrator is gone")
}

// httpClient is the http.Client the clients share, as they would share
// http.DefaultClient: the default transport's settings, no proxy, dialing
// 127.0.0.1 only, counting every answer by status.
func (f *fleet) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if err := checkLoopback(addr); err != nil {
			return nil, err
		}
		return dialer.DialContext(ctx, network, addr)
	}
	return &http.Client{
		Transport: countingTransport{next: tr, f: f},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// countingTransport counts answers by route and status, and failures.
type countingTransport struct {
	next http.RoundTripper
	f    *fleet
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	route := "hub"
	if strings.HasSuffix(r.URL.Path, "/negotiate") {
		route = "negotiate"
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		t.f.httpErrs.add(route + ": " + errorKey(err))
		return resp, err
	}
	t.f.http.add(fmt.Sprintf("%s %d", route, resp.StatusCode))
	return resp, nil
}

// startAll starts every client on its own goroutine, all released at the
// same moment, and returns at once.
func (f *fleet) startAll(timeout time.Duration) {
	release := make(chan struct{})
	for _, m := range f.members {
		go func() {
			<-release
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			err := m.c.Start(ctx)
			if err != nil {
				f.startErrs.add(errorKey(err))
			}
			m.mu.Lock()
			m.startDone, m.startErr = true, err
			m.mu.Unlock()
		}()
	}
	f.storm = time.Now()
	close(release)
}

// onState records a client's state changes. They come from the client's
// event queue, one at a time, shortly after the change.
func (f *fleet) onState(m *member, sc communication.StateChange) {
	now := time.Now()
	if sc.Err != nil {
		f.attemptErrs.add(errorKey(sc.Err))
	}
	marked := f.marked.Load()
	m.mu.Lock()
	defer m.mu.Unlock()
	if sc.State == communication.Connected {
		m.connected = true
		if m.firstConn.IsZero() {
			m.firstConn = now
		}
		if marked && m.backAt.IsZero() {
			m.backAt = now
		}
		return
	}
	if m.connected && marked && m.lostAt.IsZero() {
		m.lostAt = now
	}
	m.connected = false
}

// mark starts the restart measurement: from now on, each client's first
// loss of its connection and first connection again are recorded.
func (f *fleet) mark() time.Time {
	for _, m := range f.members {
		m.mu.Lock()
		m.atMark, m.lostAt, m.backAt = m.connected, time.Time{}, time.Time{}
		m.mu.Unlock()
	}
	now := time.Now()
	f.markMu.Lock()
	f.markAt = now
	f.markMu.Unlock()
	f.marked.Store(true)
	return now
}

func (f *fleet) report(since int64, gc bool) clientsReport {
	r := clientsReport{
		Event:          "report",
		StormUnixNS:    f.storm.UnixNano(),
		Clients:        len(f.members),
		AllConnectedMS: -1,
		StartErrors:    f.startErrs.snapshot(),
		AttemptErrors:  f.attemptErrs.snapshot(),
		HTTP:           f.http.snapshot(),
		HTTPErrors:     f.httpErrs.snapshot(),
		NotesReceived:  f.notes.Load(),
	}
	marked := f.marked.Load()
	var rr restartReport
	if marked {
		f.markMu.Lock()
		rr.MarkUnixNS = f.markAt.UnixNano()
		f.markMu.Unlock()
		if since == 0 {
			since = rr.MarkUnixNS
		}
		rr.SinceUnixNS = since
		rr.WithinMS = ms(f.within)
	}
	from := time.Unix(0, since)
	connect := make([]time.Duration, 0, len(f.members))
	var reconnect []time.Duration
	for _, m := range f.members {
		m.mu.Lock()
		if m.connected {
			r.Connected++
		}
		if !m.firstConn.IsZero() {
			r.EverConnected++
			connect = append(connect, m.firstConn.Sub(f.storm))
		}
		if m.startDone {
			r.StartsDone++
			if m.startErr != nil {
				r.StartsFailed++
			}
		}
		switch {
		case m.atMark:
			rr.AtMark++
			if !m.lostAt.IsZero() {
				rr.Lost++
			}
			if !m.backAt.IsZero() {
				rr.Back++
				d := max(m.backAt.Sub(from), 0)
				reconnect = append(reconnect, d)
				if d <= f.within {
					rr.BackWithin++
				}
			}
		case !m.backAt.IsZero():
			rr.FirstTime++
		}
		m.mu.Unlock()
	}
	r.Connect = distOf(connect, len(f.members))
	if r.EverConnected == len(f.members) {
		r.AllConnectedMS = r.Connect.Max
	}
	if marked {
		rr.Reconnect = distOf(reconnect, rr.AtMark)
		r.Restart = &rr
	}
	if gc {
		r.Mem = readMem()
	}
	r.Files = f.fds.figures()
	r.UnixNS = time.Now().UnixNano()
	return r
}

// closeAll closes every client at once and waits up to wait; it returns
// how many closed in time.
func (f *fleet) closeAll(wait time.Duration) int {
	var closed atomic.Int64
	var wg sync.WaitGroup
	for _, m := range f.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = m.c.Close()
			closed.Add(1)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	return int(closed.Load())
}
