// Command benchtable runs the benchmarks of ./bench and ./redis and prints
// Markdown tables: each operation measured with this library (ours), raw
// github.com/philippseith/signalr and a raw github.com/coder/websocket
// connection, their ratios, allocations, and the performance targets;
// then, from ./redis, operations across nodes through a Redis Backplane
// (impl redis), and with direct links between the nodes (impl direct),
// beside the same operations on one node (impl ours). Every number is the
// median over -count runs.
//
// Run it from the module root (make bench does):
//
//	go run ./bench/cmd/benchtable -count 5
//
// -pkg lists the packages to run, separated by commas. A directory that
// holds its own go.mod (./redis) is a module of its own: go test runs
// there, on its package ".". The benchmarks' own output goes to stderr as
// they run; the tables go to stdout.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	count := flag.Int("count", 5, "runs of each benchmark; the table shows medians")
	benchtime := flag.String("benchtime", "500ms", "go test -benchtime for each run")
	bench := flag.String("bench", ".", "go test -bench pattern")
	pkg := flag.String("pkg", "./bench/,./redis/", "packages of the benchmarks, separated by commas; a directory with its own go.mod runs as its own module")
	in := flag.String("in", "", "read benchmark output from this file instead of running go test (- for stdin)")
	flag.Parse()

	var out []byte
	var err error
	start := time.Now()
	if *in != "" {
		out, err = readInput(*in)
	} else {
		out, err = runAll(*count, *benchtime, *bench, strings.Split(*pkg, ","))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	res := parse(out)
	if len(res) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: no benchmark results")
		os.Exit(1)
	}
	runs := 0
	for _, units := range res {
		for _, vs := range units {
			runs = max(runs, len(vs))
		}
	}
	fmt.Printf("%s, %s, %d CPUs, %s, %s/%s; medians of %d runs of -benchtime %s (%s)\n\n",
		time.Now().Format("2006-01-02"), cpuModel(), runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		runs, *benchtime, time.Since(start).Round(time.Second))
	printed := printTable(os.Stdout, res)
	printed = printFloorTable(os.Stdout, res, printed) || printed
	printClusterTable(os.Stdout, res, printed)
}

// printFloorTable prints the request and broadcast rows beside the
// multiplexed raw WebSocket (impl websocket-mux; bench/floor_test.go,
// wsMuxFleet): the raw reference with only the hand-offs between
// goroutines that the library's guarantees need. It tells whether it
// printed anything.
func printFloorTable(w io.Writer, res results, after bool) bool {
	type floorRow struct{ label, unit, op string }
	var rs []floorRow
	for _, dir := range []struct{ name, label string }{{"client-to-server", "client→server"}, {"server-to-client", "server→client"}} {
		for _, n := range []int{1, 64} {
			rs = append(rs, floorRow{fmt.Sprintf("request %s, %d in flight", dir.label, n), "round trips/s",
				fmt.Sprintf("Request/%s/inflight=%d", dir.name, n)})
		}
	}
	rs = append(rs, floorRow{"broadcast to 1,000 clients", "deliveries/s", "Clients/n=1000"})
	t := &table{w: w, after: after,
		header: "| against the floor, JSON | unit | ours | raw WS | multiplexed raw WS | mux/WS | ours/WS | ours/mux |",
		align:  "|---|---|--:|--:|--:|--:|--:|--:|"}
	for _, r := range rs {
		ours := res.get(key{r.op, "json", "ours"}, "msgs/s")
		ws := res.get(key{r.op, "json", "websocket"}, "msgs/s")
		mux := res.get(key{r.op, "json", "websocket-mux"}, "msgs/s")
		if math.IsNaN(mux) {
			continue
		}
		t.row(r.label, r.unit, num(ours), num(ws), num(mux), ratio(mux, ws), ratio(ours, ws), ratio(ours, mux))
	}
	return t.printed
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

// runAll runs the benchmarks of each package in turn and returns their
// output together.
func runAll(count int, benchtime, bench string, pkgs []string) ([]byte, error) {
	var out []byte
	for _, pkg := range pkgs {
		if pkg = strings.TrimSpace(pkg); pkg == "" {
			continue
		}
		b, err := run(count, benchtime, bench, pkg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pkg, err)
		}
		out = append(out, b...)
	}
	return out, nil
}

