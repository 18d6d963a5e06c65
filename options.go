package communication

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults shared by Server and Client. Each option's doc names its default.
const (
	DefaultKeepAliveInterval        = 15 * time.Second
	DefaultIdleTimeout              = 30 * time.Second
	DefaultHandshakeTimeout         = 15 * time.Second
	DefaultMaxMessageBytes          = 32 << 10
	DefaultMaxRequestsPerConnection = 64
	DefaultSendTimeout              = 60 * time.Second
	DefaultHandlerTimeout           = 60 * time.Second
	DefaultSendQueueBytes           = 4 << 20
	DefaultWriteTimeout             = 10 * time.Second
	DefaultMaxServerHandlers        = 10_000
	DefaultPattern                  = "/hub"
)

// ServerOption configures a Server.
type ServerOption interface{ applyServer(*serverConfig) }

// ClientOption configures a Client.
type ClientOption interface{ applyClient(*clientConfig) }

// Option configures a Server or a Client alike.
type Option interface {
	ServerOption
	ClientOption
}

// common are the settings a server and a client share.
type common struct {
	handlers         []*Handlers
	pattern          string
	logger           *slog.Logger
	keepAlive        time.Duration
	timeout          time.Duration
	handshakeTimeout time.Duration
	maxMessage       int
	maxRequests      int
	sendTimeout      time.Duration
	handlerTimeout   time.Duration
	sendQueueBytes   int
	writeTimeout     time.Duration
	meterProvider    metric.MeterProvider // see metrics.go
	tracerProvider   trace.TracerProvider // see metrics.go
	invalid          []error
}

func defaultCommon() common {
	return common{
		pattern:          DefaultPattern,
		logger:           slog.New(slog.DiscardHandler),
		keepAlive:        DefaultKeepAliveInterval,
		timeout:          DefaultIdleTimeout,
		handshakeTimeout: DefaultHandshakeTimeout,
		maxMessage:       DefaultMaxMessageBytes,
		maxRequests:      DefaultMaxRequestsPerConnection,
		sendTimeout:      DefaultSendTimeout,
		handlerTimeout:   DefaultHandlerTimeout,
		sendQueueBytes:   DefaultSendQueueBytes,
		writeTimeout:     DefaultWriteTimeout,
	}
}

// validate checks the settings, and puts the pattern in its one form.
func (c *common) validate() error {
	errs := append([]error(nil), c.invalid...)
	if p, err := normalizePattern(c.pattern); err != nil {
		errs = append(errs, err)
	} else {
		c.pattern = p
	}
	if c.keepAlive <= 0 {
		errs = append(errs, fmt.Errorf("keep-alive interval must be positive, got %v", c.keepAlive))
	}
	if c.timeout <= c.keepAlive {
		errs = append(errs, fmt.Errorf("idle timeout (%v) must exceed the keep-alive interval (%v)", c.timeout, c.keepAlive))
	}
	if c.handshakeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("handshake timeout must be positive, got %v", c.handshakeTimeout))
	}
	if c.maxMessage < 1024 {
		errs = append(errs, fmt.Errorf("maximum message size must be at least 1024 bytes, got %d", c.maxMessage))
	}
	if c.maxRequests < 1 {
		errs = append(errs, fmt.Errorf("maximum requests per connection must be at least 1, got %d", c.maxRequests))
	}
	if c.sendTimeout <= 0 || c.handlerTimeout <= 0 || c.writeTimeout <= 0 {
		errs = append(errs, errors.New("send, handler and write timeouts must be positive"))
	}
	if c.sendQueueBytes < c.maxMessage {
		errs = append(errs, fmt.Errorf("send queue (%d bytes) must hold at least one message (%d bytes)", c.sendQueueBytes, c.maxMessage))
	}
	return errors.Join(errs...)
}

type commonOption func(*common)

func (o commonOption) applyServer(c *serverConfig) { o(&c.common) }
func (o commonOption) applyClient(c *clientConfig) { o(&c.common) }

// WithHandlers adds handler sets, typically one per package that
// contributes handlers. A type registered in two sets is an error from
// AddServer or AddClient. Default: none (register into Server.Handlers or
// Client.Handlers).
func WithHandlers(sets ...*Handlers) Option {
	return commonOption(func(c *common) { c.handlers = append(c.handlers, sets...) })
}

