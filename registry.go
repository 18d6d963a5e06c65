package communication

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/tharga/communication-go/internal/wire"
)

// Handlers is a type-keyed set of message handlers and type names. Build
// one in any package and hand it to a Server or Client with WithHandlers:
// that is how a package contributes its handlers in one call. A Server and
// a Client also have their own set (Server.Handlers, Client.Handlers) to
// register into directly, before or after they start.
//
// The zero value is not usable: call NewHandlers. Handlers is safe for
// concurrent use.
type Handlers struct {
	mu     sync.RWMutex
	byName map[string]*entry       // by wire.MatchKey of the wire name
	byType map[reflect.Type]*entry // handled types
	names  map[reflect.Type]string // wire names, handled or not
}

// entry is the erased, non-generic form of one handler.
type entry struct {
	name string // wire name
	typ  reflect.Type
	// post decodes payload and runs a post handler.
	post func(ctx context.Context, payload []byte) error
	// send decodes payload, runs a send handler and encodes its answer.
	send func(ctx context.Context, h *Handlers, payload []byte) (name string, answer []byte, err error)
}

// NewHandlers returns an empty set.
func NewHandlers() *Handlers {
	return &Handlers{
		byName: make(map[string]*entry),
		byType: make(map[reflect.Type]*entry),
		names:  make(map[reflect.Type]string),
	}
}

// TypeOption configures how a message type is named on the wire.
type TypeOption interface{ applyType(*typeOptions) }

type typeOptions struct {
	name, respName string
}

type typeOption func(*typeOptions)

func (o typeOption) applyType(t *typeOptions) { o(t) }

// WithName sets the wire name of the registered message type, typically
// the .NET assembly-qualified name of its counterpart
// ("MyApp.PingRequest, MyApp, Version=1.0.0.0, Culture=neutral,
// PublicKeyToken=null"). Incoming names match by full type name, whatever
// assembly, version, culture or key token follows. Default: the name
// RegisterName gave the type, else TypeName.
func WithName(name string) TypeOption { return typeOption(func(o *typeOptions) { o.name = name }) }

// WithResponseName sets the wire name of a send handler's response type.
// Default: the name RegisterName gave the type, else TypeName.
func WithResponseName(name string) TypeOption {
	return typeOption(func(o *typeOptions) { o.respName = name })
}

// HandlePost registers a handler for posts of type T.
func HandlePost[T any](h *Handlers, handler PostHandler[T], opts ...TypeOption) error {
	o := typeOptions{}
	for _, opt := range opts {
		if opt != nil {
			opt.applyType(&o)
		}
	}
	t := reflect.TypeFor[T]()
	e := &entry{
		typ: t,
		post: func(ctx context.Context, payload []byte) error {
			var msg T
			if err := json.Unmarshal(payload, &msg); err != nil {
				return fmt.Errorf("%w: payload does not decode into %v: %w", ErrBadMessage, t, err)
			}
			return handler.HandlePost(ctx, msg)
		},
	}
	return h.add(e, o.name, nil, "")
}

// HandleSend registers a handler for requests of type Req answered with Resp.
func HandleSend[Req, Resp any](h *Handlers, handler SendHandler[Req, Resp], opts ...TypeOption) error {
	o := typeOptions{}
	for _, opt := range opts {
		if opt != nil {
			opt.applyType(&o)
		}
	}
	t := reflect.TypeFor[Req]()
	rt := reflect.TypeFor[Resp]()
	e := &entry{
		typ: t,
		send: func(ctx context.Context, h *Handlers, payload []byte) (string, []byte, error) {
			var req Req
			if err := json.Unmarshal(payload, &req); err != nil {
				return "", nil, NewError(CodeBadPayload, fmt.Errorf("payload does not decode into %v: %w", t, err))
			}
			resp, err := handler.HandleSend(ctx, req)
			if err != nil {
				// The handler chose its code and message, or gets
				// CodeHandlerError and its error's text.
				var coded *Error
				if errors.As(err, &coded) {
					return "", nil, coded
				}
				return "", nil, NewError(CodeHandlerError, err)
			}
			answer, err := json.Marshal(resp)
			if err != nil {
				return "", nil, NewError(CodeHandlerError, fmt.Errorf("response does not encode: %w", err))
			}
			return h.nameOf(typeOfValue(rt, resp)), answer, nil
		},
	}
	return h.add(e, o.name, rt, o.respName)
}

