package communication_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// TestKeyOptions: which combinations of API-key options make a server,
// and who that server lets in. A key option that yields no usable key is
// an error, never an open server.
func TestKeyOptions(t *testing.T) {
	t.Parallel()
	validator := communication.KeyValidatorFunc(func(_ context.Context, key string, _ *http.Request) (communication.KeyInfo, bool, error) {
		return communication.KeyInfo{ID: "v"}, key == "valid", nil
	})
	open := communication.WithOpenAccess
	keys := communication.WithAPIKeys
	pair := communication.WithPrimaryAndSecondaryKeys
	named := communication.WithNamedAPIKeys
	type opts = []communication.ServerOption
	cases := []struct {
		name string
		opts opts
		// errs are what the error names; none: the server is built.
		errs []string
		// open: a client without a key gets in; accepted: keys that get in.
		open     bool
		accepted []string
	}{
		{name: "no key option: open, as the .NET original", opts: opts{}, open: true},
		{name: "open access", opts: opts{open()}, open: true},
		{name: "open access twice", opts: opts{open(), open()}, open: true},
		{name: "keys", opts: opts{keys("k1", "k2")}, accepted: []string{"k1", "k2"}},
		{name: "keys from two options", opts: opts{keys("k1"), keys("k2")}, accepted: []string{"k1", "k2"}},
		{name: "no key", opts: opts{keys()}, errs: []string{"WithAPIKeys: no key given"}},
		{name: "empty key", opts: opts{keys("")}, errs: []string{"WithAPIKeys: key 1 is empty"}},
		{name: "blank second key", opts: opts{keys("k1", " \t")}, errs: []string{"WithAPIKeys: key 2 is empty"}},
		{name: "primary and secondary", opts: opts{pair("p", "s")}, accepted: []string{"p", "s"}},
		{name: "primary only", opts: opts{pair("p", "")}, accepted: []string{"p"}},
		{name: "both empty", opts: opts{pair("", "")}, errs: []string{"WithPrimaryAndSecondaryKeys: the primary key is empty"}},
		{name: "secondary only", opts: opts{pair("", "s")}, errs: []string{"WithPrimaryAndSecondaryKeys: the primary key is empty"}},
		{name: "named keys", opts: opts{named(communication.APIKey{ID: "ops", Name: "Ops", Key: "o"})}, accepted: []string{"o"}},
		{name: "no named key", opts: opts{named()}, errs: []string{"WithNamedAPIKeys: no key given"}},
		{name: "empty named key", opts: opts{named(communication.APIKey{ID: "ops", Key: ""})}, errs: []string{`WithNamedAPIKeys: key 1 (id "ops") is empty`}},
		{name: "validator", opts: opts{communication.WithKeyValidator(validator)}, accepted: []string{"valid"}},
		{name: "nil validator", opts: opts{communication.WithKeyValidator(nil)}, errs: []string{"WithKeyValidator: the validator is nil"}},
		{name: "open access and keys", opts: opts{open(), keys("k")}, errs: []string{"WithOpenAccess conflicts"}},
		{name: "keys and open access", opts: opts{keys("k"), open()}, errs: []string{"WithOpenAccess conflicts"}},
		{name: "open access and pair", opts: opts{pair("p", ""), open()}, errs: []string{"WithOpenAccess conflicts"}},
		{name: "open access and validator", opts: opts{open(), communication.WithKeyValidator(validator)}, errs: []string{"WithOpenAccess conflicts"}},
		{
			name: "every problem is reported",
			opts: opts{keys(""), pair("", ""), open()},
			errs: []string{"WithAPIKeys: key 1 is empty", "the primary key is empty", "WithOpenAccess conflicts"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if len(c.errs) > 0 {
				srv, err := communication.AddServer(c.opts...)
				require.Nil(t, srv)
				require.ErrorContains(t, err, "communication: invalid server options")
				for _, e := range c.errs {
					require.ErrorContains(t, err, e)
				}
				return
			}
			ts := newServer(t, c.opts...)
			want := http.StatusUnauthorized
			if c.open {
				want = http.StatusOK
			}
			require.Equal(t, want, negotiateStatus(t, ts, ""), "without a key")
			require.Equal(t, want, negotiateStatus(t, ts, "wrong"), "with a wrong key")
			for _, k := range c.accepted {
				require.Equal(t, http.StatusOK, negotiateStatus(t, ts, k), "with key %q", k)
			}
		})
	}
}

// negotiateStatus is the status of a negotiate request with key in
// X-Api-Key (none when empty).
func negotiateStatus(t *testing.T, ts *testServer, key string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+ts.Pattern()+"/negotiate?negotiateVersion=1", nil)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set(communication.HeaderAPIKey, key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return resp.StatusCode
}
