package communication

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
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
// the id and name "i". At least one key is required and none may be empty
// (or only white space): a key read from an unset environment variable is
// an error from AddServer, not an open server. With no key option at all
// every connection is accepted; say so with WithOpenAccess. Default: no
// keys (every connection is accepted).
func WithAPIKeys(keys ...string) ServerOption {
	o := keyOption{kind: keyList}
	for _, k := range keys {
		o.keys = append(o.keys, APIKey{Key: k})
	}
	return o
}

// WithPrimaryAndSecondaryKeys lets in clients holding either key, for
// rotation without downtime: hand out the secondary, then swap. Their ids
// and names are "primary" and "secondary". The primary is required (an
// empty one is an error from AddServer); an empty secondary means there is
// none. Default: no keys (every connection is accepted).
func WithPrimaryAndSecondaryKeys(primary, secondary string) ServerOption {
	o := keyOption{kind: keyPair, keys: []APIKey{{ID: "primary", Name: "primary", Key: primary}}}
	if !blank(secondary) {
		o.keys = append(o.keys, APIKey{ID: "secondary", Name: "secondary", Key: secondary})
	}
	return o
}

// WithNamedAPIKeys lets in clients holding one of keys, each with its own
// id and name. At least one key is required and no Key may be empty.
// Default: no keys (every connection is accepted).
func WithNamedAPIKeys(keys ...APIKey) ServerOption {
	return keyOption{kind: keyNamed, keys: append([]APIKey(nil), keys...)}
}

// WithKeyValidator replaces the check of configured keys with v: every
// connection must then present a key that v accepts. A nil v is an error
// from AddServer. Default: the configured keys (WithAPIKeys and the like),
// or none.
func WithKeyValidator(v KeyValidator) ServerOption {
	return keyOption{kind: keyValidator, validator: v}
}

// WithOpenAccess accepts every connection, with or without a key: the way
// to say that a server runs without API keys on purpose. A server given no
// key option at all is open too (as the .NET original); where keys come
// from configuration, choose between WithOpenAccess and a key option
// explicitly, so that a key that came out empty is an error rather than an
// open server. Together with any other key option it is an error from
// AddServer. Default: open when no key option is given.
func WithOpenAccess() ServerOption {
	return keyOption{kind: keyOpen}
}

// keyOption is an API-key option. AddServer checks the key options
// together (checkKeyOptions).
type keyOption struct {
	kind      keyKind
	keys      []APIKey
	validator KeyValidator
}

// keyKind tells the key options apart; its String is the option's name.
type keyKind uint8

const (
	keyList keyKind = iota + 1
	keyPair
	keyNamed
	keyValidator
	keyOpen
)

func (k keyKind) String() string {
	switch k {
	case keyList:
		return "WithAPIKeys"
	case keyPair:
		return "WithPrimaryAndSecondaryKeys"
	case keyNamed:
		return "WithNamedAPIKeys"
	case keyValidator:
		return "WithKeyValidator"
	case keyOpen:
		return "WithOpenAccess"
	}
	return "key option"
}

func (o keyOption) applyServer(c *serverConfig) {
	switch o.kind {
	case keyList:
		for _, k := range o.keys {
			n := strconv.Itoa(len(c.keys) + 1)
			c.keys = append(c.keys, APIKey{ID: n, Name: n, Key: k.Key})
		}
	case keyPair, keyNamed:
		c.keys = append(c.keys, o.keys...)
	case keyValidator:
		c.validator = o.validator
	}
}

// checkKeyOptions reports the API-key options among opts that would not
// do what they say: a key option with no key, an empty key (typically an
// unset environment variable, which would otherwise leave the server open
// or locked), a nil validator, and open access together with keys or a
// validator. Every problem is reported.
func checkKeyOptions(opts []ServerOption) error {
	var errs []error
	var open, keyed bool
	for _, opt := range opts {
		o, ok := opt.(keyOption)
		if !ok {
			continue
		}
		switch o.kind {
		case keyOpen:
			open = true
			continue
		case keyValidator:
			if o.validator == nil {
				errs = append(errs, fmt.Errorf("%v: the validator is nil", o.kind))
			}
		default:
			if len(o.keys) == 0 {
				errs = append(errs, fmt.Errorf("%v: no key given (to accept every connection on purpose, use WithOpenAccess)", o.kind))
			}
			for i, k := range o.keys {
				if blank(k.Key) {
					errs = append(errs, fmt.Errorf("%v: %s is empty (an unset environment variable?)", o.kind, o.describe(i)))
				}
			}
		}
		keyed = true
	}
	if open && keyed {
		errs = append(errs, errors.New("WithOpenAccess conflicts with the API key options given with it"))
	}
	return errors.Join(errs...)
}

// describe names key i of the option in an error.
func (o keyOption) describe(i int) string {
	switch {
	case o.kind == keyPair:
		return "the " + o.keys[i].ID + " key"
	case o.kind == keyNamed && o.keys[i].ID != "":
		return fmt.Sprintf("key %d (id %q)", i+1, o.keys[i].ID)
	}
	return fmt.Sprintf("key %d", i+1)
}

// blank reports a key that is empty or only white space: a configuration
// mistake, and not a key a client can send in a header.
func blank(key string) bool { return strings.TrimSpace(key) == "" }

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
