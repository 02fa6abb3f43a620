package globalstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencnm/libnetwork/types"
)

// DefaultPrefix is where a Store keeps its keys unless told otherwise.
const DefaultPrefix = "/opencnm/v1"

// DefaultTimeout bounds every call when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Options configure a Store.
type Options struct {
	Prefix  string        // key prefix; DefaultPrefix when empty
	Timeout time.Duration // bound of every call; DefaultTimeout when zero
}

// Store is the controller's view of the global store. It is safe for
// concurrent use; several Stores (one per host) may share one KV cluster.
type Store struct {
	kv      KV
	k       keys
	timeout time.Duration
}

// New returns a Store over kv.
func New(kv KV, o Options) *Store {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return &Store{kv: kv, k: keys{p: strings.TrimSuffix(o.Prefix, "/")}, timeout: o.Timeout}
}

// KV is the provider the Store runs on.
func (s *Store) KV() KV { return s.kv }

// Timeout is the bound of every call.
func (s *Store) Timeout() time.Duration { return s.timeout }

// ClaimError says which claim is held, and by whom. Store returns it wrapped
// in a types.ForbiddenError.
type ClaimError struct {
	Claim Claim
	Owner string
}

func (e *ClaimError) Error() string { return fmt.Sprintf("%s is taken by %s", e.Claim, e.Owner) }

// unavailable classes a failed call: a provider's ErrUnavailable or an
// ended deadline is NoService; anything else keeps its class or is Internal.
func unavailable(op string, err error) error {
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		if !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return types.NoServiceErrorf("global store: %s: %w", op, err)
	}
	if types.IsClassed(err) {
		return fmt.Errorf("global store: %s: %w", op, err)
	}
	return types.InternalErrorf("global store: %s: %w", op, err)
}

// ctx bounds one call by the Store's timeout.
func (s *Store) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, s.timeout)
}

func validClaim(c Claim) error {
	if c.Name == "" || ((c.Kind == ClaimEndpointName || c.Kind == ClaimAddress || c.Kind == ClaimPool) && c.Scope == "") {
		return types.BadRequestErrorf("global store: incomplete claim %+v", c)
	}
	switch c.Kind {
	case ClaimNetworkName, ClaimVNI, ClaimPool, ClaimEndpointName, ClaimAddress:
		return nil
	}
	return types.BadRequestErrorf("global store: unknown claim kind %q", c.Kind)
}

// create runs the one transaction of a claim-bearing write: every claim key
// absent (plus extra conds), then put the claims, owned by owner on lease,
// and the records. A failed cond whose key already holds owner's value is
// ours from an earlier try whose reply was lost, so the write counts as done
// when every claim and record key holds what we would write.
//
// A write whose reply is lost (the store went away mid-call, or the
// caller's deadline ended) may still have been applied; create then spends
// a third of the timeout removing, owner guarded, what it may have
// written, so a failed call leaves nothing behind when the store answers
// at all. The undo runs detached from the caller's context: an ended
// caller deadline is exactly when a committed write may be unseen. The
// transaction gets two thirds of the timeout.
func (s *Store) create(ctx context.Context, op, owner string, lease LeaseID, claims []Claim, extra []Cond, records []Op) error {
	var conds []Cond
	var ops []Op
	for _, c := range claims {
		if err := validClaim(c); err != nil {
			return err
		}
		conds = append(conds, Absent(s.k.claim(c)))
		ops = append(ops, Put(s.k.claim(c), []byte(owner), lease))
	}
	for _, r := range records {
		conds = append(conds, Absent(r.Key))
	}
	conds = append(conds, extra...)
	ops = append(ops, records...)

	tctx, cancel := context.WithTimeout(ctx, s.timeout*2/3)
	res, err := s.kv.Txn(tctx, conds, ops)
	cancel()
	if err != nil {
		s.undo(context.WithoutCancel(ctx), s.timeout/3, ops, owner)
		return unavailable(op, err)
	}
	if res.Succeeded {
		return nil
	}
	mine := true
	for _, o := range ops {
		if v, ok := res.Values[o.Key]; !ok || !bytes.Equal(v, o.Value) {
			mine = false
		}
	}
	if mine {
		return nil
	}
	for _, c := range claims {
		if v, ok := res.Values[s.k.claim(c)]; ok && string(v) != owner {
			return types.ForbiddenErrorf("global store: %s: %w", op, &ClaimError{Claim: c, Owner: string(v)})
		}
	}
	for _, r := range records {
		if _, ok := res.Values[r.Key]; ok {
			return types.ForbiddenErrorf("global store: %s: %s exists with other contents", op, r.Key)
		}
	}
	for _, c := range extra {
		if _, ok := res.Values[c.Key]; c.Kind == CondExists && !ok {
			return types.NotFoundErrorf("global store: %s: %s does not exist", op, c.Key)
		}
	}
	return types.ForbiddenErrorf("global store: %s: conditions changed while writing", op)
}

