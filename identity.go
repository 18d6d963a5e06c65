package communication

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/google/uuid"
)

// The headers a client sends about itself when it connects (on negotiate
// and on the transport request), as the .NET client does.
const (
	HeaderClientInstance = "X-Client-Instance"
	HeaderClientMachine  = "X-Client-Machine"
	HeaderClientType     = "X-Client-Type"
	HeaderClientVersion  = "X-Client-Version"
	HeaderAPIKey         = "X-Api-Key"
)

// identity is what a Client says about itself.
type identity struct {
	instance          string
	machine           string
	typ               string
	version           string
	apiKey            string
	retryUnauthorized bool
	retrySet          bool // WithRetryUnauthorized was given
	set               bool // resolve ran
}

// resolve fills the defaults.
func (id *identity) resolve() error {
	if id.set {
		return nil
	}
	id.set = true
	if !id.retrySet {
		id.retryUnauthorized = true
	}
	if id.instance == "" {
		// One per Client: the server keeps one record per instance, so
		// Clients of one process that shared an instance would overwrite
		// each other's record.
		id.instance = uuid.NewString()
	} else if _, err := uuid.Parse(id.instance); err != nil {
		return errors.New("the client instance must be a UUID (a .NET server parses it with Guid.Parse)")
	}
	if id.machine == "" {
		id.machine, _ = os.Hostname()
	}
	if id.typ == "" {
		if exe, err := os.Executable(); err == nil {
			id.typ = strings.TrimSuffix(filepath.Base(exe), filepath.Ext(exe))
		}
	}
	if id.version == "" {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			id.version = bi.Main.Version
		}
	}
	return nil
}

// apply sets the identity headers; empty values are omitted.
func (id *identity) apply(h http.Header) {
	set := func(k, v string) {
		if v != "" {
			h.Set(k, v)
		}
	}
	set(HeaderClientInstance, id.instance)
	set(HeaderClientMachine, id.machine)
	set(HeaderClientType, id.typ)
	set(HeaderClientVersion, id.version)
	set(HeaderAPIKey, id.apiKey)
}

// WithAPIKey sets the key sent as X-Api-Key. Default: none.
func WithAPIKey(key string) ClientOption {
	return clientOption(func(c *clientConfig) { c.identity.apiKey = key })
}

// WithClientMachine sets X-Client-Machine. Default: the host name.
func WithClientMachine(name string) ClientOption {
	return clientOption(func(c *clientConfig) { c.identity.machine = name })
}

// WithClientType sets X-Client-Type, the application's name. Default: the
// executable's name.
func WithClientType(name string) ClientOption {
	return clientOption(func(c *clientConfig) { c.identity.typ = name })
}

// WithClientVersion sets X-Client-Version. Default: the main module's
// version from the build info, omitted when unknown.
func WithClientVersion(v string) ClientOption {
	return clientOption(func(c *clientConfig) { c.identity.version = v })
}

// WithClientInstance sets X-Client-Instance, a UUID, which the server
// keys its record of the client by. Set it to keep one identity across
// restarts of the process. Default: a new UUID for each Client, the same
// across its reconnects, so that several Clients of one process keep
// separate records.
func WithClientInstance(id string) ClientOption {
	return clientOption(func(c *clientConfig) { c.identity.instance = id })
}

// WithRetryUnauthorized sets whether a started client keeps trying, along
// its reconnect delays, when the server refuses its key on a reconnect.
// Default: true (a key may be restored on the server later); false stops
// the client in the Disconnected state with ErrUnauthorized. Start itself
// fails at once with ErrUnauthorized either way, leaving nothing running.
func WithRetryUnauthorized(retry bool) ClientOption {
	return clientOption(func(c *clientConfig) {
		c.identity.retryUnauthorized = retry
		c.identity.retrySet = true
	})
}
