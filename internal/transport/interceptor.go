// Package transport is the glue between our data plane and
// github.com/philippseith/signalr.
//
// philippseith/signalr runs the SignalR session (negotiate, handshake,
// keep-alive pings, timeouts, close), but it dispatches every hub invocation
// on its own goroutine, so a connection's messages run in no particular
// order, and it lets a peer invoke any exported method of the hub. The
// Interceptor sits between the wire and philippseith: it reads the three
// protocol targets off the byte stream itself, in arrival order, hands them to
// an Inbound, refuses every other invocation, and passes only the session
// traffic (handshake, pings, close) through to philippseith.
package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tharga/communication-go/internal/wire"
)

// Side says which end of a connection an Interceptor serves.
type Side uint8

// The two ends of a connection.
const (
	ServerSide Side = iota + 1
	ClientSide
)

// Inbound receives the protocol messages of one connection, in the order
// they arrived. It is called from the connection's read goroutine: it may
// block to apply backpressure, which stops the connection reading.
type Inbound interface {
	// HandleMessage is called for each PostMessage, SendMessage and
	// ResponseMessage invocation. m.Target is the canonical target name.
	// m is reused after the call returns: copy what must outlive it.
	HandleMessage(m *wire.Message)
}

// ClosedByPeerError reports a SignalR close message received from the server.
type ClosedByPeerError struct {
	Message        string
	AllowReconnect bool
}

func (e *ClosedByPeerError) Error() string {
	if e.Message == "" {
		return "connection closed by the server"
	}
	return "connection closed by the server: " + e.Message
}

// ErrHandshake reports a handshake the peer refused or garbled.
var ErrHandshake = errors.New("signalr handshake failed")

// Interceptor splits the byte stream of one connection into hub messages
// and routes them. It is not safe for concurrent use: one reader feeds it.
type Interceptor struct {
	side        Side
	proto       wire.Protocol
	handshaken  bool
	maxMessage  int
	in          Inbound
	refuse      func(invocationID, message string)
	complete    func(invocationID string)
	log         *slog.Logger
	onHandshake func(wire.Protocol)

	rest      []byte
	msg       wire.Message
	lastPass  time.Time
	pingEvery time.Duration
}

// InterceptorConfig configures an Interceptor.
type InterceptorConfig struct {
	Side Side
	// Protocol is the protocol a client asked for; a server learns it
	// from the handshake.
	Protocol wire.Protocol
	// MaxMessage bounds one hub message in bytes.
	MaxMessage int
	Inbound    Inbound
	// Refuse answers an invocation of a method that is not part of the
	// protocol (only called when the invocation carries an id).
	Refuse func(invocationID, message string)
	// Complete answers a protocol invocation that carries an id once it
	// has been taken (the peer used invoke rather than send).
	Complete func(invocationID string)
	// OnHandshake is called once the handshake went through.
	OnHandshake func(wire.Protocol)
	// Handshaken says the handshake is already done (philippseith read
	// it): every message is data from the start.
	Handshaken bool
	// PingEvery is how often, at most, a synthetic ping is passed to
	// philippseith while only intercepted traffic arrives, so that its
	// idle timeout sees a live peer. Zero means one second.
	PingEvery time.Duration
	Logger    *slog.Logger
}

// NewInterceptor returns an Interceptor for one connection.
func NewInterceptor(cfg InterceptorConfig) *Interceptor {
	if cfg.PingEvery <= 0 {
		cfg.PingEvery = time.Second
	}
	return &Interceptor{
		side:        cfg.Side,
		proto:       cfg.Protocol,
		maxMessage:  cfg.MaxMessage,
		in:          cfg.Inbound,
		refuse:      cfg.Refuse,
		complete:    cfg.Complete,
		onHandshake: cfg.OnHandshake,
		log:         cfg.Logger,
		pingEvery:   cfg.PingEvery,
		lastPass:    time.Now(),
		handshaken:  cfg.Handshaken,
	}
}

// Protocol returns the connection's hub protocol, 0 before the handshake.
func (ic *Interceptor) Protocol() wire.Protocol {
	if !ic.handshaken {
		return 0
	}
	return ic.proto
}

