package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The quickstart runs and prints what it says.
func Example() {
	if err := run(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// Pong: Ping
	// hi everybody
}

// TestREADMEQuickstart: the README's quickstart is this program, as it is,
// so that what a newcomer copies compiles and runs.
func TestREADMEQuickstart(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	program, err := os.ReadFile("main.go")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n### Quickstart\n")
	require.True(t, ok, "the README has no Quickstart section")
	_, block, ok := strings.Cut(section, "```go\n")
	require.True(t, ok, "the Quickstart section has no Go block")
	block, _, ok = strings.Cut(block, "\n```\n")
	require.True(t, ok, "the Quickstart's Go block does not end")
	require.Equal(t, string(program), block+"\n", "the README's quickstart differs from examples/quickstart/main.go")
}
