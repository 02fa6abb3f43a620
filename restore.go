package libnetwork

import (
	"encoding/json"
	"errors"
	"net"
	"sort"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/names"
	"github.com/opencnm/libnetwork/internal/sandboxdns"
	"github.com/opencnm/libnetwork/osl"
	"github.com/opencnm/libnetwork/types"
)

// restore rebuilds the model from the store at New: networks (driver state
// re-created or reconciled in place, IPAM pools and addresses re-reserved),
// endpoints, and the sandboxes named in config.OptionActiveSandboxes (kept
// with their joins; the data plane is not touched). Other sandboxes of the
// previous run are removed with their endpoints, half-done operations are
// finished off, and kernel objects without a record are collected.
func (c *Controller) restore() error {
	var errs []error
	nets, err := c.store.List(kindNetwork)
	if err != nil {
		return err
	}
	var nrecs []networkRecord
	for id, raw := range nets {
		var r networkRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			errs = append(errs, types.InternalErrorf("decoding network record %s: %w", id, err))
			continue
		}
		nrecs = append(nrecs, r)
	}
	sort.Slice(nrecs, func(i, j int) bool { return nrecs[i].Created.Before(nrecs[j].Created) })
	for _, r := range nrecs {
		if r.State == stateCreating {
			// Never finished: drop it; GC removes what the driver made and
			// tagged, the driver (if it can) what it made before tagging.
			err := errors.Join(c.abandonNetwork(r), c.commit(recDelete(kindNetwork, r.ID)))
			c.logRestore("abandoned a network whose create never finished", err, "network", r.ID, "name", r.Name)
			errs = append(errs, err)
			continue
		}
		if err := c.restoreNetwork(r); err != nil {
			c.logRestore("network not restored", err, "network", r.ID, "name", r.Name)
			errs = append(errs, types.Wrapf(err, "restoring network %s", r.Name))
		}
	}

	eps, err := c.store.List(kindEndpoint)
	if err != nil {
		return err
	}
	// MACs of joins a crash interrupted, by sandbox: the interface the
	// driver may have made in a kept sandbox is found by it and removed.
	// Leaves a crash interrupted are finished in their kept sandbox.
	halfJoins := map[string][]string{}
	unsettled := map[string]string{} // endpoint ID -> network ID, records still joining
	leaving := map[string]bool{}
	for id, raw := range eps {
		var r endpointRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			errs = append(errs, types.InternalErrorf("decoding endpoint record %s: %w", id, err))
			continue
		}
		if r.State == stateJoining && r.SandboxID != "" && r.MacAddress != "" {
			halfJoins[r.SandboxID] = append(halfJoins[r.SandboxID], r.MacAddress)
		}
		if r.State == stateLeaving {
			leaving[r.ID] = true
		}
		if err := c.restoreEndpoint(r); err != nil {
			c.logRestore("endpoint not restored", err, "endpoint", r.ID, "network", r.NetworkID)
			errs = append(errs, types.Wrapf(err, "restoring endpoint %s", r.Name))
		} else if r.State != stateReady && r.State != stateLeaving {
			unsettled[r.ID] = r.NetworkID
		}
	}

	sbs, err := c.store.List(kindSandbox)
	if err != nil {
		return err
	}
	var publishLater []*Sandbox
	for id, raw := range sbs {
		var r sandboxRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			errs = append(errs, types.InternalErrorf("decoding sandbox record %s: %w", id, err))
			continue
		}
		opts, active := c.cfg.ActiveSandboxes[r.ID]
		if active {
			if later, kept, err := c.restoreSandbox(r, opts, halfJoins[r.ID], leaving); err == nil {
				if later != nil {
					publishLater = append(publishLater, later)
				}
				if kept != nil {
					c.logRestore("sandbox restored with errors", kept, "sandbox", r.ID, "container", r.ContainerID)
					errs = append(errs, types.Wrapf(kept, "restoring sandbox of container %s (kept)", r.ContainerID))
				}
				continue
			} else {
				c.logRestore("sandbox not restored", err, "sandbox", r.ID, "container", r.ContainerID)
				errs = append(errs, types.Wrapf(err, "restoring sandbox of container %s", r.ContainerID))
			}
		}
		err := c.removeStaleSandbox(r)
		c.logRestore("removed a sandbox not restored", err, "sandbox", r.ID, "container", r.ContainerID)
		errs = append(errs, err)
	}
	errs = append(errs, c.settleHalfJoins(unsettled))
	// Gateways publishing anew go last: every host port a record claims
	// is held again by now, so none is chosen twice. A port that cannot
	// be published fails like at a join, but the sandbox stays.
	for _, sb := range publishLater {
		c.mu.Lock()
		gw := sb.gwEP
		c.mu.Unlock()
		sb.opMu.Lock()
		if err := sb.publishGateway(gw, nil); err != nil {
			c.logRestore("gateway ports not published again", err, "sandbox", sb.id, "endpoint", gw.id)
			errs = append(errs, types.Wrapf(err, "restoring sandbox of container %s", sb.containerID))
		}
		sb.opMu.Unlock()
	}
	// Endpoints still claiming a sandbox that did not come back were
	// attached to a container that is gone: delete them, as upstream does.
	for _, n := range c.Networks() {
		for _, ep := range n.Endpoints() {
			c.mu.Lock()
			sbID := ep.sandboxID
			_, live := c.sandboxes[sbID]
			c.mu.Unlock()
			if sbID != "" && !live {
				c.mu.Lock()
				ep.sandboxID, ep.join, ep.operPorts = "", nil, nil
				c.mu.Unlock()
				err := ep.Delete(true)
				c.logRestore("deleted an endpoint whose sandbox did not come back", err, "endpoint", ep.id, "network", n.id, "sandbox", sbID)
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, c.collectGarbage())
	err = errors.Join(errs...)
	c.cfg.Logger.Info("restore finished", "networks", len(nets), "endpoints", len(eps), "sandboxes", len(sbs), "err", err)
	return err
}

// logRestore reports one repair restore made (at Info) or one it could
// not make (at Warn, with the error), with the objects' ids as attrs.
func (c *Controller) logRestore(what string, err error, attrs ...any) {
	if err != nil {
		c.cfg.Logger.Warn("restore: "+what, append(attrs, "err", err)...)
		return
	}
	c.cfg.Logger.Info("restore: "+what, attrs...)
}

func (c *Controller) restoreNetwork(r networkRecord) error {
	// A record of an older version may hold an ID that is no longer
	// valid: it is not restored, so GC takes its bridge and rules.
	if err := names.ID(r.ID); err != nil {
		return types.Wrapf(err, "invalid network id")
	}
	gen, err := decodeGeneric(r.Generic)
	if err != nil {
		return types.InternalErrorf("decoding options: %w", err)
	}
	n := &Network{
		ctrl: c, id: r.ID, name: r.Name, networkType: r.Type, created: r.Created,
		ipamType: r.IpamType, addrSpace: r.AddrSpace, ipamOptions: r.IpamOptions,
		ipamV4Config: r.IpamV4Config, ipamV6Config: r.IpamV6Config, generic: gen,
		enableIPv6: r.EnableIPv6, disableIPv4: r.NoIPv4, internal: r.Internal, labels: r.Labels, persist: true,
		endpoints: map[string]*Endpoint{}, epNames: map[string]string{},
	}
	// A driver that cannot be found (a plugin not running) does not cost
	// the network: it stays, with a stand-in that finds the driver later,
	// and the restore reports it.
	var absent error
	if n.driver, err = c.driver(r.Type); err != nil {
		absent = types.NoServiceErrorf("network %s kept without its driver %s, used again once the driver is back: %v", r.Name, r.Type, err)
		scope := r.Scope
		if scope == "" {
			scope = driverapi.LocalScope
		}
		n.driver = &driverEntry{d: &absentDriver{c: c, n: n, typ: r.Type},
			cap: driverapi.Capability{DataScope: scope, ConnectivityScope: scope}}
	}
	n.scope = n.driver.scope()
	var undo undoStack
	ok := false
	defer func() {
		if !ok {
			undo.run()
		}
	}()
	if !n.special() {
		if n.ipam, err = c.ipamDriver(n.ipamType); err != nil {
			// As for the driver: the network stays, its records trusted.
			absent = errors.Join(absent, types.NoServiceErrorf("network %s kept without its IPAM driver %s, used again once it is back: %v", r.Name, r.IpamType, err))
			n.ipam = &ipamEntry{ipam: &absentIPAM{c: c, name: n.ipamType, net: n.name}}
		}
		if n.ipamV4Info, err = n.replayPools(r.IpamV4Info, false, &undo); err != nil {
			return err
		}
		if n.ipamV6Info, err = n.replayPools(r.IpamV6Info, true, &undo); err != nil {
			return err
		}
	}
	// A driver keeping its own state still has the network (upstream
	// re-creates only networks of built-in drivers): the record is trusted.
	if !keepsState(n.driver.d) {
		req := driverapi.CreateNetworkRequest{NetworkID: n.id, Options: n.driverOptions(),
			IPv4Data: ipamData(n.ipamV4Info), IPv6Data: ipamData(n.ipamV6Info)}
		if err := n.driver.d.CreateNetwork(req); err != nil {
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

func (c *Controller) restoreEndpoint(r endpointRecord) error {
	if err := names.ID(r.ID); err != nil {
		return types.Wrapf(err, "invalid endpoint id")
	}
	c.mu.Lock()
	n := c.networks[r.NetworkID]
	c.mu.Unlock()
	if n == nil {
		// Its network did not come back: nothing can use it any more.
		return c.commit(recDelete(kindEndpoint, r.ID))
	}
	gen, err := decodeGeneric(r.Generic)
	if err != nil {
		return types.InternalErrorf("decoding options: %w", err)
	}
	if gen == nil {
		gen = map[string]any{}
	}
	ep := &Endpoint{network: n, id: r.ID, name: r.Name, generic: gen, exposedPorts: r.ExposedPorts,
		portMapping: r.PortMapping, myAliases: r.MyAliases, disableResolution: r.DisableResolution,
		operPorts: r.OperPorts}
	if r.MacAddress != "" {
		if ep.iface.mac, err = net.ParseMAC(r.MacAddress); err != nil {
			return types.InternalErrorf("decoding MAC: %w", err)
		}
	}
	for _, s := range r.LinkLocal {
		ll, err := types.ParseCIDR(s)
		if err != nil {
			return types.InternalErrorf("decoding link-local address: %w", err)
		}
		ep.iface.llAddrs = append(ep.iface.llAddrs, ll)
	}
	var undo undoStack
	ok := false
	defer func() {
		if !ok {
			undo.run()
		}
	}()
	for _, a := range []struct {
		s    string
		pool string
		dst  **net.IPNet
	}{{r.Address, r.V4PoolID, &ep.iface.addr}, {r.AddressV6, r.V6PoolID, &ep.iface.addrv6}} {
		if a.s == "" {
			continue
		}
		ipn, err := types.ParseCIDR(a.s)
		if err != nil {
			return err
		}
		pool := n.poolIDFor(ipn.IP, a.pool)
		// As for pools: only a driver asking for replay is asked again.
		if n.ipamReplays() {
			if err := n.requestExact(pool, ipToAddr(ipn.IP), ep.macOption(nil)); err != nil {
				return types.Wrapf(err, "re-reserving address %s", a.s)
			}
			undo.push(func() { _ = n.ipam.ipam.ReleaseAddress(pool, ipToAddr(ipn.IP)) })
		}
		*a.dst = ipn
		if a.dst == &ep.iface.addr {
			ep.iface.v4PoolID = pool
		} else {
			ep.iface.v6PoolID = pool
		}
	}
	// As for networks: a driver keeping state still has the endpoint, and
	// the record holds what it chose (the MAC) at create.
	if !keepsState(n.driver.d) {
		req := driverapi.CreateEndpointRequest{NetworkID: n.id, EndpointID: ep.id, Options: ep.generic,
			Interface: driverapi.Interface{MacAddress: ep.iface.mac, Address: ep.iface.addr, AddressIPv6: ep.iface.addrv6}}
		got, err := n.driver.d.CreateEndpoint(req)
		if err != nil {
			return types.Wrapf(err, "re-creating endpoint in driver %s", n.networkType)
		}
		undo.push(func() { _ = n.driver.d.DeleteEndpoint(n.id, ep.id) })
		if err := ep.mergeDriverInterface(got); err != nil {
			return err
		}
	}
	joined := r.State == stateReady || r.State == stateLeaving
	if joined && r.SandboxID != "" && r.Join != nil {
		// A leave under way is finished by its sandbox's restore (or goes
		// with the sandbox), so its intent record stays until then.
		ep.sandboxID = r.SandboxID
		ep.join = joinFromRecord(r.Join)
	}
	c.mu.Lock()
	n.endpoints[ep.id] = ep
	n.epNames[ep.name] = ep.id
	c.mu.Unlock()
	ok = true
	// A join under way (not joined) is undone: its sandbox's restore
	// removes the interface the driver may have made there, found by the
	// MAC the joining record keeps, and GC the rest. The record is
	// settled only after that (settleHalfJoins), so a second crash in
	// between still knows what to look for.
	return nil
}

// settleHalfJoins records as plain (not joining) the endpoints whose join
// a crash interrupted, once their sandboxes were restored or removed.
func (c *Controller) settleHalfJoins(ids map[string]string) error {
	var errs []error
	for epID, nID := range ids {
		c.mu.Lock()
		var ep *Endpoint
		if n := c.networks[nID]; n != nil {
			ep = n.endpoints[epID]
		}
		c.mu.Unlock()
		if ep != nil {
			errs = append(errs, c.commit(c.recEndpoint(ep, stateReady)))
		}
	}
	return errors.Join(errs...)
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

func joinFromRecord(r *joinRecord) *joinState {
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

// restoreSandbox takes back a sandbox of the previous run with its joins,
// without touching its data plane. A join whose interface is gone or down
// (a crash during Leave), or whose endpoint is in leaving (a leave that
// moved the gateway), is finished off as left; interfaces of joins or
// leaves a crash interrupted (halfJoinMACs: the MACs of endpoints recorded
// as joining it) are removed; the default route and published ports are
// put back on the gateway endpoint (when it must publish anew, the sandbox
// is returned to the caller to do it with publishGateway once every
// sandbox is back). On error the sandbox is not registered and its
// namespace handles are released; the caller removes what is left.
//
// Errors that leave the sandbox usable (a port that cannot be published
// again, a default route or DNS file that cannot be repaired) are returned
// in kept: the container is running, and losing its network over one of
// them would be worse than the error, which RestoreError reports.
func (c *Controller) restoreSandbox(r sandboxRecord, opts any, halfJoinMACs []string, leaving map[string]bool) (publishLater *Sandbox, kept, retErr error) {
	if err := names.ID(r.ID); err != nil {
		return nil, nil, types.Wrapf(err, "invalid sandbox id")
	}
	sbOpts, _ := opts.([]SandboxOption)
	sb := &Sandbox{ctrl: c, id: r.ID, containerID: r.ContainerID, key: r.Key,
		prio: map[string]int{}, aliases: map[string]map[string]string{}}
	sb.cfg.apply(sbOpts)
	if sb.cfg.optErr != nil {
		return nil, nil, sb.cfg.optErr
	}
	sb.cfg.useDefaultSandbox, sb.cfg.useExternalKey = r.DefaultSandbox, r.ExternalKey
	var osSbox *osl.Sandbox
	var err error
	switch {
	case r.DefaultSandbox:
		osSbox, err = c.acquireDefaultSandbox(r.Key)
	case r.ExternalKey && !r.KeySet:
	default:
		osSbox, err = osl.Open(r.Key)
	}
	if err != nil {
		return nil, nil, types.Wrapf(err, "re-opening namespace %s", r.Key)
	}
	c.mu.Lock()
	sb.osSbox = osSbox
	var eps []*Endpoint
	for _, id := range r.Endpoints {
		for _, n := range c.networks {
			if ep := n.endpoints[id]; ep != nil && ep.sandboxID == sb.id && ep.join != nil {
				eps = append(eps, ep)
				sb.prio[ep.id] = r.Priorities[ep.id]
			}
		}
	}
	sb.endpoints = eps
	sb.sortEndpointsLocked()
	c.sandboxes[sb.id] = sb
	c.mu.Unlock()
	defer func() {
		if retErr != nil {
			c.mu.Lock()
			delete(c.sandboxes, sb.id)
			sb.osSbox = nil
			c.mu.Unlock()
			if osSbox != nil {
				_ = sb.releaseOS(osSbox)
			}
		}
	}()

	sb.opMu.Lock()
	defer sb.opMu.Unlock()
	var errs []error
	var left []*Endpoint
	for _, ep := range eps {
		if leaving[ep.id] {
			left = append(left, ep)
		} else if err := sb.restoreJoin(osSbox, ep); types.IsNotFound(err) {
			left = append(left, ep)
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	if len(left) > 0 {
		errs = append(errs, sb.finishLeaves(osSbox, left))
	}
	if osSbox != nil {
		errs = append(errs, sb.removeLeftoverIfaces(osSbox, halfJoinMACs))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	var soft []error
	later, err := sb.restoreGateway(osSbox)
	soft = append(soft, err)
	if err := sb.dns.Setup(sb.dnsConfig()); err != nil {
		soft = append(soft, err)
	}
	// The previous run's redirect is still in the namespace: the resolver
	// binds its ports again instead of replacing it.
	if err := sb.dns.AdoptRedirect(sandboxdns.OS(osSbox)); err != nil {
		soft = append(soft, err)
	}
	for _, ep := range sb.Endpoints() {
		soft = append(soft, sb.joinDNS(ep))
	}
	kept = errors.Join(soft...)
	if later {
		return sb, kept, nil
	}
	return nil, kept, nil
}
