package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRun runs the example and finds the library's series in what
// Prometheus scraped, with the values of the run: three clients connected
// and one left, fifteen readings posted, three status queries answered
// and one sent to nobody.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, 3))
	text := out.String()
	t.Log(text)
	for _, series := range []string{
		`# TYPE signalr_server_active_connections gauge`,
		`signalr_server_active_connections\{[^}]*signalr_transport="web_sockets"\} 2\n`,
		`# TYPE signalr_server_connection_duration_seconds histogram`,
		`signalr_server_connection_duration_seconds_count\{[^}]*signalr_connection_status="normal_closure",signalr_transport="web_sockets"\} 1\n`,
		`tharga_communication_messages_sent_total\{[^}]*message_kind="post",tharga_communication_message_type="[^"]*\.Reading",tharga_communication_side="client"\} 15\n`,
		`tharga_communication_messages_received_total\{[^}]*message_kind="post",tharga_communication_message_type="[^"]*\.Reading",tharga_communication_side="server"\} 15\n`,
		`tharga_communication_messages_received_total\{[^}]*message_kind="request",tharga_communication_message_type="[^"]*\.Status",tharga_communication_side="client"\} 3\n`,
		`tharga_communication_request_duration_seconds_count\{[^}]*message_type="[^"]*\.Status",tharga_communication_request_outcome="ok",tharga_communication_side="server"\} 3\n`,
		`tharga_communication_request_duration_seconds_count\{[^}]*message_type="[^"]*\.Status",tharga_communication_request_outcome="not_connected",tharga_communication_side="server"\} 1\n`,
		`tharga_communication_requests_pending\{[^}]*tharga_communication_side="server"\} 0\n`,
	} {
		require.Regexp(t, regexp.MustCompile(series), text)
	}
}
