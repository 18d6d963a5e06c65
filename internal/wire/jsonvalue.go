package wire

import (
	"unicode/utf16"
	"unicode/utf8"
)

// hexVal is the value of a hexadecimal digit, or -1.
func hexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// hex4 decodes the four hex digits after a "\u" at raw[i:], or returns -1.
func hex4(raw []byte, i int) rune {
	if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range raw[i+2 : i+6] {
		v := hexVal(c)
		if v < 0 {
			return -1
		}
		r = r<<4 | v
	}
	return r
}

// appendUnquoted appends the value of the string content raw, already
// validated by str. It decodes exactly as encoding/json does: invalid UTF-8
// bytes and unpaired surrogates become U+FFFD.
func appendUnquoted(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		j := i
		for j < len(raw) && raw[j] != '\\' && raw[j] < utf8.RuneSelf {
			j++
		}
		dst = append(dst, raw[i:j]...)
		if i = j; i == len(raw) {
			break
		}
		c := raw[i]
		switch {
		case c == '\\':
			switch raw[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(raw, i)
				i += 6
				if utf16.IsSurrogate(r) {
					if dec := utf16.DecodeRune(r, hex4(raw, i)); dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, raw[i+1])
			}
			i += 2
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, raw[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}

// unquoteBytes returns a new slice holding the value of the string content
// raw (validated by str).
func unquoteBytes(raw []byte, plain bool) []byte {
	if plain {
		return append(make([]byte, 0, len(raw)), raw...)
	}
	// Unescaping only shrinks the text, except for invalid UTF-8 bytes,
	// which become three bytes each.
	return appendUnquoted(make([]byte, 0, len(raw)), raw)
}

// unquoteString is unquoteBytes as a string.
func unquoteString(raw []byte, plain bool) string {
	if plain {
		return string(raw)
	}
	var buf [128]byte
	return string(appendUnquoted(buf[:0], raw))
}

// keyMatches reports whether the key with content raw is name, compared
// exactly or, with fold, ignoring ASCII case. Escaped keys are unescaped on
// the stack.
func keyMatches(raw []byte, plain bool, name string, fold bool) bool {
	if !plain {
		// Every 6 bytes of escapes yield at least one byte, so a longer
		// key cannot match.
		if len(raw) > 6*len(name) {
			return false
		}
		var buf [6 * 16]byte
		raw = appendUnquoted(buf[:0], raw)
	}
	if fold {
		return asciiEqualFold(raw, name)
	}
	return string(raw) == name
}

// asciiEqualFold compares b and s ignoring ASCII case only, as the .NET
// readers compare property names.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// parseInt parses the digits of an integer JSON number (as returned by
// number with isInt) into an int64, refusing overflow.
func parseInt(raw []byte) (int64, bool) {
	neg := false
	if len(raw) > 0 && raw[0] == '-' {
		neg = true
		raw = raw[1:]
	}
	if len(raw) == 0 {
		return 0, false
	}
	var u uint64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		if u > (1<<63)/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
		if u > 1<<63 {
			return 0, false
		}
	}
	if neg {
		return -int64(u), true // -(1<<63) wraps to itself, which is right
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}
