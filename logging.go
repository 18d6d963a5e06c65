package communication

import (
	"context"
	"fmt"
	"log/slog"

	kitlog "github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// kitLogger bridges the go-kit logger that philippseith/signalr writes to
// onto the user's *slog.Logger. It checks the level before it formats
// anything, so that a silent logger costs next to nothing.
type kitLogger struct {
	l *slog.Logger
}

var _ kitlog.Logger = kitLogger{}

func (k kitLogger) Log(keyvals ...any) error {
	// philippseith logs connection churn at info; our layer reports what
	// matters itself, so the transport's records go out at debug level
	// unless philippseith calls them warnings or errors.
	lvl := slog.LevelDebug
	for i := 0; i+1 < len(keyvals); i += 2 {
		if keyvals[i] == level.Key() {
			if v, ok := keyvals[i+1].(level.Value); ok {
				switch v {
				case level.WarnValue():
					lvl = slog.LevelWarn
				case level.ErrorValue():
					lvl = slog.LevelError
				}
			}
		}
	}
	ctx := context.Background()
	if !k.l.Enabled(ctx, lvl) {
		return nil
	}
	msg := "signalr"
	attrs := make([]slog.Attr, 0, len(keyvals)/2)
	for i := 0; i+1 < len(keyvals); i += 2 {
		key := fmt.Sprint(keyvals[i])
		if key == "level" || key == "ts" || key == "caller" {
			continue
		}
		if key == "event" {
			msg = "signalr: " + fmt.Sprint(keyvals[i+1])
			continue
		}
		attrs = append(attrs, slog.Any(key, keyvals[i+1]))
	}
	k.l.LogAttrs(ctx, lvl, msg, attrs...)
	return nil
}

// debugEnabled tells philippseith whether to emit debug records at all.
func debugEnabled(l *slog.Logger) bool { return l.Enabled(context.Background(), slog.LevelDebug) }
