package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/opencnm/libnetwork/types"
)

// DefaultOpenTimeout bounds how long Open waits for a store file another
// process holds.
const DefaultOpenTimeout = 2 * time.Second

// Bolt is a durable Store in one bbolt file: a bucket per kind, a key per ID.
// Every Put is one fsync'd transaction, so a record written before a kernel
// change survives a crash right after it.
type Bolt struct {
	db   *bolt.DB
	path string
}

// OpenBolt opens (creating if needed) the store file at path. A file held by
// another process is a Timeout error after timeout, never a hang; a file that
// is not a valid store is an Internal error naming it.
func OpenBolt(path string, timeout time.Duration) (*Bolt, error) {
	if timeout <= 0 {
		timeout = DefaultOpenTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, types.InternalErrorf("creating store directory for %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, types.TimeoutErrorf("opening store %s: held by another process after %v: %w", path, timeout, err)
	case err != nil:
		return nil, types.InternalErrorf("opening store %s (corrupt or not a store file?): %w", path, err)
	}
	return &Bolt{db: db, path: path}, nil
}

// Path returns the store file's path.
func (b *Bolt) Path() string { return b.path }

// Apply makes every change of ops in one transaction.
func (b *Bolt) Apply(ops ...Op) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		for _, op := range ops {
			bk, err := tx.CreateBucketIfNotExists([]byte(op.Kind))
			if err != nil {
				return err
			}
			if op.Value == nil {
				err = bk.Delete([]byte(op.ID))
			} else {
				err = bk.Put([]byte(op.ID), op.Value)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return types.InternalErrorf("writing %d records to %s: %w", len(ops), b.path, err)
	}
	return nil
}

// Put writes a record.
func (b *Bolt) Put(kind, id string, value []byte) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(kind))
		if err != nil {
			return err
		}
		return bk.Put([]byte(id), value)
	})
	if err != nil {
		return types.InternalErrorf("writing %s record %s to %s: %w", kind, id, b.path, err)
	}
	return nil
}

// Get reads a record; a missing one is a NotFound error.
func (b *Bolt) Get(kind, id string) ([]byte, error) {
	var out []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		if bk := tx.Bucket([]byte(kind)); bk != nil {
			if v := bk.Get([]byte(id)); v != nil {
				out = append([]byte(nil), v...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, types.InternalErrorf("reading %s record %s from %s: %w", kind, id, b.path, err)
	}
	if out == nil {
		return nil, types.NotFoundErrorf("no %s record %q", kind, id)
	}
	return out, nil
}

// Delete removes a record; a missing one is not an error.
func (b *Bolt) Delete(kind, id string) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		if bk := tx.Bucket([]byte(kind)); bk != nil {
			return bk.Delete([]byte(id))
		}
		return nil
	})
	if err != nil {
		return types.InternalErrorf("deleting %s record %s from %s: %w", kind, id, b.path, err)
	}
	return nil
}

// List returns every record of kind.
func (b *Bolt) List(kind string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(kind))
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		return nil, types.InternalErrorf("listing %s records in %s: %w", kind, b.path, err)
	}
	return out, nil
}

// Close releases the file (and its lock).
func (b *Bolt) Close() error {
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("closing store %s: %w", b.path, err)
	}
	return nil
}
