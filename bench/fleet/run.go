package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// runFlags are fleet run's settings.
type runFlags struct {
	Clients          int
	Port             int
	StartTimeout     time.Duration
	ConnectTimeout   time.Duration
	Settle           time.Duration
	Pause            time.Duration
	ReconnectTimeout time.Duration
	Within           time.Duration
	Timeout          time.Duration
	JSON             string
}

func (f runFlags) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"clients": f.Clients, "port": f.Port,
		"start_timeout": f.StartTimeout.String(), "connect_timeout": f.ConnectTimeout.String(),
		"settle": f.Settle.String(), "pause": f.Pause.String(),
		"reconnect_timeout": f.ReconnectTimeout.String(), "within": f.Within.String(),
		"timeout": f.Timeout.String(),
	})
}

// result is everything a run measured: the raw figures, printed as JSON.
type result struct {
	Date    string            `json:"date"`
	Machine string            `json:"machine"`
	Flags   runFlags          `json:"flags"`
	OS      map[string]string `json:"os,omitempty"`
	Figures figures           `json:"figures"`
	// Baseline is the server before any client, after GC.
	Baseline *serverStats `json:"server_baseline,omitempty"`
	Connect  phase        `json:"connect"`
	Restart  phase        `json:"restart"`
	Problems []string     `json:"problems,omitempty"`
	Error    string       `json:"error,omitempty"`
}

// phase is what one phase left: the clients' report, the server's figures
// (GC'd after the connect phase), the kernel's TCP counters over the
// phase, and the sockets of the fleet's port by state.
type phase struct {
	StartUnixNS int64            `json:"start_unix_ns"`
	Clients     *clientsReport   `json:"clients,omitempty"`
	Server      *serverStats     `json:"server,omitempty"`
	NetCounters map[string]int64 `json:"net_counters,omitempty"`
	Sockets     map[string]int   `json:"sockets,omitempty"`
	// For the restart: the sockets of the port between kill and restart,
	// and when the server was killed.
	SocketsDown  map[string]int `json:"sockets_down,omitempty"`
	KilledUnixNS int64          `json:"killed_unix_ns,omitempty"`
	Broadcast    *broadcast     `json:"broadcast,omitempty"`
	NotesSeen    int64          `json:"notes_seen,omitempty"`
}

// figures are the numbers of the table.
type figures struct {
	Clients int `json:"clients"`
	// Connect phase.
	Connected      int     `json:"connected"` // on the server, at the end of the phase
	AllConnectedMS float64 `json:"all_connected_ms"`
	ConnectP50MS   float64 `json:"connect_p50_ms"`
	ConnectP90MS   float64 `json:"connect_p90_ms"`
	StartsFailed   int     `json:"starts_failed"`
	Seen429        int64   `json:"seen_429"` // by the clients
	Sent429        int64   `json:"sent_429"` // by the server
	// Server memory per idle client: (heap + stacks with the clients −
	// baseline) / connected, after GC; and goroutines.
	ServerBytesPerClient      float64 `json:"server_bytes_per_client"`
	ServerHeapPerClient       float64 `json:"server_heap_per_client"`
	ServerStackPerClient      float64 `json:"server_stack_per_client"`
	ServerGoroutinesPerClient float64 `json:"server_goroutines_per_client"`
	// The clients' process, over all its clients, connected or not.
	ClientBytesPerClient      float64 `json:"client_bytes_per_client"`
	ClientGoroutinesPerClient float64 `json:"client_goroutines_per_client"`
	// Restart phase: from the new server listening to each client that
	// was connected when the server was killed connected again.
	AtMark           int     `json:"connected_at_kill"`
	Lost             int     `json:"lost"`
	Back             int     `json:"back"`
	ReconnectP50MS   float64 `json:"reconnect_p50_ms"`
	ReconnectP90MS   float64 `json:"reconnect_p90_ms"`
	ReconnectMaxMS   float64 `json:"reconnect_max_ms"`
	BackWithin       int     `json:"back_within"`
	Seen429Restart   int64   `json:"seen_429_restart"`
	Sent429Restart   int64   `json:"sent_429_restart"`
	BroadcastReached int64   `json:"broadcast_reached"`
}

