package transport

import (
	"github.com/tharga/communication-go/internal/wire"
)

// philippseith's session runs on MessagePack, whatever the peer speaks.
//
// philippseith sees only the session's own traffic (the handshake, signs
// of life, close); the Conn translates it both ways. Its JSON reader
// holds a 32 KiB buffer for as long as it waits for the next frame, which
// for an idle connection is its whole life: about 28 KB of heap per
// connection and end, a third of a server's memory per idle client. Its
// MessagePack reader holds a few bytes while it waits.
//
// Its MessagePack reader (v0.11.0) has a quirk the Conn works around: it
// reads a frame's length with up to five bytes, keeps them all as the
// frame's first bytes (zero bytes where the read was short), and returns
// a frame only once it has exactly as many bytes as the length says.
// Each frame handed to it is therefore six bytes long, a length of five
// and a body of five, given in two reads: the length and the body's first
// four bytes, then the last byte (Conn.Read cuts there).
var (
	// innerHandshake is the handshake philippseith is given in place of
	// the peer's, once this end has checked the peer's.
	innerHandshake = wire.AppendHandshakeRequest(nil, wire.MessagePack)
	// innerAlive stands for a ping of the peer, or for a sign of life of
	// ours while the peer's traffic is intercepted: a CancelInvocation,
	// [5, {}, "x"], of an invocation that never exists, which philippseith
	// counts as traffic (it resets its timeout) and otherwise ignores. A
	// ping, [6], is too short to be handed over whole.
	innerAlive = []byte{0x05, 0x93, wire.TypeCancelInvocation, 0x80, 0xa1, 'x'}
	// innerClose stands for the peer's close message: [7, {}, nil, false].
	innerClose = []byte{0x05, 0x93, wire.TypeClose, 0x80, 0xc0, 0xc2}
)

// innerFrame is the length of every frame philippseith is handed after
// the handshake; innerCut is where Conn.Read cuts each.
const (
	innerFrame = 6
	innerCut   = 5
)

// fromInner appends to dst what philippseith's frames in p (MessagePack)
// say, in the peer's protocol (codec): pings and close messages; it
// writes nothing else after the handshake. It reports whether a close
// message was among them.
func fromInner(dst, p []byte, codec wire.Codec) (out []byte, closing bool, dropped int) {
	for len(p) > 0 {
		frame, rest, ok, err := wire.MsgPackCodec.Next(p, 0)
		if err != nil || !ok {
			return dst, closing, dropped + 1
		}
		p = rest
		typ, reason, again, err := wire.ParseSessionMsgPack(frame)
		switch {
		case err != nil:
			dropped++
		case typ == wire.TypePing:
			dst = codec.AppendPing(dst)
		case typ == wire.TypeClose:
			dst = codec.AppendClose(dst, reason, again)
			closing = true
		default:
			dropped++
		}
	}
	return dst, closing, dropped
}
