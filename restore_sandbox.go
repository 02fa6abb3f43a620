package libnetwork

import (
	"errors"

	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/internal/sandboxdns"
	"github.com/opencnm/libnetwork/osl"
	"github.com/opencnm/libnetwork/types"
)

// restoreSandbox takes back a sandbox of the previous run with its joins,
// without touching its data plane. A join whose interface is gone or down
// (a crash during Leave), or whose endpoint is in leaving (a leave that
// moved the gateway), is finished off as left; interfaces of joins or
// leaves a crash interrupted (halfJoinMACs: the MACs of endpoints recorded
// as joining it) are removed; the default route and published ports are
// put back on the gateway endpoint (when it must publish anew, the sandbox
// is returned as publishAnew, for the caller to publish once every sandbox
// is back). On error the sandbox is not registered and its namespace
// handles are released; the caller removes what is left.
//
// Errors that leave the sandbox usable (a port that cannot be published
// again, a default route or DNS file that cannot be repaired) are returned
// in usable: the container is running, and losing its network over one of
// them would be worse than the error, which RestoreError reports.
func (c *Controller) restoreSandbox(r records.Sandbox, opts any, halfJoinMACs []string, leaving map[string]bool) (publishAnew *Sandbox, usable, retErr error) {
	sbOpts, _ := opts.([]SandboxOption)
	sb := &Sandbox{ctrl: c, id: r.ID, containerID: r.ContainerID, key: r.Key,
		prio: map[string]int{}, aliases: map[string]map[string]string{}}
	sb.gw.sb = sb
	sb.cfg.apply(sbOpts)
	if sb.cfg.optErr != nil {
		return nil, nil, sb.cfg.optErr
	}
	sb.cfg.useDefaultSandbox, sb.cfg.useExternalKey = r.DefaultSandbox, r.ExternalKey
	osSbox, err := c.reopenSandboxNS(r)
	if err != nil {
		return nil, nil, types.Wrapf(err, "re-opening namespace %s", r.Key)
	}
	eps := c.adoptJoins(sb, osSbox, r)
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
	kept := keptSandbox{sb: sb, os: osSbox}
	if err := kept.settleJoins(eps, halfJoinMACs, leaving); err != nil {
		return nil, nil, err
	}
	publish, usable := kept.repairUsable()
	if publish {
		return sb, usable, nil
	}
	return nil, usable, nil
}

// reopenSandboxNS opens the namespace of sandbox record r again: none for
// an external key never set.
func (c *Controller) reopenSandboxNS(r records.Sandbox) (*osl.Sandbox, error) {
	switch {
	case r.DefaultSandbox:
		return c.acquireDefaultSandbox(r.Key)
	case r.ExternalKey && !r.KeySet:
		return nil, nil
	default:
		return osl.Open(r.Key)
	}
}

// adoptJoins registers sb with the endpoints restored joined to it that
// its record lists, and returns them.
func (c *Controller) adoptJoins(sb *Sandbox, osSbox *osl.Sandbox, r records.Sandbox) []*Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
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
	return eps
}

// keptSandbox is a sandbox of the previous run whose namespace survived
// (os is nil for an external key never set), while its restore settles
// the joins and repairs what a crash left. Its methods run under sb.opMu.
type keptSandbox struct {
	sb *Sandbox
	os *osl.Sandbox
}

// settleJoins tells the drivers about the joins of eps that are whole,
// finishes the leaves a crash cut short, and removes the interfaces of
// joins it cut short. The caller holds sb.opMu.
func (k keptSandbox) settleJoins(eps []*Endpoint, halfJoinMACs []string, leaving map[string]bool) error {
	var errs []error
	var left []*Endpoint
	for _, ep := range eps {
		if leaving[ep.id] {
			left = append(left, ep)
		} else if err := k.restoreJoin(ep); types.IsNotFound(err) {
			left = append(left, ep)
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	if len(left) > 0 {
		errs = append(errs, k.finishLeaves(left))
	}
	if k.os != nil {
		errs = append(errs, k.removeLeftoverIfaces(halfJoinMACs))
	}
	return errors.Join(errs...)
}

// repairUsable puts back the gateway, DNS files and resolver of a sandbox
// whose joins are settled. Its errors leave the sandbox usable;
// publishAnew says the gateway must publish its ports anew. The caller
// holds sb.opMu.
func (k keptSandbox) repairUsable() (publishAnew bool, usable error) {
	sb := k.sb
	var errs []error
	publishAnew, err := sb.gw.restore(k.os)
	errs = append(errs, err)
	if err := sb.dns.Setup(sb.dnsConfig()); err != nil {
		errs = append(errs, err)
	}
	// The previous run's redirect is still in the namespace: the resolver
	// binds its ports again instead of replacing it.
	if err := sb.dns.AdoptRedirect(sandboxdns.OS(k.os)); err != nil {
		errs = append(errs, err)
	}
	for _, ep := range sb.Endpoints() {
		errs = append(errs, sb.joinDNS(ep))
	}
	return publishAnew, errors.Join(errs...)
}
