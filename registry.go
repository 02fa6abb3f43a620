package libnetwork

import (
	"crypto/rand"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"sync"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/drivers/host"
	"github.com/opencnm/libnetwork/drivers/macvlan"
	"github.com/opencnm/libnetwork/drivers/null"
	"github.com/opencnm/libnetwork/ipam"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/plugins"
	"github.com/opencnm/libnetwork/types"
)

type driverEntry struct {
	d       driverapi.Driver
	cap     driverapi.Capability
	builtin bool
}

type ipamEntry struct {
	ipam    ipamapi.Ipam
	builtin bool
	local   string // default local address space
	global  string // default global address space
}

// registry holds a controller's network and IPAM drivers: the built-in ones
// from the start, plugins as they are first asked for.
type registry struct {
	c *Controller

	plugins     *plugins.Registry
	discovering map[string]*nameLock // per-name plugin discovery, which may wait on a socket; guarded by mu

	mu      sync.Mutex
	drivers map[string]*driverEntry // guarded by mu
	ipams   map[string]*ipamEntry   // guarded by mu
}

func newRegistry(c *Controller) (*registry, error) {
	r := &registry{c: c, drivers: map[string]*driverEntry{}, ipams: map[string]*ipamEntry{},
		plugins: plugins.NewRegistry(c.cfg.PluginDirs, c.cfg.PluginTimeout)}
	local := driverapi.Capability{DataScope: driverapi.LocalScope, ConnectivityScope: driverapi.LocalScope}
	r.drivers[null.NetworkType] = &driverEntry{d: null.New(), cap: local, builtin: true}
	r.drivers[host.NetworkType] = &driverEntry{d: host.New(), cap: local, builtin: true}
	br, err := bridge.New(c.host, withLogger(driverConfig(c.cfg, bridge.NetworkType), c.cfg.Logger.With("driver", bridge.NetworkType)))
	if err != nil {
		return nil, types.Wrapf(err, "initialising the bridge driver")
	}
	r.drivers[br.Type()] = &driverEntry{d: br, cap: bridge.Capability(), builtin: true}
	for _, note := range br.Notices() {
		c.cfg.Logger.Info(note, "driver", bridge.NetworkType)
	}
	mv, err := macvlan.New(c.host)
	if err != nil {
		r.close()
		return nil, types.Wrapf(err, "initialising the macvlan driver")
	}
	r.drivers[mv.Type()] = &driverEntry{d: mv, cap: macvlan.Capability(), builtin: true}

	ula, err := c.ulaGlobalID()
	if err != nil {
		r.close()
		return nil, err
	}
	alloc, err := ipam.New(ipam.WithIPv6Default(c.cfg.DefaultAddressPool, ula))
	if err != nil {
		r.close()
		return nil, err
	}
	if err := r.addIPAM(ipamapi.DefaultIPAM, alloc, true); err != nil {
		r.close()
		return nil, err
	}
	if err := r.addIPAM(ipamapi.NullIPAM, ipam.NewNull(), true); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *registry) addIPAM(name string, i ipamapi.Ipam, builtin bool) error {
	local, global, err := i.GetDefaultAddressSpaces()
	if err != nil {
		return types.Wrapf(err, "getting default address spaces of IPAM driver %s", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.ipams[name]; ok && e.builtin {
		return types.ForbiddenErrorf("IPAM driver %q is already registered", name)
	}
	r.ipams[name] = &ipamEntry{ipam: i, builtin: builtin, local: local, global: global}
	return nil
}

// driver returns the driver of networkType, discovering a plugin of that
// name when none is registered.
func (r *registry) driver(networkType string) (*driverEntry, error) {
	r.mu.Lock()
	e, ok := r.drivers[networkType]
	r.mu.Unlock()
	if ok {
		return e, nil
	}
	defer r.lockName("driver/" + networkType)()
	r.mu.Lock()
	e, ok = r.drivers[networkType]
	r.mu.Unlock()
	if ok {
		return e, nil
	}
	e, err := r.discoverDriver(networkType)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.drivers[networkType] = e
	r.mu.Unlock()
	return e, nil
}

// ipam returns the IPAM driver called name ("" means the default).
func (r *registry) ipam(name string) (*ipamEntry, error) {
	if name == "" {
		name = ipamapi.DefaultIPAM
	}
	r.mu.Lock()
	e, ok := r.ipams[name]
	r.mu.Unlock()
	if ok {
		return e, nil
	}
	defer r.lockName("ipam/" + name)()
	r.mu.Lock()
	e, ok = r.ipams[name]
	r.mu.Unlock()
	if ok {
		return e, nil
	}
	i, err := r.discoverIPAM(name)
	if err != nil {
		return nil, err
	}
	if err := r.addIPAM(name, i, false); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ipams[name], nil
}

func (r *registry) builtinDrivers() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for n, e := range r.drivers {
		if e.builtin {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

func (r *registry) builtinIPAMs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for n, e := range r.ipams {
		if e.builtin {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// close releases drivers and plugin connections.
func (r *registry) close() {
	r.plugins.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.drivers {
		if cl, ok := e.d.(driverapi.Closer); ok {
			cl.Close()
		}
	}
}

// RegisterDriver adds an in-process network driver of type name. A name
// held by a built-in driver cannot be taken.
func (c *Controller) RegisterDriver(name string, d driverapi.Driver, capability driverapi.Capability) (err error) {
	defer classify(&err)
	if name == "" || d == nil {
		return types.BadRequestErrorf("registering driver %q: name and driver are required", name)
	}
	r := c.drv
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.drivers[name]; ok && e.builtin {
		return types.ForbiddenErrorf("driver %q is built in and cannot be replaced", name)
	}
	r.drivers[name] = &driverEntry{d: d, cap: capability}
	return nil
}

// RegisterIpamDriver adds an in-process IPAM driver called name.
func (c *Controller) RegisterIpamDriver(name string, i ipamapi.Ipam) (err error) {
	defer classify(&err)
	if name == "" || i == nil {
		return types.BadRequestErrorf("registering IPAM driver %q: name and driver are required", name)
	}
	return c.drv.addIPAM(name, i, false)
}

// allDrivers returns every registered network driver.
func (r *registry) allDrivers() []driverapi.Driver {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []driverapi.Driver
	for _, e := range r.drivers {
		out = append(out, e.d)
	}
	return out
}

// driverConfig is the configuration handed to the built-in driver of
// networkType: its OptionDriverConfig map plus, as upstream, every daemon
// label com.docker.network.driver.<networkType>.<key>=<value> as the entry
// label key -> value, for the driver to read.
func driverConfig(cfg *config.Config, networkType string) map[string]any {
	out := maps.Clone(cfg.DriverCfg[networkType])
	prefix := netlabel.DriverPrefix + "." + networkType + "."
	for _, l := range cfg.Labels {
		k, v := netlabel.KeyValue(l)
		if strings.HasPrefix(k, prefix) {
			if out == nil {
				out = map[string]any{}
			}
			out[k] = v
		}
	}
	return out
}

// kindHost holds records about the controller's host rather than a model
// object; ulaRecordID is the 40-bit global ID of its IPv6 default pool.
const (
	kindHost    = "host"
	ulaRecordID = "ula-global-id"
)

// ulaGlobalID returns the global ID of the host's IPv6 default pool
// (ipam.ULAPool), chosen at random on the first start with this DataDir
// and kept in the store, so that networks made after a restart come from
// the same /48 as before.
func (c *Controller) ulaGlobalID() ([5]byte, error) {
	var id [5]byte
	b, err := c.store.Get(kindHost, ulaRecordID)
	if err == nil && len(b) == len(id) {
		copy(id[:], b)
		return id, nil
	}
	if err != nil && !types.IsNotFound(err) {
		return id, types.Wrapf(err, "reading the IPv6 default pool's global ID")
	}
	if _, err := rand.Read(id[:]); err != nil {
		return id, types.InternalErrorf("choosing the IPv6 default pool's global ID: %w", err)
	}
	if err := c.store.Put(kindHost, ulaRecordID, id[:]); err != nil {
		return id, types.Wrapf(err, "storing the IPv6 default pool's global ID")
	}
	return id, nil
}

// withLogger returns a copy of a driver's configuration map holding l
// under netlabel.Logger (the caller's map is left as it is).
func withLogger(cfg map[string]any, l *slog.Logger) map[string]any {
	out := make(map[string]any, len(cfg)+1)
	for k, v := range cfg {
		out[k] = v
	}
	out[netlabel.Logger] = l
	return out
}