func runMain(args []string) error {
	var fl runFlags
	fs := flag.NewFlagSet("fleet run", flag.ExitOnError)
	fs.IntVar(&fl.Clients, "clients", 10000, "clients, all in one process")
	fs.IntVar(&fl.Port, "port", 0, "the server's port on 127.0.0.1 (0: any free one)")
	fs.DurationVar(&fl.StartTimeout, "start-timeout", 60*time.Second, "context of each client's Start")
	fs.DurationVar(&fl.ConnectTimeout, "connect-timeout", 120*time.Second, "wait at most this long for all clients to connect")
	fs.DurationVar(&fl.Settle, "settle", 3*time.Second, "wait after the clients connected before measuring memory")
	fs.DurationVar(&fl.Pause, "pause", time.Second, "how long the server stays down")
	fs.DurationVar(&fl.ReconnectTimeout, "reconnect-timeout", 120*time.Second, "wait at most this long after the restart for all clients to reconnect")
	fs.DurationVar(&fl.Within, "within", 20*time.Second, "count the clients back within this long after the restart")
	fs.DurationVar(&fl.Timeout, "timeout", 15*time.Minute, "bound on the whole run")
	fs.StringVar(&fl.JSON, "json", "", "also write the raw figures to this file")
	_ = fs.Parse(args)
	if fl.Clients < 1 || fl.Port < 0 || fl.Port > 65535 {
		return errors.New("-clients must be at least 1 and -port a port")
	}

	// Children get SIGKILL when the thread that started them ends (Linux):
	// start them all from this goroutine, locked to its thread until the
	// process exits.
	runtime.LockOSThread()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, fl.Timeout)
	defer cancel()

	res := &result{
		Date:    time.Now().Format("2006-01-02"),
		Machine: fmt.Sprintf("%s, %d cores, %s, %s/%s", cpuModel(), runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH),
		Flags:   fl,
		OS:      osLimits(),
	}
	r := &runner{fl: fl, self: self, ctx: ctx, res: res, notedPeak: map[string]int{}}
	defer r.cleanup()
	err = r.run()
	if err != nil {
		res.Error = err.Error()
	}
	r.checkLimits("connect", &res.Connect, nil)
	r.checkLimits("restart", &res.Restart, res.Connect.Clients)
	res.Figures = computeFigures(res)
	if res.OS != nil {
		if b, e := os.ReadFile("/proc/loadavg"); e == nil {
			res.OS["loadavg_end"] = strings.TrimSpace(string(b))
		}
	}
	raw, jerr := json.MarshalIndent(res, "", "  ")
	if jerr != nil {
		return errors.Join(err, jerr)
	}
	fmt.Printf("%s\n\n", raw)
	if fl.JSON != "" {
		if werr := os.WriteFile(fl.JSON, append(raw, '\n'), 0o644); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	printTable(os.Stdout, res)
	return err
}

// runner runs the phases and owns the child processes.
type runner struct {
	fl     runFlags
	self   string
	ctx    context.Context
	res    *result
	server *child
	fleet  *child
	addr   string // the server's host:port
	stats  *http.Client
	// notedPeak is the peak of open files already noted, by process.
	notedPeak map[string]int
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fleet: "+format+"\n", args...)
}

func (r *runner) problem(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.res.Problems = append(r.res.Problems, s)
	r.logf("%s", s)
}

// cleanup kills whatever child is still running, and waits for it.
func (r *runner) cleanup() {
	for _, c := range []*child{r.fleet, r.server} {
		if c != nil {
			c.stop(syscall.SIGKILL, 10*time.Second)
		}
	}
}

