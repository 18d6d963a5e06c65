package communication

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
)

// KeyInfo names the key a client connected with. It is stored on the
// client's record.
type KeyInfo struct {
	// ID and Name identify the key; the default validator sets them to
	// the configured key's id and name.
	ID, Name string
}

// KeyValidator decides whether a key may connect. ValidateKey reports
// whether key is valid and, optionally, which key it is. An error refuses
// the connection like an invalid key and is logged.
type KeyValidator interface {
	ValidateKey(ctx context.Context, key string, r *http.Request) (KeyInfo, bool, error)
}

// KeyValidatorFunc adapts a function to a KeyValidator.
type KeyValidatorFunc func(ctx context.Context, key string, r *http.Request) (KeyInfo, bool, error)

// ValidateKey calls f.
func (f KeyValidatorFunc) ValidateKey(ctx context.Context, key string, r *http.Request) (KeyInfo, bool, error) {
	return f(ctx, key, r)
}

// APIKey is one configured key.
type APIKey struct {
	ID, Name string
	Key      string
}

// WithAPIKeys lets in only clients holding one of keys. Key i (from 1) gets
// the id and name "i". With no key option every connection is accepted.
func WithAPIKeys(keys ...string) ServerOption {
	return serverOption(func(c *serverConfig) {
		for _, k := range keys {
			n := strconv.Itoa(len(c.keys) + 1)
			c.keys = append(c.keys, APIKey{ID: n, Name: n, Key: k})
		}
	})
}

// WithPrimaryAndSecondaryKeys lets in clients holding either key, for
// rotation without downtime: hand out the secondary, then swap. Their ids
// and names are "primary" and "secondary". An empty key is ignored.
func WithPrimaryAndSecondaryKeys(primary, secondary string) ServerOption {
	return serverOption(func(c *serverConfig) {
		if primary != "" {
			c.keys = append(c.keys, APIKey{ID: "primary", Name: "primary", Key: primary})
		}
		if secondary != "" {
			c.keys = append(c.keys, APIKey{ID: "secondary", Name: "secondary", Key: secondary})
		}
	})
}

// WithNamedAPIKeys lets in clients holding one of keys, each with its own
// id and name.
func WithNamedAPIKeys(keys ...APIKey) ServerOption {
	return serverOption(func(c *serverConfig) { c.keys = append(c.keys, keys...) })
}

// WithKeyValidator replaces the check of configured keys with v: every
// connection must then present a key that v accepts.
func WithKeyValidator(v KeyValidator) ServerOption {
	return serverOption(func(c *serverConfig) { c.validator = v })
}

// keyFrom reads the key from X-Api-Key, from Authorization: Bearer, or
// from the access_token query parameter (browsers cannot set headers on a
// WebSocket; the official JavaScript client sends its token there).
func keyFrom(r *http.Request) (string, bool) {
	if k := r.Header.Get(HeaderAPIKey); k != "" {
		return k, true
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:]), true
	}
	if k := r.URL.Query().Get("access_token"); k != "" {
		return k, true
	}
	return "", false
}

// configuredKeys is the default validator: it compares in constant time
// against every configured key, so that neither the key nor which one
// matched shows in the timing.
type configuredKeys struct {
	sums [][sha256.Size]byte
	keys []APIKey
}

func newConfiguredKeys(keys []APIKey) *configuredKeys {
	c := &configuredKeys{keys: keys}
	for _, k := range keys {
		c.sums = append(c.sums, sha256.Sum256([]byte(k.Key)))
	}
	return c
}

func (c *configuredKeys) ValidateKey(_ context.Context, key string, _ *http.Request) (KeyInfo, bool, error) {
	sum := sha256.Sum256([]byte(key))
	match := -1
	for i := range c.sums {
		if subtle.ConstantTimeCompare(sum[:], c.sums[i][:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return KeyInfo{}, false, nil
	}
	return KeyInfo{ID: c.keys[match].ID, Name: c.keys[match].Name}, true, nil
}

// authorize checks the request's key. It reports the key's info, whether
// the request carried a key at all, and whether it may go on.
func (s *Server) authorize(r *http.Request) (info KeyInfo, present, ok bool) {
	if s.validator == nil {
		return KeyInfo{}, false, true
	}
	key, present := keyFrom(r)
	if !present {
		return KeyInfo{}, false, false
	}
	info, ok, err := s.validator.ValidateKey(r.Context(), key, r)
	if err != nil {
		s.log.Warn("communication: key validator failed", "error", err)
		return KeyInfo{}, true, false
	}
	return info, true, ok
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="signalr"`)
	http.Error(w, "unauthorized: a valid API key is required", http.StatusUnauthorized)
}
