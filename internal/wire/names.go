package wire

import "strings"

// FullName returns the full name of a .NET type from an assembly-qualified
// name: the part before the first comma outside brackets, with surrounding
// whitespace trimmed. The .NET receiver resolves a type by name and
// assembly, but two peers built separately rarely agree on the assembly
// version, culture or key token that follow, so types are matched by full
// name only.
//
// Generic arguments are bracketed assembly-qualified names that contain
// commas ("List`1[[System.String, System.Private.CoreLib, ...]], ...") and
// are kept whole; nested classes ("Outer+Inner") are kept; text inside the
// brackets is left as written. A ']' without a matching '[' is an ordinary
// character. The result is a substring of typeName: nothing is allocated.
func FullName(typeName string) string {
	depth := 0
	end := len(typeName)
scan:
	for i := 0; i < len(typeName); i++ {
		switch typeName[i] {
		case '[':
			depth++
		case ']':
			if depth > 0 {
				depth--
			}
		case ',':
			if depth == 0 {
				end = i
				break scan
			}
		}
	}
	start := 0
	for start < end && isSpace(typeName[start]) {
		start++
	}
	for end > start && isSpace(typeName[end-1]) {
		end--
	}
	return typeName[start:end]
}

// SameType reports whether two type names denote the same type, comparing
// their match keys (see MatchKey), so that "MyApp.Ping, MyApp,
// Version=1.0.0.0" sent by one peer matches "MyApp.Ping, MyApp,
// Version=2.0.0.0" registered by another.
func SameType(a, b string) bool {
	return MatchKey(a) == MatchKey(b)
}

// MatchKey returns what type names are matched by: the full name (see
// FullName) with every generic argument reduced, recursively, to its own
// match key, so that
// "List`1[[MyApp.Item, MyApp, Version=1.0.0.0]], System.Private.CoreLib"
// and "List`1[[MyApp.Item, MyApp, Version=2.0.0.0]]" match. A name without
// generic arguments costs no allocation.
func MatchKey(typeName string) string {
	full := FullName(typeName)
	if !strings.Contains(full, "[[") {
		return full
	}
	var b strings.Builder
	b.Grow(len(full))
	appendMatchKey(&b, full, 0)
	return b.String()
}

// maxGenericDepth bounds the recursion over nested generic arguments;
// deeper text is kept as written.
const maxGenericDepth = 16

func appendMatchKey(b *strings.Builder, s string, depth int) {
	for i := 0; i < len(s); {
		if s[i] != '[' || i+1 >= len(s) || s[i+1] != '[' || depth >= maxGenericDepth {
			b.WriteByte(s[i])
			i++
			continue
		}
		end := closing(s, i)
		if end < 0 {
			b.WriteString(s[i:])
			return
		}
		// s[i:end+1] is "[[arg, asm],[arg, asm]]": reduce each argument.
		b.WriteByte('[')
		args := s[i+1 : end]
		for first := true; len(args) > 0; first = false {
			args = strings.TrimLeft(args, " ,")
			if len(args) == 0 {
				break
			}
			if !first {
				b.WriteByte(',')
			}
			if args[0] != '[' {
				b.WriteString(args)
				break
			}
			e := closing(args, 0)
			if e < 0 {
				b.WriteString(args)
				break
			}
			b.WriteByte('[')
			appendMatchKey(b, FullName(args[1:e]), depth+1)
			b.WriteByte(']')
			args = args[e+1:]
		}
		b.WriteByte(']')
		i = end + 1
	}
}

// closing returns the index of the ']' that closes the '[' at s[open], or
// -1.
func closing(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// isSpace reports ASCII whitespace.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}
