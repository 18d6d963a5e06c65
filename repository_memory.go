package communication

import (
	"context"
	"sync"
)

// MemoryRepository is the in-memory ClientRepository: O(1) lookups by key
// and by connection id, safe for concurrent use. Its limits: one process
// (several server nodes each see only their own clients) and nothing
// survives a restart. Disconnected clients stay until the client-state
// service's retention prunes them.
type MemoryRepository[T any] struct {
	mu     sync.RWMutex
	byKey  map[string]ClientEntry[T]
	byConn map[string]string // connection id -> key
}

var _ ClientRepository[struct{}] = (*MemoryRepository[struct{}])(nil)

// NewMemoryRepository returns an empty repository.
func NewMemoryRepository[T any]() *MemoryRepository[T] {
	return &MemoryRepository[T]{byKey: make(map[string]ClientEntry[T]), byConn: make(map[string]string)}
}

// GetAll implements ClientRepository.
func (m *MemoryRepository[T]) GetAll(ctx context.Context) ([]ClientEntry[T], error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]ClientEntry[T], 0, len(m.byKey))
	for _, c := range m.byKey {
		out = append(out, c)
	}
	return out, nil
}

// GetByConnectionID implements ClientRepository.
func (m *MemoryRepository[T]) GetByConnectionID(ctx context.Context, id string) (ClientEntry[T], bool, error) {
	if err := ctx.Err(); err != nil {
		return ClientEntry[T]{}, false, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	key, ok := m.byConn[id]
	if !ok {
		return ClientEntry[T]{}, false, nil
	}
	c, ok := m.byKey[key]
	return c, ok, nil
}

// GetByKey implements ClientRepository.
func (m *MemoryRepository[T]) GetByKey(ctx context.Context, key string) (ClientEntry[T], bool, error) {
	if err := ctx.Err(); err != nil {
		return ClientEntry[T]{}, false, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, ok := m.byKey[key]
	return c, ok, nil
}

// Upsert implements ClientRepository.
func (m *MemoryRepository[T]) Upsert(ctx context.Context, c ClientEntry[T]) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key := c.Key()
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.byKey[key]; ok && m.byConn[old.ConnectionID] == key {
		delete(m.byConn, old.ConnectionID)
	}
	m.byKey[key] = c
	if c.ConnectionID != "" {
		m.byConn[c.ConnectionID] = key
	}
	return nil
}

// Delete implements ClientRepository.
func (m *MemoryRepository[T]) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.byKey[key]; ok {
		if m.byConn[old.ConnectionID] == key {
			delete(m.byConn, old.ConnectionID)
		}
		delete(m.byKey, key)
	}
	return nil
}

// Len returns how many clients are stored.
func (m *MemoryRepository[T]) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.byKey)
}
