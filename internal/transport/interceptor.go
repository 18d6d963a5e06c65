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
// they arrived. It is called from the connection's read goroutine and must
// not block: a message it cannot take yet is refused and offered again.
type Inbound interface {
	// HandleMessage is called for each PostMessage, SendMessage and
	// ResponseMessage invocation. m.Target is the canonical target name.
	// m is reused after the call returns: copy what must outlive it.
	//
	// It returns false when it cannot take m now (every handler slot is
	// busy): the Interceptor keeps the message, Feed returns ErrBusy, and
	// the connection stops reading until Ready's channel is closed. That
	// is the backpressure on the peer.
	HandleMessage(m *wire.Message) bool
	// Ready returns a channel that is closed once a message refused by
	// HandleMessage may be offered again.
	Ready() <-chan struct{}
}

// ErrBusy reports that the Inbound refused a message for now: Feed keeps
// it and offers it again on the next call.
var ErrBusy = errors.New("inbound busy")

// HandshakeError reports a client handshake this end refuses. The
// connection ends; a server answers it with Reason first.
type HandshakeError struct{ Reason string }

func (e *HandshakeError) Error() string { return ErrHandshake.Error() + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrHandshake) hold.
func (e *HandshakeError) Unwrap() error { return ErrHandshake }

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
	codec       wire.Codec // proto's, chosen at the handshake
	handshaken  bool
	maxMessage  int
	in          Inbound
	refuse      func(invocationID, message string)
	complete    func(invocationID string)
	log         *slog.Logger
	onHandshake func(wire.Protocol)
	textOnly    bool

	rest      []byte
	msg       wire.Message
	lastPass  time.Time
	pingEvery time.Duration

	// A hub message over maxMessage is skipped as it streams by, rather
	// than kept: skipLeft is the codec's count of what is left of it
	// (wire.Codec.Skip), skipped counts its bytes for the log.
	skipLeft int64
	skipped  int64
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
	// TextOnly refuses a handshake for MessagePack.
	TextOnly bool
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
		codec:       wire.CodecFor(cfg.Protocol),
		maxMessage:  cfg.MaxMessage,
		in:          cfg.Inbound,
		refuse:      cfg.Refuse,
		complete:    cfg.Complete,
		onHandshake: cfg.OnHandshake,
		textOnly:    cfg.TextOnly,
		log:         cfg.Logger,
		pingEvery:   cfg.PingEvery,
		lastPass:    time.Now(),
	}
}

// Feed takes the next bytes read from the transport, dispatches every
// complete protocol message in them and appends to pass what philippseith
// must see. A returned error ends the connection, except ErrBusy: the
// Inbound refused a message, which is kept with the bytes after it and
// offered again by the next call (Feed(nil, ...) when nothing new came).
//
// A hub message larger than MaxMessage is dropped with a logged warning
// and the connection goes on, whatever its size: it is skipped as it
// streams by, never buffered.
func (ic *Interceptor) Feed(data []byte, pass []byte) ([]byte, error) {
	buf := data
	if len(ic.rest) > 0 {
		ic.rest = append(ic.rest, data...)
		buf = ic.rest
	}
	intercepted := false
	var err error
	for len(buf) > 0 && err == nil {
		if ic.skipLeft != 0 {
			n, left := ic.codec.Skip(buf, ic.skipLeft)
			ic.skipLeft, ic.skipped = left, ic.skipped+int64(n)
			if left == 0 {
				ic.dropped(ic.skipped)
			}
			buf = buf[n:]
			intercepted = true
			continue
		}
		// The handshake is a JSON record whatever protocol it asks for.
		codec := ic.codec
		if !ic.handshaken {
			codec = wire.JSONCodec
		}
		start := buf
		var frame, rest []byte
		var ok bool
		frame, rest, ok, err = codec.Next(buf, ic.maxMessage)
		if errors.Is(err, wire.ErrTooLarge) {
			if !ic.handshaken {
				err = &HandshakeError{Reason: fmt.Sprintf("a handshake of more than %d bytes", ic.maxMessage)}
				break
			}
			if left, ok := codec.SkipLen(buf); ok {
				err = nil
				ic.skipLeft, ic.skipped = left, 0
				continue
			}
		}
		if err != nil || !ok {
			break
		}
		raw := buf[:len(buf)-len(rest)]
		buf = rest
		if !ic.handshaken {
			pass, err = ic.handshake(frame, raw, pass)
			continue
		}
		if ic.maxMessage > 0 && len(frame) > ic.maxMessage {
			ic.dropped(int64(len(raw)))
			intercepted = true
			continue
		}
		var inner []byte
		inner, err = ic.route(frame)
		if errors.Is(err, ErrBusy) {
			buf = start
			break
		}
		if inner != nil {
			pass = append(pass, inner...)
			ic.lastPass = time.Now()
		} else {
			intercepted = true
		}
	}
	// Keep what is left of a partial (or refused) message for the next
	// call.
	if len(buf) > 0 && (err == nil || errors.Is(err, ErrBusy)) {
		// buf may alias ic.rest: append moves the bytes with memmove.
		ic.rest = append(ic.rest[:0], buf...)
	} else {
		ic.rest = ic.rest[:0]
	}
	if cap(ic.rest) > 2*chunkSize && len(ic.rest) <= chunkSize {
		// Let the buffer of a rare large message go.
		ic.rest = append([]byte(nil), ic.rest...)
	}
	if intercepted && ic.handshaken && time.Since(ic.lastPass) >= ic.pingEvery {
		pass = ic.appendPing(pass)
	}
	return pass, err
}