// Feed takes the next bytes read from the transport, dispatches every
// complete protocol message in them and appends to pass what philippseith
// must see. A returned error ends the connection.
func (ic *Interceptor) Feed(data []byte, pass []byte) ([]byte, error) {
	buf := data
	if len(ic.rest) > 0 {
		ic.rest = append(ic.rest, data...)
		buf = ic.rest
	}
	intercepted := false
	var err error
	for len(buf) > 0 && err == nil {
		var frame, raw []byte
		var ok bool
		if !ic.handshaken || ic.proto == wire.JSON {
			var rest []byte
			frame, rest, ok = wire.NextJSONRecord(buf)
			if !ok {
				if ic.maxMessage > 0 && len(buf) > ic.maxMessage {
					err = fmt.Errorf("%w: a record of more than %d bytes", wire.ErrTooLarge, ic.maxMessage)
				}
				break
			}
			raw = buf[:len(buf)-len(rest)]
			buf = rest
			if !ic.handshaken {
				pass, err = ic.handshake(frame, raw, pass)
				continue
			}
		} else {
			var rest []byte
			frame, rest, ok, err = wire.NextMsgPackFrame(buf, ic.maxMessage)
			if err != nil || !ok {
				break
			}
			raw = buf[:len(buf)-len(rest)]
			buf = rest
		}
		if ic.maxMessage > 0 && len(frame) > ic.maxMessage {
			ic.log.Warn("communication: hub message dropped", "reason", "exceeds the maximum message size", "size", len(frame), "max", ic.maxMessage)
			intercepted = true
			continue
		}
		var passed bool
		passed, err = ic.route(frame, raw)
		if passed {
			pass = append(pass, raw...)
			ic.lastPass = time.Now()
		} else {
			intercepted = true
		}
	}
	// Keep what is left of a partial message for the next call.
	if len(buf) > 0 && err == nil {
		// buf may alias ic.rest: append moves the bytes with memmove.
		ic.rest = append(ic.rest[:0], buf...)
	} else {
		ic.rest = ic.rest[:0]
	}
	if intercepted && ic.handshaken && time.Since(ic.lastPass) >= ic.pingEvery {
		if ic.proto == wire.JSON {
			pass = wire.AppendJSONPing(pass)
		} else {
			pass = wire.AppendMsgPackPing(pass)
		}
		ic.lastPass = time.Now()
	}
	return pass, err
}

func (ic *Interceptor) handshake(frame, raw, pass []byte) ([]byte, error) {
	switch ic.side {
	case ServerSide:
		p, err := wire.ParseHandshakeRequest(frame)
		if err != nil {
			// Let philippseith answer the handshake with its own error.
			return append(pass, raw...), nil
		}
		ic.proto = p
	case ClientSide:
		serverErr, err := wire.ParseHandshakeResponse(frame)
		if err != nil {
			return pass, fmt.Errorf("%w: %v", ErrHandshake, err)
		}
		if serverErr != "" {
			return pass, fmt.Errorf("%w: the server answered: %s", ErrHandshake, serverErr)
		}
	}
	ic.handshaken = true
	ic.lastPass = time.Now()
	if ic.onHandshake != nil {
		ic.onHandshake(ic.proto)
	}
	return append(pass, raw...), nil
}

// route decides what one hub message is. It reports whether philippseith
// must see the message.
func (ic *Interceptor) route(frame, raw []byte) (bool, error) {
	m := &ic.msg
	var err error
	if ic.proto == wire.JSON {
		err = wire.ParseJSON(frame, m)
	} else {
		err = wire.ParseMsgPack(frame, m)
	}
	if err != nil {
		// The frame boundary is known, so the stream stays in step: drop
		// the message and keep the connection.
		ic.log.Warn("communication: malformed hub message dropped", "error", err)
		return false, nil
	}
	switch m.Type {
	case wire.TypeInvocation, wire.TypeStreamInvocation:
		target, ok := canonicalTarget(m.Target)
		switch {
		case !ok || m.Type == wire.TypeStreamInvocation:
			ic.refuseInvocation(m, fmt.Sprintf("Unknown method '%s'.", m.Target))
		case m.ArgCount != 1 || m.StreamIDs:
			ic.refuseInvocation(m, fmt.Sprintf("Method '%s' takes exactly one argument.", target))
		default:
			m.Target = target
			id := m.InvocationID
			ic.in.HandleMessage(m)
			if id != "" && ic.complete != nil {
				ic.complete(id)
			}
		}
		return false, nil
	case wire.TypePing:
		return true, nil
	case wire.TypeClose:
		if ic.side == ClientSide {
			return false, &ClosedByPeerError{Message: m.CloseError, AllowReconnect: m.AllowReconnect}
		}
		return true, nil
	default:
		// Completions, stream items and cancellations answer nothing we
		// sent: philippseith would close the connection over them.
		ic.log.Debug("communication: unexpected hub message dropped", "type", m.Type)
		return false, nil
	}
}

func (ic *Interceptor) refuseInvocation(m *wire.Message, reason string) {
	ic.log.Warn("communication: invocation refused", "target", m.Target, "reason", reason)
	if m.InvocationID != "" && ic.refuse != nil {
		ic.refuse(m.InvocationID, reason)
	}
}

func canonicalTarget(t string) (string, bool) {
	switch {
	case strings.EqualFold(t, wire.TargetPost):
		return wire.TargetPost, true
	case strings.EqualFold(t, wire.TargetSend):
		return wire.TargetSend, true
	case strings.EqualFold(t, wire.TargetResponse):
		return wire.TargetResponse, true
	}
	return "", false
}
