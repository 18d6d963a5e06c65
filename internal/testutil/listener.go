// Package testutil holds what the test packages share.
package testutil

import (
	"net"
	"sync"
)

// KillListener remembers the connections it accepted, hijacked WebSockets
// included (which httptest forgets), so that a test can cut them all as a
// crash or a network failure would.
type KillListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

// Accept implements net.Listener.
func (l *KillListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// Kill closes every connection accepted so far.
func (l *KillListener) Kill() {
	l.mu.Lock()
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}
