package interop_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// TestDotNetClientRecord: what a .NET client says about itself in its
// X-Client-* headers, and the key it used, end up in the server's record
// of the client (ClientRecord), read as the .NET server reads them.
func TestDotNetClientRecord(t *testing.T) {
	gs, _ := dotNetTypesServer(t, communication.WithNamedAPIKeys(
		communication.APIKey{ID: "k1", Name: "ops", Key: "ops-key"},
		communication.APIKey{ID: "k2", Name: "workers", Key: "workers-key"},
	))
	c := dialDotNet(t, gs, dotNetClientHeaders("workers-key"))
	ctx := ctxFor(t, wait)
	var rec communication.ClientRecord
	require.Eventually(t, func() bool {
		r, ok, err := gs.Client(ctx, c.id)
		rec = r
		return err == nil && ok
	}, wait, time.Millisecond)
	require.Equal(t, "6f9619ff-8b86-d011-b42d-00cf4fc964ff", rec.Instance)
	require.Equal(t, c.id, rec.ConnectionID)
	require.Equal(t, "BUILD-AGENT-07", rec.Machine)
	require.Equal(t, "Contoso.Worker", rec.Type)
	require.Equal(t, "2.3.1.0", rec.Version)
	require.Equal(t, "k2", rec.KeyID)
	require.Equal(t, "workers", rec.KeyName)
	require.True(t, rec.IsConnected)
	require.False(t, rec.ConnectTime.IsZero())
	require.Equal(t, time.UTC, rec.ConnectTime.Location())

	c.close()
	require.Eventually(t, func() bool {
		r, ok, err := gs.Client(ctx, c.id)
		rec = r
		return err == nil && ok && !r.IsConnected
	}, wait, time.Millisecond)
	require.False(t, rec.DisconnectTime.IsZero())
}
