// Command fleet measures a storm of clients against one server, with the
// server and the clients in separate processes on loopback (127.0.0.1, and
// nothing else: every address it is given or dials is checked).
//
// Run it with make, which builds it once, raises the open-file limit and
// runs it:
//
//	make fleet                        # 10,000 clients (FLEET_CLIENTS)
//	make fleet FLEET_CLIENTS=1000     # a smoke run: some 15 s
//	make fleet FLEET_FLAGS='-pause 3s -json fleet.json'
//
// A run takes the time the clients need to connect and to come back, each
// bounded by 120 s by default (-connect-timeout, -reconnect-timeout), plus
// some 20 s; -h lists the settings.
//
// or by hand, from the module root:
//
//	go build -o /tmp/fleet ./bench/fleet
//	ulimit -n 1048576 || ulimit -n $(ulimit -H -n); /tmp/fleet run -clients 10000
//
// One binary, three subcommands:
//
//   - fleet run orchestrates. It starts fleet server, reads the server's
//     baseline memory, starts fleet clients, waits (at most
//     -connect-timeout) until all the clients are connected, reads the
//     server's memory again, then kills the server with SIGKILL, starts it
//     again on the same port after -pause, and waits (at most
//     -reconnect-timeout) until every client is connected again. It ends
//     with one broadcast to check that the clients are live, stops both
//     processes, and prints the raw figures as JSON, then a Markdown table.
//   - fleet server is a communication.Server with default options on its
//     own mux. A middleware counts the hub's answers by status (the 429s
//     included); GET /fleet/stats returns its figures as JSON (connected
//     clients, statuses, heap and stack after a GC when asked, goroutines,
//     open files); POST /fleet/broadcast runs one PostAll.
//   - fleet clients starts -clients communication.Clients in one process,
//     all at once (a goroutine each, released together), counts what
//     happens to each (Start errors, connect times, HTTP statuses seen
//     through its own http.Client, state changes) and answers commands on
//     stdin ("report", "mark-restart", "quit") with JSON lines on stdout.
//
// Every wait is bounded, and the whole run by -timeout: the command stops by
// itself. The children are in their own process groups, die with the
// orchestrator (SIGKILL as parent-death signal on Linux, and end of stdin)
// and are killed when it exits or is interrupted.
//
// Each process needs a file descriptor per connection (10,000 clients: about
// 10,000 in each process, up to half as many again during the storm) and
// the clients need one ephemeral port per connection, and one per negotiate
// request whose connection is not kept. The JSON lists the limits found
// (RLIMIT_NOFILE, net.ipv4.ip_local_port_range, net.core.somaxconn...), the
// kernel's TCP counters over each phase (listen-queue overflows, resets)
// and the sockets of the port by state; the table is followed by a note for
// every limit the run ran into.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runMain(os.Args[2:])
	case "server":
		err = serverMain(os.Args[2:])
	case "clients":
		err = clientsMain(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "fleet %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: fleet run|server|clients [flags]   (fleet run -h for the flags)")
	os.Exit(2)
}

// The messages the server and the clients handle, so that the clients are
// real ones: a post the server broadcasts, and a request either side could
// answer.
type (
	Note struct{ Text string }
	Ping struct{ Seq int }
	Pong struct{ Seq int }
)

// loopback is the only address the fleet ever listens on or dials.
const loopback = "127.0.0.1"

// checkLoopback refuses a host:port whose host is not 127.0.0.1.
func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	if host != loopback {
		return fmt.Errorf("%s: only %s may be used", hostport, loopback)
	}
	return nil
}

// checkLoopbackURL refuses a URL that is not http://127.0.0.1:port.
func checkLoopbackURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" {
		return fmt.Errorf("%s: only http://%s:port may be used", s, loopback)
	}
	return checkLoopback(u.Host)
}

// tally counts occurrences by key, safe for concurrent use. It keeps at most
// maxKeys distinct keys; the rest are counted under "(other)".
type tally struct {
	mu sync.Mutex
	m  map[string]int64
}

const maxKeys = 64

func (t *tally) add(k string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]int64)
	}
	if _, ok := t.m[k]; !ok && len(t.m) >= maxKeys {
		k = "(other)"
	}
	t.m[k]++
}

func (t *tally) snapshot() map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int64, len(t.m))
	for k, v := range t.m {
		out[k] = v
	}
	return out
}

// addrPort matches an IPv4 address with a port, whose port changes with
// every connection; connID the connection id in a WebSocket URL.
var (
	addrPort = regexp.MustCompile(`(\d{1,3}(?:\.\d{1,3}){3}):\d+`)
	connID   = regexp.MustCompile(`([?&]id=)[^&"\s]+`)
)

// errorKey turns an error into a key under which the same failure of
// different connections is counted together: ports and connection ids are
// blanked and the text is cut at 200 bytes.
func errorKey(err error) string {
	s := addrPort.ReplaceAllString(err.Error(), "$1:*")
	s = connID.ReplaceAllString(s, "${1}*")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// dist is a distribution of durations over a set of clients, in
// milliseconds. Clients that never got there (Missing) rank last: a
// percentile that falls among them is -1, and Max is that of the others.
type dist struct {
	N       int     `json:"n"`
	Missing int     `json:"missing"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
}

// distOf sorts ds, the durations of len(ds) of total clients, and returns
// their nearest-rank percentiles over all total.
func distOf(ds []time.Duration, total int) dist {
	total = max(total, len(ds))
	d := dist{N: total, Missing: total - len(ds), P50: -1, P90: -1, P99: -1, Max: -1}
	if len(ds) == 0 {
		return d
	}
	slices.Sort(ds)
	at := func(p float64) float64 {
		i := max(int(math.Ceil(p*float64(total)))-1, 0)
		if i >= len(ds) {
			return -1
		}
		return ms(ds[i])
	}
	d.P50, d.P90, d.P99, d.Max = at(0.50), at(0.90), at(0.99), ms(ds[len(ds)-1])
	return d
}

// ms is d in milliseconds, to a tenth.
func ms(d time.Duration) float64 {
	return float64(d.Round(100*time.Microsecond)) / float64(time.Millisecond)
}

// lineWriter writes JSON lines to stdout, one at a time.
type lineWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func newLineWriter() *lineWriter { return &lineWriter{enc: json.NewEncoder(os.Stdout)} }

func (w *lineWriter) write(v any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enc.Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, "fleet: writing to stdout:", err)
		os.Exit(1)
	}
}

// fdWatch samples the number of open files of this process every half
// second, so that a report can give the peak, not only the current count.
type fdWatch struct {
	mu   sync.Mutex
	peak int
}

func (f *fdWatch) run() {
	for {
		f.sample()
		time.Sleep(500 * time.Millisecond)
	}
}

func (f *fdWatch) sample() int {
	n := openFiles()
	f.mu.Lock()
	f.peak = max(f.peak, n)
	f.mu.Unlock()
	return n
}

func (f *fdWatch) highest() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peak
}

// files is what a process reports about its file descriptors.
type files struct {
	Open int    `json:"open"`
	Peak int    `json:"peak"`
	Soft uint64 `json:"limit_soft"`
	Hard uint64 `json:"limit_hard"`
}

func (f *fdWatch) figures() files {
	n := f.sample()
	soft, hard := noFileLimit()
	return files{Open: n, Peak: f.highest(), Soft: soft, Hard: hard}
}
