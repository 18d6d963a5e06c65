package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// TestAppendSTJString: the strings System.Text.Json writes with default
// options (JsonSerializer.Serialize of a string).
func TestAppendSTJString(t *testing.T) {
	for in, want := range map[string]string{
		"":                                   `""`,
		"Contoso.Orders.FarmDetails":         `"Contoso.Orders.FarmDetails"`,
		"Contoso.Orders.OrderEvents+Shipped": `"Contoso.Orders.OrderEvents\u002BShipped"`,
		"Envelope`1[[Order, Contracts]]":     `"Envelope\u00601[[Order, Contracts]]"`,
		`say "hi" & <go> 'now'`:              `"say \u0022hi\u0022 \u0026 \u003Cgo\u003E \u0027now\u0027"`,
		`back\slash /`:                       `"back\\slash /"`,
		"\b\t\n\f\r":                         `"\b\t\n\f\r"`,
		"\x00\x01\x1f\x7f":                   `"\u0000\u0001\u001F\u007F"`,
		"Grüße ✓":                            `"Gr\u00FC\u00DFe \u2713"`,
		"😀":                                  `"\uD83D\uDE00"`,
		"\u2028\u2029":                       `"\u2028\u2029"`,
		"bad \xff byte":                      `"bad \uFFFD byte"`,
	} {
		require.Equal(t, want, string(AppendSTJString(nil, in)), "%q", in)
	}
}

// FuzzSTJString: the output is JSON that reads back as the input (with
// invalid UTF-8 replaced), and uses ASCII only.
func FuzzSTJString(f *testing.F) {
	for _, s := range []string{"", "a+b", "\"<&>'`\\", "\x00\x7f", "é😀\u2028", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendSTJString(nil, s)
		for _, c := range out {
			require.Less(t, c, byte(utf8.RuneSelf), "non-ASCII byte in %q", out)
		}
		var back string
		require.NoError(t, json.Unmarshal(out, &back), "%q", out)
		var want strings.Builder
		for _, r := range s { // one U+FFFD per invalid byte
			want.WriteRune(r)
		}
		require.Equal(t, want.String(), back)
	})
}
