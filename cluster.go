package libnetwork

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/types"
)

// Defaults of the session's knobs (config HostLeaseTTL, KVTimeout at 0).
const (
	defaultHostLeaseTTL = globalstore.DefaultLeaseTTL
	defaultKVTimeout    = globalstore.DefaultTimeout
)

// cluster is the controller's link to the global store: nil on a
// controller without one (config KVProvider empty), and then every
// network is local. The store is reached only for global networks.
//
// New never waits for the store: the session is opened (or resumed) by
// run in the background, and reopened whenever it is lost; callers that
// need it wait in session for at most the store's timeout.
type cluster struct {
	c       *Controller
	st      *globalstore.Store
	host    globalstore.Host // ID and Address (the VTEP); Lease is the session's
	ttl     time.Duration    // the host lease's TTL
	timeout time.Duration    // how long session waits for a session
	started time.Time        // the previous lease's last renewal, else when New made the cluster (see fenceState)
	prevTTL time.Duration    // the previous lease's TTL (ttl if not kept)
	prev    leaseRecord      // the previous session's lease (Lease NoLease if none); set before run

	loaded chan struct{} // closed by modelLoaded once the model is restored
	healer healer        // set before loaded is closed; nil: nothing to heal

	// rmu serialises writes of the lease record.
	rmu           sync.Mutex
	recorded      time.Time           // the renewal the lease record holds; guarded by rmu
	recordedLease globalstore.LeaseID // the lease it holds; guarded by rmu

	ctx    context.Context // ended by close: stops the background work
	cancel context.CancelFunc
	done   sync.WaitGroup

	mu      sync.Mutex
	sess    *globalstore.Session // guarded by mu; nil while none is open
	resumed bool                 // sess took up the previous lease; guarded by mu
	pending *globalstore.Session // opened, healing, not yet published; guarded by mu
	lost    bool                 // a session was lost and none is open since; guarded by mu
	up      chan struct{}        // closed while sess != nil; replaced when it is lost; guarded by mu
	lastErr error                // why the last open failed; guarded by mu

	// nmu serialises calls into subscribers, so each sees sessionUp and
	// fence in the order they happened. mu is never held across them.
	nmu    sync.Mutex
	subs   []sessionSubscriber // guarded by nmu
	fenced bool                // the state last told to subscribers; guarded by nmu
}

// sessionSubscriber is told about the host's session. Calls come one at a
// time from the cluster's goroutines and must return promptly (start your
// own work for store calls), and must not call subscribe.
type sessionSubscriber interface {
	// sessionUp follows every session opened; resumed means it is the
	// lease of before (a restart within the TTL): nothing was lost.
	sessionUp(ss *globalstore.Session, resumed bool)
	// fence(true): the lease may expire before the store hears from this
	// host again (or is gone), so cross-host forwarding must stop;
	// fence(false): renewals succeed again on a live lease.
	fence(on bool)
}

// openCluster prepares the link to the global store the config names,
// without calling the store. The KV a test hands over (knobs.GlobalKV)
// replaces the provider.
func openCluster(c *Controller) (_ *cluster, err error) {
	cfg := c.cfg
	if cfg.HostLeaseTTL < 0 {
		return nil, types.BadRequestErrorf("invalid host lease TTL %v: it must not be negative", cfg.HostLeaseTTL)
	}
	if cfg.KVTimeout < 0 {
		return nil, types.BadRequestErrorf("invalid global store timeout %v: it must not be negative", cfg.KVTimeout)
	}
	kv, _ := cfg.DriverCfg[knobs.Controller][knobs.GlobalKV].(globalstore.KV)
	if kv == nil && cfg.KVProvider == "" {
		return nil, needsProvider(cfg)
	}
	cl := &cluster{c: c, ttl: cfg.HostLeaseTTL, timeout: cfg.KVTimeout, started: time.Now(),
		up: make(chan struct{}), loaded: make(chan struct{})}
	if cl.ttl == 0 {
		cl.ttl = defaultHostLeaseTTL
	}
	cl.prevTTL = cl.ttl
	if cl.timeout == 0 {
		cl.timeout = defaultKVTimeout
	}
	if cfg.DiscoveryAddress != "" {
		if cl.host.Address, err = hostAddress(c, cfg.DiscoveryAddress); err != nil {
			return nil, err
		}
	}
	if cl.host.ID, err = loadHostID(c.store, cfg.HostID); err != nil {
		return nil, err
	}
	if kv == nil {
		pc, err := globalstore.ParseConfig(cfg.KVProviderURL, cfg.KVOpts)
		if err != nil {
			return nil, types.Wrapf(err, "configuring global store %s", cfg.KVProvider)
		}
		if cfg.HostNetNS != "" {
			pc.Dialer = hostDialer(c.host)
		}
		if kv, err = globalstore.Open(cfg.KVProvider, pc); err != nil {
			return nil, err
		}
	}
	cl.st = globalstore.New(kv, globalstore.Options{Timeout: cl.timeout})
	cl.loadLease()
	cl.ctx, cl.cancel = context.WithCancel(context.Background())
	cl.done.Add(2)
	go cl.run()
	go cl.fenceLoop(fenceTick(cl.ttl))
	return cl, nil
}

