// Package store is the narrow persistence interface the controller writes
// its registry through. Objects are opaque byte snapshots filed by kind and
// ID; the controller's in-memory model stays the source of truth while it
// runs, and the store is what a restart reads back.
package store

import (
	"sort"
	"sync"

	"github.com/opencnm/libnetwork/types"
)

// Op is one change of an Apply: a Put, or a Delete when Value is nil.
type Op struct {
	Kind, ID string
	Value    []byte
}

// Records is what the controller calls, and nothing more: batched
// changes, reads, and close. Implementations must be safe for concurrent use.
type Records interface {
	// Apply makes every change of ops, atomically: all or none. One
	// operation of the controller that changes several records (a join
	// changes its endpoint and its sandbox) costs one durable write. A
	// Delete of a missing record succeeds.
	Apply(ops ...Op) error
	Get(kind, id string) ([]byte, error) // NotFound error when missing
	List(kind string) (map[string][]byte, error)
	Close() error
}

// Store keeps snapshots: Records plus Put and Delete of one record, for
// tools and tests. Implementations must be safe for concurrent use. Delete
// of a missing record succeeds.
type Store interface {
	Records
	Put(kind, id string, value []byte) error
	Delete(kind, id string) error
}

// Memory is a Store that lives in memory only.
type Memory struct {
	mu   sync.Mutex
	data map[string]map[string][]byte // kind -> id -> value; guarded by mu
}

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory { return &Memory{data: map[string]map[string][]byte{}} }

// Put stores a copy of value.
func (m *Memory) Put(kind, id string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.data[kind] == nil {
		m.data[kind] = map[string][]byte{}
	}
	m.data[kind][id] = append([]byte(nil), value...)
	return nil
}

// Apply makes every change of ops.
func (m *Memory) Apply(ops ...Op) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, op := range ops {
		if op.Value == nil {
			delete(m.data[op.Kind], op.ID)
			continue
		}
		if m.data[op.Kind] == nil {
			m.data[op.Kind] = map[string][]byte{}
		}
		m.data[op.Kind][op.ID] = append([]byte(nil), op.Value...)
	}
	return nil
}

// Get returns a copy of the record.
func (m *Memory) Get(kind, id string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.data[kind][id]
	if !ok {
		return nil, types.NotFoundErrorf("no %s record %q", kind, id)
	}
	return append([]byte(nil), v...), nil
}

// Delete removes the record; a missing one is not an error.
func (m *Memory) Delete(kind, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.data[kind], id)
	return nil
}

// List returns copies of every record of kind.
func (m *Memory) List(kind string) (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]byte, len(m.data[kind]))
	for id, v := range m.data[kind] {
		out[id] = append([]byte(nil), v...)
	}
	return out, nil
}

// Kinds returns the kinds with at least one record, sorted (for tests).
func (m *Memory) Kinds() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ks []string
	for k, v := range m.data {
		if len(v) > 0 {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

// Close does nothing for the in-memory store.
func (m *Memory) Close() error { return nil }

var (
	_ Store = (*Memory)(nil)
	_ Store = (*Bolt)(nil)
)
