package wire

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFullName(t *testing.T) {
	const listOfString = "System.Collections.Generic.List`1[[System.String, System.Private.CoreLib, Version=8.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e]]"
	const dict = "System.Collections.Generic.Dictionary`2[[System.String, System.Private.CoreLib, Version=8.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e],[MyApp.Item, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null]]"
	cases := []struct{ in, want string }{
		{typePingRequest, "MyApp.PingRequest"},
		{"MyApp.Outer+Inner, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null", "MyApp.Outer+Inner"},
		{listOfString + ", System.Private.CoreLib, Version=8.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e", listOfString},
		{dict + ", System.Private.CoreLib, Version=8.0.0.0", dict},
		{"System.Collections.Generic.List`1[[System.Collections.Generic.List`1[[A.B, A]], System.Private.CoreLib]], System.Private.CoreLib", "System.Collections.Generic.List`1[[System.Collections.Generic.List`1[[A.B, A]], System.Private.CoreLib]]"},
		{"MyApp.Ping", "MyApp.Ping"},
		{"  MyApp.Ping  ,  MyApp ", "MyApp.Ping"},
		{"\tMyApp.Ping\r\n", "MyApp.Ping"},
		{"MyApp.Ping[], MyApp", "MyApp.Ping[]"},
		{"A[[B, C], D", "A[[B, C], D"}, // unclosed bracket: no top-level comma
		{"A]], B", "A]]"},              // stray ']' is an ordinary character
		{"A]B[,C], D", "A]B[,C]"},      // stray ']' then a balanced pair
		{"", ""},
		{", MyApp", ""},
		{"   ", ""},
		{"Go:github.com/x/y.Ping", "Go:github.com/x/y.Ping"},
	}
	for _, c := range cases {
		require.Equal(t, c.want, FullName(c.in), "%q", c.in)
		require.Equal(t, c.want, FullName(FullName(c.in)), "idempotent %q", c.in)
	}

	require.True(t, SameType(typePingRequest, "MyApp.PingRequest, MyApp, Version=2.0.0.0, Culture=neutral, PublicKeyToken=abc"))
	require.True(t, SameType(typePingRequest, "MyApp.PingRequest"))
	require.False(t, SameType(typePingRequest, typePingResponse))
	require.False(t, SameType("MyApp.Outer+Inner, MyApp", "MyApp.Outer, MyApp"))
}

func TestFullNameDoesNotAllocate(t *testing.T) {
	name := " " + typePingRequest
	allocs := testing.AllocsPerRun(100, func() {
		if FullName(name) != "MyApp.PingRequest" {
			t.Fatal("wrong")
		}
	})
	require.Zero(t, allocs)
}
