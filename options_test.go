package communication_test

import (
	"context"
	"go/ast"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// TestPatternForms: a pattern is the same path with or without its
// leading and trailing slashes, on the server and on the client.
func TestPatternForms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"hub", "/hub"},
		{"/hub", "/hub"},
		{"/hub/", "/hub"},
		{"hub/", "/hub"},
		{"//hub//", "/hub"},
		{"api/v1/hub", "/api/v1/hub"},
		{"/api/./hub/", "/api/hub"},
	} {
		srv, err := communication.AddServer(communication.WithPattern(tc.in))
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, srv.Pattern(), tc.in)
		require.NoError(t, srv.Close())
	}
	srv, err := communication.AddServer()
	require.NoError(t, err)
	require.Equal(t, communication.DefaultPattern, srv.Pattern())
	require.NoError(t, srv.Close())

	for _, bad := range []string{"", "/", "//", "hub?x=1", "hub#top", "{hub}", "my hub"} {
		_, err := communication.AddServer(communication.WithPattern(bad))
		require.ErrorContains(t, err, "pattern", "server %q", bad)
		_, err = communication.AddClient(communication.WithServerAddress("http://127.0.0.1:1"), communication.WithPattern(bad))
		require.ErrorContains(t, err, "pattern", "client %q", bad)
	}
}

// TestPatternServerAndClientAgree: a client reaches a server whatever form
// of the same pattern each was given, below an address with or without a
// trailing slash.
func TestPatternServerAndClientAgree(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ server, client, suffix string }{
		{"/api/hub/", "api/hub", ""},
		{"api/hub", "/api/hub/", "/"},
		{"hub", "/hub", ""},
	} {
		ts := newServer(t, communication.WithPattern(tc.server))
		require.NoError(t, communication.HandleSend(ts.Handlers(), communication.SendHandlerFunc[Ping, Pong](
			func(_ context.Context, p Ping) (Pong, error) { return Pong{Reply: p.Message}, nil })))
		c, err := communication.AddClient(communication.WithServerAddress(ts.URL+tc.suffix), communication.WithPattern(tc.client),
			communication.WithLogger(testLogger(t)))
		require.NoError(t, err)
		ctx := ctxT(t, 10*time.Second)
		require.NoError(t, c.Start(ctx), "%+v", tc)
		pong, err := communication.Send[Pong](ctx, c, Ping{Message: tc.client})
		require.NoError(t, err)
		require.Equal(t, tc.client, pong.Reply)
		require.NoError(t, c.Close())
	}
}

// TestClientStateOptions: options without data fit any ClientState; an
// option for a ClientState of another type, a negative retention and a
// nil client state are errors from the constructors.
func TestClientStateOptions(t *testing.T) {
	t.Parallel()
	keep := communication.WithRetention(time.Hour)
	_, err := communication.NewClientState[int](keep)
	require.NoError(t, err)
	_, err = communication.NewClientState[string](keep)
	require.NoError(t, err)

	_, err = communication.NewClientState[int](
		communication.WithBuild(func(context.Context, communication.ClientRecord, *communication.ClientEntry[string]) (string, error) {
			return "", nil
		}),
		communication.WithRetention(-time.Second))
	require.ErrorContains(t, err, "WithBuild is for a ClientState[string]")
	require.ErrorContains(t, err, "retention must not be negative")

	_, err = communication.AddServer(communication.WithClientState[int](nil))
	require.ErrorContains(t, err, "WithClientState")
}

// TestOptionsDocumentDefault: the doc of every option says its default
// (or that it is required).
func TestOptionsDocumentDefault(t *testing.T) {
	t.Parallel()
	seen := 0
	var missing []string
	for name, f := range packageFiles(t) {
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !fn.Name.IsExported() || !strings.HasPrefix(fn.Name.Name, "With") {
				continue
			}
			seen++
			doc := fn.Doc.Text()
			if !strings.Contains(doc, "Default") && !strings.Contains(doc, "Required") {
				missing = append(missing, fn.Name.Name+" ("+name+")")
			}
		}
	}
	require.Greater(t, seen, 30)
	require.Empty(t, missing, "options whose doc does not say their default")
}