// undo deletes, within budget, each key of ops that still holds what ops
// would have written (a claim key holds owner).
func (s *Store) undo(parent context.Context, budget time.Duration, ops []Op, owner string) {
	if budget <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(parent, budget)
	defer cancel()
	var conds []Cond
	var dels []Op
	for _, o := range ops {
		conds = append(conds, Equals(o.Key, o.Value))
		dels = append(dels, Delete(o.Key))
	}
	// All or nothing was applied, so one guarded delete of all suffices.
	_, _ = s.kv.Txn(ctx, conds, dels)
}

// Claim claims cs for owner, on lease (NoLease: until released), in one
// transaction: all of them or none. Claims already held by owner succeed.
// A claim held by another owner is Forbidden wrapping *ClaimError.
func (s *Store) Claim(ctx context.Context, owner string, lease LeaseID, cs ...Claim) error {
	return s.create(ctx, "claim", owner, lease, cs, nil, nil)
}

// Release deletes the claims cs that owner holds; one held by another
// owner or already gone is left alone, so a release is idempotent.
func (s *Store) Release(ctx context.Context, owner string, cs ...Claim) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	for _, c := range cs {
		if err := validClaim(c); err != nil {
			return err
		}
		key := s.k.claim(c)
		if _, err := s.kv.Txn(ctx, []Cond{Equals(key, []byte(owner))}, []Op{Delete(key)}); err != nil {
			return unavailable("release "+c.String(), err)
		}
	}
	return nil
}

// Holder says who holds claim c ("" when nobody), read linearizably.
func (s *Store) Holder(ctx context.Context, c Claim) (string, error) {
	if err := validClaim(c); err != nil {
		return "", err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	kv, ok, err := s.kv.Get(ctx, s.k.claim(c))
	if err != nil || !ok {
		return "", unavailableOrNil("read "+c.String(), err)
	}
	return string(kv.Value), nil
}

func unavailableOrNil(op string, err error) error {
	if err == nil {
		return nil
	}
	return unavailable(op, err)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // records are plain data; this cannot fail
	}
	return b
}

// get reads one record linearizably into v; NotFound when absent.
func (s *Store) get(ctx context.Context, op, key string, v any) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	kv, ok, err := s.kv.Get(ctx, key)
	if err != nil {
		return unavailable(op, err)
	}
	if !ok {
		return types.NotFoundErrorf("global store: %s: not found", op)
	}
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return types.InternalErrorf("global store: %s: decode %s: %w", op, key, err)
	}
	return nil
}

// list decodes every record under prefix whose key ends in suffix ("" for
// all) through add, and returns the revision read.
func (s *Store) list(ctx context.Context, op, prefix string, keep func(key string) bool, add func([]byte) error) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	kvs, rev, err := s.kv.List(ctx, prefix)
	if err != nil {
		return 0, unavailable(op, err)
	}
	for _, kv := range kvs {
		if keep != nil && !keep(kv.Key) {
			continue
		}
		if err := add(kv.Value); err != nil {
			return 0, types.InternalErrorf("global store: %s: decode %s: %w", op, kv.Key, err)
		}
	}
	return rev, nil
}
