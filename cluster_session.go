package libnetwork

import (
	"encoding/json"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// Records of the session kept in the local store (kind kindHost), so a
// controller restarted on the same DataDir is the same host and, within
// the TTL, takes up the same lease with everything on it.
const (
	hostIDRecordID = "global-host-id"
	leaseRecordID  = "global-lease"
)

// Backoff between failed attempts to open a session.
const (
	sessionRetryMin = 50 * time.Millisecond
	sessionRetryMax = 2 * time.Second
)

// leaseRecord is the lease a host's session had: what a restart needs to
// resume it (only under the same TTL) and to know, before any session,
// when it can expire at the earliest (Renewed+TTL). TTL and Renewed are
// zero in records written before they were kept: such a lease is never
// resumed under a TTL it may not have, and fences the host at start.
type leaseRecord struct {
	Host    string              `json:"host"`
	Lease   globalstore.LeaseID `json:"lease"`
	TTL     time.Duration       `json:"ttl,omitempty"`     // the lease's TTL as the store keeps it
	Renewed time.Time           `json:"renewed,omitempty"` // last acknowledged renewal (sent at)
}

// loadHostID is the configured ID, else the one kept in st, else a new
// random one, kept.
func loadHostID(st store.Records, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	b, err := st.Get(kindHost, hostIDRecordID)
	if err == nil && len(b) > 0 {
		return string(b), nil
	}
	if err != nil && !types.IsNotFound(err) {
		return "", types.Wrapf(err, "reading this host's ID in the global store")
	}
	id := generateID()[:16]
	if err := st.Apply(store.Op{Kind: kindHost, ID: hostIDRecordID, Value: []byte(id)}); err != nil {
		return "", types.Wrapf(err, "keeping this host's ID in the global store")
	}
	return id, nil
}

// loadLease reads the previous session's lease record (none when it was
// another host's) and sets the fence's clock from it, before anything
// runs: a previous lease may expire from its last renewal + its TTL on,
// which can be before New, so the host may be fenced from the start. A
// record without a renewal time fences at once; no record at all means
// this DataDir never had a session (the record is written before a
// session is used), so nothing is on a lease to fence against.
func (cl *cluster) loadLease() {
	cl.prev = leaseRecord{Lease: globalstore.NoLease}
	b, err := cl.c.store.Get(kindHost, leaseRecordID)
	if err == nil {
		var r leaseRecord
		if json.Unmarshal(b, &r) == nil && r.Host == cl.host.ID {
			cl.prev = r
		}
	}
	if cl.prev.Lease != globalstore.NoLease {
		cl.started = cl.prev.Renewed // zero: fenced at once
		if cl.prev.TTL > 0 {
			cl.prevTTL = cl.prev.TTL
		}
	}
	cl.fenced = cl.fenceState(time.Now())
	cl.recorded = cl.prev.Renewed
}

// saveLease keeps ss's lease, TTL and last acknowledged renewal in the
// local store, unless the renewal kept already is the same.
func (cl *cluster) saveLease(ss *globalstore.Session) error {
	renewed := ss.Renewed()
	cl.rmu.Lock()
	defer cl.rmu.Unlock()
	if renewed.Equal(cl.recorded) && ss.Lease() == cl.recordedLease {
		return nil
	}
	r := leaseRecord{Host: cl.host.ID, Lease: ss.Lease(), TTL: ss.TTL(), Renewed: renewed.UTC()}
	if err := cl.c.store.Apply(store.Op{Kind: kindHost, ID: leaseRecordID, Value: mustMarshal(r)}); err != nil {
		return err
	}
	cl.recorded, cl.recordedLease = renewed, ss.Lease()
	return nil
}

// leaseTTL is the TTL a session of ttl gets (the store's whole seconds).
func leaseTTL(ttl time.Duration) time.Duration {
	return (ttl + time.Second - 1) / time.Second * time.Second
}

// run keeps a session open until close: it opens one (resuming the kept
// lease when it is still live, has this run's TTL and this host's
// discovery address), waiting 50 ms doubling to 2 s between failed
// attempts, heals the model on it (heal) before telling the subscribers,
// and opens a new one when the store reports the lease lost.
//
// The fence holds while a lease is lost, so forwarding resumes only once
// this host's endpoints are claimed again on the new lease.
func (cl *cluster) run() {
	defer cl.done.Done()
	log := cl.c.cfg.Logger.With("host", cl.host.ID)
	prev := cl.prev.Lease
	first := true
	wait := sessionRetryMin
	retry := func(err error) bool {
		cl.mu.Lock()
		cl.lastErr = err
		cl.mu.Unlock()
		log.Debug("global store: no session yet", "err", err, "retry", wait)
		select {
		case <-cl.ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, sessionRetryMax)
		return true
	}
	for {
		ss, resumed, err := cl.open(prev)
		if err != nil {
			if !retry(err) {
				return
			}
			continue
		}
		if !resumed && prev != globalstore.NoLease {
			// The lease of before is gone (expired, evicted or revoked
			// by open): its claims may be anyone's now.
			cl.markLost()
		}
		prev = ss.Lease()
		if err := cl.saveLease(ss); err != nil {
			// The session works; only a restart would open a new one.
			log.Warn("global store: keeping the session's lease", "err", err)
		}
		if !cl.healOn(ss, resumed, first) {
			if cl.ctx.Err() != nil {
				ss.Abandon()
				return
			}
			// Lost while healing: the next lease heals from scratch.
			ss.Abandon()
			cl.markLost()
			prev = globalstore.NoLease
			first = false
			continue
		}
		first = false
		wait = sessionRetryMin
		log.Info("global store: session up", "lease", int64(prev), "resumed", resumed)
		cl.publish(ss, resumed)
		cl.checkFence()

		select {
		case <-cl.ctx.Done():
			return // close abandons it
		case <-ss.Lost():
		}
		log.Warn("global store: session lost (lease expired or host evicted); opening a new one", "lease", int64(prev))
		cl.mu.Lock()
		cl.sess, cl.lost, cl.up = nil, true, make(chan struct{})
		cl.mu.Unlock()
		ss.Abandon()
		prev = globalstore.NoLease // gone: nothing to resume
		cl.checkFence()
	}
}

// markLost fences the host at once: its lease's claims are gone.
func (cl *cluster) markLost() {
	cl.mu.Lock()
	cl.lost = true
	cl.mu.Unlock()
	cl.checkFence()
}

// healOn waits for the model to be loaded and has the controller claim
// its endpoints on ss again (global_heal.go), retrying while the store
// does not answer; false if ss was lost meanwhile or the cluster closes.
// A lease kept (resumed) lost nothing, so then only the first session of
// a run has work: the restart reconcile (local endpoints missing from the
// store claimed, this host's store endpoints without a local one deleted). While it runs, ss is pending:
// the fence's clock follows its renewals.
func (cl *cluster) healOn(ss *globalstore.Session, resumed, first bool) bool {
	if resumed && !first {
		return true
	}
	cl.mu.Lock()
	cl.pending = ss
	cl.mu.Unlock()
	defer func() {
		cl.mu.Lock()
		cl.pending = nil
		cl.mu.Unlock()
	}()
	select {
	case <-cl.loaded:
	case <-cl.ctx.Done():
		return false
	case <-ss.Lost():
		return false
	}
	if cl.healer == nil {
		return true
	}
	// On a lease kept across the restart, what a crash left half-made is
	// still there to reconcile; a lease gone took it along.
	reconcile := first && resumed
	wait := sessionRetryMin
	for {
		err := cl.healer.heal(cl.ctx, ss, reconcile)
		if err == nil {
			return true
		}
		cl.c.cfg.Logger.Warn("global store: claiming this host's endpoints again", "host", cl.host.ID, "err", err, "retry", wait)
		select {
		case <-cl.ctx.Done():
			return false
		case <-ss.Lost():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, sessionRetryMax)
	}
}

// modelLoaded tells run that the controller's model is restored, so a
// heal sees every endpoint of this host; h does the heals.
func (cl *cluster) modelLoaded(h healer) {
	cl.healer = h
	close(cl.loaded)
}

// open resumes lease prev when it is still this host's, under this run's
// TTL and discovery address, else opens a new session. A live lease that
// does not fit is revoked first, so its claims do not linger on another
// TTL or announce a stale address.
func (cl *cluster) open(prev globalstore.LeaseID) (*globalstore.Session, bool, error) {
	if prev != globalstore.NoLease {
		ss, err := cl.st.ResumeSession(cl.ctx, cl.host, prev, cl.ttl)
		switch {
		case err == nil:
			why := ""
			if cl.prev.TTL != leaseTTL(cl.ttl) {
				why = "its TTL is " + cl.prev.TTL.String() + ", this run's " + leaseTTL(cl.ttl).String()
			} else if ss.Host().Address != cl.host.Address {
				why = "it announces address " + ss.Host().Address.String() + ", this run's is " + cl.host.Address.String()
			}
			if why == "" {
				return ss, true, nil
			}
			cl.c.cfg.Logger.Info("global store: not resuming the previous lease", "host", cl.host.ID, "why", why)
			cl.markLost()
			if err := ss.Close(cl.ctx); err != nil {
				return nil, false, err
			}
		case !types.IsNotFound(err) && !types.IsForbidden(err):
			// The store is down: retried as it is.
			return nil, false, err
		}
		// Gone (expired, evicted, revoked) or taken over: open anew.
	}
	ss, err := cl.st.OpenSession(cl.ctx, cl.host, cl.ttl)
	return ss, false, err
}

// publish makes ss the session and tells the subscribers; under nmu, so
// a subscriber joining meanwhile hears of ss exactly once.
func (cl *cluster) publish(ss *globalstore.Session, resumed bool) {
	cl.nmu.Lock()
	defer cl.nmu.Unlock()
	cl.mu.Lock()
	cl.sess, cl.resumed, cl.lost, cl.lastErr = ss, resumed, false, nil
	close(cl.up)
	cl.mu.Unlock()
	for _, s := range cl.subs {
		s.sessionUp(ss, resumed)
	}
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain data; cannot fail
	}
	return b
}