// run runs go test on one package, echoing its output to stderr, and
// returns the output. A directory with its own go.mod is a nested module:
// go test must run inside it.
func run(count int, benchtime, bench, pkg string) ([]byte, error) {
	dir := ""
	if _, err := os.Stat(filepath.Join(pkg, "go.mod")); err == nil && filepath.Clean(pkg) != "." {
		dir, pkg = pkg, "."
	}
	args := []string{"test", "-run", "^$", "-bench", bench, "-benchtime", benchtime,
		"-count", strconv.Itoa(count), "-timeout", "30m", pkg}
	where := ""
	if dir != "" {
		where = "(in " + dir + ") "
	}
	fmt.Fprintln(os.Stderr, where+"go", strings.Join(args, " "))
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
	cmd.Stderr = io.MultiWriter(&buf, os.Stderr)
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go test: %w", err)
	}
	return buf.Bytes(), nil
}

// key names one measured variant.
type key struct {
	op    string // e.g. "Post/client-to-server", "Request/client-to-server/inflight=64"
	proto string // json, msgpack
	impl  string // ours, signalr, websocket
}

// results holds every sample of every metric (unit) of every variant.
type results map[key]map[string][]float64

var lineRE = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

func parse(out []byte) results {
	res := results{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := lineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		parts := strings.Split(m[1], "/")
		if len(parts) < 3 {
			continue
		}
		k := key{
			op:    strings.Join(parts[:len(parts)-2], "/"),
			proto: parts[len(parts)-2],
			impl:  parts[len(parts)-1],
		}
		fields := strings.Fields(m[2])
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			if res[k] == nil {
				res[k] = map[string][]float64{}
			}
			res[k][fields[i+1]] = append(res[k][fields[i+1]], v)
		}
	}
	return res
}

