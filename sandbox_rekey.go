package libnetwork

import (
	"errors"
	"slices"

	"github.com/opencnm/libnetwork/internal/records"
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
	r := &rekeying{sb: sb, old: old, path: path, eps: eps}
	ok := false
	defer r.undo.Unless(&ok)
	for _, step := range []func() error{r.leaveOld, r.enterNew, r.serve, r.record} {
		if err := step(); err != nil {
			return err
		}
	}
	ok = true
	// The old namespace lives on only while a process holds it.
	old.Close()
	return nil
}

// rekeying is one rekey under way: each step pushes on undo what takes it
// back, and rekey runs undo if a later step fails.
type rekeying struct {
	sb   *Sandbox
	old  *osl.Sandbox // the namespace the sandbox leaves
	s    *osl.Sandbox // the one at path, once adopted
	path string
	eps  []*Endpoint
	oper []types.PortBinding // the gateway's published ports, published again in s
	ipv6 bool                // whether the resolver serves IPv6
	undo undo.Stack
}

// leaveOld takes the gateway, the resolver and the endpoints' interfaces
// out of the old namespace.
func (r *rekeying) leaveOld() error {
	sb, old, c := r.sb, r.old, r.sb.ctrl
	c.mu.Lock()
	gw := sb.gw.ep
	if gw != nil {
		r.oper = slices.Clone(gw.operPorts)
	}
	c.mu.Unlock()
	r.ipv6 = sb.dns.IPv6()
	var reattachDNS func()
	// Runs last on failure, once the endpoints are back in old.
	r.undo.PushFunc(func() {
		if reattachDNS != nil {
			reattachDNS()
		}
		_ = sb.gw.updatePorts(r.oper)
		_ = sb.updateResolver(nil, r.ipv6)
	})
	if gw != nil {
		revokeExternal(gw)
		_ = old.UnsetGateway()
		_ = old.UnsetGatewayIPv6()
		c.mu.Lock()
		sb.gw.ep = nil
		c.mu.Unlock()
	}
	// The resolver's sockets and redirect are in old; the new namespace
	// gets its own.
	reattachDNS = sb.dns.Detach()

	// Out of old while the key still names it, so that an undo's driver
	// join (which opens the key) finds old again.
	for _, ep := range r.eps {
		r.undo.PushFunc(func() { _ = r.plumb(old, ep) })
		if err := r.unplumb(old, ep); err != nil {
			return err
		}
	}
	return nil
}

// enterNew mounts the namespace at path at the sandbox's key and plumbs
// every endpoint into it.
func (r *rekeying) enterNew() error {
	sb, c := r.sb, r.sb.ctrl
	s, err := osl.Adopt(sb.key, r.path)
	if err != nil {
		return types.Wrapf(err, "setting key %s of sandbox %s", r.path, sb.id[:12])
	}
	r.s = s
	r.undo.PushFunc(func() {
		s.Close()
		_ = r.old.Remount()
	})
	for _, ep := range r.eps {
		if err := r.plumb(s, ep); err != nil {
			return err
		}
		r.undo.PushFunc(func() { _ = r.unplumb(s, ep) })
	}
	c.mu.Lock()
	sb.osSbox = s
	c.mu.Unlock()
	r.undo.PushFunc(func() {
		c.mu.Lock()
		sb.osSbox = r.old
		c.mu.Unlock()
	})
	return nil
}

// serve gives the new namespace the default route, the same published
// host ports and a resolver.
func (r *rekeying) serve() error {
	sb := r.sb
	if err := sb.gw.updatePorts(r.oper); err != nil {
		return err
	}
	r.undo.PushFunc(sb.gw.release)
	if err := sb.updateResolver(nil, r.ipv6); err != nil {
		return err
	}
	r.undo.PushFunc(func() { sb.dns.Stop(sandboxdns.OS(r.s), true) })
	return nil
}

// record writes the sandbox and its endpoints as they are in the new
// namespace.
func (r *rekeying) record() error {
	sb, c := r.sb, r.sb.ctrl
	sb.gw.recordOperPorts()
	recs := []func() (*store.Op, error){c.recSandbox(sb)}
	for _, ep := range r.eps {
		recs = append(recs, c.recEndpoint(ep, records.Ready))
	}
	return c.commit(recs...)
}

// plumb has ep's driver join it again, into s, and puts the interface in
// with the endpoint's MAC, addresses and routes. On error nothing is left
// and ep's join state is as it was.
func (r *rekeying) plumb(s *osl.Sandbox, ep *Endpoint) error {
	sb, c := r.sb, r.sb.ctrl
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
func (r *rekeying) unplumb(s *osl.Sandbox, ep *Endpoint) error {
	sb, n := r.sb, ep.network
	err := sb.depopulate(s, ep, false)
	if lerr := n.driver.Leave(n.id, ep.id); lerr != nil && !types.IsNotFound(lerr) {
		err = errors.Join(err, types.Wrapf(lerr, "leaving endpoint %s from sandbox %s", ep.name, sb.id[:12]))
	}
	return err
}
