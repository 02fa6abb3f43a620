package libnetwork

import (
	"errors"

	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/internal/restoreplan"
	"github.com/opencnm/libnetwork/types"
)

// restore rebuilds the model from the store at New: networks (driver state
// re-created or reconciled in place, IPAM pools and addresses re-reserved),
// endpoints, and the sandboxes named in config.OptionActiveSandboxes (kept
// with their joins; the data plane is not touched). Other sandboxes of the
// previous run are removed with their endpoints, half-done operations are
// finished off, and kernel objects without a record are collected.
// restoreplan decides what becomes of each record; restore carries it out.
func (c *Controller) restore() error {
	set, err := records.Load(c.store)
	if err != nil {
		return err
	}
	a := &restoreApply{c: c, drivers: c.restoreDrivers(set.Networks), errs: set.Undecodable}
	in := restoreplan.Input{Records: set, Kept: map[string]bool{}, Drivers: map[string]bool{}}
	for id := range c.cfg.ActiveSandboxes {
		in.Kept[id] = true
	}
	for typ, d := range a.drivers {
		in.Drivers[typ] = d.err == nil
	}
	a.run(restoreplan.Make(in))
	err = errors.Join(a.errs...)
	c.cfg.Logger.Info("restore finished", "networks", len(set.Networks), "endpoints", len(set.Endpoints),
		"sandboxes", len(set.Sandboxes), "err", err)
	return err
}

// foundDriver is the outcome of looking up one network driver at restore.
type foundDriver struct {
	e   *driverEntry
	err error
}

// restoreDrivers looks up, once per type, the driver of every network
// record (a plugin not running costs one timeout, not one per network).
func (c *Controller) restoreDrivers(nets []records.Network) map[string]foundDriver {
	out := map[string]foundDriver{}
	for _, r := range nets {
		if _, done := out[r.Type]; !done {
			e, err := c.driver(r.Type)
			out[r.Type] = foundDriver{e, err}
		}
	}
	return out
}

// restoreApply carries out a restore plan, collecting what failed.
type restoreApply struct {
	c       *Controller
	drivers map[string]foundDriver
	errs    []error
	// settle: endpoints to record Ready once every sandbox is back.
	settle []*Endpoint
	// publish: restored sandboxes whose gateway publishes its ports anew.
	publish []*Sandbox
	// orphans: endpoints whose sandbox does not come back, deleted last.
	orphans []*Endpoint
	// failedNets: networks the plan kept that did not come back.
	failedNets map[string]bool
}

func (a *restoreApply) run(p restoreplan.Plan) {
	for _, s := range p.Networks {
		a.network(s)
	}
	p.NetworksFailed(a.failedNets)
	for _, s := range p.Endpoints {
		a.endpoint(s)
	}
	for _, s := range p.Sandboxes {
		a.sandbox(s)
	}
	for _, ep := range a.settle {
		a.errs = append(a.errs, a.c.commit(a.c.recEndpoint(ep, records.Ready)))
	}
	// Gateways publishing anew go after every sandbox: every host port a
	// record claims is held again by then, so none is chosen twice.
	for _, sb := range a.publish {
		a.publishAnew(sb)
	}
	for _, ep := range a.orphans {
		err := ep.Delete(true)
		a.c.logRestore("deleted an endpoint whose sandbox did not come back", err, "endpoint", ep.id, "network", ep.network.id)
		a.errs = append(a.errs, err)
	}
	a.errs = append(a.errs, a.c.collectGarbage())
}

func (a *restoreApply) network(s restoreplan.NetworkStep) {
	c, r := a.c, s.Record
	var err error
	switch s.Action {
	case restoreplan.NetworkAbandon, restoreplan.NetworkDrop:
		if s.Action == restoreplan.NetworkAbandon {
			err = c.abandonNetwork(a.drivers[r.Type].e, r)
		}
		err = errors.Join(err, c.commit(recDelete(records.KindNetwork, r.ID)))
		c.logRestore("abandoned a network whose create never finished", err, "network", r.ID, "name", r.Name)
		a.errs = append(a.errs, err)
		return
	case restoreplan.NetworkSkip:
		err = s.Err
	case restoreplan.NetworkKeep:
		err = c.restoreNetwork(r, a.drivers[r.Type].e, nil)
	case restoreplan.NetworkStandIn:
		err = c.restoreNetwork(r, nil, a.drivers[r.Type].err)
	}
	if err != nil {
		c.logRestore("network not restored", err, "network", r.ID, "name", r.Name)
		a.errs = append(a.errs, types.Wrapf(err, "restoring network %s", r.Name))
	}
	// A network kept with only its driver's absence reported is
	// registered: failed is what the model lacks.
	c.mu.Lock()
	failed := s.Action != restoreplan.NetworkSkip && c.networks[r.ID] == nil
	c.mu.Unlock()
	if failed {
		if a.failedNets == nil {
			a.failedNets = map[string]bool{}
		}
		a.failedNets[r.ID] = true
	}
}

