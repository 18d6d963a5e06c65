package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDemo runs the demo with a short node timeout and checks that every
// step was printed as done, and that redis-server is gone afterwards.
func TestDemo(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		msg := "redis-server is not installed (apt-get install redis-server): " + err.Error()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cfg := config{
		Timeout:     30 * time.Second,
		Heartbeat:   100 * time.Millisecond,
		NodeTimeout: 500 * time.Millisecond,
		RedisServer: "redis-server",
	}
	var out bytes.Buffer
	err := run(context.Background(), &out, cfg)
	t.Log("\n" + out.String())
	require.NoError(t, err)

	for _, want := range []string{
		"ok: all 6 clients, on 3 nodes, got it",
		`client-5 on node-3 got "by connection id"`,
		`client-5 on node-3 got "by instance"`,
		`request by connection id: answered "client-5 on node-3"`,
		`request by instance: answered "client-5 on node-3"`,
		"ok: posts and requests crossed from node-1 to node-3",
		"ok: the request failed with ErrConnectionLost after",
		"client-5: connected to node-2",
		"client-6: connected to node-1",
		`node-2 asks client-5 by instance: answered "client-5 on node-2"`,
		"ok: a broadcast from node-2 reached all 6 clients, now on 2 nodes",
		"cluster demo: every step worked",
	} {
		require.Contains(t, out.String(), want)
	}

	// The request to the crashed node failed within about the node
	// timeout (plus a heartbeat to notice), not at its own deadline.
	m := regexp.MustCompile(`ErrConnectionLost after (\S+) `).FindStringSubmatch(out.String())
	require.NotNil(t, m)
	took, err := time.ParseDuration(m[1])
	require.NoError(t, err)
	require.Less(t, took, 5*cfg.NodeTimeout)

	// redis-server was killed: nothing answers on its port.
	m = regexp.MustCompile(`redis-server \(pid \d+\) on (\S+)`).FindStringSubmatch(out.String())
	require.NotNil(t, m)
	_, err = net.DialTimeout("tcp", m[1], time.Second)
	require.Error(t, err, "redis-server still runs")
}

// TestNoRedis: without redis-server the demo says how to install it.
func TestNoRedis(t *testing.T) {
	cfg := defaultConfig
	cfg.RedisServer = "no-such-redis-server"
	var out bytes.Buffer
	err := run(context.Background(), &out, cfg)
	require.ErrorIs(t, err, errNoRedis)
	require.Contains(t, err.Error(), "install redis-server (apt-get install redis-server)")
}
