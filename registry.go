package libnetwork

import (
	"crypto/rand"
	"log/slog"
	"maps"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/drivers/host"
	"github.com/opencnm/libnetwork/drivers/macvlan"
	"github.com/opencnm/libnetwork/drivers/null"
	"github.com/opencnm/libnetwork/drivers/overlay"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/ipam"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/plugins"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// driverEntry is a registered network driver with what it declared.
type driverEntry struct {
	driverapi.Driver
	capability driverapi.Capability // what the driver declared at registration
	builtin    bool                 // registered by New; cannot be replaced
}

// ipamEntry is a registered IPAM driver with its default address spaces,
// asked once at registration.
type ipamEntry struct {
	ipamapi.Ipam
	builtin bool   // registered by New; cannot be replaced
	local   string // default local address space
	global  string // default global address space
}

// registry holds a controller's network and IPAM drivers: the built-in ones
// from the start, plugins as they are first asked for.
type registry struct {
	plugins     *plugins.Registry
	discovering map[string]*nameLock // per-name plugin discovery, which may wait on a socket; guarded by mu

	announce func(name string, e *driverEntry) error // Controller.announceSelf, for plugins found later
	log      *slog.Logger

	mu      sync.Mutex
	drivers map[string]*driverEntry // guarded by mu
	ipams   map[string]*ipamEntry   // guarded by mu
}

func newRegistry(c *Controller) (*registry, error) {
	r := &registry{drivers: map[string]*driverEntry{}, ipams: map[string]*ipamEntry{},
		plugins: plugins.NewRegistry(c.cfg.PluginDirs, c.cfg.PluginTimeout), announce: c.announceSelf, log: c.cfg.Logger}
	if noDrivers, _ := c.cfg.DriverCfg[knobs.Controller][knobs.NoBuiltinDrivers].(bool); !noDrivers {
		if err := r.addBuiltinDrivers(c); err != nil {
			r.close()
			return nil, err
		}
	}

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

// addBuiltinDrivers registers null, host, bridge, macvlan and overlay. The
// bridge and macvlan drivers start in c.host (netlink, firewall), which
// needs root; the overlay's data planes live under ExecRoot/overlay.
func (r *registry) addBuiltinDrivers(c *Controller) error {
	r.drivers[null.NetworkType] = &driverEntry{Driver: null.New(), capability: null.Capability(), builtin: true}
	r.drivers[host.NetworkType] = &driverEntry{Driver: host.New(), capability: host.Capability(), builtin: true}
	br, err := bridge.New(c.host, withLogger(driverConfig(c.cfg, bridge.NetworkType), c.cfg.Logger.With("driver", bridge.NetworkType)))
	if err != nil {
		return types.Wrapf(err, "initialising the bridge driver")
	}
	r.drivers[br.Type()] = &driverEntry{Driver: br, capability: bridge.Capability(), builtin: true}
	mv, err := macvlan.New(c.host)
	if err != nil {
		return types.Wrapf(err, "initialising the macvlan driver")
	}
	r.drivers[mv.Type()] = &driverEntry{Driver: mv, capability: macvlan.Capability(), builtin: true}
	ov, err := overlay.New(c.host, filepath.Join(c.cfg.ExecRoot, "overlay"),
		withLogger(driverConfig(c.cfg, overlay.NetworkType), c.cfg.Logger.With("driver", overlay.NetworkType)))
	if err != nil {
		return types.Wrapf(err, "initialising the overlay driver")
	}
	r.drivers[ov.Type()] = &driverEntry{Driver: ov, capability: overlay.Capability(), builtin: true}
	for _, note := range br.Notices() {
		c.cfg.Logger.Info(note, "driver", bridge.NetworkType)
	}
	return nil
}

// newIPAMEntry asks i for its default address spaces.
func newIPAMEntry(name string, i ipamapi.Ipam, builtin bool) (*ipamEntry, error) {
	local, global, err := i.GetDefaultAddressSpaces()
	if err != nil {
		return nil, types.Wrapf(err, "getting default address spaces of IPAM driver %s", name)
	}
	return &ipamEntry{Ipam: i, builtin: builtin, local: local, global: global}, nil
}

func (r *registry) addIPAM(name string, i ipamapi.Ipam, builtin bool) error {
	e, err := newIPAMEntry(name, i, builtin)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.ipams[name]; ok && old.builtin {
		return types.ForbiddenErrorf("IPAM driver %q is already registered", name)
	}
	r.ipams[name] = e
	return nil
}

// lookup returns entries[name], or discovers a plugin of that name and
// adds it. Concurrent first users of a name share one discovery (the
// second finds the entry the first added); a slow plugin holds up no other
// name. kind ("driver", "ipam") keeps the two name spaces apart.
func lookup[E any](r *registry, kind string, entries map[string]*E, name string, discover func(name string) (*E, error)) (*E, error) {
	get := func() (*E, bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		e, ok := entries[name]
		return e, ok
	}
	if e, ok := get(); ok {
		return e, nil
	}
	defer r.lockName(kind + "/" + name)()
	if e, ok := get(); ok {
		return e, nil
	}
	e, err := discover(name)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	entries[name] = e
	return e, nil
}

// driver returns the driver of networkType, discovering a plugin of that
// name when none is registered.
func (r *registry) driver(networkType string) (*driverEntry, error) {
	return lookup(r, "driver", r.drivers, networkType, r.discoverDriver)
}

// ipam returns the IPAM driver called name ("" means the default).
func (r *registry) ipam(name string) (*ipamEntry, error) {
	if name == "" {
		name = ipamapi.DefaultIPAM
	}
	return lookup(r, "ipam", r.ipams, name, r.discoverIPAM)
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
		if cl, ok := e.Driver.(driverapi.Closer); ok {
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
	e := &driverEntry{Driver: d, capability: capability}
	r.mu.Lock()
	old, ok := r.drivers[name]
	r.mu.Unlock()
	if ok && old.builtin {
		return types.ForbiddenErrorf("driver %q is built in and cannot be replaced", name)
	}
	// Announced before it is inserted: no network is made on a driver
	// that does not know its VTEP yet, and a failed announcement leaves
	// the registry as it was (built-ins are all in place since New).
	if err := c.announceSelf(name, e); err != nil {
		return err
	}
	r.mu.Lock()
	r.drivers[name] = e
	r.mu.Unlock()
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
		out = append(out, e.Driver)
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
	if err := c.store.Apply(store.Op{Kind: kindHost, ID: ulaRecordID, Value: id[:]}); err != nil {
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