// needsProvider refuses the options of the global store set without
// one: they would be dropped, and a host configured to join a cluster
// would silently run alone.
func needsProvider(cfg *config.Config) error {
	for _, o := range []struct {
		name string
		set  bool
	}{
		{"OptionKVProviderURL", cfg.KVProviderURL != ""},
		{"OptionKVOpts", len(cfg.KVOpts) > 0},
		{"OptionDiscoveryAddress", cfg.DiscoveryAddress != ""},
		{"OptionHostID", cfg.HostID != ""},
		{"OptionHostLeaseTTL", cfg.HostLeaseTTL != 0},
		{"OptionKVTimeout", cfg.KVTimeout != 0},
	} {
		if o.set {
			return types.BadRequestErrorf("invalid configuration: %s needs OptionKVProvider (a global store)", o.name)
		}
	}
	return nil
}

// store is the global store.
func (cl *cluster) store() *globalstore.Store { return cl.st }

// hostID is this host's ID in the store.
func (cl *cluster) hostID() string { return cl.host.ID }

// vtep is this host's underlay address (zero when none was configured).
func (cl *cluster) vtep() netip.Addr { return cl.host.Address }

// session returns the host's session, waiting for the background opener
// until ctx ends or the store's timeout passes; then it is a NoService
// error wrapping globalstore.ErrUnavailable (and the last failure's cause).
func (cl *cluster) session(ctx context.Context) (*globalstore.Session, error) {
	cl.mu.Lock()
	ss, up := cl.sess, cl.up
	cl.mu.Unlock()
	if ss != nil {
		return ss, nil
	}
	t := time.NewTimer(cl.timeout)
	defer t.Stop()
	var cause error
	select {
	case <-up:
		cl.mu.Lock()
		ss = cl.sess
		cl.mu.Unlock()
		if ss != nil {
			return ss, nil
		}
		// Lost again at once: report it as unavailable, as below.
		cause = errors.New("the session was lost as soon as it came up")
	case <-ctx.Done():
		cause = ctx.Err()
	case <-t.C:
		cause = context.DeadlineExceeded
	case <-cl.ctx.Done():
		cause = fmt.Errorf("the controller is stopping")
	}
	cl.mu.Lock()
	last := cl.lastErr
	cl.mu.Unlock()
	if last != nil {
		cause = fmt.Errorf("%w (last attempt: %w)", cause, last)
	}
	return nil, types.NoServiceErrorf("global store: no session for host %s: %w: %w", cl.host.ID, globalstore.ErrUnavailable, cause)
}

// subscribe adds s; it is told at once of a session already up and of a
// fence already on, so it misses nothing whenever it subscribes.
func (cl *cluster) subscribe(s sessionSubscriber) {
	cl.nmu.Lock()
	defer cl.nmu.Unlock()
	cl.subs = append(cl.subs, s)
	cl.mu.Lock()
	ss, resumed := cl.sess, cl.resumed
	cl.mu.Unlock()
	if ss != nil {
		s.sessionUp(ss, resumed)
	}
	if cl.fenced {
		s.fence(true)
	}
}

// close stops the session without revoking its lease (a controller
// restarted within the TTL takes its claims back) and closes the store.
func (cl *cluster) close() {
	cl.cancel()
	cl.done.Wait()
	cl.mu.Lock()
	if cl.sess != nil {
		cl.sess.Abandon()
		// Its last renewal fixes when a restart must fence.
		if err := cl.saveLease(cl.sess); err != nil {
			cl.c.cfg.Logger.Warn("global store: keeping the session's last renewal", "err", err)
		}
		cl.sess = nil
	}
	cl.mu.Unlock()
	_ = cl.st.KV().Close()
}
