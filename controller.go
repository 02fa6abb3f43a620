/*
Package libnetwork is an embeddable implementation of the Container Network
Model: a Controller owns drivers and IPAM; Networks create Endpoints;
Endpoints join Sandboxes (network namespaces).

Lock order, outermost first:

	Sandbox.opMu   serialises the slow work (join, leave, delete, SetKey) of one sandbox
	mirror.wlocks  64 stripes by endpoint ID: each store call for one endpoint
	               (a queued write's try or retry, a heal's reclaim) holds its
	               stripe, across the call, so they never overlap
	               (global_queue.go); a caller of mirror.write only TryLocks
	               one and never waits for it
	Controller.gcMu held for reading by operations that create kernel objects,
	               for writing by garbage collection, so GC never takes
	               something half-made for a leftover
	mirror.gMu     serialises making and dropping global networks here and
	               the peers handed to their drivers (global_mirror.go)
	Controller.mu  guards the in-memory model: the network and sandbox maps and
	               every mutable field of Network, Endpoint and Sandbox
	mirror.mu      guards the mirror of the global store

Of the mirror's locks only a write stripe is held across a store call; the
heal and the write queue take one holding no other lock (a write's TryLock
may come under any, as it never waits).
Controller.mu is never held across a driver, IPAM, kernel or store call;
operations claim what they change under it (a name, an endpoint's sandbox),
do the slow work unlocked, and roll the claim back on failure.
*/
package libnetwork

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/osl"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// NetworkWalker is called for each network; returning true stops the walk.
type NetworkWalker func(nw *Network) bool

// SandboxWalker is called for each sandbox; returning true stops the walk.
type SandboxWalker func(sb *Sandbox) bool

// Controller owns the drivers, IPAM drivers, networks and sandboxes of one
// host network namespace.
type Controller struct {
	id     string
	cfg    *config.Config
	host   *netnsutil.NS   // the namespace treated as the host
	hostNL *netlink.Handle // netlink handle inside host
	store  store.Records
	cl     *cluster // the global store; nil when none is configured
	mirror *mirror  // the global store's records (global_mirror.go); nil without cl
	drv    *registry
	nsPool *osl.Pool // namespaces made ahead for NewSandbox

	restoreErr error // what went wrong restoring the previous run; set in New

	gcMu sync.RWMutex // see the lock order above

	mu        sync.Mutex
	networks  map[string]*Network // by ID; guarded by mu
	netNames  map[string]string   // name -> ID, including networks being created; guarded by mu
	sandboxes map[string]*Sandbox // by ID; guarded by mu
	defaultSb *osl.Sandbox        // host-namespace sandbox shared by OptionUseDefaultSandbox; guarded by mu
	defaultN  int                 // users of defaultSb; guarded by mu
	stopped   bool                // guarded by mu
	claimFd   int                 // socket claiming the host namespace (see claimHostNS), -1 if none
	repair    *repairLoop         // periodic DNS redirect checks (controller_repair.go); nil until New is done
}

// New returns a controller configured by opts.
func New(opts ...config.Option) (_ *Controller, err error) {
	defer classify(&err)
	cfg := config.New(opts...)
	c := &Controller{
		id:        generateID(),
		cfg:       cfg,
		networks:  map[string]*Network{},
		netNames:  map[string]string{},
		sandboxes: map[string]*Sandbox{},
		nsPool:    osl.NewPool(2),
		claimFd:   -1,
	}
	ok := false
	defer func() {
		if !ok {
			c.release()
		}
	}()

	if cfg.HostNetNS == "" {
		c.host, err = netnsutil.Current()
	} else {
		c.host, err = netnsutil.Open(cfg.HostNetNS)
	}
	if err != nil {
		return nil, types.Wrapf(err, "opening host network namespace")
	}
	if c.hostNL, err = netlink.NewHandleAt(c.host.Handle()); err != nil {
		if cfg.HostNetNS != "" {
			return nil, types.Wrapf(err, "opening netlink in host namespace %s", cfg.HostNetNS)
		}
		// Entering even our own namespace needs CAP_SYS_ADMIN; unprivileged
		// callers still get a handle on the namespace they run in.
		if c.hostNL, err = netlink.NewHandle(); err != nil {
			return nil, types.Wrapf(err, "opening netlink")
		}
	}
	// The store first: if it is held by another process or corrupt, fail
	// before anything else is started.
	if c.store, err = openStore(cfg); err != nil {
		return nil, err
	}
	if c.claimFd, err = claimHostNS(c.host, cfg.HostNetNS); err != nil {
		return nil, err
	}
	if c.cl, err = openCluster(c); err != nil {
		return nil, err
	}
	if c.drv, err = newRegistry(c); err != nil {
		return nil, err
	}
	if err = c.announceBuiltins(); err != nil {
		return nil, err
	}
	if c.cl != nil {
		c.mirror = newMirror(c)
	}
	c.restoreErr = c.restore()
	if c.mirror != nil {
		c.mirror.start()
	}
	c.repair = c.startRepairLoop(dnsCheckEvery)
	ok = true
	return c, nil
}

