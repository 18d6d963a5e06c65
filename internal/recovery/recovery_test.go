package recovery

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLog(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	errPanicked := errors.New("panicked")
	run := func(fn func()) (err error) {
		defer Log(log, "handler panicked", func() []any {
			err = errPanicked
			return []any{"connection", "c1"}
		})
		fn()
		return nil
	}

	require.NoError(t, run(func() {}))
	require.Empty(t, out.String(), "nothing is logged without a panic")

	require.ErrorIs(t, run(func() { panic("boom") }), errPanicked)
	require.Contains(t, out.String(), `msg="handler panicked" connection=c1 panic=boom stack=`)
	require.Contains(t, out.String(), "recovery_test.go", "the stack shows where the panic came from")

	require.NotPanics(t, func() {
		defer Log(nil, "dropped", nil)
		panic("boom")
	})
}
