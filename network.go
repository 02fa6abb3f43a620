package libnetwork

import (
	"fmt"
	"maps"
	"net"
	"sort"
	"time"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/names"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

// EndpointWalker is called for each endpoint; returning true stops the walk.
type EndpointWalker func(ep *Endpoint) bool

// IpamConf is a user's request for one pool of a network.
type IpamConf struct {
	PreferredPool string            // CIDR; empty lets IPAM choose
	SubPool       string            // CIDR within PreferredPool to allocate from
	Gateway       string            // bare IP; empty lets IPAM choose
	AuxAddresses  map[string]string // name -> IP reserved for other uses
}

// Validate checks the fields that can be checked without IPAM.
func (c *IpamConf) Validate() error {
	if c.Gateway != "" && net.ParseIP(c.Gateway) == nil {
		return types.BadRequestErrorf("invalid gateway address %s in IPAM configuration", c.Gateway)
	}
	return nil
}

// IpamInfo is one pool a network got.
type IpamInfo struct {
	PoolID string
	Meta   map[string]string
	driverapi.IPAMData
	gwFromIPAM  bool            // the gateway was requested from the pool (release it)
	auxFromIPAM map[string]bool // aux addresses reserved in the pool (release them)
}

// Network is a group of endpoints that can talk to each other, made by one driver.
type Network struct {
	ctrl        *Controller
	id          string
	name        string
	networkType string
	created     time.Time
	scope       string
	driver      *driverEntry
	ipam        *ipamEntry

	// Set by options before creation, read-only afterwards.
	ipamType     string
	addrSpace    string
	ipamOptions  map[string]string
	ipamV4Config []*IpamConf
	ipamV6Config []*IpamConf
	generic      options.Generic
	enableIPv6   bool
	disableIPv4  bool // IPv6-only (netlabel.EnableIPv4 false); the zero value keeps old records IPv4
	internal     bool
	labels       map[string]string
	persist      bool
	optErr       error // first invalid option, reported by NewNetwork

	ipamV4Info []*IpamInfo // set during creation, read-only afterwards
	ipamV6Info []*IpamInfo
	global     bool     // lives in the global store (network_global.go); set during creation
	clusterIDs []uint32 // claimed in the global store for a ClusterIDRequester driver

	endpoints map[string]*Endpoint // by ID; guarded by ctrl.mu
	epNames   map[string]string    // name -> ID incl. endpoints being created; guarded by ctrl.mu
	deleting  bool                 // guarded by ctrl.mu
}

// NewNetwork creates a network of networkType called name. An empty id
// generates one. Names are unique per controller.
func (c *Controller) NewNetwork(networkType, name string, id string, opts ...NetworkOption) (_ *Network, err error) {
	defer classify(&err)
	n, err := buildNetwork(c, networkType, name, id, opts)
	if err != nil {
		return nil, err
	}
	cr := &creatingNetwork{n: n}
	if err := cr.claim(); err != nil {
		return nil, err
	}

	c.gcMu.RLock()
	defer c.gcMu.RUnlock()
	ok := false
	defer cr.undo.Unless(&ok)
	cr.undo.PushFunc(func() {
		c.mu.Lock()
		delete(c.netNames, n.name)
		c.mu.Unlock()
	})
	for _, step := range []func() error{cr.bind, cr.create} {
		if err := step(); err != nil {
			return nil, err
		}
	}

	if n.global {
		c.insertGlobal(n)
	} else {
		c.mu.Lock()
		c.networks[n.id] = n
		c.mu.Unlock()
	}
	ok = true
	return n, nil
}

// buildNetwork is the network NewNetwork is asked for, its options applied
// and checked, before anything is claimed or made.
func buildNetwork(c *Controller, networkType, name, id string, opts []NetworkOption) (*Network, error) {
	if !config.IsValidName(name) {
		return nil, ErrInvalidName(name)
	}
	if id == "" {
		id = generateID()
	} else if err := names.ID(id); err != nil {
		return nil, types.Wrapf(err, "creating network %s: invalid network id", name)
	}
	n := &Network{
		ctrl: c, id: id, name: name, networkType: networkType, created: time.Now(),
		ipamType:  ipamapi.DefaultIPAM,
		generic:   options.Generic{netlabel.GenericData: map[string]string{}},
		persist:   true,
		endpoints: map[string]*Endpoint{},
		epNames:   map[string]string{},
	}
	for _, o := range opts {
		if o != nil {
			o(n)
		}
	}
	if n.optErr != nil {
		return nil, n.optErr
	}
	for _, conf := range append(append([]*IpamConf(nil), n.ipamV4Config...), n.ipamV6Config...) {
		if err := conf.Validate(); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// creatingNetwork is one NewNetwork under way: each step pushes on undo
// what takes it back, and NewNetwork runs undo if a later step fails.
type creatingNetwork struct {
	n    *Network
	undo undo.Stack
}

// claim takes the network's name and ID, so concurrent creations cannot
// both win; NewNetwork's undo frees the name.
func (cr *creatingNetwork) claim() error {
	n, c := cr.n, cr.n.ctrl
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, taken := c.netNames[n.name]; taken {
		return NetworkNameError(n.name)
	}
	if _, taken := c.networks[n.id]; taken {
		return NetworkNameError(n.id)
	}
	c.netNames[n.name] = n.id
	return nil
}

// bind finds the network's driver, has it check the options, and takes
// the network's address pools from its IPAM driver.
func (cr *creatingNetwork) bind() error {
	n, c := cr.n, cr.n.ctrl
	var err error
	if n.driver, err = c.driver(n.networkType); err != nil {
		return err
	}
	n.scope = n.driver.scope()
	if n.disableIPv4 && !n.addressLess() {
		switch {
		case !n.enableIPv6:
			return types.BadRequestErrorf("creating network %s: %s=false needs IPv6 enabled (a network with neither family)", n.name, netlabel.EnableIPv4)
		case len(n.ipamV4Config) > 0:
			return types.BadRequestErrorf("creating network %s: IPv4 pools given with %s=false", n.name, netlabel.EnableIPv4)
		}
	}
	if v, ok := n.driver.Driver.(driverapi.NetworkValidator); ok {
		if err := v.ValidateNetwork(n.id, n.driverOptions()); err != nil {
			return types.Wrapf(err, "creating network %s on driver %s", n.name, n.networkType)
		}
	}
	if n.ipamType == "" || n.ipamType == ipamapi.DefaultIPAM {
		n.ipamType = ipamapi.DefaultIPAM
	}
	if err := n.refuseClusterIDs(); err != nil {
		return err
	}
	if n.global = n.scope == driverapi.GlobalScope && c.cl != nil; n.global {
		return cr.bindGlobal()
	}
	if n.addressLess() {
		return nil
	}
	if n.ipam, err = c.ipamDriver(n.ipamType); err != nil {
		return err
	}
	return n.allocatePools(&cr.undo)
}

// create has the driver make the network, between the intent record and
// the ready one.
func (cr *creatingNetwork) create() error {
	n, c := cr.n, cr.n.ctrl
	// Intent first: a crash from here on leaves a record the next start
	// finishes off (the bridge it may have made is tagged with the ID).
	if err := c.commit(c.recNetwork(n, records.Creating)); err != nil {
		return err
	}
	cr.undo.PushFunc(func() { _ = c.commit(recDelete(records.KindNetwork, n.id)) })

	req := driverapi.CreateNetworkRequest{
		NetworkID:  n.id,
		Options:    n.driverOptions(),
		IPv4Data:   ipamData(n.ipamV4Info),
		IPv6Data:   ipamData(n.ipamV6Info),
		ClusterIDs: n.clusterIDs,
	}
	if err := n.driver.CreateNetwork(req); err != nil {
		return types.Wrapf(err, "creating network %s on driver %s", n.name, n.networkType)
	}
	cr.undo.PushFunc(func() { _ = n.driver.DeleteNetwork(n.id) })
	return c.commit(c.recNetwork(n, records.Ready))
}

// addressLess reports whether the network's driver declares it address-less
// (driverapi.Capability.AddressLess: host, null). Before the driver is
// looked up, and for a driver that is absent at restore, it is false.
func (n *Network) addressLess() bool {
	return n.driver != nil && n.driver.capability.AddressLess
}

// driverOptions is the generic map handed to the driver, with the flags
// drivers read from it.
func (n *Network) driverOptions() map[string]any {
	m := maps.Clone(map[string]any(n.generic))
	m[netlabel.EnableIPv6] = n.enableIPv6
	m[netlabel.EnableIPv4] = !n.disableIPv4
	m[netlabel.Internal] = n.internal
	return m
}

func ipamData(infos []*IpamInfo) []driverapi.IPAMData {
	out := make([]driverapi.IPAMData, 0, len(infos))
	for _, i := range infos {
		out = append(out, i.IPAMData)
	}
	return out
}

// Name returns the network's name.
func (n *Network) Name() string { return n.name }

// ID returns the network's ID.
func (n *Network) ID() string { return n.id }

// Type returns the network's driver type.
func (n *Network) Type() string { return n.networkType }

// Delete removes the network. It fails with ActiveEndpointsError while the
// network has endpoints. Deleting a network already deleted succeeds.
func (n *Network) Delete(opts ...NetworkDeleteOption) (err error) {
	defer classify(&err)
	c := n.ctrl
	c.mu.Lock()
	if cur, ok := c.networks[n.id]; !ok || cur != n {
		c.mu.Unlock()
		return nil
	}
	if n.deleting {
		c.mu.Unlock()
		return types.ForbiddenErrorf("network %s is being deleted", n.name)
	}
	if cnt := len(n.epNames); cnt > 0 {
		e := &ActiveEndpointsError{name: n.name, id: n.id, count: cnt}
		if n.global {
			e.where = n.localEndpointsWhereLocked()
		}
		c.mu.Unlock()
		return e
	}
	n.deleting = true
	c.mu.Unlock()

	if n.global {
		if err := n.deleteGlobal(); err != nil {
			c.mu.Lock()
			n.deleting = false
			c.mu.Unlock()
			return err
		}
	}
	if err := n.driver.DeleteNetwork(n.id); err != nil && !types.IsNotFound(err) {
		if n.global {
			// Gone from the cluster already: this host's copy goes too.
			c.mirror.log.Warn("deleting global network in its driver", "network", n.name, "error", err)
		} else {
			c.mu.Lock()
			n.deleting = false
			c.mu.Unlock()
			return types.Wrapf(err, "deleting network %s", n.name)
		}
	}
	n.releasePools()
	if err := c.commit(recDelete(records.KindNetwork, n.id)); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.networks, n.id)
	if c.netNames[n.name] == n.id {
		delete(c.netNames, n.name)
	}
	c.mu.Unlock()
	return nil
}

// NetworkDeleteOption changes how a network is deleted (none are defined
// for single-host networks; the type keeps upstream's call shape).
type NetworkDeleteOption func(*networkDeleteParams)

type networkDeleteParams struct{}

// Endpoints returns the network's endpoints, sorted by name. On a global
// network these are this host's endpoints only, the ones a caller here can
// join or delete; ClusterEndpoints lists those of every host.
func (n *Network) Endpoints() []*Endpoint {
	n.ctrl.mu.Lock()
	list := make([]*Endpoint, 0, len(n.endpoints))
	for _, ep := range n.endpoints {
		list = append(list, ep)
	}
	n.ctrl.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	return list
}

// WalkEndpoints calls walker for each endpoint until it returns true.
func (n *Network) WalkEndpoints(walker EndpointWalker) {
	for _, ep := range n.Endpoints() {
		if walker(ep) {
			return
		}
	}
}

// EndpointByName returns the endpoint called name.
func (n *Network) EndpointByName(name string) (*Endpoint, error) {
	if name == "" {
		return nil, ErrInvalidName(name)
	}
	n.ctrl.mu.Lock()
	defer n.ctrl.mu.Unlock()
	if ep, ok := n.endpoints[n.epNames[name]]; ok {
		return ep, nil
	}
	return nil, ErrNoSuchEndpoint(name)
}

// EndpointByID returns the endpoint with the given ID.
func (n *Network) EndpointByID(id string) (*Endpoint, error) {
	if id == "" {
		return nil, ErrInvalidID(id)
	}
	n.ctrl.mu.Lock()
	defer n.ctrl.mu.Unlock()
	if ep, ok := n.endpoints[id]; ok {
		return ep, nil
	}
	return nil, ErrNoSuchEndpoint(id)
}

// NetworkInfo is read-only information about a network.
type NetworkInfo interface {
	IpamConfig() (string, map[string]string, []*IpamConf, []*IpamConf)
	IpamInfo() ([]*IpamInfo, []*IpamInfo)
	DriverOptions() map[string]string
	Scope() string
	IPv6Enabled() bool
	Internal() bool
	Labels() map[string]string
	Created() time.Time
}

// Info returns the network's information.
func (n *Network) Info() NetworkInfo { return n }

// IpamConfig returns the IPAM driver, its options and the v4/v6 requests.
func (n *Network) IpamConfig() (string, map[string]string, []*IpamConf, []*IpamConf) {
	return n.ipamType, maps.Clone(n.ipamOptions), copyConfs(n.ipamV4Config), copyConfs(n.ipamV6Config)
}

func copyConfs(in []*IpamConf) []*IpamConf {
	out := make([]*IpamConf, 0, len(in))
	for _, c := range in {
		cc := *c
		cc.AuxAddresses = maps.Clone(c.AuxAddresses)
		out = append(out, &cc)
	}
	return out
}

// IpamInfo returns the pools the network got.
func (n *Network) IpamInfo() ([]*IpamInfo, []*IpamInfo) {
	return copyInfos(n.ipamV4Info), copyInfos(n.ipamV6Info)
}

func copyInfos(in []*IpamInfo) []*IpamInfo {
	out := make([]*IpamInfo, 0, len(in))
	for _, i := range in {
		c := &IpamInfo{PoolID: i.PoolID, Meta: maps.Clone(i.Meta)}
		c.AddressSpace = i.AddressSpace
		c.Pool = types.GetIPNetCopy(i.Pool)
		c.Gateway = types.GetIPNetCopy(i.Gateway)
		if i.AuxAddresses != nil {
			c.AuxAddresses = map[string]*net.IPNet{}
			for k, v := range i.AuxAddresses {
				c.AuxAddresses[k] = types.GetIPNetCopy(v)
			}
		}
		out = append(out, c)
	}
	return out
}

// DriverOptions returns the driver options as strings, whatever form they
// were given in (upstream panics on options.Generic here).
func (n *Network) DriverOptions() map[string]string {
	out := map[string]string{}
	switch opts := n.generic[netlabel.GenericData].(type) {
	case map[string]string:
		maps.Copy(out, opts)
	case options.Generic:
		for k, v := range opts {
			out[k] = fmt.Sprint(v)
		}
	case map[string]any:
		for k, v := range opts {
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

// Scope returns the data scope of the network's driver ("local").
func (n *Network) Scope() string { return n.scope }

// IPv6Enabled reports whether the network has IPv6.
func (n *Network) IPv6Enabled() bool { return n.enableIPv6 }

// IPv4Enabled reports whether the network has IPv4 (false: IPv6-only).
func (n *Network) IPv4Enabled() bool { return !n.disableIPv4 }

// Internal reports whether the network is cut off from the outside.
func (n *Network) Internal() bool { return n.internal }

// Labels returns a copy of the network's labels.
func (n *Network) Labels() map[string]string { return maps.Clone(n.labels) }

// Created returns when the network was created.
func (n *Network) Created() time.Time { return n.created }