// StoreFile is the name of the controller's store under config DataDir.
const StoreFile = "libnetwork.db"

// openStore opens the store file under DataDir, or returns the store a
// test of this module handed over (knobs.ControllerStore), which the
// controller then uses as it would the file.
func openStore(cfg *config.Config) (store.Records, error) {
	if st, ok := cfg.DriverCfg[knobs.Controller][knobs.ControllerStore].(store.Records); ok && st != nil {
		return st, nil
	}
	st, err := store.OpenBolt(filepath.Join(cfg.DataDir, StoreFile), cfg.StoreTimeout)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// RestoreError reports what could not be restored from the previous run's
// state when the controller started (nil when everything came back).
// Objects that failed stay recorded and are retried by the next start.
func (c *Controller) RestoreError() error { return types.Classed(c.restoreErr) }

// release frees what New acquired; used by Stop and by a failed New.
func (c *Controller) release() {
	c.nsPool.Close()
	if c.drv != nil {
		c.drv.close()
	}
	if c.cl != nil {
		c.cl.close()
	}
	if c.store != nil {
		c.store.Close()
	}
	if c.claimFd >= 0 {
		releaseHostNS(c.claimFd)
		c.claimFd = -1
	}
	if c.hostNL != nil {
		c.hostNL.Close()
	}
	if c.host != nil {
		c.host.Close()
	}
}

// ID returns the controller's random ID.
func (c *Controller) ID() string { return c.id }

// Config returns a copy of the controller's configuration.
func (c *Controller) Config() config.Config { return *c.cfg }

// BuiltinDrivers returns the names of the network drivers built in.
func (c *Controller) BuiltinDrivers() []string { return c.drv.builtinDrivers() }

// BuiltinIPAMDrivers returns the names of the IPAM drivers built in.
func (c *Controller) BuiltinIPAMDrivers() []string { return c.drv.builtinIPAMs() }

// Networks returns the controller's networks, sorted by name: the local
// ones and, with a global store, every global network of the cluster
// (made here first if this host has not yet).
func (c *Controller) Networks() []*Network {
	c.materializeAll()
	c.mu.Lock()
	list := make([]*Network, 0, len(c.networks))
	for _, n := range c.networks {
		if !n.deleting {
			list = append(list, n)
		}
	}
	c.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	return list
}

// WalkNetworks calls walker for each network until it returns true.
func (c *Controller) WalkNetworks(walker NetworkWalker) {
	for _, n := range c.Networks() {
		if walker(n) {
			return
		}
	}
}

// NetworkByName returns the network called name.
func (c *Controller) NetworkByName(name string) (*Network, error) {
	if name == "" {
		return nil, ErrInvalidName(name)
	}
	c.mu.Lock()
	n, ok := c.networks[c.netNames[name]]
	_, claimed := c.netNames[name]
	live := ok && !n.deleting
	c.mu.Unlock()
	if live {
		return n, nil
	}
	if claimed {
		return nil, ErrNoSuchNetwork(name)
	}
	// A global network another host made a moment ago is found at once.
	return c.lookupGlobal(name, true)
}

// NetworkByID returns the network with the given ID.
func (c *Controller) NetworkByID(id string) (*Network, error) {
	if id == "" {
		return nil, ErrInvalidID(id)
	}
	c.mu.Lock()
	n, ok := c.networks[id]
	live := ok && !n.deleting
	c.mu.Unlock()
	if live {
		return n, nil
	}
	if ok {
		return nil, ErrNoSuchNetwork(id)
	}
	return c.lookupGlobal(id, false)
}

// Sandboxes returns the controller's sandboxes, sorted by ID.
func (c *Controller) Sandboxes() []*Sandbox {
	c.mu.Lock()
	list := make([]*Sandbox, 0, len(c.sandboxes))
	for _, sb := range c.sandboxes {
		list = append(list, sb)
	}
	c.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].id < list[j].id })
	return list
}

