package communication

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The envelope's encoding: a version byte, then each field in a fixed
// order, strings and bytes as a uvarint length and the bytes, numbers as
// varints. Hand-written because it is on the path of every message
// between nodes: reflection-based MessagePack cost a third of the
// allocations of a request across nodes.
const envelopeVersion = 1

var errEnvelope = errors.New("communication: malformed message between nodes")

func appendEnvelope(b []byte, e *envelope) []byte {
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

// parseEnvelope decodes msg into e. Payload aliases msg.
func parseEnvelope(msg []byte, e *envelope) error {
	if len(msg) == 0 || msg[0] != envelopeVersion {
		return fmt.Errorf("%w: unknown version", errEnvelope)
	}
	r := envReader{b: msg[1:]}
	e.Kind, e.From = r.string(), r.string()
	e.ID = r.uvarint()
	e.Conn, e.Type = r.string(), r.string()
	if p := r.bytes(); len(p) > 0 {
		e.Payload = p
	}
	e.RespName = r.string()
	e.Deadline = r.varint()
	e.Err, e.Code, e.Message = r.string(), Code(r.string()), r.string()
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
