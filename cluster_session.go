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

// leaseRecord is the lease a host's session had.
type leaseRecord struct {
	Host  string              `json:"host"`
	Lease globalstore.LeaseID `json:"lease"`
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

// savedLease is the lease the previous session of this host had
// (NoLease when none is kept, or it was another host's).
func (cl *cluster) savedLease() globalstore.LeaseID {
	b, err := cl.c.store.Get(kindHost, leaseRecordID)
	if err != nil {
		return globalstore.NoLease
	}
	var r leaseRecord
	if json.Unmarshal(b, &r) != nil || r.Host != cl.host.ID {
		return globalstore.NoLease
	}
	return r.Lease
}

// run keeps a session open until close: it opens one (resuming the kept
// lease when it is still live), waiting 50 ms doubling to 2 s between
// failed attempts, tells the subscribers, and opens a new one when the
// store reports the lease lost.
func (cl *cluster) run() {
	defer cl.done.Done()
	log := cl.c.cfg.Logger.With("host", cl.host.ID)
	prev := cl.savedLease()
	wait := sessionRetryMin
	for {
		ss, resumed, err := cl.open(prev)
		if err != nil {
			cl.mu.Lock()
			cl.lastErr = err
			cl.mu.Unlock()
			log.Debug("global store: no session yet", "err", err, "retry", wait)
			select {
			case <-cl.ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, sessionRetryMax)
			continue
		}
		wait = sessionRetryMin
		prev = ss.Lease()
		if err := cl.c.store.Apply(store.Op{Kind: kindHost, ID: leaseRecordID,
			Value: mustMarshal(leaseRecord{Host: cl.host.ID, Lease: prev})}); err != nil {
			// The session works; only a restart would open a new one.
			log.Warn("global store: keeping the session's lease", "err", err)
		}
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

// open resumes lease prev when it is still this host's, else opens a new
// session.
func (cl *cluster) open(prev globalstore.LeaseID) (*globalstore.Session, bool, error) {
	if prev != globalstore.NoLease {
		ss, err := cl.st.ResumeSession(cl.ctx, cl.host, prev, cl.ttl)
		if err == nil {
			return ss, true, nil
		}
		// Gone (expired, evicted) or taken over: open anew. Anything
		// else (the store is down) is retried as it is.
		if !types.IsNotFound(err) && !types.IsForbidden(err) {
			return nil, false, err
		}
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