// WalkSandboxes calls walker for each sandbox until it returns true.
func (c *Controller) WalkSandboxes(walker SandboxWalker) {
	for _, sb := range c.Sandboxes() {
		if walker(sb) {
			return
		}
	}
}

// SandboxByID returns the sandbox with the given ID.
func (c *Controller) SandboxByID(id string) (*Sandbox, error) {
	if id == "" {
		return nil, ErrInvalidID(id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if sb, ok := c.sandboxes[id]; ok {
		return sb, nil
	}
	return nil, ErrNoSuchSandbox(id)
}

// SandboxContainerWalker returns a walker that stores in *out the sandbox
// of containerID.
func SandboxContainerWalker(out **Sandbox, containerID string) SandboxWalker {
	return func(sb *Sandbox) bool {
		if sb.ContainerID() == containerID {
			*out = sb
			return true
		}
		return false
	}
}

// SandboxKeyWalker returns a walker that stores in *out the sandbox whose
// Key is key.
func SandboxKeyWalker(out **Sandbox, key string) SandboxWalker {
	return func(sb *Sandbox) bool {
		if sb.Key() == key {
			*out = sb
			return true
		}
		return false
	}
}

// SandboxDestroy deletes the sandbox of containerID (a container ID, not a
// sandbox ID, as upstream). No such sandbox is not an error.
func (c *Controller) SandboxDestroy(containerID string) error {
	var sb *Sandbox
	c.WalkSandboxes(SandboxContainerWalker(&sb, containerID))
	if sb == nil {
		return nil
	}
	return sb.Delete()
}

// Stop releases the controller's resources (store, driver handles). Networks
// and sandboxes are left as they are, for a later controller to restore.
func (c *Controller) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	c.mu.Unlock()
	c.repair.close()
	if c.mirror != nil {
		c.mirror.close()
	}
	c.closeResolvers()
	c.closeSandboxes()
	c.release()
}

// closeSandboxes releases the namespace handles of the live sandboxes,
// leaving the namespaces to the next controller: a stopped controller holds
// no descriptor, so a namespace whose mount is removed really goes.
func (c *Controller) closeSandboxes() {
	for _, sb := range c.Sandboxes() {
		sb.opMu.Lock()
		c.mu.Lock()
		s := sb.osSbox
		c.mu.Unlock()
		if s != nil {
			s.Close()
		}
		sb.opMu.Unlock()
	}
	c.mu.Lock()
	s := c.defaultSb
	c.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// driver returns the driver for networkType, discovering a plugin if no
// driver of that name is registered yet.
func (c *Controller) driver(networkType string) (*driverEntry, error) {
	return c.drv.driver(networkType)
}

// ipamDriver returns the IPAM driver called name ("" is the default),
// discovering a plugin if none of that name is registered yet.
func (c *Controller) ipamDriver(name string) (*ipamEntry, error) {
	return c.drv.ipam(name)
}

// generateID returns 64 random hex characters, like Docker's IDs.
func generateID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err)) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// driverScope is the data scope of a network's driver.
func (e *driverEntry) scope() string {
	if e.capability.DataScope == "" {
		return driverapi.LocalScope
	}
	return e.capability.DataScope
}
