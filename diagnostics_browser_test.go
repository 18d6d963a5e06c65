package communication_test

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
	"github.com/tharga/communication-go/interop/nodetest"
)

// rowKeys returns the connection ids of the clients table's rows in an
// event of interop/js/diagnostics.cjs, and the cells by id.
func rowKeys(t *testing.T, e nodetest.Event) ([]string, map[string][]any) {
	t.Helper()
	rows, ok := e["rows"].([]any)
	require.True(t, ok, "no rows in %v", e)
	var keys []string
	cells := map[string][]any{}
	for _, r := range rows {
		m := r.(map[string]any)
		k := m["key"].(string)
		keys = append(keys, k)
		cells[k] = m["cells"].([]any)
	}
	return keys, cells
}

// TestDiagnosticsPageInBrowser: in headless Chromium, behind the
// application's middleware, clients appear in the page's table as they
// connect and disappear as they leave, without the page reloading; a
// client's hostile metadata shows as text and runs nothing.
func TestDiagnosticsPageInBrowser(t *testing.T) {
	env := nodetest.Require(t, "playwright-core")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	nodetest.RequireFile(t, chromium, "Debian's Chromium: apt-get install -y chromium")
	ts := diagnosticsServer(t, "secret", []communication.DiagnosticsOption{communication.WithDiagnosticsRefresh(50 * time.Millisecond)})
	const evil = `<script>window.pwned=1</script>`
	first := startClient(t, ts, communication.WithClientMachine(evil))

	p := nodetest.Start(t, env, "interop/js/diagnostics.cjs",
		"PAGE_URL="+ts.URL+"/diagnostics", "TOKEN=secret", "CHROMIUM="+chromium)
	wait := func(name string) nodetest.Event {
		t.Helper()
		e, err := p.Wait(func(e nodetest.Event) bool { return e.Name() == name || e.Name() == "error" }, 60*time.Second)
		require.NoError(t, err, "stderr:\n%s", p.Stderr())
		require.Equal(t, name, e.Name(), "the browser script failed: %s\nstderr:\n%s", e.Str("error"), p.Stderr())
		return e
	}
	keys, _ := rowKeys(t, wait("ready"))
	require.Equal(t, []string{first.ConnectionID()}, keys, "the page as served lists the connected client")

	second := startClient(t, ts, communication.WithClientMachine("second"))
	p.Send(map[string]any{"op": "expect", "keys": []string{first.ConnectionID(), second.ConnectionID()}})
	e := wait("seen")
	_, cells := rowKeys(t, e)
	require.Equal(t, evil, cells[first.ConnectionID()][2], "the machine cell shows the markup as text")
	require.Equal(t, "second", cells[second.ConnectionID()][2])
	require.Equal(t, "connected", cells[second.ConnectionID()][6])
	require.Equal(t, false, e["pwned"], "the client's markup ran")
	require.EqualValues(t, 1, e["navigations"], "the page reloaded")

	firstID := first.ConnectionID()
	require.NoError(t, first.Close())
	p.Send(map[string]any{"op": "expect", "keys": []string{second.ConnectionID()}})
	e = wait("seen")
	require.EqualValues(t, 1, e["navigations"], "the page reloaded")
	require.Equal(t, false, e["pwned"])
	require.Empty(t, e["pageErrors"], "the page reported errors")
	require.Empty(t, e["status"], "the page's last update failed")
	require.NotEqual(t, firstID, second.ConnectionID())

	p.CloseInput()
	<-p.Exited()
	require.NoError(t, p.ExitErr(), p.Stderr())
}
