package libnetwork

import (
	"errors"
	"net"
	"slices"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/sandboxdns"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/osl"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// joinState is what a join decided for an endpoint.
type joinState struct {
	gw, gw6   net.IP
	routes    []*types.StaticRoute
	noGwSvc   bool
	srcName   string // host-side link the sandbox moved in ("" if the driver made it inside)
	dstPrefix string
	dstName   string // name inside the sandbox ("" until populated, or when there is no interface)
}

// hasIface reports whether the join gave the sandbox an interface.
func (js *joinState) hasIface() bool { return js.dstName != "" || js.srcName != "" }

// Join attaches the endpoint to sb: the driver wires an interface into the
// sandbox's namespace, which gets the endpoint's addresses and routes; the
// sandbox's default gateway moves to the best endpoint. A second join is
// refused with a Forbidden error; a failed join leaves nothing behind.
func (ep *Endpoint) Join(sb *Sandbox, opts ...EndpointOption) (err error) {
	defer classify(&err)
	if sb == nil || sb.ctrl != ep.network.ctrl {
		return ErrInvalidJoin{}
	}
	// Join options apply to this join only; parse them apart from ep.
	scratch := &Endpoint{generic: map[string]any{}}
	scratch.apply(opts)
	if scratch.optErr != nil {
		return scratch.optErr
	}
	n := ep.network
	c := n.ctrl
	sb.opMu.Lock()
	defer sb.opMu.Unlock()

	c.mu.Lock()
	switch {
	case sb.deleting || c.sandboxes[sb.id] != sb:
		c.mu.Unlock()
		return types.ForbiddenErrorf("sandbox %s is deleted", sb.id[:12])
	case ep.deleting || n.endpoints[ep.id] != ep:
		c.mu.Unlock()
		return ErrNoSuchEndpoint(ep.name)
	case ep.sandboxID != "":
		other := ep.sandboxID
		c.mu.Unlock()
		return types.ForbiddenErrorf("endpoint %s is already joined to sandbox %s", ep.name, other[:12])
	}
	ep.sandboxID = sb.id
	osSbox := sb.osSbox
	c.mu.Unlock()
	// The resolver's sockets and rules get ready while the driver works.
	if ep.network.servesNames() && !ep.disableResolution {
		sb.dns.Prepare(sandboxdns.OS(osSbox))
	}
	defer sb.dns.DropPrepared()

	c.gcMu.RLock()
	defer c.gcMu.RUnlock()
	var undo undo.Stack
	ok := false
	defer func() {
		if !ok {
			undo.Run()
		}
	}()
	undo.PushFunc(func() {
		c.mu.Lock()
		ep.sandboxID = ""
		c.mu.Unlock()
	})

	// Intent: a crash while the driver wires the endpoint in leaves a record
	// that says so, and the next start takes the half-made join apart.
	if err := c.commit(c.recEndpoint(ep, stateJoining)); err != nil {
		return err
	}
	undo.PushFunc(func() { _ = c.commit(c.recEndpoint(ep, stateReady)) })

	js, reserved, err := sb.driverJoin(osSbox, ep)
	if err != nil {
		return err
	}
	undo.PushFunc(func() {
		for _, name := range reserved {
			osSbox.ReleaseName(name)
		}
	})
	undo.PushFunc(func() { _ = n.driver.Leave(n.id, ep.id) })
	c.mu.Lock()
	ep.join = js
	c.mu.Unlock()
	undo.PushFunc(func() {
		c.mu.Lock()
		ep.join, ep.operPorts = nil, nil
		c.mu.Unlock()
	})
	if osSbox != nil {
		if err := sb.populate(osSbox, ep); err != nil {
			return err
		}
		undo.PushFunc(func() { _ = sb.depopulate(osSbox, ep, false) })
	}

	c.mu.Lock()
	sb.endpoints = append(sb.endpoints, ep)
	sb.prio[ep.id] = scratch.joinPrio
	if scratch.joinAliases != nil {
		sb.aliases[ep.id] = scratch.joinAliases
	}
	sb.sortEndpointsLocked()
	c.mu.Unlock()
	undo.PushFunc(func() {
		c.mu.Lock()
		sb.removeEndpointLocked(ep)
		c.mu.Unlock()
		_ = sb.updateGateway()
		// A gateway that moved back publishes its chosen ports anew:
		// its record follows, so a restart brings back these.
		var recs []func() (*store.Op, error)
		for _, e := range sb.recordOperPorts() {
			recs = append(recs, c.recEndpoint(e, stateReady))
		}
		_ = c.commit(recs...)
	})
	if err := sb.updateGateway(); err != nil {
		return err
	}
	if err := sb.joinDNS(ep); err != nil {
		return err
	}
	undo.PushFunc(func() { sb.leaveDNS(ep) })
	recs := []func() (*store.Op, error){c.recEndpoint(ep, stateReady), c.recSandbox(sb)}
	for _, e := range sb.recordOperPorts() {
		if e != ep {
			recs = append(recs, c.recEndpoint(e, stateReady))
		}
	}
	if err := c.commit(recs...); err != nil {
		return err
	}
	ok = true
	return nil
}

// driverJoin has ep's driver join it to the namespace of s (nil: none yet)
// and returns what it decided, with the interface names it reserved in s
// (the caller releases them if it fails later). On error nothing is left.
func (sb *Sandbox) driverJoin(s *osl.Sandbox, ep *Endpoint) (*joinState, []string, error) {
	n := ep.network
	var reserved []string
	req := driverapi.JoinRequest{NetworkID: n.id, EndpointID: ep.id, Options: sb.cfg.labels()}
	if s != nil {
		req.SandboxKey = s.Key()
		req.IfaceName = func(prefix string) string {
			name := s.ReserveName(prefix)
			reserved = append(reserved, name)
			return name
		}
	}
	res, err := n.driver.Join(req)
	if err != nil {
		for _, name := range reserved {
			s.ReleaseName(name)
		}
		return nil, nil, types.Wrapf(err, "joining endpoint %s of network %s to sandbox %s", ep.name, n.name, sb.id[:12])
	}
	js := &joinState{gw: res.Gateway, gw6: res.GatewayIPv6, noGwSvc: res.DisableGatewayService,
		srcName: res.SrcName, dstPrefix: res.DstPrefix, dstName: res.DstName}
	for _, r := range res.StaticRoutes {
		js.routes = append(js.routes, r.GetCopy())
	}
	if n.internal {
		js.gw, js.gw6 = nil, nil // internal networks give no way out
	}
	return js, reserved, nil
}

// populate puts the endpoint's interface into s with its addresses and routes.
func (sb *Sandbox) populate(s *osl.Sandbox, ep *Endpoint) error {
	c := sb.ctrl
	c.mu.Lock()
	js := ep.join
	c.mu.Unlock()
	if js == nil || !js.hasIface() {
		return nil
	}
	dst := js.dstName
	if dst == "" {
		prefix := js.dstPrefix
		if prefix == "" {
			prefix = "eth"
		}
		dst = s.ReserveName(prefix)
	}
	cfg := osl.InterfaceConfig{
		SrcName: js.srcName, HostNS: c.host, DstName: dst, MacAddress: ep.iface.mac,
		Address: ep.iface.addr, AddressIPv6: ep.iface.addrv6, LinkLocal: ep.iface.llAddrs,
	}
	if err := s.AddInterface(c.hostNL, cfg); err != nil {
		if js.srcName == "" {
			// The driver made the link inside; take it out of service now
			// (its name is free at once) and let the driver's Leave delete it.
			_ = s.DetachInterface(dst)
		}
		return types.Wrapf(err, "adding interface of endpoint %s to sandbox %s", ep.name, sb.id[:12])
	}
	c.mu.Lock()
	js.dstName = dst
	c.mu.Unlock()
	for i, r := range js.routes {
		if err := s.AddStaticRoute(r, dst); err != nil {
			for _, done := range js.routes[:i] {
				_ = s.RemoveStaticRoute(done, dst)
			}
			_ = s.RemoveInterface(dst)
			return types.Wrapf(err, "adding route %s of endpoint %s", r.Destination, ep.name)
		}
	}
	return nil
}

// depopulate takes the endpoint's interface out of s; gone already is fine.
// The interface is detached (down, addresses flushed, renamed), not
// deleted: deleting a veth costs the kernel ~25 ms, so the driver deletes
// it off the caller's path. A link moved in from the host goes back to its
// owner. When the namespace is about to go (nsGoing) a link made inside
// is only cut off (addresses and routes removed, osl.CutOff): a container
// still running there keeps the namespace and the link alive, and must
// lose its address the moment its sandbox is deleted, but the link's name
// is never needed again, and setting it down costs Delete 3-5 times over.
func (sb *Sandbox) depopulate(s *osl.Sandbox, ep *Endpoint, nsGoing bool) error {
	c := sb.ctrl
	c.mu.Lock()
	js := ep.join
	c.mu.Unlock()
	if js == nil || js.dstName == "" {
		return nil
	}
	if nsGoing && js.srcName == "" {
		return s.CutOff(js.dstName)
	}
	// Routes through the interface go with it.
	return s.DetachInterface(js.dstName)
}

// Leave detaches the endpoint from sb. Leaving a sandbox the endpoint is not
// joined to is refused with a Forbidden error.
func (ep *Endpoint) Leave(sb *Sandbox, opts ...EndpointOption) (err error) {
	defer classify(&err)
	if sb == nil || sb.ctrl != ep.network.ctrl {
		return ErrInvalidJoin{}
	}
	sb.opMu.Lock()
	defer sb.opMu.Unlock()
	c := sb.ctrl
	c.mu.Lock()
	joined := ep.sandboxID == sb.id
	c.mu.Unlock()
	if !joined {
		return types.ForbiddenErrorf("endpoint %s is not joined to sandbox %s", ep.name, sb.id[:12])
	}
	return sb.leave(ep, false)
}

// leave undoes a join; the caller holds sb.opMu. Every step runs even if an
// earlier one failed, so the endpoint always ends up detached. When the
// sandbox is being deleted with the namespace it made (nsGoing), a gateway
// that moves needs no leave intent (the whole sandbox goes), and the
// interface is cut off rather than detached.
func (sb *Sandbox) leave(ep *Endpoint, nsGoing bool) error {
	c := sb.ctrl
	n := ep.network
	c.mu.Lock()
	if ep.sandboxID != sb.id {
		c.mu.Unlock()
		return nil
	}
	s := sb.osSbox
	wasGateway := sb.gwEP == ep
	sb.removeEndpointLocked(ep)
	movesGateway := wasGateway && sb.gatewayEndpointLocked() != nil
	c.mu.Unlock()

	var errs []error
	if movesGateway && !nsGoing {
		// Intent: from here on the default route and the published
		// ports move to another endpoint while this one's interface is
		// still up, so a crash would leave a restart unable to tell the
		// join is being undone. Other leaves need none: until their
		// interface is down, rolling them back is consistent.
		if err := c.commit(c.recEndpoint(ep, stateLeaving)); err != nil {
			errs = append(errs, err)
		}
	}
	if wasGateway {
		if err := sb.updateGateway(); err != nil {
			errs = append(errs, err)
		}
	}
	sb.leaveDNS(ep)
	if s != nil {
		if err := sb.depopulate(s, ep, nsGoing); err != nil {
			errs = append(errs, err)
		}
	}
	if err := n.driver.Leave(n.id, ep.id); err != nil && !types.IsNotFound(err) {
		errs = append(errs, types.Wrapf(err, "leaving endpoint %s from sandbox %s", ep.name, sb.id[:12]))
	}
	c.mu.Lock()
	ep.sandboxID = ""
	ep.join = nil
	ep.operPorts = nil
	c.mu.Unlock()
	recs := []func() (*store.Op, error){c.recEndpoint(ep, stateReady), c.recSandbox(sb)}
	for _, e := range sb.recordOperPorts() {
		recs = append(recs, c.recEndpoint(e, stateReady))
	}
	if err := c.commit(recs...); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeEndpointLocked drops ep from the sandbox's list. Caller holds ctrl.mu.
func (sb *Sandbox) removeEndpointLocked(ep *Endpoint) {
	for i, e := range sb.endpoints {
		if e == ep {
			sb.endpoints = append(sb.endpoints[:i], sb.endpoints[i+1:]...)
			break
		}
	}
	delete(sb.prio, ep.id)
	delete(sb.aliases, ep.id)
}

// updateGateway moves the default route and external connectivity to the
// endpoint that should now provide them. The caller holds sb.opMu.
func (sb *Sandbox) updateGateway() error { return sb.updateGatewayPorts(nil) }

// updateGatewayPorts is updateGateway publishing exactly the host ports
// oper when given (the gateway endpoint's operational bindings, chosen ones
// included), as a restore does.
func (sb *Sandbox) updateGatewayPorts(oper []types.PortBinding) error {
	c := sb.ctrl
	c.mu.Lock()
	old, next := sb.gwEP, sb.gatewayEndpointLocked()
	s := sb.osSbox
	c.mu.Unlock()
	if old == next {
		return nil
	}
	if old != nil {
		revokeExternal(old)
		if s != nil {
			_ = s.UnsetGateway()
			_ = s.UnsetGatewayIPv6()
		}
	}
	c.mu.Lock()
	sb.gwEP = nil
	c.mu.Unlock()
	if next == nil {
		return nil
	}
	c.mu.Lock()
	gw, gw6 := next.join.gw, next.join.gw6
	c.mu.Unlock()
	if s != nil {
		if gw != nil {
			if err := s.SetGateway(gw); err != nil {
				return types.Wrapf(err, "setting default gateway %s in sandbox %s", gw, sb.id[:12])
			}
		}
		if gw6 != nil {
			if err := s.SetGatewayIPv6(gw6); err != nil {
				_ = s.UnsetGateway()
				return types.Wrapf(err, "setting IPv6 default gateway %s in sandbox %s", gw6, sb.id[:12])
			}
		}
	}
	if ext, ok := next.network.driver.Driver.(driverapi.ExternalConnectivity); ok {
		labels := sb.cfg.labels()
		if len(oper) > 0 {
			labels[netlabel.PortMap] = oper
			labels[netlabel.OperPortMap] = slices.Clone(oper)
		}
		if err := ext.ProgramExternalConnectivity(next.network.id, next.id, labels); err != nil {
			if s != nil {
				_ = s.UnsetGateway()
				_ = s.UnsetGatewayIPv6()
			}
			return types.Wrapf(err, "programming external connectivity of endpoint %s", next.name)
		}
	}
	c.mu.Lock()
	sb.gwEP = next
	c.mu.Unlock()
	return nil
}

func revokeExternal(ep *Endpoint) {
	if ext, ok := ep.network.driver.Driver.(driverapi.ExternalConnectivity); ok {
		_ = ext.RevokeExternalConnectivity(ep.network.id, ep.id)
	}
}

// recordOperPorts remembers, on the sandbox's gateway endpoint, the host
// ports its driver actually published, so a restart can publish the very
// same ones again, and forgets them on the sandbox's other endpoints (a
// port the gateway gave up when it moved on must not come back with an
// endpoint that is no longer the gateway). It returns the endpoints whose
// record must be rewritten. The caller holds sb.opMu.
func (sb *Sandbox) recordOperPorts() []*Endpoint {
	c := sb.ctrl
	c.mu.Lock()
	gw := sb.gwEP
	eps := slices.Clone(sb.endpoints)
	c.mu.Unlock()
	var pbs []types.PortBinding
	known := true
	if gw != nil {
		info, err := gw.network.driver.EndpointOperInfo(gw.network.id, gw.id)
		pbs, _ = info[netlabel.PortMap].([]types.PortBinding)
		known = err == nil // else the gateway keeps what it had
	}
	var changed []*Endpoint
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ep := range eps {
		want := pbs
		switch {
		case ep != gw:
			want = nil
		case !known:
			continue
		}
		if !slices.EqualFunc(ep.operPorts, want, func(a, b types.PortBinding) bool { return a.Equal(&b) }) {
			ep.operPorts = want
			changed = append(changed, ep)
		}
	}
	return changed
}