// RegisterName sets the wire name of T without a handler: for types this
// side only sends (posts, requests, responses).
func RegisterName[T any](h *Handlers, name string) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("communication: empty type name for %v", reflect.TypeFor[T]())
	}
	t := reflect.TypeFor[T]()
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.names[t]; ok && old != name {
		return fmt.Errorf("%w: %v is already named %q", ErrDuplicateType, t, old)
	}
	h.names[t] = name
	noteType(name)
	return nil
}

func (h *Handlers) add(e *entry, name string, respType reflect.Type, respName string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if name == "" {
		if n, ok := h.names[e.typ]; ok {
			name = n
		} else {
			name = TypeName(e.typ)
		}
	}
	e.name = name
	key := wire.MatchKey(name)
	if _, ok := h.byName[key]; ok {
		return fmt.Errorf("%w: %s", ErrDuplicateType, key)
	}
	if _, ok := h.byType[e.typ]; ok {
		return fmt.Errorf("%w: %v", ErrDuplicateType, e.typ)
	}
	if old, ok := h.names[e.typ]; ok && old != name {
		return fmt.Errorf("%w: %v is already named %q", ErrDuplicateType, e.typ, old)
	}
	if respType != nil && respName != "" {
		if old, ok := h.names[respType]; ok && old != respName {
			return fmt.Errorf("%w: %v is already named %q", ErrDuplicateType, respType, old)
		}
		h.names[respType] = respName
	}
	if respType != nil && respType.Kind() != reflect.Interface {
		// The answers are counted under the response type's name.
		rn, ok := h.names[respType]
		if !ok {
			rn = TypeName(respType)
		}
		noteType(rn)
	}
	h.byName[key] = e
	h.byType[e.typ] = e
	h.names[e.typ] = name
	noteType(name)
	return nil
}

// Include adds every handler and name of the given sets. It fails, adding
// nothing, when a type is registered twice.
func (h *Handlers) Include(sets ...*Handlers) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	byName := make(map[string]*entry)
	names := make(map[reflect.Type]string)
	for _, s := range sets {
		if s == h {
			return fmt.Errorf("communication: a handler set cannot include itself")
		}
		s.mu.RLock()
		for k, e := range s.byName {
			if _, dup := h.byName[k]; dup {
				s.mu.RUnlock()
				return fmt.Errorf("%w: %s", ErrDuplicateType, k)
			}
			if _, dup := byName[k]; dup {
				s.mu.RUnlock()
				return fmt.Errorf("%w: %s", ErrDuplicateType, k)
			}
			byName[k] = e
		}
		for t, n := range s.names {
			if old, ok := h.names[t]; ok && old != n {
				s.mu.RUnlock()
				return fmt.Errorf("%w: %v is named both %q and %q", ErrDuplicateType, t, old, n)
			}
			if old, ok := names[t]; ok && old != n {
				s.mu.RUnlock()
				return fmt.Errorf("%w: %v is named both %q and %q", ErrDuplicateType, t, old, n)
			}
			names[t] = n
		}
		s.mu.RUnlock()
	}
	for k, e := range byName {
		h.byName[k] = e
		h.byType[e.typ] = e
	}
	for t, n := range names {
		h.names[t] = n
	}
	return nil
}

// lookup finds the handler for an incoming type name.
func (h *Handlers) lookup(name string) *entry {
	key := wire.MatchKey(name)
	h.mu.RLock()
	e := h.byName[key]
	h.mu.RUnlock()
	return e
}

// nameOf returns the wire name of t.
func (h *Handlers) nameOf(t reflect.Type) string {
	h.mu.RLock()
	n, ok := h.names[t]
	h.mu.RUnlock()
	if ok {
		return n
	}
	return TypeName(t)
}

var defaultNames sync.Map // reflect.Type -> string

// TypeName returns the default wire name of a Go type: its package path and
// name ("github.com/acme/contracts.PingRequest"); for a pointer, that of the
// type it points to. Both ends of a Go-to-Go link share the type, so they
// agree on the name; a .NET peer needs WithName or RegisterName.
func TypeName(t reflect.Type) string {
	if n, ok := defaultNames.Load(t); ok {
		return n.(string)
	}
	base := t
	for base.Kind() == reflect.Pointer {
		base = base.Elem()
	}
	var n string
	if base.Name() != "" && base.PkgPath() != "" {
		n = base.PkgPath() + "." + base.Name()
	} else {
		n = base.String()
	}
	defaultNames.Store(t, n)
	return n
}

// typeOfValue returns the dynamic type of v when static is an interface.
func typeOfValue(static reflect.Type, v any) reflect.Type {
	if static.Kind() == reflect.Interface && v != nil {
		return reflect.TypeOf(v)
	}
	return static
}
