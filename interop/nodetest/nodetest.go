// Package nodetest runs Node.js programs for the interoperability tests of
// this module (the official SignalR JavaScript client in Node, Playwright
// driving headless Chromium) and talks to them in JSON lines.
//
// The npm packages come from the module's package.json and lockfile
// (npm ci at the module root). Without node or the packages a test is
// skipped with a message saying what to install, except under CI (CI set
// and not "false" or "0"), where it fails: CI must run these tests.
package nodetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tharga/communication-go/internal/signal"
)

// Env is where node and the npm packages are.
type Env struct {
	// Node is the node executable.
	Node string
	// Root is the module root (the directory of go.mod and package.json).
	Root string
	// NodeModules is Root/node_modules.
	NodeModules string
}

// InCI reports whether the tests run in CI, where missing tools fail the
// tests instead of skipping them.
func InCI() bool {
	v := strings.TrimSpace(os.Getenv("CI"))
	return v != "" && !strings.EqualFold(v, "false") && v != "0"
}

// missing skips the test, or fails it under CI.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI is set: interoperability tests must run, not skip)", msg)
	}
	t.Skipf("%s; skipped outside CI", msg)
}

// Require finds node and the npm packages named (for example
// "@microsoft/signalr"), or skips the test (fails it under CI).
func Require(t testing.TB, packages ...string) Env {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node is not on PATH: install Node.js 20 or later")
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatalf("nodetest: %v", err)
	}
	env := Env{Node: node, Root: root, NodeModules: filepath.Join(root, "node_modules")}
	for _, p := range packages {
		if _, err := os.Stat(filepath.Join(env.NodeModules, filepath.FromSlash(p), "package.json")); err != nil {
			missing(t, "npm package %s is not installed in %s: run `npm ci` in %s", p, env.NodeModules, root)
		}
	}
	return env
}

// RequireFile fails or skips the test (see Require) when path does not
// exist; what says what it is and how to get it.
func RequireFile(t testing.TB, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missing(t, "%s is missing (%s)", path, what)
	}
}

// ModuleRoot returns the nearest directory at or above the working
// directory that holds go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// Event is one JSON line a script wrote to its standard output. Its
// "event" member names it.
type Event map[string]any

// Name returns the event's name.
func (e Event) Name() string { s, _ := e["event"].(string); return s }

// Str returns the member key as a string ("" when absent).
func (e Event) Str(key string) string { s, _ := e[key].(string); return s }

// Process is a running Node.js script. Its standard input takes commands
// (Send) as JSON lines; its standard output gives events as JSON lines.
// Standard error is kept for failure messages.
type Process struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncBuffer
	name   string

	mu      sync.Mutex
	queue   []Event
	notify  signal.Broadcast // notified when queue grows or output ends
	eof     bool
	readErr error
	readers sync.WaitGroup
	exited  chan struct{}
	waitErr error
}

// Start runs node script (a path relative to the module root, or
// absolute) with the given extra environment. The process is stopped when
// the test ends: its standard input is closed (scripts end on EOF), and
// it is killed if it has not exited 10s later.
func Start(t testing.TB, env Env, script string, extraEnv ...string) *Process {
	t.Helper()
	if !filepath.IsAbs(script) {
		script = filepath.Join(env.Root, filepath.FromSlash(script))
	}
	cmd := exec.Command(env.Node, script)
	cmd.Dir = env.Root
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{
		t:      t,
		cmd:    cmd,
		stdin:  stdin,
		stderr: &syncBuffer{},
		name:   filepath.Base(script),
		exited: make(chan struct{}),
	}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("nodetest: start %s: %v", script, err)
	}
	p.readers.Add(1)
	go p.read(stdout)
	go func() {
		p.readers.Wait() // Wait closes stdout: read it all first
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *Process) read(r io.Reader) {
	defer p.readers.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(line, &e); err != nil {
			e = Event{"event": "stdout", "text": string(line)}
		}
		p.mu.Lock()
		p.queue = append(p.queue, e)
		p.notify.Notify()
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.eof = true
	p.readErr = sc.Err()
	p.notify.Notify()
	p.mu.Unlock()
}

// Send writes one command as a JSON line.
func (p *Process) Send(cmd any) {
	p.t.Helper()
	b, err := json.Marshal(cmd)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		p.t.Fatalf("nodetest: write to %s: %v\n%s", p.name, err, p.Stderr())
	}
}

// Expect returns the first queued or coming event named name, removing it
// from the queue; events of other names stay queued for later calls. It
// fails the test if none comes within d or the script's output ends.
func (p *Process) Expect(name string, d time.Duration) Event {
	p.t.Helper()
	e, err := p.Wait(func(e Event) bool { return e.Name() == name }, d)
	if err != nil {
		p.t.Fatalf("nodetest: %s: waiting for event %q: %v\nevents not taken: %v\nstderr:\n%s", p.name, name, err, p.Pending(), p.Stderr())
	}
	return e
}

// Wait returns the first queued or coming event that match accepts,
// removing it from the queue.
func (p *Process) Wait(match func(Event) bool, d time.Duration) (Event, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		p.mu.Lock()
		for i, e := range p.queue {
			if match(e) {
				p.queue = append(p.queue[:i:i], p.queue[i+1:]...)
				p.mu.Unlock()
				return e, nil
			}
		}
		eof, notify := p.eof, p.notify.Wait()
		p.mu.Unlock()
		if eof {
			return nil, fmt.Errorf("the script's output ended (exit: %v)", p.exitErr())
		}
		select {
		case <-notify:
		case <-timer.C:
			return nil, fmt.Errorf("nothing within %v", d)
		}
	}
}

// Pending returns the events received and not yet taken.
func (p *Process) Pending() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.queue...)
}

// Exited is closed when the process has exited and its output is read.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitErr returns the process's exit error once it has exited.
func (p *Process) ExitErr() error {
	<-p.exited
	return p.waitErr
}

func (p *Process) exitErr() any {
	select {
	case <-p.exited:
		if p.waitErr == nil {
			return "status 0"
		}
		return p.waitErr
	case <-time.After(2 * time.Second):
		return "still running"
	}
}

// Stderr returns what the script wrote to its standard error so far.
func (p *Process) Stderr() string { return p.stderr.String() }

// CloseInput closes the script's standard input, which tells the scripts
// of this module to stop and exit.
func (p *Process) CloseInput() { _ = p.stdin.Close() }

func (p *Process) stop() {
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Errorf("nodetest: %s did not exit within 10s of its input closing; killed\nstderr:\n%s", p.name, p.Stderr())
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// WithTimeout returns a context for a test step.
func WithTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
