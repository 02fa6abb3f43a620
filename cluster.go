package libnetwork

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/types"
)

// cluster is the controller's link to the global store: nil on a
// controller without one (config KVProvider empty), and then every
// network is local. The store is reached only for global networks.
type cluster struct {
	st   *globalstore.Store
	host globalstore.Host // ID and Address (the VTEP); Lease is the session's
	ttl  time.Duration    // the host lease's TTL

	mu   sync.Mutex
	sess *globalstore.Session // guarded by mu; nil until one is open
}

// openCluster connects to the global store the config names. The KV a test
// hands over (knobs.GlobalKV) replaces the provider.
func openCluster(c *Controller) (*cluster, error) {
	cfg := c.cfg
	kv, _ := cfg.DriverCfg[knobs.Controller][knobs.GlobalKV].(globalstore.KV)
	if kv == nil && cfg.KVProvider == "" {
		return nil, nil
	}
	if kv == nil {
		pc, err := globalstore.ParseConfig(cfg.KVProviderURL, cfg.KVOpts)
		if err != nil {
			return nil, types.Wrapf(err, "configuring global store %s", cfg.KVProvider)
		}
		if kv, err = globalstore.Open(cfg.KVProvider, pc); err != nil {
			return nil, err
		}
	}
	cl := &cluster{
		st:   globalstore.New(kv, globalstore.Options{Timeout: cfg.KVTimeout}),
		host: globalstore.Host{ID: cfg.HostID},
		ttl:  cfg.HostLeaseTTL,
	}
	if cl.host.ID == "" {
		cl.host.ID = generateID()[:16]
	}
	if cfg.DiscoveryAddress != "" {
		a, err := netip.ParseAddr(cfg.DiscoveryAddress)
		if err != nil {
			_ = kv.Close()
			return nil, types.BadRequestErrorf("invalid discovery address %q: %w", cfg.DiscoveryAddress, err)
		}
		cl.host.Address = a.Unmap()
	}
	return cl, nil
}

// store is the global store.
func (cl *cluster) store() *globalstore.Store { return cl.st }

// hostID is this host's ID in the store.
func (cl *cluster) hostID() string { return cl.host.ID }

// vtep is this host's underlay address (zero when none was configured).
func (cl *cluster) vtep() netip.Addr { return cl.host.Address }

// session returns the host's session, opening it if none is open yet; a
// store that cannot answer within its timeout is a NoService error.
func (cl *cluster) session(ctx context.Context) (*globalstore.Session, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.sess != nil {
		return cl.sess, nil
	}
	ss, err := cl.st.OpenSession(ctx, cl.host, cl.ttl)
	if err != nil {
		return nil, err
	}
	cl.sess = ss
	return ss, nil
}

// close stops the session without revoking its lease (a controller
// restarted within the TTL takes its claims back) and closes the store.
func (cl *cluster) close() {
	cl.mu.Lock()
	if cl.sess != nil {
		cl.sess.Abandon()
		cl.sess = nil
	}
	cl.mu.Unlock()
	_ = cl.st.KV().Close()
}