func (ic *Interceptor) dropped(size int64) {
	ic.log.Warn("communication: hub message dropped", "reason", "exceeds the maximum message size", "size", size, "max", ic.maxMessage)
}

// appendPing appends a sign of life for philippseith (see inner.go): it
// takes it as traffic from the peer.
func (ic *Interceptor) appendPing(pass []byte) []byte {
	ic.lastPass = time.Now()
	return append(pass, innerAlive...)
}

func (ic *Interceptor) handshake(frame, raw, pass []byte) ([]byte, error) {
	switch ic.side {
	case ServerSide:
		// This parser alone decides: a handshake it refuses ends the
		// connection, whatever philippseith would have made of it.
		p, err := wire.ParseHandshakeRequest(frame)
		if err != nil {
			return pass, &HandshakeError{Reason: err.Error()}
		}
		codec := wire.CodecFor(p)
		if codec.Binary() && ic.textOnly {
			return pass, &HandshakeError{Reason: "the MessagePack protocol needs a binary transport (WebSockets)"}
		}
		ic.proto, ic.codec = p, codec
	case ClientSide:
		serverErr, err := wire.ParseHandshakeResponse(frame)
		if err != nil {
			return pass, fmt.Errorf("%w: %w", ErrHandshake, err)
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
	if ic.side == ServerSide {
		// philippseith runs the session on MessagePack (inner.go).
		return append(pass, innerHandshake...), nil
	}
	return append(pass, raw...), nil
}

// route decides what one hub message is. It returns what philippseith
// must be handed for it (inner.go), nil for nothing.
func (ic *Interceptor) route(frame []byte) ([]byte, error) {
	m := &ic.msg
	if err := ic.codec.Parse(frame, m); err != nil {
		// The frame boundary is known, so the stream stays in step: drop
		// the message and keep the connection.
		ic.log.Warn("communication: malformed hub message dropped", "error", err)
		return nil, nil
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
			if !ic.in.HandleMessage(m) {
				return nil, ErrBusy
			}
			if id != "" && ic.complete != nil {
				ic.complete(id)
			}
		}
		return nil, nil
	case wire.TypePing:
		return innerAlive, nil
	case wire.TypeClose:
		if ic.side == ClientSide {
			return nil, &ClosedByPeerError{Message: m.CloseError, AllowReconnect: m.AllowReconnect}
		}
		if m.CloseError != "" {
			ic.log.Debug("communication: the client closed the connection", "error", m.CloseError)
		}
		return innerClose, nil
	default:
		// Completions, stream items and cancellations answer nothing we
		// sent: philippseith would close the connection over them.
		ic.log.Debug("communication: unexpected hub message dropped", "type", m.Type)
		return nil, nil
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
