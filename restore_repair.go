package libnetwork

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/names"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/osl"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// abandonNetwork lets driver e of an unfinished network record remove
// what it may have made untagged. Nothing is replayed in IPAM: the pools
// the record names were never confirmed to anyone.
func (c *Controller) abandonNetwork(e *driverEntry, r records.Network) error {
	a, ok := e.Driver.(driverapi.NetworkAbandoner)
	if !ok {
		return nil
	}
	gen, err := records.DecodeGeneric(r.Generic)
	if err != nil {
		return types.InternalErrorf("decoding options of unfinished network %s: %w", r.Name, err)
	}
	if gen == nil {
		gen = map[string]any{}
	}
	n := &Network{generic: gen, enableIPv6: r.EnableIPv6, internal: r.Internal}
	return a.AbandonNetwork(driverapi.CreateNetworkRequest{NetworkID: r.ID, Options: n.driverOptions()})
}

// restoreJoin tells the driver about a join it made in an earlier run,
// after checking that the interface is still in the namespace.
func (k keptSandbox) restoreJoin(ep *Endpoint) error {
	sb, s := k.sb, k.os
	js := ep.join
	if s != nil && js.dstName != "" {
		l, err := s.Netlink().LinkByName(js.dstName)
		if err != nil {
			return types.NotFoundErrorf("interface %s of endpoint %s is gone from sandbox %s", js.dstName, ep.name, sb.id[:12])
		}
		// Join leaves its interface up; Leave takes it down first. Down
		// means a Leave was cut short (the leave is finished, as when the
		// interface is gone). The price: a container that set its own
		// interface down loses that endpoint across a restart.
		if l.Attrs().Flags&net.FlagUp == 0 {
			return types.NotFoundErrorf("interface %s of endpoint %s in sandbox %s is down: its leave was cut short", js.dstName, ep.name, sb.id[:12])
		}
	}
	r, ok := ep.network.driver.Driver.(driverapi.JoinRestorer)
	if !ok {
		return nil
	}
	key := ""
	if s != nil {
		key = s.Key()
	}
	return r.RestoreJoin(driverapi.JoinRequest{NetworkID: ep.network.id, EndpointID: ep.id, SandboxKey: key,
		Options: sb.cfg.labels()}, driverapi.JoinResult{DstName: js.dstName, SrcName: js.srcName,
		DstPrefix: js.dstPrefix, Gateway: js.gw, GatewayIPv6: js.gw6, StaticRoutes: js.routes})
}

// finishLeaves records as left the joins a crash cut the Leave of short:
// their interface vanished from a kept sandbox or is down, or their
// endpoint is recorded as leaving (the interface may still be up: it is
// removed now). The driver never took these joins back, so there is
// nothing to tell it; the host end of the veth, tagged with an endpoint
// no longer joined, goes with its pair or with garbage collection.
func (k keptSandbox) finishLeaves(left []*Endpoint) error {
	sb, s := k.sb, k.os
	c := sb.ctrl
	var errs []error
	for _, ep := range left {
		// Still there (down), it goes now, its veth's host end with it.
		if s != nil && ep.join.dstName != "" {
			errs = append(errs, s.RemoveInterface(ep.join.dstName))
		}
	}
	c.mu.Lock()
	for _, ep := range left {
		sb.removeEndpointLocked(ep)
		ep.sandboxID, ep.join, ep.operPorts = "", nil, nil
	}
	c.mu.Unlock()
	recs := []func() (*store.Op, error){c.recSandbox(sb)}
	for _, ep := range left {
		recs = append(recs, c.recEndpoint(ep, records.Ready))
	}
	return errors.Join(append(errs, c.commit(recs...))...)
}

// removeLeftoverIfaces deletes from a kept sandbox the interfaces a crash
// left half-made or half-removed. In a namespace the library created every
// interface comes from a join, so each one no restored join accounts for
// goes (this covers joins of networks kept in memory only, which have no
// intent record). In a namespace someone else owns (external key, default
// sandbox) only what is recognisably ours goes: links a Leave had detached
// (osl renames them "gone<ifindex>") and links with the MAC of an
// endpoint whose join was cut short. Deleting one end of a veth deletes
// the pair, so the host end goes too, even if the crash came before the
// driver tagged it.
func (k keptSandbox) removeLeftoverIfaces(halfJoinMACs []string) error {
	sb, s := k.sb, k.os
	c := sb.ctrl
	inUse := map[string]bool{}
	c.mu.Lock()
	for _, ep := range sb.endpoints {
		if ep.join != nil && ep.join.dstName != "" {
			inUse[ep.join.dstName] = true
		}
	}
	c.mu.Unlock()
	owned := !sb.cfg.useExternalKey && !sb.cfg.useDefaultSandbox
	stale := map[string]bool{}
	for _, m := range halfJoinMACs {
		if hw, err := net.ParseMAC(m); err == nil {
			stale[hw.String()] = true
		}
	}
	links, err := s.Netlink().LinkList()
	if err != nil {
		return types.InternalErrorf("listing links of sandbox %s: %w", sb.id[:12], err)
	}
	var errs []error
	for _, l := range links {
		a := l.Attrs()
		if inUse[a.Name] || a.Flags&net.FlagLoopback != 0 {
			continue
		}
		if owned || isDetachedName(a.Name) || (len(a.HardwareAddr) > 0 && stale[a.HardwareAddr.String()]) {
			errs = append(errs, s.RemoveInterface(a.Name))
		}
	}
	return errors.Join(errs...)
}

