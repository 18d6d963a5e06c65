package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// childAttr puts a child in its own process group (so that killing the
// group reaches anything it started) and has the kernel kill it when the
// orchestrator's thread that started it dies: runMain starts children from
// the main goroutine, locked to the main thread.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup sends sig to the process group of cmd's process.
func killGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, sig)
}

// openFiles counts this process's open file descriptors.
func openFiles() int {
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return -1
	}
	defer f.Close()
	n := 0
	for {
		names, err := f.Readdirnames(4096)
		n += len(names)
		if err != nil {
			break
		}
	}
	return n - 1 // the descriptor reading the directory
}

// noFileLimit returns RLIMIT_NOFILE. The Go runtime raises the soft limit
// to the hard one when a program starts.
func noFileLimit() (soft, hard uint64) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0
	}
	return r.Cur, r.Max
}

// osLimits reads the kernel settings that bound a fleet on loopback.
func osLimits() map[string]string {
	out := map[string]string{}
	for _, k := range []string{
		"net/ipv4/ip_local_port_range", // ephemeral ports: one per client connection
		"net/core/somaxconn",           // caps the listen backlog Go asks for
		"net/ipv4/tcp_max_syn_backlog",
		"net/ipv4/tcp_syncookies",
		"net/ipv4/tcp_tw_reuse", // 2: reuse TIME_WAIT ports on loopback
		"net/ipv4/tcp_fin_timeout",
		"net/ipv4/tcp_max_tw_buckets",
		"fs/file-max",
		"fs/nr_open",
	} {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			out[strings.ReplaceAll(k, "/", ".")] = strings.Join(strings.Fields(string(b)), " ")
		}
	}
	soft, hard := noFileLimit()
	out["RLIMIT_NOFILE"] = strconv.FormatUint(soft, 10) + " " + strconv.FormatUint(hard, 10)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		out["loadavg"] = strings.TrimSpace(string(b))
	}
	return out
}

// netCounters are the kernel's TCP counters that tell a storm's losses:
// connections the listen queue dropped, SYN cookies, resets, retransmits.
// They count the whole network namespace, other programs included.
var netCounters = map[string][]string{
	"TcpExt": {"ListenOverflows", "ListenDrops", "SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed",
		"TCPReqQFullDoCookies", "TCPReqQFullDrop", "TCPTimeWaitOverflow", "TW", "TCPAbortOnMemory"},
	"Tcp": {"ActiveOpens", "PassiveOpens", "AttemptFails", "EstabResets", "RetransSegs", "OutRsts"},
}

// readNetCounters reads netCounters from /proc/net/netstat and
// /proc/net/snmp.
func readNetCounters() map[string]int64 {
	out := map[string]int64{}
	for _, file := range []string{"/proc/net/netstat", "/proc/net/snmp"} {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		// Each section is two lines: "Name: fields..." then "Name: values...".
		lines := strings.Split(string(b), "\n")
		for i := 0; i+1 < len(lines); i += 2 {
			names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
			if len(names) == 0 || len(names) != len(values) || names[0] != values[0] {
				continue
			}
			want := netCounters[strings.TrimSuffix(names[0], ":")]
			for j := 1; j < len(names); j++ {
				for _, w := range want {
					if names[j] == w {
						if v, err := strconv.ParseInt(values[j], 10, 64); err == nil {
							out[w] = v
						}
					}
				}
			}
		}
	}
	return out
}

// tcpStates names the states of /proc/net/tcp.
var tcpStates = map[string]string{
	"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
	"05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
	"09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}

// socketStates counts the IPv4 sockets with port at either end, by state:
// the connections of the fleet, both ends, and their TIME_WAIT leftovers.
func socketStates(port int) map[string]int {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return nil
	}
	defer f.Close()
	suffix := []byte(fmt.Sprintf(":%04X", port))
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := bytes.Fields(sc.Bytes())
		if len(fs) < 4 || !bytes.HasSuffix(fs[0], []byte(":")) {
			continue
		}
		if bytes.HasSuffix(fs[1], suffix) || bytes.HasSuffix(fs[2], suffix) {
			out[tcpStates[string(fs[3])]]++
		}
	}
	return out
}
