package communication

import (
	"context"
	"time"
)

// ClientRecord is the server's bookkeeping of one client (the .NET
// original's ClientConnectionInfo). Times are UTC.
type ClientRecord struct {
	// Instance is the client's X-Client-Instance: one per client process,
	// the same across reconnects. Empty for clients that do not send it
	// (plain SignalR clients, browsers).
	Instance string
	// ConnectionID is the client's current (or last) connection.
	ConnectionID string
	// Machine, Type and Version are what the client said about itself
	// (X-Client-Machine, X-Client-Type, X-Client-Version).
	Machine, Type, Version string
	// KeyID and KeyName name the API key the client connected with.
	KeyID, KeyName string
	IsConnected    bool
	ConnectTime    time.Time
	// DisconnectTime is zero while the client is connected.
	DisconnectTime time.Time
}

// Key returns what identifies the client across reconnects: its instance,
// or its connection id when it sent no instance.
func (r ClientRecord) Key() string {
	if r.Instance != "" {
		return r.Instance
	}
	return "connection:" + r.ConnectionID
}

// ClientEntry is a stored client: the bookkeeping and the application's own
// record, of type T.
type ClientEntry[T any] struct {
	ClientRecord
	Data T
}

// ClientRepository stores clients, keyed by ClientRecord.Key. It is all
// the client-state service needs; implementations must be safe for
// concurrent use. Run the conformance suite in package repositorytest
// against an implementation.
type ClientRepository[T any] interface {
	// GetAll returns every stored client.
	GetAll(ctx context.Context) ([]ClientEntry[T], error)
	// GetByConnectionID returns the client whose current connection is id.
	GetByConnectionID(ctx context.Context, id string) (ClientEntry[T], bool, error)
	// GetByKey returns the client with the given Key (an instance, for
	// clients that send one).
	GetByKey(ctx context.Context, key string) (ClientEntry[T], bool, error)
	// Upsert stores c under c.Key(), replacing what was there (and its
	// connection id index).
	Upsert(ctx context.Context, c ClientEntry[T]) error
	// Delete removes the client with the given key; a missing key is no
	// error.
	Delete(ctx context.Context, key string) error
}
