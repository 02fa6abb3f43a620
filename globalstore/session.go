package globalstore

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/types"
)

// DefaultLeaseTTL is how long a host's claims outlive it unless configured.
const DefaultLeaseTTL = 60 * time.Second

// Session is a host's lease and its host record. Everything the host owns
// is put on Lease(); the session renews it every TTL/3 (a failed renewal
// sooner, see retryAfter) until Close. When the store says the lease is
// gone (it expired while the host could not reach the store, or the host
// was evicted) Lost is closed and the session stops: the caller opens a
// new one and claims its endpoints again.
type Session struct {
	s    *Store
	host Host
	ttl  time.Duration
	ctx  context.Context    // ended by Close or Abandon, with the renewal in flight
	stop context.CancelFunc // ends ctx
	lost chan struct{}
	done sync.WaitGroup

	mu      sync.Mutex
	renewed time.Time // when the last acknowledged renewal was sent; guarded by mu
}

// OpenSession grants a lease of ttl (rounded up to whole seconds; at least
// one) and writes h on it as host h.ID, in a bounded time. A host record of
// a live lease with the same ID is Forbidden (two hosts with one ID).
func (s *Store) OpenSession(ctx context.Context, h Host, ttl time.Duration) (*Session, error) {
	if h.ID == "" {
		return nil, types.BadRequestErrorf("global store: open session: host ID is required")
	}
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	sent := time.Now()
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	id, err := s.kv.Grant(cctx, secs)
	if err != nil {
		return nil, unavailable("grant lease for host "+h.ID, err)
	}
	h.Lease, h.Started = id, sent.UTC()
	key := s.k.host(h.ID)
	res, err := s.kv.Txn(cctx, []Cond{Absent(key)}, []Op{Put(key, mustJSON(h), id)})
	if err == nil && !res.Succeeded {
		err = types.ForbiddenErrorf("global store: host %s is already registered by a live lease", h.ID)
	}
	if err != nil {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
		_ = s.kv.Revoke(rctx, id)
		rcancel()
		if types.IsClassed(err) {
			return nil, err
		}
		return nil, unavailable("register host "+h.ID, err)
	}
	return s.startSession(h, secs, sent), nil
}

// startSession makes the session of h's lease, renewing it from now on.
func (s *Store) startSession(h Host, secs int64, sent time.Time) *Session {
	ss := &Session{s: s, host: h, ttl: time.Duration(secs) * time.Second, lost: make(chan struct{}), renewed: sent}
	ss.ctx, ss.stop = context.WithCancel(context.Background())
	ss.done.Add(1)
	go ss.renew()
	return ss
}

// ResumeSession takes up host h's lease again, as a controller restarted
// within the lease's TTL does, so what it owns survives the restart: it
// renews lease once and checks that h's record is on it. A lease that is
// gone is NotFound wrapping ErrLeaseNotFound (the caller opens a new
// session and claims again); h registered on another lease is Forbidden.
func (s *Store) ResumeSession(ctx context.Context, h Host, lease LeaseID, ttl time.Duration) (*Session, error) {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	sent := time.Now()
	cctx, cancel := s.ctx(ctx)
	err := s.kv.KeepAliveOnce(cctx, lease)
	cancel()
	if errors.Is(err, ErrLeaseNotFound) {
		return nil, types.NotFoundErrorf("global store: resume host %s: %w", h.ID, err)
	}
	if err != nil {
		return nil, unavailable("resume host "+h.ID, err)
	}
	var rec Host
	if err := s.get(ctx, "host "+h.ID, s.k.host(h.ID), &rec); err != nil {
		return nil, err
	}
	if rec.Lease != lease {
		return nil, types.ForbiddenErrorf("global store: resume host %s: it is registered on lease %x, not %x", h.ID, int64(rec.Lease), int64(lease))
	}
	return s.startSession(rec, secs, sent), nil
}

// Lease is the lease everything of this host hangs on.
func (ss *Session) Lease() LeaseID { return ss.host.Lease }

// Host is the host record as registered.
func (ss *Session) Host() Host { return ss.host }

// TTL is the lease's time to live.
func (ss *Session) TTL() time.Duration { return ss.ttl }

// Renewed is when the last renewal the store acknowledged was sent: the
// lease cannot expire before Renewed()+TTL(), which is what fencing uses
// (the host's own clock, not the store's word, which may come too late).
func (ss *Session) Renewed() time.Time {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.renewed
}

// Lost is closed when the store reported the lease gone.
func (ss *Session) Lost() <-chan struct{} { return ss.lost }

// retryAfter is how soon a failed or timed-out renewal is tried again:
// sooner than the TTL/3 of a healthy renewal, so that two late keepalives
// of a loaded host or store do not run a healthy lease out, yet at least
// 100 ms apart, so an unreachable store is not spun on.
func retryAfter(ttl time.Duration) time.Duration {
	return max(ttl/10, 100*time.Millisecond)
}

func (ss *Session) renew() {
	defer ss.done.Done()
	timer := time.NewTimer(ss.ttl / 3)
	defer timer.Stop()
	for {
		select {
		case <-ss.ctx.Done():
			return
		case <-timer.C:
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(ss.ctx, min(ss.s.timeout, ss.ttl/3))
		err := ss.s.kv.KeepAliveOnce(ctx, ss.host.Lease)
		cancel()
		switch {
		case err == nil:
			ss.mu.Lock()
			ss.renewed = sent
			ss.mu.Unlock()
			timer.Reset(ss.ttl / 3)
		case errors.Is(err, ErrLeaseNotFound):
			close(ss.lost)
			return
		default:
			// The store is unreachable or slow: keep trying, sooner than
			// the regular period, until the store answers or Close.
			timer.Reset(retryAfter(ss.ttl))
		}
	}
}

// Close stops renewing and revokes the lease, deleting everything on it,
// within the Store's timeout. A lease already gone is success.
func (ss *Session) Close(ctx context.Context) error {
	ss.stop()
	ss.done.Wait()
	cctx, cancel := ss.s.ctx(ctx)
	defer cancel()
	if err := ss.s.kv.Revoke(cctx, ss.host.Lease); err != nil && !errors.Is(err, ErrLeaseNotFound) {
		return unavailable("revoke lease of host "+ss.host.ID, err)
	}
	return nil
}

// Abandon stops renewing without revoking, as a host that dies does: the
// lease expires a TTL after its last renewal.
func (ss *Session) Abandon() {
	ss.stop()
	ss.done.Wait()
}

// Hosts lists the live hosts.
func (s *Store) Hosts(ctx context.Context) ([]Host, error) {
	var hs []Host
	_, err := s.list(ctx, "list hosts", s.k.hosts(), nil, func(b []byte) error {
		var h Host
		err := json.Unmarshal(b, &h)
		hs = append(hs, h)
		return err
	})
	return hs, err
}

// Evict revokes host id's lease at once: its endpoints, names, addresses
// and peers are deleted in one revision. A host not registered is success.
func (s *Store) Evict(ctx context.Context, id string) error {
	var h Host
	err := s.get(ctx, "host "+id, s.k.host(id), &h)
	if types.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := s.kv.Revoke(cctx, h.Lease); err != nil && !errors.Is(err, ErrLeaseNotFound) {
		return unavailable("evict host "+id, err)
	}
	return nil
}
