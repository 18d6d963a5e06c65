package communication

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// maxPendingNegotiations bounds the negotiations waiting for their
// transport request. Each holds a few hundred bytes at most (see
// connInfo), so the bound caps memory at a few tens of megabytes whatever
// a client does; past it the oldest is forgotten, which only matters to a
// client that negotiated and did not connect for a long while.
const maxPendingNegotiations = 100_000

// maxIdentityValue bounds each X-Client-* value kept from a connect
// request: it is what a client record stores.
const maxIdentityValue = 256

// negotiation is what a negotiate request told us, kept until the
// transport request that follows it (a browser cannot give that request
// headers).
type negotiation struct {
	connID  string
	info    connInfo
	expires time.Time
}

// connInfo is what a client said about itself when it connected: only
// what a record stores, each value bounded and copied out of the request,
// so that a negotiate with huge headers keeps nothing of them.
type connInfo struct {
	instance, machine, typ, version string // instance: a UUID, or ""
	correlation                     bool   // it echoes correlation ids
	maxMessage                      int    // what it accepts; 0 unknown
	remoteAddr                      string
	key                             KeyInfo
}

// infoFrom reads what a connect request says about its client.
func infoFrom(r *http.Request) connInfo {
	get := func(k string) string {
		v := r.Header.Get(k)
		if len(v) > maxIdentityValue {
			v = v[:maxIdentityValue]
		}
		// A copy: a slice of a huge header would keep all of it alive.
		return strings.Clone(v)
	}
	n, _ := strconv.Atoi(r.Header.Get(maxMessageHeader))
	inst := get(HeaderClientInstance)
	if _, err := uuid.Parse(inst); err != nil {
		inst = "" // absent or not a UUID: the client is keyed by connection
	}
	return connInfo{
		instance:    inst,
		machine:     get(HeaderClientMachine),
		typ:         get(HeaderClientType),
		version:     get(HeaderClientVersion),
		correlation: r.Header.Get(correlationHeader) == "1",
		maxMessage:  max(n, 0),
		remoteAddr:  strings.Clone(r.RemoteAddr),
	}
}

// recordFrom builds the bookkeeping of a new connection from what the
// client said when it connected.
func recordFrom(connID string, info connInfo, now time.Time) ClientRecord {
	return ClientRecord{
		Instance:     info.instance,
		ConnectionID: connID,
		Machine:      info.machine,
		Type:         info.typ,
		Version:      info.version,
		KeyID:        info.key.ID,
		KeyName:      info.key.Name,
		IsConnected:  true,
		ConnectTime:  now,
	}
}

// merge completes what negotiate said with the transport request's own
// headers (non-browser clients send them on both).
func (i *connInfo) merge(o connInfo) {
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&i.instance, o.instance)
	fill(&i.machine, o.machine)
	fill(&i.typ, o.typ)
	fill(&i.version, o.version)
	i.correlation = i.correlation || o.correlation
	if i.maxMessage == 0 {
		i.maxMessage = o.maxMessage
	}
}

// negotiations remembers negotiations until their transport request takes
// them, for at most ttl. All share one ttl, so insertion order is expiry
// order: a timer expires them from the front, and it runs only while
// there are some, so an idle server has none.
type negotiations struct {
	ttl time.Duration
	max int

	mu     sync.Mutex
	byKey  map[string]*negotiation
	order  []negRef // by insertion; entries already taken are skipped
	head   int
	timer  *time.Timer
	closed bool
}

type negRef struct {
	key string
	n   *negotiation
}

func newNegotiations(ttl time.Duration, max int) *negotiations {
	return &negotiations{ttl: ttl, max: max, byKey: make(map[string]*negotiation)}
}

// add remembers n under key until it is taken or expires.
func (t *negotiations) add(key string, n negotiation) {
	now := time.Now()
	n.expires = now.Add(t.ttl)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.expire(now)
	for len(t.byKey) >= t.max && t.head < len(t.order) {
		t.pop()
	}
	e := &n
	t.byKey[key] = e
	t.order = append(t.order, negRef{key, e})
	if t.timer == nil {
		t.timer = time.AfterFunc(t.ttl, t.tick)
	}
}