// isDetachedName reports whether name is one osl.DetachInterface gives.
func isDetachedName(name string) bool {
	rest, ok := strings.CutPrefix(name, "gone")
	if !ok || rest == "" {
		return false
	}
	for _, r := range rest {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// removeStaleSandbox removes what a sandbox of the previous run left: its
// namespace (the kernel reaps the veths inside), files and record.
func (c *Controller) removeStaleSandbox(r records.Sandbox) error {
	var errs []error
	if !r.DefaultSandbox {
		errs = append(errs, netnsutil.Remove(r.Key))
	}
	// The ID names a directory: only a valid ID is joined to a path, so a
	// record with any other (not written by this version, or not ours)
	// cannot make the removal reach outside the files directory.
	if err := names.ID(r.ID); err != nil {
		errs = append(errs, types.Wrapf(err, "removing files of stale sandbox: invalid sandbox id"))
	} else {
		errs = append(errs, os.RemoveAll(filepath.Join(c.cfg.ExecRoot, "files", r.ID)))
	}
	errs = append(errs, c.commit(recDelete(records.KindSandbox, r.ID)))
	return errors.Join(errs...)
}

// restore gives a restored sandbox's gateway endpoint its default
// route and external connectivity back. The route is checked rather than
// rewritten: a crash may have left it via another endpoint's gateway (a
// join or leave cut short after moving it) or taken it away with a
// rolled-back interface. A gateway with recorded published ports gets
// exactly those again (rules taken over as they are, the same host ports
// bound again); one without (it took over from an endpoint whose leave
// was finished) is left to publish once every sandbox is back, and
// publishAnew reports so: a port chosen now might be one a record of a
// sandbox not restored yet still holds.
func (g *sandboxGateway) restore(s *osl.Sandbox) (publishAnew bool, err error) {
	sb := g.sb
	c := sb.ctrl
	c.mu.Lock()
	gw := g.chooseLocked()
	var gw4, gw6 net.IP
	var oper []types.PortBinding
	if gw != nil {
		gw4, gw6, oper = gw.join.gw, gw.join.gw6, slices.Clone(gw.operPorts)
	}
	g.ep = gw
	c.mu.Unlock()
	var errs []error
	if s != nil && !sb.cfg.useDefaultSandbox {
		if got4, got6, err := s.DefaultGateways(); err != nil {
			errs = append(errs, err)
		} else {
			errs = append(errs, g.repairDefaultRoute(s, false, got4, gw4), g.repairDefaultRoute(s, true, got6, gw6))
		}
	}
	switch {
	case gw == nil:
	case len(oper) == 0:
		publishAnew = true
	default:
		// A recorded port a host process took while we were down: the
		// sandbox stays, and publishes anew with the rest (a chosen port
		// then gets another host port; a fixed one fails again, reported).
		driverErr, commitErr := g.publishParts(gw, oper)
		errs = append(errs, driverErr, commitErr)
		// Only ports the driver could not publish again go anew (a
		// failed record write must not move a container's host ports).
		publishAnew = driverErr != nil
	}
	return publishAnew, errors.Join(errs...)
}

// publish programs the external connectivity of gateway endpoint
// gw of a restored sandbox: exactly the bindings oper published before
// the restart if any, otherwise what the sandbox and gw ask for. The
// record follows what the driver published. The caller holds sb.opMu.
func (g *sandboxGateway) publish(gw *Endpoint, oper []types.PortBinding) error {
	driverErr, commitErr := g.publishParts(gw, oper)
	return errors.Join(driverErr, commitErr)
}

// publishParts is publish with the driver's failure apart
// from the record's: only the first means the ports are not published.
func (g *sandboxGateway) publishParts(gw *Endpoint, oper []types.PortBinding) (driverErr, commitErr error) {
	sb := g.sb
	c := sb.ctrl
	labels := sb.cfg.labels()
	if len(oper) > 0 {
		// The same host ports again, chosen ones included. Drivers that
		// do not know OperPortMap get them as the sandbox's.
		labels[netlabel.PortMap] = oper
		labels[netlabel.OperPortMap] = slices.Clone(oper)
	}
	if ext, ok := gw.network.driver.Driver.(driverapi.ExternalConnectivity); ok {
		driverErr = ext.ProgramExternalConnectivity(gw.network.id, gw.id, labels)
	}
	return driverErr, c.commit(g.operPortRecords(nil)...)
}

// repairDefaultRoute makes the sandbox's default route of one family (now
// via got) go via want, or, with no gateway, removes it, unless the
// namespace is a runtime's, where a route not via our gateway may be the
// runtime's own.
func (g *sandboxGateway) repairDefaultRoute(s *osl.Sandbox, ipv6 bool, got []net.IP, want net.IP) error {
	if want == nil {
		if len(got) == 0 || g.sb.cfg.useExternalKey {
			return nil
		}
		if ipv6 {
			return s.UnsetGatewayIPv6()
		}
		return s.UnsetGateway()
	}
	if len(got) == 1 && got[0].Equal(want) {
		return nil // the common case: nothing to do
	}
	if len(got) > 1 {
		// Replace takes one; with two or more, clear them first.
		unset := s.UnsetGateway
		if ipv6 {
			unset = s.UnsetGatewayIPv6
		}
		if err := unset(); err != nil {
			return err
		}
	}
	if ipv6 {
		return s.SetGatewayIPv6(want)
	}
	return s.SetGateway(want)
}
