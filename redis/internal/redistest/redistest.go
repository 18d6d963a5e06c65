// Package redistest runs real redis-server processes for tests, on free
// loopback ports, so that a test can kill Redis and start it again on the
// same address.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	Addr string
	port int
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary is the redis-server to run; REDIS_SERVER overrides it.
func Binary() string {
	if b := os.Getenv("REDIS_SERVER"); b != "" {
		return b
	}
	return "redis-server"
}

// Start runs a redis-server on a free loopback port; it is killed when
// the test ends. Without redis-server the test fails under CI and is
// skipped elsewhere, with how to install it.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath(Binary()); err != nil {
		msg := "redis-server is not installed (apt-get install redis-server): " + err.Error()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &Server{t: t, port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	s.Restart()
	t.Cleanup(s.Kill)
	return s
}

// Restart starts the server again on the same address (after Kill); it
// returns once Redis answers.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("redistest: Restart while running")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		cmd := exec.Command(Binary(), "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning")
		out, err := cmd.StdoutPipe()
		if err != nil {
			s.t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			s.t.Fatal(err)
		}
		done := make(chan struct{})
		var log strings.Builder
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
			}
			_ = cmd.Wait()
			close(done)
		}()
		if s.ready(done) {
			s.cmd, s.done = cmd, done
			return
		}
		_ = cmd.Process.Kill()
		<-done
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: redis-server did not start on %s:\n%s", s.Addr, log.String())
		}
		// The port may still be held by the killed process's sockets.
		time.Sleep(100 * time.Millisecond)
	}
}

// ready waits until Redis answers PING, or the process exits.
func (s *Server) ready(exited chan struct{}) bool {
	for range 200 {
		select {
		case <-exited:
			return false
		default:
		}
		if ping(s.Addr) == nil {
			return true
		}
		time.Sleep(25 * time.Millisecond)
	}
	return false
}

func ping(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redistest: PING answered %q", line)
	}
	return nil
}

// Kill stops the server at once (SIGKILL), as a crash would. It is safe
// to call when the server is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}
