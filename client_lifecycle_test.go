package communication_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestInstancePerClient: two clients of one process have their own
// instance ids and so their own records on the server.
func TestInstancePerClient(t *testing.T) {
	ts := newServer(t)
	a := startClient(t, ts)
	b := startClient(t, ts)
	require.NotEqual(t, a.Instance(), b.Instance())
	ctx := ctxT(t, 10*time.Second)
	require.Eventually(t, func() bool {
		all, err := ts.Clients(ctx)
		if err != nil || len(all) != 2 {
			return false
		}
		got := map[string]string{all[0].Instance: all[0].ConnectionID, all[1].Instance: all[1].ConnectionID}
		return got[a.Instance()] == a.ConnectionID() && got[b.Instance()] == b.ConnectionID()
	}, 10*time.Second, time.Millisecond)
}
