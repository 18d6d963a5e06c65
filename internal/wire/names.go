package wire

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
// their full names (see FullName), so that "MyApp.Ping, MyApp,
// Version=1.0.0.0" sent by one peer matches "MyApp.Ping, MyApp,
// Version=2.0.0.0" registered by another.
func SameType(a, b string) bool {
	return FullName(a) == FullName(b)
}

// isSpace reports ASCII whitespace.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}
