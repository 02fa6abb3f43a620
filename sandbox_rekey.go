package libnetwork

import (
	"errors"
	"slices"

	"github.com/opencnm/libnetwork/internal/sandboxdns"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/osl"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// rekey moves a sandbox whose namespace came from an earlier SetKey into
// the namespace at path, as a runtime that makes a fresh namespace at
// every container start asks on restart. The old namespace may be gone
// but for our handle, or still held by a process; either way the
// endpoints' interfaces cannot follow (a veth made inside a namespace dies
// with it), so each endpoint is re-plumbed: its driver leaves and joins
// again into the new namespace, which gets the same MAC, addresses and
// routes, the default route, the same published host ports and a resolver
// of its own. The interfaces left in the old namespace are detached as at
// any Leave. Every step undoes itself on failure, leaving the sandbox in
// the old namespace as it was. The caller holds sb.opMu and c.gcMu (read).
func (sb *Sandbox) rekey(old *osl.Sandbox, path string, eps []*Endpoint) error {
	c := sb.ctrl
	var undo undo.Stack
	ok := false
	defer func() {
		if !ok {
			undo.Run()
		}
	}()

	c.mu.Lock()
	gw := sb.gwEP
	var oper []types.PortBinding
	if gw != nil {
		oper = slices.Clone(gw.operPorts)
	}
	c.mu.Unlock()
	ipv6 := sb.dns.IPv6()
	var reattachDNS func()
	// Runs last on failure, once the endpoints are back in old.
	undo.PushFunc(func() {
		if reattachDNS != nil {
			reattachDNS()
		}
		_ = sb.updateGatewayPorts(oper)
		_ = sb.updateResolver(nil, ipv6)
	})
	if gw != nil {
		revokeExternal(gw)
		_ = old.UnsetGateway()
		_ = old.UnsetGatewayIPv6()
		c.mu.Lock()
		sb.gwEP = nil
		c.mu.Unlock()
	}
	// The resolver's sockets and redirect are in old; the new namespace
	// gets its own.
	reattachDNS = sb.dns.Detach()

	// Out of old while the key still names it, so that an undo's driver
	// join (which opens the key) finds old again.
	for _, ep := range eps {
		undo.PushFunc(func() { _ = sb.plumb(old, ep) })
		if err := sb.unplumb(old, ep); err != nil {
			return err
		}
	}
	s, err := osl.Adopt(sb.key, path)
	if err != nil {
		return types.Wrapf(err, "setting key %s of sandbox %s", path, sb.id[:12])
	}
	undo.PushFunc(func() {
		s.Close()
		_ = old.Remount()
	})
	for _, ep := range eps {
		if err := sb.plumb(s, ep); err != nil {
			return err
		}
		undo.PushFunc(func() { _ = sb.unplumb(s, ep) })
	}
	c.mu.Lock()
	sb.osSbox = s
	c.mu.Unlock()
	undo.PushFunc(func() {
		c.mu.Lock()
		sb.osSbox = old
		c.mu.Unlock()
	})
	if err := sb.updateGatewayPorts(oper); err != nil {
		return err
	}
	undo.PushFunc(func() {
		c.mu.Lock()
		g := sb.gwEP
		sb.gwEP = nil
		c.mu.Unlock()
		if g != nil {
			revokeExternal(g)
		}
	})
	if err := sb.updateResolver(nil, ipv6); err != nil {
		return err
	}
	undo.PushFunc(func() { sb.dns.Stop(sandboxdns.OS(s), true) })

	sb.recordOperPorts()
	recs := []func() (*store.Op, error){c.recSandbox(sb)}
	for _, ep := range eps {
		recs = append(recs, c.recEndpoint(ep, stateReady))
	}
	if err := c.commit(recs...); err != nil {
		return err
	}
	ok = true
	// The old namespace lives on only while a process holds it.
	old.Close()
	return nil
}

// plumb has ep's driver join it again, into s, and puts the interface in
// with the endpoint's MAC, addresses and routes. On error nothing is left
// and ep's join state is as it was.
func (sb *Sandbox) plumb(s *osl.Sandbox, ep *Endpoint) error {
	c := sb.ctrl
	n := ep.network
	c.mu.Lock()
	prev := ep.join
	c.mu.Unlock()
	js, reserved, err := sb.driverJoin(s, ep)
	if err != nil {
		return err
	}
	c.mu.Lock()
	ep.join = js
	c.mu.Unlock()
	if err := sb.populate(s, ep); err != nil {
		for _, name := range reserved {
			s.ReleaseName(name)
		}
		_ = n.driver.Leave(n.id, ep.id)
		c.mu.Lock()
		ep.join = prev
		c.mu.Unlock()
		return err
	}
	return nil
}

// unplumb takes ep's interface out of s and has its driver leave; the
// endpoint stays joined in the model. Every step runs.
func (sb *Sandbox) unplumb(s *osl.Sandbox, ep *Endpoint) error {
	n := ep.network
	err := sb.depopulate(s, ep, false)
	if lerr := n.driver.Leave(n.id, ep.id); lerr != nil && !types.IsNotFound(lerr) {
		err = errors.Join(err, types.Wrapf(lerr, "leaving endpoint %s from sandbox %s", ep.name, sb.id[:12]))
	}
	return err
}
