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

func TestMatchKey(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"MyApp.Ping, MyApp, Version=1.0.0.0", "MyApp.Ping, MyApp, Version=2.0.0.0, Culture=neutral"},
		{"System.Collections.Generic.List`1[[MyApp.Item, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null]], System.Private.CoreLib, Version=8.0.0.0",
			"System.Collections.Generic.List`1[[MyApp.Item, MyApp, Version=2.0.0.0, Culture=neutral, PublicKeyToken=null]], System.Private.CoreLib, Version=9.0.0.0"},
		{"System.Collections.Generic.Dictionary`2[[System.String, System.Private.CoreLib, Version=8.0.0.0],[MyApp.Outer+Inner, MyApp, Version=1.0.0.0]]",
			"System.Collections.Generic.Dictionary`2[[System.String, System.Private.CoreLib, Version=9.0.0.0],[MyApp.Outer+Inner, MyApp, Version=3.0.0.0]], System.Private.CoreLib"},
		{"A`1[[B`1[[C, X, Version=1]], Y, Version=1]]", "A`1[[B`1[[C, X, Version=2]], Y, Version=2]], Z"},
	} {
		require.Equal(t, MatchKey(tc.a), MatchKey(tc.b), tc.a)
		require.True(t, SameType(tc.a, tc.b))
	}
	require.Equal(t, "System.Collections.Generic.List`1[[MyApp.Item]]",
		MatchKey("System.Collections.Generic.List`1[[MyApp.Item, MyApp, Version=1.0.0.0]], System.Private.CoreLib"))
	require.NotEqual(t, MatchKey("List`1[[A, X]]"), MatchKey("List`1[[B, X]]"))
	require.Equal(t, "MyApp.Ping", MatchKey("MyApp.Ping, MyApp"))
	require.Equal(t, "Broken[[A, B", MatchKey("Broken[[A, B"))
	require.Equal(t, "Arr[]", MatchKey("Arr[], X"))
}

func FuzzMatchKey(f *testing.F) {
	f.Add("System.Collections.Generic.List`1[[System.String, System.Private.CoreLib, Version=8.0.0.0]], System.Private.CoreLib")
	f.Add("A`1[[B`1[[C, X]], Y]]")
	f.Add("[[[[,]]]]")
	f.Fuzz(func(t *testing.T, s string) {
		k := MatchKey(s)
		if MatchKey(k) != k {
			t.Fatalf("MatchKey is not idempotent: %q -> %q -> %q", s, k, MatchKey(k))
		}
	})
}
