package libnetwork

import (
	"slices"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// sandboxGateway owns which of a sandbox's endpoints is its gateway (the
// one with the default routes and the published ports) and keeps the
// namespace's default routes and the drivers' external connectivity on
// that endpoint. Its methods that change the kernel or a driver run under
// sb.opMu.
type sandboxGateway struct {
	sb *Sandbox
	ep *Endpoint // the endpoint providing the default gateway; guarded by ctrl.mu
}

// chooseLocked is the first endpoint in order that provides an
// IPv4 gateway or, when none does, the first providing an IPv6 one. It
// gets the default routes and publishes the sandbox's ports. Caller holds
// ctrl.mu.
func (g *sandboxGateway) chooseLocked() *Endpoint {
	var v6only *Endpoint
	for _, ep := range g.sb.endpoints {
		if ep.join == nil || ep.network.addressLess() || ep.network.internal {
			continue
		}
		if ep.join.gw != nil {
			return ep
		}
		if v6only == nil && ep.join.gw6 != nil {
			v6only = ep
		}
	}
	// No IPv4 gateway at all (IPv6-only networks): the first IPv6 one.
	return v6only
}

// update moves the default route and external connectivity to the
// endpoint that should now provide them. The caller holds sb.opMu.
func (g *sandboxGateway) update() error { return g.updatePorts(nil) }

// release takes the default route and external connectivity off the
// current gateway and gives them to no one: a sandbox being deleted loses
// all its endpoints, so moving them to the next would only add a step that
// can fail (the next endpoint's link may be gone already). The caller
// holds sb.opMu.
func (g *sandboxGateway) release() {
	sb := g.sb
	c := sb.ctrl
	c.mu.Lock()
	old, s := g.ep, sb.osSbox
	g.ep = nil
	c.mu.Unlock()
	if old == nil {
		return
	}
	revokeExternal(old)
	if s != nil {
		_ = s.UnsetGateway()
		_ = s.UnsetGatewayIPv6()
	}
}

// updatePorts is update publishing exactly the host ports
// oper when given (the gateway endpoint's operational bindings, chosen ones
// included), as a restore does.
func (g *sandboxGateway) updatePorts(oper []types.PortBinding) error {
	sb := g.sb
	c := sb.ctrl
	c.mu.Lock()
	old, next := g.ep, g.chooseLocked()
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
	g.ep = nil
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
	g.ep = next
	c.mu.Unlock()
	return nil
}

func revokeExternal(ep *Endpoint) {
	if ext, ok := ep.network.driver.Driver.(driverapi.ExternalConnectivity); ok {
		_ = ext.RevokeExternalConnectivity(ep.network.id, ep.id)
	}
}

// operPortRecords is recordOperPorts as the store writes of the endpoints
// whose record it changed, but skip (one the caller writes itself).
func (g *sandboxGateway) operPortRecords(skip *Endpoint) []func() (*store.Op, error) {
	var recs []func() (*store.Op, error)
	for _, e := range g.recordOperPorts() {
		if e != skip {
			recs = append(recs, g.sb.ctrl.recEndpoint(e, records.Ready))
		}
	}
	return recs
}

// recordOperPorts remembers, on the sandbox's gateway endpoint, the host
// ports its driver actually published, so a restart can publish the very
// same ones again, and forgets them on the sandbox's other endpoints (a
// port the gateway gave up when it moved on must not come back with an
// endpoint that is no longer the gateway). It returns the endpoints whose
// record must be rewritten. The caller holds sb.opMu.
func (g *sandboxGateway) recordOperPorts() []*Endpoint {
	sb := g.sb
	c := sb.ctrl
	c.mu.Lock()
	gw := g.ep
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
