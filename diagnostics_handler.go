package communication

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// DefaultDiagnosticsRefresh is how often the diagnostics page fetches a
// new snapshot by default.
const DefaultDiagnosticsRefresh = 2 * time.Second

// DiagnosticsOption configures Server.DiagnosticsHandler.
type DiagnosticsOption func(*diagnosticsConfig)

type diagnosticsConfig struct {
	limit   int
	refresh time.Duration
}

// WithDiagnosticsLimit bounds how many clients and pending requests one
// answer lists; the counts stay whole. Default: DefaultDiagnosticsLimit
// (500).
func WithDiagnosticsLimit(n int) DiagnosticsOption {
	return func(c *diagnosticsConfig) { c.limit = n }
}

// WithDiagnosticsRefresh sets how often the page fetches a new snapshot.
// Default: DefaultDiagnosticsRefresh (2s).
func WithDiagnosticsRefresh(d time.Duration) DiagnosticsOption {
	return func(c *diagnosticsConfig) { c.refresh = d }
}

// DiagnosticsHandler returns an http.Handler that serves the server's
// Diagnostics: as JSON for "?format=json" or a request that accepts
// application/json and not text/html, and otherwise as an HTML page
// whose tables (clients with their metadata and state, handlers,
// subscriptions, pending requests) update themselves by fetching the
// JSON every refresh interval, without reloading.
//
// The library never mounts it. It shows client metadata, key names and
// connection ids to whoever can reach it: mount it behind the
// application's own authentication middleware, like any operator page.
// Everything a client sent is escaped on the page (and served under a
// Content-Security-Policy that runs no script but its own), so a
// hostile client's metadata shows as text.
func (s *Server) DiagnosticsHandler(opts ...DiagnosticsOption) http.Handler {
	cfg := diagnosticsConfig{limit: DefaultDiagnosticsLimit, refresh: DefaultDiagnosticsRefresh}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.limit <= 0 {
		cfg.limit = DefaultDiagnosticsLimit
	}
	if cfg.refresh <= 0 {
		cfg.refresh = DefaultDiagnosticsRefresh
	}
	return &diagnosticsHandler{s: s, cfg: cfg}
}

type diagnosticsHandler struct {
	s   *Server
	cfg diagnosticsConfig
}

