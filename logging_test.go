package communication

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-kit/log/level"
	"github.com/stretchr/testify/require"
)

type countingHandler struct {
	slog.Handler
	records []slog.Record
	level   slog.Level
}

func (h *countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.records = append(h.records, r)
	return nil
}

// stringer counts how often it is formatted.
type stringer struct{ n *int }

func (s stringer) String() string { *s.n++; return "formatted" }

func TestKitLoggerBridge(t *testing.T) {
	h := &countingHandler{level: slog.LevelWarn}
	k := kitLogger{slog.New(h)}

	formatted := 0
	// Below the level: nothing is formatted or recorded.
	require.NoError(t, k.Log(level.Key(), level.InfoValue(), "event", "message received", "msg", stringer{&formatted}))
	require.Empty(t, h.records)
	require.Zero(t, formatted)

	require.NoError(t, k.Log(level.Key(), level.ErrorValue(), "event", "panic in hub lifecycle", "error", "boom", "ts", "x", "caller", "y"))
	require.Len(t, h.records, 1)
	r := h.records[0]
	require.Equal(t, slog.LevelError, r.Level)
	require.Equal(t, "signalr: panic in hub lifecycle", r.Message)
	var keys []string
	r.Attrs(func(a slog.Attr) bool { keys = append(keys, a.Key); return true })
	require.Equal(t, []string{"error"}, keys, "level, ts and caller are not repeated as attributes")

	// Info from the transport is debug for us.
	var buf bytes.Buffer
	k = kitLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	require.NoError(t, k.Log(level.Key(), level.InfoValue(), "event", "handshake sent"))
	require.True(t, strings.Contains(buf.String(), "level=DEBUG"), buf.String())
}