// get returns the median of a metric, NaN when it was not measured. The
// raw WebSocket has no hub protocol: it is measured once, under json.
func (r results) get(k key, unit string) float64 {
	vs := r[k][unit]
	if len(vs) == 0 && k.impl == "websocket" && k.proto != "json" {
		k.proto = "json"
		vs = r[k][unit]
	}
	return median(vs)
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// row is one line of the table.
type row struct {
	label, unit string
	op, proto   string
	metric      string
	// higher tells whether more is better (rates) or worse (costs).
	higher bool
	// allocs: show allocations per op (not for memory rows).
	allocs bool
	target target
}

// target is the performance goal for a row.
type target struct {
	text string
	// minSR and minWS are the least ratios ours/raw for rates; maxSR the
	// most for costs; maxAllocs the most allocs/op ratio to raw SignalR.
	minSR, minWS, maxSR, maxAllocs float64
}

func rows() []row {
	var rs []row
	protos := []struct{ name, label string }{{"json", "JSON"}, {"msgpack", "MessagePack"}}
	postTarget := target{text: ">=1.0x SR, allocs <=1.2x SR", minSR: 1.0, maxAllocs: 1.2}
	for _, dir := range []struct{ name, label string }{{"client-to-server", "client→server"}, {"server-to-client", "server→client"}} {
		for _, p := range protos {
			rs = append(rs, row{label: "post " + dir.label + ", " + p.label, unit: "msgs/s",
				op: "Post/" + dir.name, proto: p.name, metric: "msgs/s", higher: true, allocs: true, target: postTarget})
		}
	}
	for _, dir := range []struct{ name, label string }{{"client-to-server", "client→server"}, {"server-to-client", "server→client"}} {
		for _, n := range []int{1, 64} {
			for _, p := range protos {
				// Raw SignalR's bounds from the first table of targets;
				// the raw echo's from the push toward the limit.
				t := target{text: ">=0.6x WS", minWS: 0.6}
				if n == 64 {
					t = target{text: ">=0.9x WS", minWS: 0.9}
				}
				if p.name == "json" && n == 1 {
					t = target{text: ">=1.0x SR, >=0.6x WS", minSR: 1.0, minWS: 0.6}
				}
				if p.name == "json" && n == 64 {
					t = target{text: ">=1.5x SR, >=0.9x WS", minSR: 1.5, minWS: 0.9}
				}
				rs = append(rs, row{label: fmt.Sprintf("request %s, %d in flight, %s", dir.label, n, p.label), unit: "round trips/s",
					op: fmt.Sprintf("Request/%s/inflight=%d", dir.name, n), proto: p.name, metric: "msgs/s", higher: true, allocs: true, target: t})
			}
		}
	}
	for _, dir := range []struct{ name, label string }{{"client-to-server", "client→server"}, {"server-to-client", "server→client"}} {
		for _, p := range protos {
			for _, q := range []string{"p50", "p99"} {
				rs = append(rs, row{label: fmt.Sprintf("request %s at a steady 1,000/s, %s: %s latency", dir.label, p.label, q), unit: "µs",
					op: "Latency/" + dir.name + "/rate=1000", proto: p.name, metric: q + "-us"})
			}
		}
	}
	fleet := "Clients/n=1000"
	rs = append(rs,
		row{label: "broadcast to 1,000 clients, JSON (allocs, B per broadcast)", unit: "deliveries/s", op: fleet, proto: "json",
			metric: "msgs/s", higher: true, allocs: true, target: target{text: ">=0.91x SR, >=0.8x WS", minSR: 1 / 1.1, minWS: 0.8}},
		row{label: "idle client: heap (both ends), 1,000 clients", unit: "B/client", op: fleet, proto: "json",
			metric: "heap-B/client", target: target{text: "<=1.1x SR", maxSR: 1.1}},
		row{label: "idle client: goroutine stacks (both ends)", unit: "B/client", op: fleet, proto: "json",
			metric: "stack-B/client", target: target{text: "<=1.1x SR", maxSR: 1.1}},
		row{label: "idle client: goroutines (both ends)", unit: "per client", op: fleet, proto: "json",
			metric: "goroutines/client", target: target{text: "<=1.1x SR", maxSR: 1.1}},
	)
	return rs
}

// printTable prints the rows against raw SignalR and raw WebSocket, when
// there are any, and tells whether there were.
func printTable(w io.Writer, res results) bool {
	t := &table{w: w,
		header: "| operation | unit | ours | raw SignalR | raw WS | ours/SR | ours/WS | allocs/op ours | allocs/op SR | B/op ours | B/op SR | target |",
		align:  "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"}
	for _, r := range rows() {
		ours := res.get(key{r.op, r.proto, "ours"}, r.metric)
		sr := res.get(key{r.op, r.proto, "signalr"}, r.metric)
		ws := res.get(key{r.op, r.proto, "websocket"}, r.metric)
		if math.IsNaN(ours) && math.IsNaN(sr) && math.IsNaN(ws) {
			continue
		}
		cells := []string{r.label, r.unit, num(ours), num(sr), num(ws), ratio(ours, sr), ratio(ours, ws)}
		ao, as := math.NaN(), math.NaN()
		bo, bs := math.NaN(), math.NaN()
		if r.allocs {
			ao = res.get(key{r.op, r.proto, "ours"}, "allocs/op")
			as = res.get(key{r.op, r.proto, "signalr"}, "allocs/op")
			bo = res.get(key{r.op, r.proto, "ours"}, "B/op")
			bs = res.get(key{r.op, r.proto, "signalr"}, "B/op")
		}
		cells = append(cells, num(ao), num(as), num(bo), num(bs), verdict(r.target, ours, sr, ws, ao, as))
		t.row(cells...)
	}
	return t.printed
}

// clusterRow is one line of the table across nodes: impl redis (the
// clients on other nodes than the sender, through Redis) or direct (the
// same with direct links between the nodes) beside impl ours (everything
// on one node).
type clusterRow struct {
	label, unit string
	op, proto   string
	impl        string // "redis" or "direct"
	// minRatio is the least impl/ours; 0 for no target.
	minRatio float64
}

func clusterRows() []clusterRow {
	return []clusterRow{
		{label: "post to a client on another node, JSON", unit: "msgs/s",
			op: "ClusterPost/server-to-client", proto: "json", impl: "redis"},
		{label: "post to a client on another node, direct links, JSON", unit: "msgs/s",
			op: "ClusterPost/server-to-client", proto: "json", impl: "direct"},
		{label: "request to a client on another node, 64 in flight, JSON", unit: "round trips/s",
			op: "ClusterRequest/server-to-client/inflight=64", proto: "json", impl: "redis", minRatio: 0.5},
		{label: "request to a client on another node, 64 in flight, direct links, JSON", unit: "round trips/s",
			op: "ClusterRequest/server-to-client/inflight=64", proto: "json", impl: "direct", minRatio: 0.5},
		{label: "broadcast to 3 nodes x 1,000 clients vs 3,000 on one node, JSON (allocs, B per broadcast)", unit: "deliveries/s",
			op: "ClusterBroadcast/clients=3000", proto: "json", impl: "redis", minRatio: 0.5},
	}
}

// printClusterTable prints the rows across nodes, when there are any,
// after a blank line when a table came before.
func printClusterTable(w io.Writer, res results, after bool) {
	t := &table{w: w, after: after,
		header: "| across nodes | unit | one node | cross-node | cross/one | allocs/op one node | allocs/op cross-node | B/op one node | B/op cross-node | target |",
		align:  "|---|---|--:|--:|--:|--:|--:|--:|--:|---|"}
	for _, r := range clusterRows() {
		one := res.get(key{r.op, r.proto, "ours"}, "msgs/s")
		cross := res.get(key{r.op, r.proto, r.impl}, "msgs/s")
		if math.IsNaN(one) && math.IsNaN(cross) {
			continue
		}
		target := "-"
		if r.minRatio > 0 {
			target = fmt.Sprintf(">=%.1fx one node", r.minRatio)
			switch v := cross / one; {
			case math.IsNaN(v):
				target += ": **missed** (not measured)"
			case v >= r.minRatio:
				target += ": met"
			default:
				target += fmt.Sprintf(": **missed** (%.2fx)", v)
			}
		}
		cells := []string{r.label, r.unit, num(one), num(cross), ratio(cross, one),
			num(res.get(key{r.op, r.proto, "ours"}, "allocs/op")), num(res.get(key{r.op, r.proto, r.impl}, "allocs/op")),
			num(res.get(key{r.op, r.proto, "ours"}, "B/op")), num(res.get(key{r.op, r.proto, r.impl}, "B/op")),
			target}
		t.row(cells...)
	}
}

// table prints a Markdown table whose header goes out with its first row,
// after a blank line when a table came before (after).
type table struct {
	w             io.Writer
	after         bool
	header, align string
	printed       bool // a row went out
}

func (t *table) row(cells ...string) {
	if !t.printed {
		if t.after {
			fmt.Fprintln(t.w)
		}
		fmt.Fprintln(t.w, t.header)
		fmt.Fprintln(t.w, t.align)
		t.printed = true
	}
	fmt.Fprintln(t.w, "| "+strings.Join(cells, " | ")+" |")
}

// verdict checks a row against its target.
func verdict(t target, ours, sr, ws, ao, as float64) string {
	if t.text == "" {
		return "-"
	}
	var missed []string
	check := func(ok bool, what string, v float64) {
		if math.IsNaN(v) {
			missed = append(missed, what+" not measured")
		} else if !ok {
			missed = append(missed, fmt.Sprintf("%s %.2fx", what, v))
		}
	}
	if t.minSR > 0 {
		v := ours / sr
		check(v >= t.minSR, "SR", v)
	}
	if t.minWS > 0 {
		v := ours / ws
		check(v >= t.minWS, "WS", v)
	}
	if t.maxSR > 0 {
		v := ours / sr
		check(v <= t.maxSR, "SR", v)
	}
	if t.maxAllocs > 0 {
		v := ao / as
		check(v <= t.maxAllocs, "allocs", v)
	}
	if len(missed) == 0 {
		return t.text + ": met"
	}
	return t.text + ": **missed** (" + strings.Join(missed, ", ") + ")"
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// num formats a value with thousands separators, two decimals below 100.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.Abs(v) < 100 && v != math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// cpuModel reads the CPU model from /proc/cpuinfo where there is one.
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
