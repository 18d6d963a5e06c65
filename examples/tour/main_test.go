package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTour: every operation the tour shows works.
func TestTour(t *testing.T) {
	require.NoError(t, run())
}