func (a *restoreApply) endpoint(s restoreplan.EndpointStep) {
	c, r := a.c, s.Record
	var ep *Endpoint
	err := s.Err
	switch s.Action {
	case restoreplan.EndpointWait:
		return
	case restoreplan.EndpointDrop:
		err = c.commit(recDelete(records.KindEndpoint, r.ID))
	case restoreplan.EndpointKeep, restoreplan.EndpointRollBack, restoreplan.EndpointRollForward, restoreplan.EndpointDelete:
		ep, err = c.restoreEndpoint(r, s.Joined)
	}
	if err != nil {
		c.logRestore("endpoint not restored", err, "endpoint", r.ID, "network", r.NetworkID)
		a.errs = append(a.errs, types.Wrapf(err, "restoring endpoint %s", r.Name))
		return
	}
	switch {
	case ep == nil: // its network did not come back after all: dropped
	case s.Settle:
		a.settle = append(a.settle, ep)
	case s.Action == restoreplan.EndpointDelete:
		c.mu.Lock()
		ep.operPorts = nil
		c.mu.Unlock()
		a.orphans = append(a.orphans, ep)
	}
}

func (a *restoreApply) sandbox(s restoreplan.SandboxStep) {
	c, r := a.c, s.Record
	if s.Action == restoreplan.SandboxKeep {
		publish, usable, err := c.restoreSandbox(r, c.cfg.ActiveSandboxes[r.ID], s.HalfJoinMACs, s.Leaving)
		if err == nil {
			if publish != nil {
				a.publish = append(a.publish, publish)
			}
			if usable != nil {
				c.logRestore("sandbox restored with errors", usable, "sandbox", r.ID, "container", r.ContainerID)
				a.errs = append(a.errs, types.Wrapf(usable, "restoring sandbox of container %s (kept)", r.ContainerID))
			}
			return
		}
		s.Err = err
	}
	if s.Err != nil {
		c.logRestore("sandbox not restored", s.Err, "sandbox", r.ID, "container", r.ContainerID)
		a.errs = append(a.errs, types.Wrapf(s.Err, "restoring sandbox of container %s", r.ContainerID))
	}
	err := c.removeStaleSandbox(r)
	c.logRestore("removed a sandbox not restored", err, "sandbox", r.ID, "container", r.ContainerID)
	a.errs = append(a.errs, err)
	a.orphans = append(a.orphans, c.detachFromSandbox(r.ID)...)
}

// detachFromSandbox forgets the joins of endpoints restored joined to a
// sandbox that did not come back, and returns them: their container is
// gone, so they are deleted as upstream does.
func (c *Controller) detachFromSandbox(sbID string) []*Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Endpoint
	for _, n := range c.networks {
		for _, ep := range n.endpoints {
			if ep.sandboxID == sbID {
				ep.sandboxID, ep.join, ep.operPorts = "", nil, nil
				out = append(out, ep)
			}
		}
	}
	return out
}

// publishAnew publishes the gateway ports of a restored sandbox whose
// recorded ones could not be taken back. A port that cannot be published
// fails like at a join, but the sandbox stays.
func (a *restoreApply) publishAnew(sb *Sandbox) {
	c := a.c
	c.mu.Lock()
	gw := sb.gw.ep
	c.mu.Unlock()
	sb.opMu.Lock()
	defer sb.opMu.Unlock()
	if err := sb.gw.publish(gw, nil); err != nil {
		c.logRestore("gateway ports not published again", err, "sandbox", sb.id, "endpoint", gw.id)
		a.errs = append(a.errs, types.Wrapf(err, "restoring sandbox of container %s", sb.containerID))
	}
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
