package libnetwork

import (
	"errors"
	"maps"
	"net"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/macaddr"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// Endpoint is a network attachment that can join one sandbox at a time.
type Endpoint struct {
	network *Network
	id      string
	name    string

	// Set at creation, read-only afterwards.
	iface              endpointIface
	generic            map[string]any
	exposedPorts       []types.TransportPort
	portMapping        []types.PortBinding
	myAliases          []string
	disableResolution  bool
	prefIPv4, prefIPv6 net.IP
	ipamOptions        map[string]string
	optErr             error

	// Per-call options (JoinOptionPriority, CreateOptionAlias) land here
	// while an option list is applied, under the sandbox's opMu.
	joinPrio    int
	joinAliases map[string]string

	sandboxID string              // guarded by network.ctrl.mu; "" when not joined
	join      *joinState          // guarded by network.ctrl.mu; nil when not joined
	operPorts []types.PortBinding // host ports published for it; guarded by network.ctrl.mu
	deleting  bool                // guarded by network.ctrl.mu
}

type endpointIface struct {
	mac      net.HardwareAddr
	addr     *net.IPNet
	addrv6   *net.IPNet
	llAddrs  []*net.IPNet // CreateOptionIpam's link-local addresses, added at join
	v4PoolID string
	v6PoolID string
}

// CreateEndpoint creates an endpoint called name on the network, with its
// addresses allocated from the network's pools.
func (n *Network) CreateEndpoint(name string, opts ...EndpointOption) (_ *Endpoint, err error) {
	defer classify(&err)
	if !config.IsValidName(name) {
		return nil, ErrInvalidName(name)
	}
	c := n.ctrl
	ep := &Endpoint{network: n, id: generateID(), name: name, generic: map[string]any{}}
	ep.apply(opts)
	if ep.optErr != nil {
		return nil, ep.optErr
	}
	if v, ok := ep.generic[netlabel.MacAddress]; ok {
		mac, ok := v.(net.HardwareAddr)
		if !ok || len(mac) != 6 {
			return nil, types.BadRequestErrorf("invalid MAC address option %v for endpoint %s", v, name)
		}
		ep.iface.mac = types.GetMacCopy(mac)
	}

	c.mu.Lock()
	if cur, ok := c.networks[n.id]; !ok || cur != n || n.deleting {
		c.mu.Unlock()
		return nil, ErrNoSuchNetwork(n.name)
	}
	if _, taken := n.epNames[name]; taken {
		c.mu.Unlock()
		return nil, types.ForbiddenErrorf("endpoint with name %s already exists in network %s", name, n.name)
	}
	n.epNames[name] = ep.id
	c.mu.Unlock()

	var undo undo.Stack
	ok := false
	defer undo.Unless(&ok)
	undo.PushFunc(func() {
		c.mu.Lock()
		delete(n.epNames, name)
		c.mu.Unlock()
	})

	if n.global {
		if err := ep.createGlobal(&undo); err != nil {
			return nil, err
		}
	} else if !n.addressLess() {
		// An IPAM driver that keys addresses by MAC gets one made now; the
		// network driver is given the same MAC for the interface.
		if ep.iface.mac == nil && n.ipam.Capabilities().RequiresMACAddress {
			ep.iface.mac = macaddr.Random()
		}
		if err := ep.assignAddresses(&undo); err != nil {
			return nil, err
		}
	}
	req := driverapi.CreateEndpointRequest{
		NetworkID: n.id, EndpointID: ep.id, Options: maps.Clone(ep.generic),
		Interface: driverapi.Interface{MacAddress: types.GetMacCopy(ep.iface.mac),
			Address: types.GetIPNetCopy(ep.iface.addr), AddressIPv6: types.GetIPNetCopy(ep.iface.addrv6)},
	}
	got, err := n.driver.CreateEndpoint(req)
	if err != nil {
		return nil, types.Wrapf(err, "creating endpoint %s on network %s", name, n.name)
	}
	undo.PushFunc(func() { _ = n.driver.DeleteEndpoint(n.id, ep.id) })
	if err := ep.mergeDriverInterface(got); err != nil {
		return nil, err
	}
	if err := c.commit(c.recEndpoint(ep, records.Ready)); err != nil {
		return nil, err
	}

	c.mu.Lock()
	n.endpoints[ep.id] = ep
	c.mu.Unlock()
	ok = true
	return ep, nil
}

// mergeDriverInterface takes the fields a driver chose; a driver may only
// fill what was left empty.
func (ep *Endpoint) mergeDriverInterface(got *driverapi.Interface) error {
	if got == nil {
		return nil
	}
	if got.MacAddress != nil {
		if ep.iface.mac != nil && ep.iface.mac.String() != got.MacAddress.String() {
			return types.ForbiddenErrorf("driver tried to change MAC address of endpoint %s", ep.name)
		}
		ep.iface.mac = types.GetMacCopy(got.MacAddress)
	}
	if got.Address != nil {
		if ep.iface.addr != nil && !types.CompareIPNet(ep.iface.addr, got.Address) {
			return types.ForbiddenErrorf("driver tried to change IPv4 address of endpoint %s", ep.name)
		}
		ep.iface.addr = types.GetIPNetCopy(got.Address)
	}
	if got.AddressIPv6 != nil {
		if ep.iface.addrv6 != nil && !types.CompareIPNet(ep.iface.addrv6, got.AddressIPv6) {
			return types.ForbiddenErrorf("driver tried to change IPv6 address of endpoint %s", ep.name)
		}
		ep.iface.addrv6 = types.GetIPNetCopy(got.AddressIPv6)
	}
	return nil
}

// assignAddresses gets the endpoint's IPv4 (and, on IPv6 networks, IPv6)
// address from the network's pools, trying the next pool only when one is full.
func (ep *Endpoint) assignAddresses(undo *undo.Stack) error {
	n := ep.network
	if n.disableIPv4 {
		if ep.prefIPv4 != nil {
			return types.BadRequestErrorf("creating endpoint %s: IPv4 address %s requested on network %s, which has %s=false", ep.name, ep.prefIPv4, n.name, netlabel.EnableIPv4)
		}
	} else {
		addr, pool, err := ep.requestAddress(n.ipamV4Info, ep.prefIPv4, undo)
		if err != nil {
			return err
		}
		ep.iface.addr, ep.iface.v4PoolID = addr, pool
	}
	if !n.enableIPv6 {
		return nil
	}
	addr, pool, err := ep.requestAddress(n.ipamV6Info, ep.prefIPv6, undo)
	if err != nil {
		return err
	}
	ep.iface.addrv6, ep.iface.v6PoolID = addr, pool
	return nil
}

func (ep *Endpoint) requestAddress(infos []*IpamInfo, prefer net.IP, undo *undo.Stack) (*net.IPNet, string, error) {
	n := ep.network
	want := ipToAddr(prefer)
	opts := ep.macOption(maps.Clone(ep.ipamOptions))
	var lastErr error
	for _, info := range infos {
		if want.IsValid() && !ipNetToPrefix(info.Pool).Contains(want) {
			continue
		}
		got, _, err := n.ipam.RequestAddress(info.PoolID, want, opts)
		if err != nil {
			lastErr = err
			if errors.Is(err, ipamapi.ErrNoAvailableIPs) && !want.IsValid() {
				continue
			}
			return nil, "", types.Wrapf(err, "allocating address for endpoint %s on network %s", ep.name, n.name)
		}
		if !got.IsValid() {
			return nil, "", nil // the pool hands out no addresses (null IPAM)
		}
		pool := info.PoolID
		// The driver's answer is used only as what was asked: the address
		// asked for, or one in the pool. Anything else is given back.
		if p := ipNetToPrefix(info.Pool); (want.IsValid() && got.Addr() != want) || !p.Contains(got.Addr()) {
			_ = n.ipam.ReleaseAddress(pool, got.Addr())
			return nil, "", types.InternalErrorf("allocating address for endpoint %s on network %s: IPAM driver %s answered %s (asked %v in pool %s)",
				ep.name, n.name, n.ipamType, got.Addr(), prefer, p)
		}
		undo.PushFunc(func() { _ = n.ipam.ReleaseAddress(pool, got.Addr()) })
		return prefixToIPNet(got), pool, nil
	}
	if want.IsValid() && lastErr == nil {
		return nil, "", types.BadRequestErrorf("requested address %s for endpoint %s is outside every pool of network %s", want, ep.name, n.name)
	}
	if lastErr == nil {
		return nil, "", nil
	}
	return nil, "", types.Wrapf(lastErr, "no available addresses for endpoint %s on network %s", ep.name, n.name)
}

// macOption adds the endpoint's MAC to opts (made if nil) for an IPAM
// driver whose capabilities ask for it.
func (ep *Endpoint) macOption(opts map[string]string) map[string]string {
	if !ep.network.ipam.Capabilities().RequiresMACAddress || ep.iface.mac == nil {
		return opts
	}
	if opts == nil {
		opts = map[string]string{}
	}
	opts[netlabel.MacAddress] = ep.iface.mac.String()
	return opts
}

func (ep *Endpoint) releaseAddresses() {
	n := ep.network
	if n.ipam == nil {
		return
	}
	if ep.iface.addr != nil && ep.iface.v4PoolID != "" {
		_ = n.ipam.ReleaseAddress(ep.iface.v4PoolID, ipToAddr(ep.iface.addr.IP))
	}
	if ep.iface.addrv6 != nil && ep.iface.v6PoolID != "" {
		_ = n.ipam.ReleaseAddress(ep.iface.v6PoolID, ipToAddr(ep.iface.addrv6.IP))
	}
}

// ID returns the endpoint's ID.
func (ep *Endpoint) ID() string { return ep.id }

// Name returns the endpoint's name.
func (ep *Endpoint) Name() string { return ep.name }

// Network returns the name of the endpoint's network.
func (ep *Endpoint) Network() string { return ep.network.name }

// Delete removes the endpoint and releases its addresses. A joined endpoint
// is refused with ActiveContainerError unless force is set, in which case it
// leaves its sandbox first. Deleting an endpoint already gone succeeds.
func (ep *Endpoint) Delete(force bool) (err error) {
	defer classify(&err)
	n := ep.network
	c := n.ctrl
	c.mu.Lock()
	if cur, ok := n.endpoints[ep.id]; !ok || cur != ep || ep.deleting {
		c.mu.Unlock()
		return nil
	}
	sbID := ep.sandboxID
	c.mu.Unlock()
	if sbID != "" {
		if !force {
			return &ActiveContainerError{name: ep.name, id: ep.id}
		}
		if sb, err := c.SandboxByID(sbID); err == nil {
			_ = ep.Leave(sb)
		}
	}

	c.mu.Lock()
	if ep.sandboxID != "" && !force {
		c.mu.Unlock()
		return &ActiveContainerError{name: ep.name, id: ep.id}
	}
	ep.deleting = true
	c.mu.Unlock()

	if err := n.driver.DeleteEndpoint(n.id, ep.id); err != nil && !types.IsNotFound(err) && !force {
		c.mu.Lock()
		ep.deleting = false
		c.mu.Unlock()
		return types.Wrapf(err, "deleting endpoint %s", ep.name)
	}
	ep.releaseAddresses()
	_ = c.commit(recDelete(records.KindEndpoint, ep.id))
	c.mu.Lock()
	delete(n.endpoints, ep.id)
	delete(n.epNames, ep.name)
	c.mu.Unlock()
	if n.global {
		ep.deleteGlobal()
	}
	return nil
}

// DriverInfo returns the driver's operational data for the endpoint: for
// the bridge, netlabel.MacAddress, netlabel.PortMap and netlabel.ExposedPorts.
func (ep *Endpoint) DriverInfo() (_ map[string]any, err error) {
	defer classify(&err)
	n := ep.network
	info, err := n.driver.EndpointOperInfo(n.id, ep.id)
	if err != nil {
		return nil, types.Wrapf(err, "getting driver info of endpoint %s", ep.name)
	}
	if info == nil {
		info = map[string]any{}
	}
	if _, ok := info[netlabel.MacAddress]; !ok && ep.iface.mac != nil {
		info[netlabel.MacAddress] = types.GetMacCopy(ep.iface.mac)
	}
	return info, nil
}

// InterfaceInfo is an endpoint's interface as allocated.
type InterfaceInfo interface {
	MacAddress() net.HardwareAddr
	Address() *net.IPNet
	AddressIPv6() *net.IPNet
	LinkLocalAddresses() []*net.IPNet
}

// EndpointInfo is a snapshot of an endpoint's state.
type EndpointInfo interface {
	Iface() InterfaceInfo
	Gateway() net.IP
	GatewayIPv6() net.IP
	StaticRoutes() []*types.StaticRoute
	Sandbox() *Sandbox
}

type ifaceSnapshot struct {
	mac          net.HardwareAddr
	addr, addrv6 *net.IPNet
	llAddrs      []*net.IPNet
}

func (i *ifaceSnapshot) MacAddress() net.HardwareAddr { return types.GetMacCopy(i.mac) }
func (i *ifaceSnapshot) Address() *net.IPNet          { return types.GetIPNetCopy(i.addr) }
func (i *ifaceSnapshot) AddressIPv6() *net.IPNet      { return types.GetIPNetCopy(i.addrv6) }
func (i *ifaceSnapshot) LinkLocalAddresses() []*net.IPNet {
	var out []*net.IPNet
	for _, a := range i.llAddrs {
		out = append(out, types.GetIPNetCopy(a))
	}
	return out
}

type epInfoSnapshot struct {
	iface   *ifaceSnapshot
	gw, gw6 net.IP
	routes  []*types.StaticRoute
	sandbox *Sandbox
}

func (s *epInfoSnapshot) Iface() InterfaceInfo { return s.iface }
func (s *epInfoSnapshot) Gateway() net.IP      { return types.GetIPCopy(s.gw) }
func (s *epInfoSnapshot) GatewayIPv6() net.IP  { return types.GetIPCopy(s.gw6) }
func (s *epInfoSnapshot) Sandbox() *Sandbox    { return s.sandbox }
func (s *epInfoSnapshot) StaticRoutes() []*types.StaticRoute {
	out := make([]*types.StaticRoute, 0, len(s.routes))
	for _, r := range s.routes {
		out = append(out, r.GetCopy())
	}
	return out
}

// Info returns a snapshot of the endpoint: addresses always, gateway and
// sandbox once joined.
func (ep *Endpoint) Info() EndpointInfo {
	c := ep.network.ctrl
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &epInfoSnapshot{iface: &ifaceSnapshot{mac: ep.iface.mac, addr: ep.iface.addr, addrv6: ep.iface.addrv6,
		llAddrs: ep.iface.llAddrs}}
	if ep.join != nil {
		s.gw, s.gw6, s.routes = ep.join.gw, ep.join.gw6, ep.join.routes
		s.sandbox = c.sandboxes[ep.sandboxID]
	}
	return s
}
