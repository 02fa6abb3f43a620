package libnetwork

import (
	"errors"
	"net"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/internal/sandboxdns"
	"github.com/opencnm/libnetwork/internal/undo"
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
	c := ep.network.ctrl
	if c.mirror != nil && c.mirror.conflicted(ep.id) {
		// Up again, it would answer for a name or address another host holds.
		return types.ForbiddenErrorf("joining endpoint %s: it is kept down because its claim was taken while this host's lease was gone (Controller.Conflicts); delete it", ep.name)
	}
	sb.opMu.Lock()
	defer sb.opMu.Unlock()

	j := &joining{ep: ep, sb: sb, opts: scratch}
	if err := j.claim(); err != nil {
		return err
	}
	// The resolver's sockets and rules get ready while the driver works.
	if ep.network.servesNames() && !ep.disableResolution {
		sb.dns.Prepare(sandboxdns.OS(j.s))
	}
	defer sb.dns.DropPrepared()

	c.gcMu.RLock()
	defer c.gcMu.RUnlock()
	ok := false
	defer j.undo.Unless(&ok)
	j.undo.PushFunc(func() {
		c.mu.Lock()
		ep.sandboxID = ""
		c.mu.Unlock()
	})
	for _, step := range []func() error{j.wire, j.attach, j.publish} {
		if err := step(); err != nil {
			return err
		}
	}
	ok = true
	if ep.network.global {
		ep.publishPeer()
	}
	return nil
}

// joining is one Endpoint.Join under way, under sb.opMu: each step pushes
// on undo what takes it back, and Join runs undo if a later step fails.
type joining struct {
	ep   *Endpoint
	sb   *Sandbox
	opts *Endpoint    // this join's options (priority, aliases)
	s    *osl.Sandbox // the sandbox's namespace; nil for an external key not set yet
	undo undo.Stack
}

// claim marks ep as joined to sb, so no other join or delete takes either;
// Join's undo clears the mark.
func (j *joining) claim() error {
	ep, sb, c := j.ep, j.sb, j.sb.ctrl
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case sb.deleting || c.sandboxes[sb.id] != sb:
		return types.ForbiddenErrorf("sandbox %s is deleted", sb.id[:12])
	case ep.deleting || ep.network.endpoints[ep.id] != ep:
		return ErrNoSuchEndpoint(ep.name)
	case ep.sandboxID != "":
		return types.ForbiddenErrorf("endpoint %s is already joined to sandbox %s", ep.name, ep.sandboxID[:12])
	}
	ep.sandboxID = sb.id
	j.s = sb.osSbox
	return nil
}

// wire records the intent, has the driver join ep and puts its interface,
// addresses and routes into the namespace.
func (j *joining) wire() error {
	ep, sb, s, n, c := j.ep, j.sb, j.s, j.ep.network, j.sb.ctrl
	// Intent: a crash while the driver wires the endpoint in leaves a record
	// that says so, and the next start takes the half-made join apart.
	if err := c.commit(c.recEndpoint(ep, records.Joining)); err != nil {
		return err
	}
	j.undo.PushFunc(func() { _ = c.commit(c.recEndpoint(ep, records.Ready)) })

	js, reserved, err := sb.driverJoin(s, ep)
	if err != nil {
		return err
	}
	j.undo.PushFunc(func() {
		for _, name := range reserved {
			s.ReleaseName(name)
		}
	})
	j.undo.PushFunc(func() { _ = n.driver.Leave(n.id, ep.id) })
	c.mu.Lock()
	ep.join = js
	c.mu.Unlock()
	j.undo.PushFunc(func() {
		c.mu.Lock()
		ep.join, ep.operPorts = nil, nil
		c.mu.Unlock()
	})
	if s != nil {
		if err := sb.populate(s, ep); err != nil {
			return err
		}
		j.undo.PushFunc(func() { _ = sb.depopulate(s, ep, false) })
	}
	return nil
}

// attach adds ep to the sandbox's endpoints in priority order and moves
// the gateway to the endpoint that now should be it.
func (j *joining) attach() error {
	ep, sb, c := j.ep, j.sb, j.sb.ctrl
	c.mu.Lock()
	sb.endpoints = append(sb.endpoints, ep)
	sb.prio[ep.id] = j.opts.joinPrio
	if j.opts.joinAliases != nil {
		sb.aliases[ep.id] = j.opts.joinAliases
	}
	sb.sortEndpointsLocked()
	c.mu.Unlock()
	j.undo.PushFunc(func() {
		c.mu.Lock()
		sb.removeEndpointLocked(ep)
		c.mu.Unlock()
		_ = sb.gw.update()
		// A gateway that moved back publishes its chosen ports anew:
		// its record follows, so a restart brings back these.
		_ = c.commit(sb.gw.operPortRecords(nil)...)
	})
	return sb.gw.update()
}

// publish serves ep's names and records the join as done, with the host
// ports the gateway now publishes.
func (j *joining) publish() error {
	ep, sb, c := j.ep, j.sb, j.sb.ctrl
	if err := sb.joinDNS(ep); err != nil {
		return err
	}
	j.undo.PushFunc(func() { sb.leaveDNS(ep) })
	recs := append([]func() (*store.Op, error){c.recEndpoint(ep, records.Ready), c.recSandbox(sb)}, sb.gw.operPortRecords(ep)...)
	return c.commit(recs...)
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
	wasGateway := sb.gw.ep == ep
	sb.removeEndpointLocked(ep)
	movesGateway := wasGateway && sb.gw.chooseLocked() != nil
	deleting := sb.deleting
	c.mu.Unlock()

	var errs []error
	if movesGateway && !nsGoing {
		// Intent: from here on the default route and the published
		// ports move to another endpoint while this one's interface is
		// still up, so a crash would leave a restart unable to tell the
		// join is being undone. Other leaves need none: until their
		// interface is down, rolling them back is consistent.
		if err := c.commit(c.recEndpoint(ep, records.Leaving)); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case wasGateway && deleting:
		sb.gw.release()
	case wasGateway:
		if err := sb.gw.update(); err != nil {
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
	recs := append([]func() (*store.Op, error){c.recEndpoint(ep, records.Ready), c.recSandbox(sb)}, sb.gw.operPortRecords(nil)...)
	if err := c.commit(recs...); err != nil {
		errs = append(errs, err)
	}
	if n.global {
		ep.withdrawPeer()
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