// WithPattern sets the hub's path: where Server.Mount puts it on the
// server, and its path below the server address (WithServerAddress) on
// the client. "hub", "/hub" and "/hub/" are the same path; a pattern may
// have several segments ("/api/hub") but no query, fragment, space or
// wildcard ({...}), and "" and "/" are refused. Default: "/hub"
// (DefaultPattern), as the .NET library.
func WithPattern(pattern string) Option {
	return commonOption(func(c *common) { c.pattern = pattern })
}

// normalizePattern puts a hub pattern in its one form: a leading slash, no
// trailing slash, no empty, "." or ".." segments.
func normalizePattern(pattern string) (string, error) {
	if strings.ContainsAny(pattern, "?#{} \t\r\n") {
		return "", fmt.Errorf("pattern %q: a hub path has no query, fragment, space or wildcard", pattern)
	}
	p := path.Clean("/" + pattern)
	if p == "/" {
		return "", fmt.Errorf("pattern %q: the hub needs a path of its own (such as %q)", pattern, DefaultPattern)
	}
	return p, nil
}

// WithLogger sets the logger. Default: silent. The transport's own logging
// (philippseith/signalr, which logs through go-kit) is bridged to it.
func WithLogger(l *slog.Logger) Option {
	return commonOption(func(c *common) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.logger = l
	})
}

// WithKeepAliveInterval sets how often a ping goes to an idle peer.
// Default: 15s (as .NET SignalR).
func WithKeepAliveInterval(d time.Duration) Option {
	return commonOption(func(c *common) { c.keepAlive = d })
}

// WithIdleTimeout sets how long a connection may stay silent before it is
// considered dead (the server's client timeout; the client's server
// timeout). It must exceed the peer's keep-alive interval. Default: 30s.
func WithIdleTimeout(d time.Duration) Option {
	return commonOption(func(c *common) { c.timeout = d })
}

// WithHandshakeTimeout bounds the SignalR handshake. Default: 15s.
func WithHandshakeTimeout(d time.Duration) Option {
	return commonOption(func(c *common) { c.handshakeTimeout = d })
}

// WithMaxMessageBytes bounds one incoming hub message in bytes; a larger one
// is dropped with a logged warning and the connection goes on, whatever its
// size (it is skipped as it arrives, never buffered). The bound is
// announced to the other end when the connection is made, so that a Go
// peer refuses a larger message with ErrTooLarge before sending it.
// Default: 32 KiB (as .NET SignalR).
func WithMaxMessageBytes(n int) Option {
	return commonOption(func(c *common) { c.maxMessage = n })
}

// WithMaxRequestsPerConnection bounds how many incoming requests of one
// connection run at once. Past it the connection stops reading until one
// finishes: backpressure, not an unbounded number of goroutines. The
// connection stays up meanwhile, and its running handlers are cancelled if
// it drops. Default: 64.
func WithMaxRequestsPerConnection(n int) Option {
	return commonOption(func(c *common) { c.maxRequests = n })
}

// WithSendTimeout sets how long a request waits for its answer when its
// context has no deadline. Default: 60s (the .NET SendMessageTimeout).
func WithSendTimeout(d time.Duration) Option {
	return commonOption(func(c *common) { c.sendTimeout = d })
}

// WithHandlerTimeout bounds a handler's context when the sender did not say
// how long it waits (a .NET peer, or a post). Default: 60s.
func WithHandlerTimeout(d time.Duration) Option {
	return commonOption(func(c *common) { c.handlerTimeout = d })
}

// WithSendQueueBytes bounds the bytes queued for one connection and not yet
// written. Post waits for room until its context ends; PostAll waits for a
// connection that drains and drops one that has stopped reading as a slow
// consumer. Default: 4 MiB.
func WithSendQueueBytes(bytes int) Option {
	return commonOption(func(c *common) { c.sendQueueBytes = bytes })
}

// WithWriteTimeout bounds one write to a connection; a peer that does not
// take the bytes in time is dropped as a slow consumer. Default: 10s.
func WithWriteTimeout(d time.Duration) Option {
	return commonOption(func(c *common) { c.writeTimeout = d })
}

// serverConfig is the Server's settings.
type serverConfig struct {
	common
	originPatterns     []string
	insecureSkipVerify bool
	keys               []APIKey
	validator          KeyValidator
	state              clientTracker
	onPending          func(PendingEvent)
	maxHandlers        int
	backplane          Backplane
	nodeName           string
}

type serverOption func(*serverConfig)

func (o serverOption) applyServer(c *serverConfig) { o(c) }

// WithMaxServerHandlers bounds how many handlers (requests and posts) run
// at once across all the server's connections, beside the bound of each
// connection (WithMaxRequestsPerConnection). A connection whose next message
// finds no slot stops being read until one frees (backpressure); it stays
// connected meanwhile. Default: 10,000.
func WithMaxServerHandlers(n int) ServerOption {
	return serverOption(func(c *serverConfig) { c.maxHandlers = n })
}