func (r *runner) run() error {
	r.stats = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if err := checkLoopback(addr); err != nil {
				return nil, err
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
	fl, res := r.fl, r.res

	// The server, and its baseline.
	net0 := readNetCounters()
	if err := r.startServer(net.JoinHostPort(loopback, strconv.Itoa(fl.Port))); err != nil {
		return err
	}
	_, portStr, _ := net.SplitHostPort(r.addr)
	port, _ := strconv.Atoi(portStr)
	base, err := r.serverStats(true)
	if err != nil {
		return err
	}
	res.Baseline = base
	r.logf("server on %s: heap %s B, stacks %s B, %d goroutines", r.addr, num(float64(base.HeapAlloc)), num(float64(base.StackInuse)), base.Goroutines)

	// The storm.
	r.fleet, err = startChild(r.ctx, "clients", r.self, "clients",
		"-addr", "http://"+r.addr, "-clients", strconv.Itoa(fl.Clients),
		"-start-timeout", fl.StartTimeout.String(), "-within", fl.Within.String())
	if err != nil {
		return err
	}
	// Creating the clients takes a moment before the storm.
	raw, err := r.fleet.wait(r.ctx, "storm", 60*time.Second)
	if err != nil {
		return err
	}
	var storm struct {
		UnixNS int64 `json:"unix_ns"`
	}
	_ = json.Unmarshal(raw, &storm)
	res.Connect.StartUnixNS = storm.UnixNS
	r.logf("storm: %d clients starting at once", fl.Clients)
	cr, ss := r.waitConnected("connect", time.Unix(0, storm.UnixNS), fl.ConnectTimeout, 0)
	res.Connect.Clients, res.Connect.Server = cr, ss // replaced below, once idle
	if r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	if cr != nil && cr.AllConnectedMS < 0 {
		r.problem("connect: %d of %d clients connected after %s", cr.EverConnected, fl.Clients, fl.ConnectTimeout)
	}

	// Memory with the clients idle.
	if !sleep(r.ctx, fl.Settle) {
		return r.ctx.Err()
	}
	if ss, err = r.serverStats(true); err != nil {
		return err
	}
	if cr, err = r.report(0, true); err != nil {
		return err
	}
	res.Connect.Clients, res.Connect.Server = cr, ss
	res.Connect.NetCounters = delta(net0, readNetCounters())
	res.Connect.Sockets = socketStates(port)
	r.logf("connected: %d on the server; server heap %s B, stacks %s B, %d goroutines",
		ss.Connected, num(float64(ss.HeapAlloc)), num(float64(ss.StackInuse)), ss.Goroutines)

	// Kill the server, restart it on the same port.
	net1 := readNetCounters()
	if err := r.fleet.send("mark-restart"); err != nil {
		return err
	}
	if _, err := r.fleet.wait(r.ctx, "marked", 30*time.Second); err != nil {
		return err
	}
	r.server.stop(syscall.SIGKILL, 10*time.Second)
	res.Restart.KilledUnixNS = time.Now().UnixNano()
	r.logf("server killed; restarting in %s", fl.Pause)
	if !sleep(r.ctx, fl.Pause) {
		return r.ctx.Err()
	}
	res.Restart.SocketsDown = socketStates(port)
	if err := r.startServer(r.addr); err != nil {
		return err
	}
	restart := time.Unix(0, r.server.listeningNS)
	res.Restart.StartUnixNS = r.server.listeningNS
	cr, ss = r.waitConnected("restart", restart, fl.ReconnectTimeout, restart.UnixNano())
	res.Restart.Clients, res.Restart.Server = cr, ss
	if r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	if cr != nil && cr.Connected < fl.Clients {
		r.problem("restart: %d of %d clients connected %s after the restart", cr.Connected, fl.Clients, fl.ReconnectTimeout)
	}

	// One broadcast: are the clients that came back live?
	if b, err := r.broadcast(); err != nil {
		r.problem("broadcast: %v", err)
	} else {
		res.Restart.Broadcast = b
		deadline := time.Now().Add(15 * time.Second)
		for {
			c, err := r.report(restart.UnixNano(), false)
			if err != nil {
				return err
			}
			res.Restart.NotesSeen = c.NotesReceived
			if c.NotesReceived >= int64(b.Connected) || time.Now().After(deadline) || !sleep(r.ctx, 200*time.Millisecond) {
				break
			}
		}
		r.logf("broadcast: %s of %s connected clients got it (PostAll took %.0f ms)", num(float64(res.Restart.NotesSeen)), num(float64(b.Connected)), b.MS)
	}
	res.Restart.NetCounters = delta(net1, readNetCounters())
	res.Restart.Sockets = socketStates(port)

	// Stop everything.
	if err := r.fleet.send("quit"); err == nil {
		if raw, err := r.fleet.wait(r.ctx, "bye", 90*time.Second); err == nil {
			var bye struct {
				Closed  int     `json:"closed"`
				CloseMS float64 `json:"close_ms"`
			}
			_ = json.Unmarshal(raw, &bye)
			r.logf("clients closed: %d in %.0f ms", bye.Closed, bye.CloseMS)
		}
	}
	r.fleet.stop(syscall.SIGKILL, 30*time.Second)
	r.server.stop(syscall.SIGTERM, 15*time.Second)
	return nil
}

// checkLimits notes the operating-system limits a phase ran into: a full
// listen queue, open files near the limit, file or port exhaustion. The
// clients' counts run from their start: before is their report at the end
// of the previous phase.
func (r *runner) checkLimits(name string, p *phase, before *clientsReport) {
	if n := p.NetCounters["ListenOverflows"]; n > 0 {
		r.problem("%s: the listen queue overflowed %d times (ListenOverflows, this machine; net.core.somaxconn = %s)",
			name, n, r.res.OS["net.core.somaxconn"])
	}
	byProcess := map[string]files{}
	var errs []map[string]int64
	if p.Clients != nil {
		byProcess["clients"] = p.Clients.Files
		errs = append(errs, p.Clients.HTTPErrors)
		if before != nil {
			errs[0] = delta(before.HTTPErrors, p.Clients.HTTPErrors)
		}
	}
	if p.Server != nil {
		byProcess["server"] = p.Server.Files
		errs = append(errs, p.Server.ServerLog)
	}
	for who, f := range byProcess {
		if f.Soft > 0 && uint64(f.Peak)*4 > f.Soft*3 && f.Peak > r.notedPeak[who] {
			r.notedPeak[who] = f.Peak
			r.problem("%s: the %s process had up to %d files open, of %d allowed", name, who, f.Peak, f.Soft)
		}
	}
	for _, m := range errs {
		for k, v := range m {
			for _, limit := range []string{"too many open files", "cannot assign requested address"} {
				if v > 0 && strings.Contains(k, limit) {
					r.problem("%s: %d times %q", name, v, k)
				}
			}
		}
	}
}

// startServer starts fleet server on addr and waits until it listens.
func (r *runner) startServer(addr string) error {
	c, err := startChild(r.ctx, "server", r.self, "server", "-addr", addr)
	if err != nil {
		return err
	}
	r.server = c
	raw, err := c.wait(r.ctx, "listening", 30*time.Second)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	var l listening
	if err := json.Unmarshal(raw, &l); err != nil {
		return err
	}
	if err := checkLoopback(l.Addr); err != nil {
		return err
	}
	r.addr, c.listeningNS = l.Addr, l.UnixNS
	return nil
}

// waitConnected polls the clients and the server until every client is
// connected on both ends or bound has passed since from, and returns the
// last figures of both. since is passed to the clients' report.
func (r *runner) waitConnected(name string, from time.Time, bound time.Duration, since int64) (*clientsReport, *serverStats) {
	deadline := from.Add(bound)
	var cr *clientsReport
	var ss *serverStats
	lastLog := time.Now()
	for {
		c, err := r.report(since, false)
		if err != nil {
			if r.ctx.Err() == nil {
				r.problem("%s: clients: %v", name, err)
			}
			return cr, ss
		}
		cr = c
		if s, err := r.serverStats(false); err == nil {
			ss = s
		}
		done := cr.Connected == r.fl.Clients && ss != nil && ss.Connected == r.fl.Clients
		if done || time.Since(lastLog) >= 5*time.Second || time.Now().After(deadline) {
			lastLog = time.Now()
			srvConnected := -1
			if ss != nil {
				srvConnected = ss.Connected
			}
			r.logf("%s: %s: %d of %d clients connected (server: %d); 429s seen %d; failed Starts %d",
				name, time.Since(from).Round(time.Second), cr.Connected, r.fl.Clients, srvConnected, count429(cr.HTTP), cr.StartsFailed)
		}
		if done || time.Now().After(deadline) || !sleep(r.ctx, 500*time.Millisecond) {
			return cr, ss
		}
	}
}

// report asks the clients for a report.
func (r *runner) report(since int64, gc bool) (*clientsReport, error) {
	cmd := "report " + strconv.FormatInt(since, 10)
	if gc {
		cmd += " gc"
	}
	if err := r.fleet.send(cmd); err != nil {
		return nil, err
	}
	raw, err := r.fleet.wait(r.ctx, "report", 60*time.Second)
	if err != nil {
		return nil, err
	}
	var cr clientsReport
	if err := json.Unmarshal(raw, &cr); err != nil {
		return nil, err
	}
	return &cr, nil
}

func (r *runner) serverStats(gc bool) (*serverStats, error) {
	u := "http://" + r.addr + "/fleet/stats"
	if gc {
		u += "?gc=1"
	}
	var st serverStats
	if err := r.call(http.MethodGet, u, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (r *runner) broadcast() (*broadcast, error) {
	var b broadcast
	if err := r.call(http.MethodPost, "http://"+r.addr+"/fleet/broadcast", &b); err != nil {
		return nil, err
	}
	if b.Error != "" {
		return &b, errors.New(b.Error)
	}
	return &b, nil
}

func (r *runner) call(method, u string, into any) error {
	ctx, cancel := context.WithTimeout(r.ctx, 45*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	resp, err := r.stats.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", method, u, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(into)
}

func computeFigures(res *result) figures {
	f := figures{Clients: res.Flags.Clients, AllConnectedMS: -1, ConnectP50MS: -1, ConnectP90MS: -1,
		ReconnectP50MS: -1, ReconnectP90MS: -1, ReconnectMaxMS: -1}
	if c := res.Connect.Clients; c != nil {
		f.AllConnectedMS, f.ConnectP50MS, f.ConnectP90MS = c.AllConnectedMS, c.Connect.P50, c.Connect.P90
		f.StartsFailed = c.StartsFailed
		f.Seen429 = count429(c.HTTP)
		if c.Mem != nil {
			f.ClientBytesPerClient = float64(c.Mem.HeapAlloc+c.Mem.StackInuse) / float64(f.Clients)
			f.ClientGoroutinesPerClient = float64(c.Mem.Goroutines) / float64(f.Clients)
		}
	}
	if s := res.Connect.Server; s != nil {
		f.Connected = s.Connected
		f.Sent429 = count429(s.HTTP)
	}
	// Memory only from figures read after a GC, with clients.
	if s, b := res.Connect.Server, res.Baseline; s != nil && s.GC && b != nil && s.Connected > 0 {
		n := float64(s.Connected)
		f.ServerHeapPerClient = (float64(s.HeapAlloc) - float64(b.HeapAlloc)) / n
		f.ServerStackPerClient = (float64(s.StackInuse) - float64(b.StackInuse)) / n
		f.ServerBytesPerClient = f.ServerHeapPerClient + f.ServerStackPerClient
		f.ServerGoroutinesPerClient = float64(s.Goroutines-b.Goroutines) / n
	}
	if c := res.Restart.Clients; c != nil && c.Restart != nil {
		f.AtMark, f.Lost, f.Back, f.BackWithin = c.Restart.AtMark, c.Restart.Lost, c.Restart.Back, c.Restart.BackWithin
		f.ReconnectP50MS, f.ReconnectP90MS = c.Restart.Reconnect.P50, c.Restart.Reconnect.P90
		if c.Restart.Reconnect.Missing == 0 {
			f.ReconnectMaxMS = c.Restart.Reconnect.Max
		}
		if before := res.Connect.Clients; before != nil {
			f.Seen429Restart = count429(c.HTTP) - count429(before.HTTP)
		}
	}
	if s := res.Restart.Server; s != nil {
		f.Sent429Restart = count429(s.HTTP)
	}
	f.BroadcastReached = res.Restart.NotesSeen
	return f
}

// printTable prints the figures as a Markdown table of one row, under a
// line that says where and how they were measured.
func printTable(w io.Writer, res *result) {
	f, fl := res.Figures, res.Flags
	fmt.Fprintf(w, "%s, %s; server and %s clients in two processes on loopback; server down %s:\n\n",
		res.Date, res.Machine, num(float64(f.Clients)), secs(fl.Pause))
	fmt.Fprintln(w, "| clients | all connected in | connect p50 / p90 | failed Starts | 429s (connect) | server B/idle client | server goroutines/client | reconnect p50 / p90 / max | back within "+secs(fl.Within)+" | 429s (restart) |")
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	all := seconds(f.AllConnectedMS)
	if f.AllConnectedMS < 0 {
		all = fmt.Sprintf("%s of %s in %s", num(float64(f.Connected)), num(float64(f.Clients)), secs(fl.ConnectTimeout))
	}
	bound := func(v float64, limit time.Duration) string {
		if v < 0 {
			return "> " + secs(limit)
		}
		return seconds(v)
	}
	cells := []string{
		num(float64(f.Clients)),
		all,
		bound(f.ConnectP50MS, fl.ConnectTimeout) + " / " + bound(f.ConnectP90MS, fl.ConnectTimeout),
		num(float64(f.StartsFailed)),
		num(float64(f.Seen429)),
		num(f.ServerBytesPerClient),
		fmt.Sprintf("%.2f", f.ServerGoroutinesPerClient),
		bound(f.ReconnectP50MS, fl.ReconnectTimeout) + " / " + bound(f.ReconnectP90MS, fl.ReconnectTimeout) + " / " + bound(f.ReconnectMaxMS, fl.ReconnectTimeout),
		num(float64(f.BackWithin)) + " of " + num(float64(f.AtMark)),
		num(float64(f.Seen429Restart)),
	}
	fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	if len(res.Problems) > 0 || res.Error != "" {
		fmt.Fprintln(w)
		for _, p := range res.Problems {
			fmt.Fprintln(w, "- "+p)
		}
		if res.Error != "" {
			fmt.Fprintln(w, "- run failed: "+res.Error)
		}
	}
}

// count429 sums the 429 answers of a status tally.
func count429(m map[string]int64) int64 {
	var n int64
	for k, v := range m {
		if strings.HasSuffix(k, " 429") {
			n += v
		}
	}
	return n
}

func delta(before, after map[string]int64) map[string]int64 {
	if after == nil {
		return nil
	}
	out := make(map[string]int64, len(after))
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}

// sleep waits d, or less if ctx ends: it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// num formats v with thousands separators, rounded to a whole number.
func num(v float64) string {
	neg := v < 0
	s := strconv.FormatInt(int64(v+0.5*sign(v)), 10)
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg && s != "0" {
		return "-" + b.String()
	}
	return b.String()
}

func sign(v float64) float64 {
	if v < 0 {
		return -1
	}
	return 1
}

// seconds formats milliseconds as seconds: "0.35 s", "13.2 s", "120 s".
func seconds(v float64) string {
	s := v / 1000
	switch {
	case s < 10:
		return fmt.Sprintf("%.2f s", s)
	case s < 100:
		return fmt.Sprintf("%.1f s", s)
	}
	return fmt.Sprintf("%.0f s", s)
}

// secs formats a setting: "20 s", "1.5 s".
func secs(d time.Duration) string { return fmt.Sprintf("%g s", d.Seconds()) }

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// child is a fleet subprocess: its JSON lines on stdout come as events;
// commands go to its stdin.
type child struct {
	name        string
	cmd         *exec.Cmd
	stdin       io.WriteCloser
	events      chan event
	done        chan struct{} // closed once the process was waited for
	stopping    atomic.Bool   // stop was called: its end is no news
	listeningNS int64         // the server's "listening" time
}

type event struct {
	name string
	raw  []byte
}

// startChild starts self with args in its own process group, killed (the
// group) when ctx ends.
func startChild(ctx context.Context, name, self string, args ...string) (*child, error) {
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.SysProcAttr = childAttr()
	cmd.Cancel = func() error { return killGroup(cmd, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, events: make(chan event, 256), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			var e struct {
				Event string `json:"event"`
			}
			line := append([]byte(nil), sc.Bytes()...)
			if json.Unmarshal(line, &e) != nil {
				fmt.Fprintf(os.Stderr, "fleet: %s: %s\n", name, line)
				continue
			}
			c.events <- event{e.Event, line}
		}
		close(c.events)
		if err := cmd.Wait(); err != nil && ctx.Err() == nil && !c.stopping.Load() {
			fmt.Fprintf(os.Stderr, "fleet: %s exited: %v\n", name, err)
		}
	}()
	return c, nil
}

// wait returns the next event called name, skipping others, for at most
// timeout.
func (c *child) wait(ctx context.Context, name string, timeout time.Duration) ([]byte, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case e, ok := <-c.events:
			if !ok {
				return nil, fmt.Errorf("%s exited while waiting for %q", c.name, name)
			}
			if e.name == name {
				return e.raw, nil
			}
			if e.name == "error" {
				fmt.Fprintf(os.Stderr, "fleet: %s: %s\n", c.name, e.raw)
			}
		case <-t.C:
			return nil, fmt.Errorf("%s: no %q in %s", c.name, name, timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *child) send(line string) error {
	_, err := io.WriteString(c.stdin, line+"\n")
	return err
}

// stop signals the child's process group and waits up to wait for it to
// end, then kills the group and waits up to 5 s more. The events nobody
// reads are drained so that the child is not blocked writing them.
func (c *child) stop(sig syscall.Signal, wait time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	c.stopping.Store(true)
	_ = killGroup(c.cmd, sig)
	if c.drainUntilDone(wait) {
		return
	}
	_ = killGroup(c.cmd, syscall.SIGKILL)
	_ = c.stdin.Close()
	c.drainUntilDone(5 * time.Second)
}

func (c *child) drainUntilDone(wait time.Duration) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	events := c.events
	for {
		select {
		case _, ok := <-events:
			if !ok {
				events = nil
			}
		case <-c.done:
			return true
		case <-t.C:
			return false
		}
	}
}
