package communication

import (
	"context"
	"net/http"
	"net/url"
	"testing"
)

// FuzzKeySources feeds arbitrary header and query values to the key
// reader and the default validator: they never panic, and only the
// configured key is accepted.
func FuzzKeySources(f *testing.F) {
	f.Add("secret", "Bearer secret", "access_token=secret")
	f.Add("", "bearer  x", "access_token=%zz")
	f.Add("", "Basic abc", "")
	f.Add("", "Bearer", "a=1&access_token=")
	f.Fuzz(func(t *testing.T, apiKey, auth, rawQuery string) {
		r := &http.Request{Header: http.Header{}, URL: &url.URL{RawQuery: rawQuery}}
		if apiKey != "" {
			r.Header.Set(HeaderAPIKey, apiKey)
		}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		key, present := keyFrom(r)
		if !present && key != "" {
			t.Fatalf("a key %q reported absent", key)
		}
		if apiKey != "" && key != r.Header.Get(HeaderAPIKey) {
			t.Fatalf("X-Api-Key %q not preferred, got %q", apiKey, key)
		}
		v := newConfiguredKeys([]APIKey{{ID: "1", Name: "1", Key: "the-only-key"}})
		info, ok, err := v.ValidateKey(context.Background(), key, r)
		if err != nil || ok != (key == "the-only-key") || (ok && info.ID != "1") {
			t.Fatalf("key %q: ok=%v info=%+v err=%v", key, ok, info, err)
		}
	})
}
