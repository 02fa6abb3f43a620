package libnetwork

import (
	"errors"
	"net"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/types"
)

// restoreNetwork brings network r back with driver e, or, when the driver
// was not found (absent says why), with a stand-in that finds it later:
// a plugin not running does not cost the network. The network is
// registered whenever the returned error is only one of absence
// (NoService), which the restore reports.
func (c *Controller) restoreNetwork(r records.Network, e *driverEntry, absent error) error {
	n, err := networkFromRecord(c, r)
	if err != nil {
		return err
	}
	if absent != nil {
		absent = types.NoServiceErrorf("network %s kept without its driver %s, used again once the driver is back: %v", r.Name, r.Type, absent)
		e = standInDriver(c, n, r.Scope)
	}
	n.driver = e
	n.scope = n.driver.scope()
	n.clusterIDs = r.ClusterIDs
	n.global = n.scope == driverapi.GlobalScope && c.cl != nil
	var undo undo.Stack
	ok := false
	defer undo.Unless(&ok)
	if !n.addressLess() {
		ipamAbsent, err := n.restoreIPAM(r, &undo)
		if err != nil {
			return err
		}
		absent = errors.Join(absent, ipamAbsent)
	}
	// A driver keeping its own state still has the network (upstream
	// re-creates only networks of built-in drivers): the record is trusted.
	if !keepsState(n.driver.Driver) {
		req := driverapi.CreateNetworkRequest{NetworkID: n.id, Options: n.driverOptions(),
			IPv4Data: ipamData(n.ipamV4Info), IPv6Data: ipamData(n.ipamV6Info), ClusterIDs: n.clusterIDs}
		if err := n.driver.CreateNetwork(req); err != nil {
			return types.Wrapf(err, "re-creating network in driver %s", n.networkType)
		}
	}
	c.mu.Lock()
	c.networks[n.id] = n
	c.netNames[n.name] = n.id
	c.mu.Unlock()
	ok = true
	return absent
}

// networkFromRecord is the network r describes, not yet given a driver,
// IPAM or pools.
func networkFromRecord(c *Controller, r records.Network) (*Network, error) {
	gen, err := records.DecodeGeneric(r.Generic)
	if err != nil {
		return nil, types.InternalErrorf("decoding options: %w", err)
	}
	return &Network{
		ctrl: c, id: r.ID, name: r.Name, networkType: r.Type, created: r.Created,
		ipamType: r.IpamType, addrSpace: r.AddrSpace, ipamOptions: r.IpamOptions,
		ipamV4Config: confsFromRecords(r.IpamV4Config), ipamV6Config: confsFromRecords(r.IpamV6Config), generic: gen,
		enableIPv6: r.EnableIPv6, disableIPv4: r.NoIPv4, internal: r.Internal, labels: r.Labels, persist: true,
		endpoints: map[string]*Endpoint{}, epNames: map[string]string{},
	}, nil
}

// standInDriver is the driver entry of network n while its driver is not
// found, with the recorded scope.
func standInDriver(c *Controller, n *Network, scope string) *driverEntry {
	if scope == "" {
		scope = driverapi.LocalScope
	}
	return &driverEntry{Driver: &absentDriver{ctrl: c, net: n, typ: n.networkType},
		capability: driverapi.Capability{DataScope: scope, ConnectivityScope: scope}}
}

// restoreIPAM gives n its IPAM driver and takes its pools back. An IPAM
// driver that is not found is, as for the driver, stood in for: the
// network stays, its records trusted, and absent says so.
func (n *Network) restoreIPAM(r records.Network, undo *undo.Stack) (absent, err error) {
	if n.global && n.ipamType == ipamapi.DefaultIPAM {
		n.ipam = n.ctrl.globalIPAMEntry(n.id)
	} else if n.ipam, err = n.ctrl.ipamDriver(n.ipamType); err != nil {
		absent = types.NoServiceErrorf("network %s kept without its IPAM driver %s, used again once it is back: %v", r.Name, r.IpamType, err)
		n.ipam = &ipamEntry{Ipam: &absentIPAM{ctrl: n.ctrl, name: n.ipamType, net: n.name}}
	}
	if n.ipamV4Info, err = n.replayPools(r.IpamV4Info, false, undo); err != nil {
		return absent, err
	}
	n.ipamV6Info, err = n.replayPools(r.IpamV6Info, true, undo)
	return absent, err
}

// restoreEndpoint brings endpoint r back into its network, joined to its
// recorded sandbox if joined. It returns nil (and deletes the record)
// when the network did not come back: nothing can use the endpoint.
func (c *Controller) restoreEndpoint(r records.Endpoint, joined bool) (*Endpoint, error) {
	c.mu.Lock()
	n := c.networks[r.NetworkID]
	c.mu.Unlock()
	if n == nil {
		return nil, c.commit(recDelete(records.KindEndpoint, r.ID))
	}
	ep, err := endpointFromRecord(n, r)
	if err != nil {
		return nil, err
	}
	var undo undo.Stack
	ok := false
	defer undo.Unless(&ok)
	if err := ep.reserveRecordedAddresses(r, &undo); err != nil {
		return nil, err
	}
	if err := ep.recreateInDriver(&undo); err != nil {
		return nil, err
	}
	if joined {
		ep.sandboxID = r.SandboxID
		ep.join = joinFromRecord(r.Join)
	}
	c.mu.Lock()
	n.endpoints[ep.id] = ep
	n.epNames[ep.name] = ep.id
	c.mu.Unlock()
	ok = true
	return ep, nil
}

