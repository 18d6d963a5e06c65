package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	communication "github.com/tharga/communication-go"
)

// serverStats is what GET /fleet/stats answers.
type serverStats struct {
	UnixNS    int64 `json:"unix_ns"`
	Connected int   `json:"connected"`
	// HTTP counts the hub's answers: "negotiate 200", "negotiate 429",
	// "hub 101"...
	HTTP map[string]int64 `json:"http"`
	// ServerLog counts what net/http logged (accept errors: "too many open
	// files"), by text.
	ServerLog map[string]int64 `json:"server_log,omitempty"`
	// Heap and stack after two GCs, when asked with ?gc=1.
	GC         bool   `json:"gc"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	StackInuse uint64 `json:"stack_inuse"`
	Goroutines int    `json:"goroutines"`
	Files      files  `json:"files"`
	// Broadcast is how the last POST /fleet/broadcast went.
	Broadcast *broadcast `json:"broadcast,omitempty"`
}

type broadcast struct {
	Connected int     `json:"connected"`
	MS        float64 `json:"ms"`
	Error     string  `json:"error,omitempty"`
}

// listening is the line the server writes to stdout once it accepts
// connections.
type listening struct {
	Event  string `json:"event"` // "listening"
	Addr   string `json:"addr"`
	UnixNS int64  `json:"unix_ns"`
}

func serverMain(args []string) error {
	fs := flag.NewFlagSet("fleet server", flag.ExitOnError)
	addr := fs.String("addr", loopback+":0", "listen address (127.0.0.1 only)")
	retry := fs.Duration("listen-retry", 10*time.Second, "keep trying this long while the port is in use")
	_ = fs.Parse(args)
	if err := checkLoopback(*addr); err != nil {
		return err
	}
	fds := &fdWatch{}
	go fds.run()
	if dir := os.Getenv("FLEET_PROFILE_DIR"); dir != "" {
		// Profile the first seconds of this server: the connect storm, or
		// the reconnect storm after a restart.
		stop, err := profileFor(filepath.Join(dir, fmt.Sprintf("server-%d.cpu", os.Getpid())), 20*time.Second)
		if err != nil {
			return err
		}
		defer stop()
	}

	srv, err := communication.AddServer()
	if err != nil {
		return err
	}
	h := srv.Handlers()
	err = errors.Join(
		communication.HandlePost(h, communication.PostHandlerFunc[Note](func(context.Context, Note) error { return nil })),
		communication.HandleSend(h, communication.SendHandlerFunc[Ping, Pong](func(_ context.Context, p Ping) (Pong, error) {
			return Pong(p), nil
		})),
	)
	if err != nil {
		return err
	}
	hub := http.NewServeMux()
	srv.Mount(hub)
	statuses := &tally{}
	serverLog := &tally{}
	var (
		mu   sync.Mutex
		last *broadcast // the last broadcast's outcome
	)

	mux := http.NewServeMux()
	mux.Handle("/", countStatuses(hub, statuses))
	mux.HandleFunc("GET /fleet/stats", func(w http.ResponseWriter, r *http.Request) {
		st := serverStats{
			Connected:  len(srv.ConnectionIDs()),
			HTTP:       statuses.snapshot(),
			ServerLog:  serverLog.snapshot(),
			GC:         r.URL.Query().Get("gc") == "1",
			Goroutines: runtime.NumGoroutine(),
			Files:      fds.figures(),
		}
		if st.GC {
			runtime.GC()
			runtime.GC()
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		st.HeapAlloc, st.StackInuse = m.HeapAlloc, m.StackInuse
		if dir := os.Getenv("FLEET_PROFILE_DIR"); dir != "" && st.GC {
			// What the memory per client is made of: the live heap by
			// allocation site, and the goroutines by where they wait.
			if err := writeProfiles(dir, st.Connected); err != nil {
				log.Printf("fleet server: profiles not written: %v", err)
			}
		}
		st.Goroutines = runtime.NumGoroutine()
		mu.Lock()
		st.Broadcast = last
		mu.Unlock()
		st.UnixNS = time.Now().UnixNano()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("POST /fleet/broadcast", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		b := &broadcast{Connected: len(srv.ConnectionIDs())}
		start := time.Now()
		if err := srv.PostAll(ctx, Note{Text: "fleet"}); err != nil {
			b.Error = err.Error()
		}
		b.MS = ms(time.Since(start))
		mu.Lock()
		last = b
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(b)
	})

	ln, err := listenRetry(*addr, *retry)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(logTally{serverLog}, "", 0),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	out := newLineWriter()
	out.write(listening{Event: "listening", Addr: ln.Addr().String(), UnixNS: time.Now().UnixNano()})

	// The orchestrator stops the server with SIGTERM, or with SIGKILL to
	// measure a crash; the end of stdin means the orchestrator is gone.
	stdinEOF := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		close(stdinEOF)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-stdinEOF:
		return errors.New("stdin closed: the orchestrator is gone")
	case err := <-serveErr:
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	_ = hs.Shutdown(ctx)
	return nil
}

// listenRetry listens on addr, trying again for up to wait while the port
// is still held (by the server that was just killed). Go listeners set
// SO_REUSEADDR, so connections left in TIME_WAIT do not hold it.
func listenRetry(addr string, wait time.Duration) (net.Listener, error) {
	deadline := time.Now().Add(wait)
	for {
		ln, err := net.Listen("tcp4", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countStatuses counts the status of every answer of next, by route
// ("negotiate" or "hub") and status: refusals (429, 404, 503) as well as
// upgrades (101). A status is counted when it is written, since the
// handler of a WebSocket returns only when the connection ends.
func countStatuses(next http.Handler, t *tally) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := "hub"
		if strings.HasSuffix(r.URL.Path, "/negotiate") {
			route = "negotiate"
		}
		sw := &statusWriter{ResponseWriter: w, route: route, t: t}
		next.ServeHTTP(sw, r)
		sw.count(http.StatusOK) // nothing written: net/http answers 200
	})
}

// statusWriter counts the first status written through it. It passes
// Hijack (the WebSocket upgrade) and Flush (server-sent events) through.
type statusWriter struct {
	http.ResponseWriter
	route   string
	t       *tally
	counted bool
}

func (w *statusWriter) count(status int) {
	if !w.counted {
		w.counted = true
		w.t.add(fmt.Sprintf("%s %d", w.route, status))
	}
}

func (w *statusWriter) WriteHeader(code int) {
	w.count(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.count(http.StatusOK)
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() {
	w.count(http.StatusOK)
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijacking not supported")
	}
	if !w.counted {
		w.counted = true
		w.t.add(w.route + " hijacked")
	}
	return hj.Hijack()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logTally counts net/http's log lines by text instead of printing them:
// a storm can make thousands. Ports and the back-off of accept errors are
// blanked.
type logTally struct{ t *tally }

var backoff = regexp.MustCompile(`; retrying in \S+`)

func (l logTally) Write(p []byte) (int, error) {
	s := addrPort.ReplaceAllString(strings.TrimSpace(string(p)), "$1:*")
	l.t.add(backoff.ReplaceAllString(s, "; retrying"))
	return len(p), nil
}

// writeProfiles writes the live heap (after a GC) and the goroutines of
// this server, with connected clients, to dir.
func writeProfiles(dir string, connected int) error {
	for _, p := range []struct {
		name, ext string
		debug     int
	}{{"heap", "pprof", 0}, {"goroutine", "txt", 1}} {
		path := filepath.Join(dir, fmt.Sprintf("server-%d-%s-%d.%s", os.Getpid(), p.name, connected, p.ext))
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		err = pprof.Lookup(p.name).WriteTo(f, p.debug)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// profileFor writes a CPU profile of the next d to path.
func profileFor(path string, d time.Duration) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}
	time.AfterFunc(d, stop)
	return stop, nil
}
