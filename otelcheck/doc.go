// Package otelcheck holds the tests of the metrics and spans of
// github.com/tharga/communication-go against the OpenTelemetry SDK (an
// in-memory metric reader and a span recorder). It is a module of its
// own so that the library itself depends on the OpenTelemetry API only.
package otelcheck
