package wire

import "unicode/utf8"

// maxDepth bounds the nesting of arrays and objects (JSON) and of arrays
// and maps (MessagePack). It is the default of System.Text.Json, so nothing
// a .NET peer sends is refused, and it keeps the recursive scanners' stack
// small whatever a peer sends.
const maxDepth = 64

// jsonScanner is a minimal validating JSON scanner over one record. It does
// not build values: callers walk objects and arrays member by member and
// take the raw bytes of the values they need, so that decoding a hub
// message allocates only the strings it returns.
//
// It accepts exactly what encoding/json accepts (RFC 8259, any bytes >= 0x20
// inside strings, including invalid UTF-8), which the fuzz tests check.
//
// It is hand-written because it pays on the path of every message: a
// typical invocation decodes in about 0.62 µs with 3 allocations here,
// against about 4.9 µs and 20 allocations with encoding/json into structs
// (BenchmarkParseJSON against BenchmarkParseJSONLibrary, medians of
// -count 5, 2 cores, go1.26).
type jsonScanner struct {
	b []byte
	i int
}

// ws skips insignificant whitespace.
func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte, or 0 at the end of the input (0 never starts
// a JSON token).
func (s *jsonScanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// strSafe marks the bytes that stand for themselves inside a string:
// printable ASCII other than '"' and '\\'.
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str scans a string starting at its opening quote. raw is the content
// between the quotes; plain is true when raw is printable ASCII without
// escapes, so that it is its own value.
func (s *jsonScanner) str() (raw []byte, plain, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	s.i++
	start := s.i
	plain = true
	for {
		for s.i < len(s.b) && strSafe[s.b[s.i]] {
			s.i++
		}
		if s.i >= len(s.b) {
			return nil, false, false
		}
		switch c := s.b[s.i]; {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, plain, true
		case c == '\\':
			plain = false
			s.i++
			if s.i >= len(s.b) {
				return nil, false, false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+5 > len(s.b) {
					return nil, false, false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if hexVal(h) < 0 {
						return nil, false, false
					}
				}
				s.i += 5
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		default: // >= 0x80: UTF-8, valid or not, as encoding/json accepts
			plain = false
			s.i++
		}
	}
}

// number scans a number. isInt is true when it has neither fraction nor
// exponent.
func (s *jsonScanner) number() (raw []byte, isInt, ok bool) {
	start := s.i
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return nil, false, false
	}
	isInt = true
	if s.peek() == '.' {
		isInt = false
		s.i++
		if !s.digits() {
			return nil, false, false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		isInt = false
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return nil, false, false
		}
	}
	return s.b[start:s.i], isInt, true
}

// digits skips one or more decimal digits and reports whether there was one.
func (s *jsonScanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// literal scans true, false or null.
func (s *jsonScanner) literal(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// skip scans one value of any kind. depth is the nesting level of the value
// (1 for the top level); containers deeper than maxDepth are refused.
func (s *jsonScanner) skip(depth int) bool {
	switch c := s.peek(); c {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{':
		if depth > maxDepth {
			return false
		}
		s.i++
		for n := 0; ; n++ {
			_, _, done, ok := s.member(n)
			if !ok {
				return false
			}
			if done {
				return true
			}
			if !s.skip(depth + 1) {
				return false
			}
		}
	case '[':
		if depth > maxDepth {
			return false
		}
		s.i++
		for n := 0; ; n++ {
			done, ok := s.element(n)
			if !ok {
				return false
			}
			if done {
				return true
			}
			if !s.skip(depth + 1) {
				return false
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		_, _, ok := s.number()
		return ok
	}
}

// member moves to the n-th member of an object whose '{' was consumed: it
// reads the separating comma (n > 0), the key and the colon, and leaves the
// scanner on the value. done is true (and the '}' consumed) at the end of
// the object.
func (s *jsonScanner) member(n int) (key []byte, plain, done, ok bool) {
	s.ws()
	if s.peek() == '}' && n == 0 {
		s.i++
		return nil, false, true, true
	}
	if n > 0 {
		switch s.peek() {
		case '}':
			s.i++
			return nil, false, true, true
		case ',':
			s.i++
			s.ws()
		default:
			return nil, false, false, false
		}
	}
	key, plain, ok = s.str()
	if !ok {
		return nil, false, false, false
	}
	s.ws()
	if s.peek() != ':' {
		return nil, false, false, false
	}
	s.i++
	s.ws()
	return key, plain, false, true
}

// element moves to the n-th element of an array whose '[' was consumed,
// like member. done is true (and the ']' consumed) at the end of the array.
func (s *jsonScanner) element(n int) (done, ok bool) {
	s.ws()
	if s.peek() == ']' {
		s.i++
		return true, true
	}
	if n > 0 {
		if s.peek() != ',' {
			return false, false
		}
		s.i++
		s.ws()
	}
	return false, true
}

// end reports whether only whitespace is left.
func (s *jsonScanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}