// WithBackplane makes the Server a node of a cluster: broadcasts reach the
// clients of every node, and posts and requests reach a client wherever it
// is connected. Default: none, a single node.
func WithBackplane(b Backplane) ServerOption {
	return serverOption(func(c *serverConfig) { c.backplane = b })
}

// WithNodeName names the Server in its cluster; names must be unique
// there. Default: a random name, new per Server.
func WithNodeName(name string) ServerOption {
	return serverOption(func(c *serverConfig) { c.nodeName = name })
}

// WithOriginPatterns sets the host patterns (path.Match syntax) whose pages
// may open a WebSocket from another origin. Default: same origin only.
func WithOriginPatterns(patterns ...string) ServerOption {
	return serverOption(func(c *serverConfig) { c.originPatterns = append(c.originPatterns, patterns...) })
}

// WithInsecureSkipOriginCheck accepts WebSockets from any origin. Default:
// off. For development only.
func WithInsecureSkipOriginCheck() ServerOption {
	return serverOption(func(c *serverConfig) { c.insecureSkipVerify = true })
}

// clientConfig is the Client's settings.
type clientConfig struct {
	common
	address         string
	reconnectDelays []time.Duration
	reconnectJitter float64
	protocol        Protocol
	httpClient      *http.Client
	headers         http.Header
	onState         func(StateChange)
	onSubscription  func(SubscriptionChange)
	identity        identity
}

type clientOption func(*clientConfig)

func (o clientOption) applyClient(c *clientConfig) { o(c) }

// Protocol is a SignalR hub protocol.
type Protocol uint8

// The hub protocols a Client can speak. A Server speaks both.
const (
	// JSON is SignalR's JSON hub protocol, the only one .NET Tharga
	// servers speak.
	JSON Protocol = 1
	// MessagePack is SignalR's MessagePack hub protocol, for Go and
	// JavaScript peers.
	MessagePack Protocol = 2
)

// WithServerAddress sets the server's base address ("https://host:5001").
// Required.
func WithServerAddress(addr string) ClientOption {
	return clientOption(func(c *clientConfig) { c.address = addr })
}

// WithReconnectDelays sets the waits between connection attempts: the
// first delay before the first retry, the next before the one after, and
// so on; the last delay repeats, so the client never gives up until it is
// closed. Each non-zero delay is jittered (WithReconnectJitter). The
// delays start again from the first only after a connection that stayed
// up for the longer of 5s and the first non-zero delay: a server that
// drops every connection soon after the handshake is retried along the
// growing delays, not in a tight loop. Default: 0s, 2s, 10s, 30s
// (DefaultReconnectDelays).
func WithReconnectDelays(delays ...time.Duration) ClientOption {
	return clientOption(func(c *clientConfig) { c.reconnectDelays = delays })
}

// WithReconnectJitter spreads the reconnect delays: each non-zero delay d
// becomes a wait drawn uniformly from [d*(1-f), d*(1+f)], so that many
// clients cut off at once (a server restart) do not all come back at the
// same instant. f must be between 0 and 1; 0 turns jitter off. A zero
// delay stays zero. Default: 0.5 (DefaultReconnectJitter).
func WithReconnectJitter(f float64) ClientOption {
	return clientOption(func(c *clientConfig) { c.reconnectJitter = f })
}

// WithProtocol chooses the hub protocol. Default: JSON.
func WithProtocol(p Protocol) ClientOption {
	return clientOption(func(c *clientConfig) { c.protocol = p })
}

// WithHTTPClient sets the HTTP client used for negotiate and the WebSocket
// handshake (TLS settings, proxies). Default: http.DefaultClient.
func WithHTTPClient(hc *http.Client) ClientOption {
	return clientOption(func(c *clientConfig) { c.httpClient = hc })
}

// WithHeader adds a header to every connect request (negotiate and
// WebSocket). Default: only the library's own headers (X-Client-*,
// X-Api-Key).
func WithHeader(key, value string) ClientOption {
	return clientOption(func(c *clientConfig) {
		if c.headers == nil {
			c.headers = http.Header{}
		}
		c.headers.Add(key, value)
	})
}

// WithStateHandler sets a function called on every change of the
// connection state, one call at a time, in order. Default: none.
func WithStateHandler(f func(StateChange)) ClientOption {
	return clientOption(func(c *clientConfig) { c.onState = f })
}