// endpointFromRecord is the endpoint r describes, its addresses not yet
// reserved.
func endpointFromRecord(n *Network, r records.Endpoint) (*Endpoint, error) {
	gen, err := records.DecodeGeneric(r.Generic)
	if err != nil {
		return nil, types.InternalErrorf("decoding options: %w", err)
	}
	if gen == nil {
		gen = map[string]any{}
	}
	ep := &Endpoint{network: n, id: r.ID, name: r.Name, generic: gen, exposedPorts: r.ExposedPorts,
		portMapping: r.PortMapping, myAliases: r.MyAliases, disableResolution: r.DisableResolution,
		operPorts: r.OperPorts}
	if r.MacAddress != "" {
		if ep.iface.mac, err = net.ParseMAC(r.MacAddress); err != nil {
			return nil, types.InternalErrorf("decoding MAC: %w", err)
		}
	}
	for _, s := range r.LinkLocal {
		ll, err := types.ParseCIDR(s)
		if err != nil {
			return nil, types.InternalErrorf("decoding link-local address: %w", err)
		}
		ep.iface.llAddrs = append(ep.iface.llAddrs, ll)
	}
	return ep, nil
}

// reserveRecordedAddresses gives ep the addresses of its record, asking
// IPAM for exactly them again when it asks for replay (as for pools).
func (ep *Endpoint) reserveRecordedAddresses(r records.Endpoint, undo *undo.Stack) error {
	n := ep.network
	for _, a := range []struct {
		s    string
		pool string
		dst  **net.IPNet
		id   *string
	}{{r.Address, r.V4PoolID, &ep.iface.addr, &ep.iface.v4PoolID}, {r.AddressV6, r.V6PoolID, &ep.iface.addrv6, &ep.iface.v6PoolID}} {
		if a.s == "" {
			continue
		}
		ipn, err := types.ParseCIDR(a.s)
		if err != nil {
			return err
		}
		pool := n.poolIDFor(ipn.IP, a.pool)
		if n.ipamReplays() {
			if err := n.requestExact(pool, ipToAddr(ipn.IP), ep.macOption(nil)); err != nil {
				return types.Wrapf(err, "re-reserving address %s", a.s)
			}
			undo.PushFunc(func() { _ = n.ipam.ReleaseAddress(pool, ipToAddr(ipn.IP)) })
		}
		*a.dst, *a.id = ipn, pool
	}
	return nil
}

// recreateInDriver gives ep back to its network's driver, unless the
// driver keeps state: it still has the endpoint, and the record holds
// what it chose (the MAC) at create.
func (ep *Endpoint) recreateInDriver(undo *undo.Stack) error {
	n := ep.network
	if keepsState(n.driver.Driver) {
		return nil
	}
	req := driverapi.CreateEndpointRequest{NetworkID: n.id, EndpointID: ep.id, Options: ep.generic,
		Interface: driverapi.Interface{MacAddress: ep.iface.mac, Address: ep.iface.addr, AddressIPv6: ep.iface.addrv6}}
	got, err := n.driver.CreateEndpoint(req)
	if err != nil {
		return types.Wrapf(err, "re-creating endpoint in driver %s", n.networkType)
	}
	undo.PushFunc(func() { _ = n.driver.DeleteEndpoint(n.id, ep.id) })
	return ep.mergeDriverInterface(got)
}

// poolIDFor returns the ID of the network's pool holding ip (the stored
// ID when it is still one of them).
func (n *Network) poolIDFor(ip net.IP, stored string) string {
	var fallback string
	for _, info := range append(append([]*IpamInfo(nil), n.ipamV4Info...), n.ipamV6Info...) {
		if info.PoolID == stored {
			return stored
		}
		if fallback == "" && info.Pool != nil && info.Pool.Contains(ip) {
			fallback = info.PoolID
		}
	}
	return fallback
}

func joinFromRecord(r *records.Join) *joinState {
	js := &joinState{gw: net.ParseIP(r.Gw), gw6: net.ParseIP(r.Gw6), noGwSvc: r.NoGwSvc,
		srcName: r.SrcName, dstPrefix: r.DstPrefix, dstName: r.DstName}
	if v4 := js.gw.To4(); v4 != nil {
		js.gw = v4
	}
	for _, rt := range r.Routes {
		dst, err := types.ParseCIDR(rt.Destination)
		if err != nil {
			continue
		}
		js.routes = append(js.routes, &types.StaticRoute{Destination: dst, RouteType: rt.RouteType, NextHop: net.ParseIP(rt.NextHop)})
	}
	return js
}