// take returns and forgets the negotiation under key, if it has not
// expired: a negotiation is used once.
func (t *negotiations) take(key string) (negotiation, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byKey[key]
	if !ok {
		return negotiation{}, false
	}
	delete(t.byKey, key)
	if time.Now().After(e.expires) {
		return negotiation{}, false
	}
	return *e, true
}

func (t *negotiations) tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	now := time.Now()
	t.expire(now)
	if t.head < len(t.order) {
		t.timer.Reset(t.order[t.head].n.expires.Sub(now) + time.Millisecond)
	} else {
		t.timer = nil
	}
}

// expire drops the expired negotiations at the front; t.mu is held.
func (t *negotiations) expire(now time.Time) {
	for t.head < len(t.order) {
		r := t.order[t.head]
		if t.byKey[r.key] == r.n && now.Before(r.n.expires) {
			break
		}
		t.pop()
	}
}

// pop forgets the oldest entry; t.mu is held.
func (t *negotiations) pop() {
	r := t.order[t.head]
	if t.byKey[r.key] == r.n {
		delete(t.byKey, r.key)
	}
	t.order[t.head] = negRef{}
	t.head++
	switch {
	case t.head == len(t.order):
		t.order, t.head = t.order[:0], 0
	case t.head > 1024 && t.head*2 > len(t.order):
		n := copy(t.order, t.order[t.head:])
		clear(t.order[n:])
		t.order, t.head = t.order[:n], 0
	}
}

// close forgets everything and stops the timer.
func (t *negotiations) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	clear(t.byKey)
	t.order, t.head = nil, 0
}

// negotiateResponse is SignalR's negotiate answer.
type negotiateResponse struct {
	ConnectionToken     string               `json:"connectionToken,omitempty"`
	ConnectionID        string               `json:"connectionId"`
	NegotiateVersion    int                  `json:"negotiateVersion,omitempty"`
	AvailableTransports []availableTransport `json:"availableTransports"`
	Error               string               `json:"error,omitempty"`
}

// transportKey is what the transport request that follows quotes as its
// id: the secret token of version 1, the connection id before it.
func (r *negotiateResponse) transportKey() string {
	if r.ConnectionToken != "" {
		return r.ConnectionToken
	}
	return r.ConnectionID
}

// parseNegotiateResponse reads a negotiate answer; one that carries an
// error is that error.
func parseNegotiateResponse(body []byte) (negotiateResponse, error) {
	var r negotiateResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("negotiate: %w", err)
	}
	if r.Error != "" {
		return r, fmt.Errorf("negotiate: the server answered: %s", r.Error)
	}
	return r, nil
}

type availableTransport struct {
	Transport       string   `json:"transport"`
	TransferFormats []string `json:"transferFormats"`
}

var transports = []availableTransport{
	{Transport: "WebSockets", TransferFormats: []string{"Text", "Binary"}},
	{Transport: "ServerSentEvents", TransferFormats: []string{"Text"}},
}

// negotiate answers a negotiate request itself and remembers who asked,
// so that the transport request that follows is tied to what was said
// here. Version 1 (what current clients ask for) hands out a secret token
// beside the connection id; the token is the transport request's
// credential, used once.
func (s *Server) negotiate(w http.ResponseWriter, r *http.Request, key KeyInfo) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "negotiate takes POST", http.StatusMethodNotAllowed)
		return
	}
	version := 0
	if v, err := strconv.Atoi(r.URL.Query().Get("negotiateVersion")); err == nil {
		version = v
	}
	if v, err := strconv.Atoi(r.Header.Get("negotiateVersion")); err == nil && v != 0 {
		version = v
	}
	resp := negotiateResponse{ConnectionID: newConnectionID(), AvailableTransports: transports}
	if version >= 1 {
		resp.NegotiateVersion = 1
		resp.ConnectionToken = newConnectionID()
	}
	info := infoFrom(r)
	info.key = key
	s.nego.add(resp.transportKey(), negotiation{connID: resp.ConnectionID, info: info})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	s.announce(h)
	_ = json.NewEncoder(w).Encode(resp)
}