func (h *diagnosticsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	d, err := h.s.Diagnostics(r.Context(), h.cfg.limit)
	if err != nil {
		h.s.log.Warn("communication: diagnostics not available", "error", err)
		http.Error(w, "diagnostics not available", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(viewOf(d))
		return
	}
	nonce := newNonce()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'nonce-"+nonce+
		"'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "no-referrer")
	err = diagnosticsPage.Execute(w, pageData{D: viewOf(d), Nonce: nonce, RefreshMillis: h.cfg.refresh.Milliseconds()})
	if err != nil {
		h.s.log.Debug("communication: diagnostics page not written", "error", err)
	}
}

// wantsJSON tells whether a request asks for the JSON form.
func wantsJSON(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "json":
		return true
	case "html":
		return false
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

func newNonce() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// diagnosticsView is the JSON form of Diagnostics: the .NET original's
// resources (clients, subscriptions, handlers), camelCase as .NET writes
// them, plus the pending requests. Every key is always present.
type diagnosticsView struct {
	Time           time.Time          `json:"time"`
	Node           string             `json:"node"`
	ClientCount    int                `json:"clientCount"`
	ConnectedCount int                `json:"connectedCount"`
	Clients        []clientView       `json:"clients"`
	Subscriptions  []subscriptionView `json:"subscriptions"`
	Handlers       []handlerView      `json:"handlers"`
	Names          []nameView         `json:"names"`
	PendingCount   int                `json:"pendingCount"`
	Pending        []pendingView      `json:"pending"`
}

type clientView struct {
	Instance        string     `json:"instance"`
	ConnectionID    string     `json:"connectionId"`
	Machine         string     `json:"machine"`
	Type            string     `json:"type"`
	Version         string     `json:"version"`
	KeyID           string     `json:"keyId"`
	KeyName         string     `json:"keyName"`
	IsConnected     bool       `json:"isConnected"`
	ConnectTime     time.Time  `json:"connectTime"`
	DisconnectTime  *time.Time `json:"disconnectTime"`
	Transport       string     `json:"transport"`
	Protocol        string     `json:"protocol"`
	QueueBytes      int        `json:"queueBytes"`
	PendingRequests int        `json:"pendingRequests"`
}

type subscriptionView struct {
	Topic string `json:"topic"`
	Key   string `json:"key"`
	Count int    `json:"count"`
}

type handlerView struct {
	Type   string `json:"type"`
	GoType string `json:"goType"`
	Kind   string `json:"kind"`
}

type nameView struct {
	Type   string `json:"type"`
	GoType string `json:"goType"`
}

type pendingView struct {
	ConnectionID  string    `json:"connectionId"`
	CorrelationID string    `json:"correlationId"`
	Type          string    `json:"type"`
	Started       time.Time `json:"started"`
	AgeSeconds    float64   `json:"ageSeconds"`
}

func viewOf(d Diagnostics) diagnosticsView {
	v := diagnosticsView{
		Time: d.Time, Node: d.Node, ClientCount: d.ClientCount, ConnectedCount: d.ConnectedCount,
		Clients:       make([]clientView, 0, len(d.Clients)),
		Subscriptions: make([]subscriptionView, 0, len(d.Subscriptions)),
		Handlers:      make([]handlerView, 0, len(d.Handlers)),
		Names:         make([]nameView, 0, len(d.Names)),
		PendingCount:  d.PendingCount,
		Pending:       make([]pendingView, 0, len(d.Pending)),
	}
	for _, c := range d.Clients {
		cv := clientView{
			Instance: c.Instance, ConnectionID: c.ConnectionID, Machine: c.Machine, Type: c.Type, Version: c.Version,
			KeyID: c.KeyID, KeyName: c.KeyName, IsConnected: c.IsConnected, ConnectTime: c.ConnectTime,
			Transport: c.Transport, Protocol: c.Protocol, QueueBytes: c.QueueBytes, PendingRequests: c.PendingRequests,
		}
		if !c.DisconnectTime.IsZero() {
			t := c.DisconnectTime
			cv.DisconnectTime = &t
		}
		v.Clients = append(v.Clients, cv)
	}
	for _, s := range d.Subscriptions {
		v.Subscriptions = append(v.Subscriptions, subscriptionView(s))
	}
	for _, h := range d.Handlers {
		v.Handlers = append(v.Handlers, handlerView(h))
	}
	for _, n := range d.Names {
		v.Names = append(v.Names, nameView(n))
	}
	for _, p := range d.Pending {
		v.Pending = append(v.Pending, pendingView{ConnectionID: p.ConnectionID, CorrelationID: p.CorrelationID,
			Type: p.Type, Started: p.Started, AgeSeconds: d.Time.Sub(p.Started).Seconds()})
	}
	return v
}

type pageData struct {
	D             diagnosticsView
	Nonce         string
	RefreshMillis int64
}

// diagnosticsPage renders the first snapshot on the server (html/template
// escapes every value) and refreshes it in the browser, where values only
// ever reach the page as textContent.
var diagnosticsPage = template.Must(template.New("diagnostics").Funcs(template.FuncMap{
	"time": func(t time.Time) string { return t.Format(time.RFC3339Nano) },
	"key": func(c clientView) string {
		if c.KeyName != "" {
			return c.KeyName
		}
		return c.KeyID
	},
	"state": func(c clientView) string {
		if c.IsConnected {
			return "connected"
		}
		return "disconnected"
	},
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Communication diagnostics</title>
<link rel="icon" href="data:,">
<style nonce="{{.Nonce}}">
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; }
#status { color: #b00; }
</style>
</head>
<body>
<h1>Communication diagnostics</h1>
<p id="summary"><span id="connected-count">{{.D.ConnectedCount}}</span> connected of
<span id="client-count">{{.D.ClientCount}}</span> known clients;
<span id="pending-count">{{.D.PendingCount}}</span> pending requests.
Node: <span id="node">{{.D.Node}}</span>. Updated <span id="updated">{{time .D.Time}}</span>.
<span id="status"></span></p>

<h2>Clients</h2>
<table id="clients">
<thead><tr><th>Connection</th><th>Instance</th><th>Machine</th><th>Type</th><th>Version</th><th>Key</th><th>State</th><th>Connected at</th><th>Transport</th><th>Protocol</th><th>Queue (bytes)</th><th>Pending</th></tr></thead>
<tbody>{{range .D.Clients}}
<tr data-key="{{.ConnectionID}}"><td>{{.ConnectionID}}</td><td>{{.Instance}}</td><td>{{.Machine}}</td><td>{{.Type}}</td><td>{{.Version}}</td><td>{{key .}}</td><td>{{state .}}</td><td>{{time .ConnectTime}}</td><td>{{.Transport}}</td><td>{{.Protocol}}</td><td class="num">{{.QueueBytes}}</td><td class="num">{{.PendingRequests}}</td></tr>{{end}}
</tbody>
</table>

<h2>Handlers</h2>
<table id="handlers">
<thead><tr><th>Type</th><th>Go type</th><th>Kind</th></tr></thead>
<tbody>{{range .D.Handlers}}
<tr data-key="{{.Type}}"><td>{{.Type}}</td><td>{{.GoType}}</td><td>{{.Kind}}</td></tr>{{end}}
</tbody>
</table>

<h2>Names of the types sent without a handler</h2>
<table id="names">
<thead><tr><th>Type</th><th>Go type</th></tr></thead>
<tbody>{{range .D.Names}}
<tr data-key="{{.Type}}"><td>{{.Type}}</td><td>{{.GoType}}</td></tr>{{end}}
</tbody>
</table>

<h2>Subscriptions</h2>
<table id="subscriptions">
<thead><tr><th>Topic</th><th>Key</th><th>Subscriptions</th></tr></thead>
<tbody>{{range .D.Subscriptions}}
<tr><td>{{.Topic}}</td><td>{{.Key}}</td><td class="num">{{.Count}}</td></tr>{{end}}
</tbody>
</table>

<h2>Pending requests</h2>
<table id="pending">
<thead><tr><th>Connection</th><th>Correlation</th><th>Type</th><th>Started</th><th>Age (s)</th></tr></thead>
<tbody>{{range .D.Pending}}
<tr data-key="{{.CorrelationID}}"><td>{{.ConnectionID}}</td><td>{{.CorrelationID}}</td><td>{{.Type}}</td><td>{{time .Started}}</td><td class="num">{{printf "%.1f" .AgeSeconds}}</td></tr>{{end}}
</tbody>
</table>

<script nonce="{{.Nonce}}">
"use strict";
(function () {
  const every = {{.RefreshMillis}};
  const text = (id, v) => { document.getElementById(id).textContent = String(v); };
  // Values reach the page as textContent only: never parsed as HTML.
  const fill = (id, rows, key, cols) => {
    const trs = rows.map((r) => {
      const tr = document.createElement("tr");
      if (key) tr.dataset.key = key(r);
      cols(r).forEach(([v, num]) => {
        const td = document.createElement("td");
        td.textContent = v === null || v === undefined ? "" : String(v);
        if (num) td.className = "num";
        tr.appendChild(td);
      });
      return tr;
    });
    document.querySelector("#" + id + " tbody").replaceChildren(...trs);
  };
  async function refresh() {
    try {
      const r = await fetch("?format=json", { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      const d = await r.json();
      text("connected-count", d.connectedCount);
      text("client-count", d.clientCount);
      text("pending-count", d.pendingCount);
      text("node", d.node);
      text("updated", d.time);
      fill("clients", d.clients, (c) => c.connectionId, (c) => [
        [c.connectionId], [c.instance], [c.machine], [c.type], [c.version], [c.keyName || c.keyId],
        [c.isConnected ? "connected" : "disconnected"], [c.connectTime], [c.transport], [c.protocol],
        [c.queueBytes, true], [c.pendingRequests, true]]);
      fill("handlers", d.handlers, (h) => h.type, (h) => [[h.type], [h.goType], [h.kind]]);
      fill("names", d.names, (n) => n.type, (n) => [[n.type], [n.goType]]);
      fill("subscriptions", d.subscriptions, null, (s) => [[s.topic], [s.key], [s.count, true]]);
      fill("pending", d.pending, (p) => p.correlationId, (p) => [
        [p.connectionId], [p.correlationId], [p.type], [p.started], [p.ageSeconds.toFixed(1), true]]);
      text("status", "");
    } catch (e) {
      text("status", "Update failed: " + e.message);
    }
    setTimeout(refresh, every);
  }
  setTimeout(refresh, every);
})();
</script>
</body>
</html>
`))
