package wire

import "unicode/utf8"

// AppendSTJString appends s as a quoted JSON string exactly as .NET's
// System.Text.Json writes it with default options (its encoder
// JavaScriptEncoder.Default), so that a payload this side builds for a
// .NET contract is byte for byte what a .NET peer would write.
//
// Printable ASCII stays as is, except the quote, ampersand, apostrophe,
// plus, angle brackets and back quote, which become \u0022, \u0026, \u0027,
// \u002B, \u003C, \u003E and \u0060; the backslash and the usual control
// characters (\b \t \n \f \r) get their short escapes; every other control
// character, DEL and everything beyond ASCII becomes \uXXXX in upper-case
// hex, as UTF-16 (a surrogate pair beyond the Basic Multilingual Plane).
// Each byte of invalid UTF-8 is written as \uFFFD.
func AppendSTJString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending, to be copied as is
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && !stjEscaped(c) {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < utf8.RuneSelf {
			if c == '\\' {
				dst = append(dst, '\\', '\\')
			} else if e, ok := shortEscape(c); ok {
				dst = append(dst, '\\', e)
			} else {
				dst = appendUTF16Escape(dst, rune(c))
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = appendUTF16Escape(dst, utf8.RuneError)
		case r > 0xffff:
			r -= 0x10000
			dst = appendUTF16Escape(dst, 0xd800+(r>>10)&0x3ff)
			dst = appendUTF16Escape(dst, 0xdc00+r&0x3ff)
		default:
			dst = appendUTF16Escape(dst, r)
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// stjEscaped reports the printable ASCII characters System.Text.Json's
// default encoder escapes.
func stjEscaped(c byte) bool {
	switch c {
	case '"', '&', '\'', '+', '<', '>', '`', '\\':
		return true
	}
	return false
}

// appendUTF16Escape appends \uXXXX for one UTF-16 code unit, in upper-case
// hex.
func appendUTF16Escape(dst []byte, u rune) []byte {
	const hex = "0123456789ABCDEF"
	return append(dst, '\\', 'u', hex[u>>12&0xf], hex[u>>8&0xf], hex[u>>4&0xf], hex[u&0xf])
}
