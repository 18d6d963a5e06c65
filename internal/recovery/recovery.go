// Package recovery keeps a panic in application code (a handler, a
// callback) from unwinding a goroutine this library owns, which would take
// the whole process down, and logs it where its author will look.
package recovery

import (
	"log/slog"
	"runtime/debug"
)

// Log, deferred, stops a panic of the function that defers it and logs it
// at error level: msg, the attributes args returns, the panic value and the
// stack. It must itself be the deferred call (recover works only there):
//
//	defer recovery.Log(log, "communication: handler panicked", func() []any {
//		err = errPanicked // the panic becomes the function's result
//		return []any{"connection", id}
//	})
//
// args runs only on a panic, so that a call that does not panic builds no
// attributes; it may be nil. A nil log drops the panic silently.
func Log(log *slog.Logger, msg string, args func() []any) {
	v := recover()
	if v == nil {
		return
	}
	var attrs []any
	if args != nil {
		attrs = args()
	}
	if log != nil {
		log.Error(msg, append(attrs, "panic", v, "stack", string(debug.Stack()))...)
	}
}
