package globalstore

import (
	"context"
	"errors"
)

// LeaseID names a lease of the store. NoLease is "no lease": the key lives
// until it is deleted.
type LeaseID int64

// NoLease puts a key on no lease.
const NoLease LeaseID = 0

// KV is what a global-store provider implements. All methods are safe for
// concurrent use, honour ctx (a call whose ctx ends returns an error that
// wraps ErrUnavailable and ctx.Err()), and never retry a write whose fate
// they do not know.
type KV interface {
	// Txn applies ops atomically if every cond holds. When a cond fails it
	// applies nothing and returns, in TxnResult.Values, the current values
	// of the keys the conds name (the keys under a PrefixEmpty prefix, at
	// most a few of them), so the caller can tell who holds what.
	Txn(ctx context.Context, conds []Cond, ops []Op) (TxnResult, error)
	// Get is a linearizable read of one key.
	Get(ctx context.Context, key string) (KeyValue, bool, error)
	// List returns every key under prefix, sorted, and the revision it read at.
	List(ctx context.Context, prefix string) ([]KeyValue, int64, error)
	// Watch streams changes under prefix from revision fromRev on. The
	// channel closes when ctx ends or the watch cannot go on; a batch whose
	// Err wraps ErrCompacted is the last one (the history before
	// CompactRevision is gone and the caller must re-list).
	Watch(ctx context.Context, prefix string, fromRev int64) <-chan WatchBatch
	// Grant creates a lease that expires ttlSeconds after its last renewal.
	Grant(ctx context.Context, ttlSeconds int64) (LeaseID, error)
	// KeepAliveOnce renews a lease once; ErrLeaseNotFound when it expired.
	KeepAliveOnce(ctx context.Context, id LeaseID) error
	// Revoke ends a lease and deletes its keys; a lease already gone is success.
	Revoke(ctx context.Context, id LeaseID) error
	// Close releases the client; leases it granted live on until they expire.
	Close() error
}

// Compactor is the optional ability to drop history up to a revision (tests
// use it to prove that watches re-list).
type Compactor interface {
	Compact(ctx context.Context, rev int64) error
}

// CondKind says what a Cond checks.
type CondKind int

const (
	// CondAbsent holds when Key does not exist.
	CondAbsent CondKind = iota
	// CondExists holds when Key exists.
	CondExists
	// CondEquals holds when Key exists with Value.
	CondEquals
	// CondPrefixEmpty holds when no key starts with Key.
	CondPrefixEmpty
)

// Cond is one condition of a Txn.
type Cond struct {
	Kind  CondKind
	Key   string
	Value []byte // CondEquals only
}

// Absent, Exists, Equals and PrefixEmpty build conditions.
func Absent(key string) Cond                 { return Cond{Kind: CondAbsent, Key: key} }
func Exists(key string) Cond                 { return Cond{Kind: CondExists, Key: key} }
func Equals(key string, value []byte) Cond   { return Cond{Kind: CondEquals, Key: key, Value: value} }
func PrefixEmpty(prefix string) Cond         { return Cond{Kind: CondPrefixEmpty, Key: prefix} }
func Put(key string, v []byte, l LeaseID) Op { return Op{Kind: OpPut, Key: key, Value: v, Lease: l} }
func Delete(key string) Op                   { return Op{Kind: OpDelete, Key: key} }
func DeletePrefix(prefix string) Op          { return Op{Kind: OpDeletePrefix, Key: prefix} }

// OpKind says what an Op does.
type OpKind int

const (
	OpPut OpKind = iota
	OpDelete
	OpDeletePrefix
)

// Op is one change of a Txn.
type Op struct {
	Kind  OpKind
	Key   string
	Value []byte
	Lease LeaseID // OpPut: the lease the key hangs on
}

// TxnResult is what a Txn did.
type TxnResult struct {
	Succeeded bool
	Revision  int64
	// Values holds, when !Succeeded, the current value of each cond key
	// that exists (and of some keys under a failed PrefixEmpty prefix).
	Values map[string][]byte
}

// KeyValue is one key as stored.
type KeyValue struct {
	Key         string
	Value       []byte
	Lease       LeaseID
	ModRevision int64
}

// EventType says what happened to a key.
type EventType int

const (
	EventPut EventType = iota
	EventDelete
)

// KVEvent is one change of a key, at the revision that made it.
type KVEvent struct {
	Type     EventType
	Key      string
	Value    []byte // nil for EventDelete
	Revision int64
}

// WatchBatch is the changes of one or more revisions, in order, or an error.
type WatchBatch struct {
	Events          []KVEvent
	Err             error
	CompactRevision int64 // with ErrCompacted: the oldest revision still kept
}

// Sentinels a provider wraps so Store can classify its errors.
var (
	// ErrUnavailable: the store did not answer (unreachable, no leader,
	// deadline exceeded). Store returns it as a types.NoServiceError.
	ErrUnavailable = errors.New("global store unavailable")
	// ErrCompacted: a watch asked for history the store no longer has.
	ErrCompacted = errors.New("global store history compacted")
	// ErrLeaseNotFound: the lease expired or was revoked.
	ErrLeaseNotFound = errors.New("global store lease not found")
)
