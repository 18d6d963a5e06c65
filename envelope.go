package communication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// The envelope's encoding: a version byte, then each field in a fixed
// order, strings and bytes as a uvarint length and the bytes, numbers as
// varints. Hand-written because it is on the path of every message
// between nodes: reflection-based MessagePack cost a third of the
// allocations of a request across nodes.
const envelopeVersion = 1

var errEnvelope = errors.New("communication: malformed message between nodes")

func appendEnvelope(b []byte, e *envelope) []byte {
	if b == nil {
		// One allocation: the strings and payload, and at most a few
		// bytes of length and number for each field.
		n := 1 + 16*binary.MaxVarintLen16 + 2*binary.MaxVarintLen64 + len(e.Kind) + len(e.From) + len(e.Conn) +
			len(e.Type) + len(e.Payload) + len(e.RespName) + len(e.Err) + len(e.Code) + len(e.Message) +
			len(e.TraceParent) + len(e.TraceState)
		for _, s := range e.Subs {
			n += len(s.Topic) + len(s.Key) + 3*binary.MaxVarintLen32
		}
		b = make([]byte, 0, n)
	}
	b = append(b, envelopeVersion)
	for _, s := range [...]string{e.Kind, e.From} {
		b = appendEnvString(b, s)
	}
	b = binary.AppendUvarint(b, e.ID)
	for _, s := range [...]string{e.Conn, e.Type} {
		b = appendEnvString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Payload)))
	b = append(b, e.Payload...)
	b = appendEnvString(b, e.RespName)
	b = binary.AppendVarint(b, e.Deadline)
	for _, s := range [...]string{e.Err, string(e.Code), e.Message} {
		b = appendEnvString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Subs)))
	for _, s := range e.Subs {
		b = appendEnvString(b, s.Topic)
		b = appendEnvString(b, s.Key)
		b = binary.AppendVarint(b, int64(s.Count))
	}
	// The trace context is an optional tail: an envelope without one
	// ends here.
	if e.TraceParent != "" || e.TraceState != "" {
		b = appendEnvString(b, e.TraceParent)
		b = appendEnvString(b, e.TraceState)
	}
	return b
}

func appendEnvString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// envReader reads an envelope's fields; the first error sticks.
type envReader struct {
	b   []byte
	err error
}

func (r *envReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errEnvelope
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *envReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errEnvelope
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *envReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errEnvelope
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *envReader) string() string { return string(r.bytes()) }

// known returns the field as one of the strings it can be, without an
// allocation, or as a new string when it is none of them.
func (r *envReader) known(values ...string) string {
	b := r.bytes()
	for _, v := range values {
		if string(b) == v {
			return v
		}
	}
	return string(b)
}

// interned returns the field as a string kept in names: node and type
// names repeat on every message between two nodes, and a lookup with a
// converted key allocates nothing. names keeps at most maxInterned
// strings; past that it is cleared and starts again.
func (r *envReader) interned(names *internTable) string {
	b := r.bytes()
	if len(b) == 0 {
		return ""
	}
	names.mu.RLock()
	s, ok := names.m[string(b)]
	names.mu.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	names.mu.Lock()
	if len(names.m) >= maxInterned {
		clear(names.m)
	}
	names.m[s] = s
	names.mu.Unlock()
	return s
}

// maxInterned bounds an internTable: names of nodes and message types are
// few; anything else must not grow it without end.
const maxInterned = 4096

type internTable struct {
	mu sync.RWMutex
	m  map[string]string
}

// envNames interns the node and type names of envelopes.
var envNames = &internTable{m: make(map[string]string)}

// parseEnvelope decodes msg into e. Payload aliases msg.
func parseEnvelope(msg []byte, e *envelope) error {
	if len(msg) == 0 || msg[0] != envelopeVersion {
		return fmt.Errorf("%w: unknown version", errEnvelope)
	}
	r := envReader{b: msg[1:]}
	e.Kind = r.known(envRequest, envReply, envPost, envBroadcast, envGone, envSubCount, envSubSet, envSubAsk)
	e.From = r.interned(envNames)
	e.ID = r.uvarint()
	e.Conn, e.Type = r.string(), r.interned(envNames)
	if p := r.bytes(); len(p) > 0 {
		e.Payload = p
	}
	e.RespName = r.interned(envNames)
	e.Deadline = r.varint()
	e.Err = r.known(replyRemote, replyTimeout, replyNotConnected, replyConnectionLost)
	e.Code, e.Message = Code(r.string()), r.string()
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errEnvelope
	}
	if r.err == nil && n > 0 {
		e.Subs = make([]subEntry, 0, n)
		for range n {
			s := subEntry{Topic: r.string(), Key: r.string(), Count: int(r.varint())}
			if r.err != nil {
				break
			}
			e.Subs = append(e.Subs, s)
		}
	}
	if r.err == nil && len(r.b) != 0 {
		e.TraceParent, e.TraceState = r.string(), r.string()
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d bytes after the envelope", errEnvelope, len(r.b))
	}
	return r.err
}
