package bridge

import (
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/iptables"
	"github.com/opencnm/libnetwork/firewall/nftports"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/nfwatch"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/portmapper"
	"github.com/opencnm/libnetwork/types"
)

// hostFirewall is the firewaller over the firewall and portmapper
// packages, all in the driver's host namespace: iptables through a warm
// iptables-restore runner, host ports held by real sockets, conntrack
// through netlink.
type hostFirewall struct {
	run  *iptables.Exec
	maps *nftports.Maps
	fw   *firewall.Firewall
	pm   *portmapper.PortMapper
	ct   *portmapper.NetlinkConntrack
	sys  firewall.Sysctl
	heal *healer // keeps the rules in force (heal.go)
	// loadModule loads a kernel module (firewall.LoadModule; tests swap
	// it with sys).
	loadModule func(name string) error
}

var _ firewaller = (*hostFirewall)(nil)

// fwKnobs are the settings only tests change (internal/knobs).
type fwKnobs struct {
	every    time.Duration // period of firewall checks; 0 picks it (see healPeriod)
	legacy   bool          // run the iptables-legacy binaries
	noEvents bool          // act as a kernel without nftables events would
}

// errNoEvents is what a driver told to do without nftables events reports.
var errNoEvents = errors.New("nftables events turned off (internal knob)")

// newHostFirewall sets up the global chains (adopting what a previous
// process left, see firewall.Setup) in host.
func newHostFirewall(host *netnsutil.NS, dc driverConfig, log *slog.Logger, k fwKnobs) (_ *hostFirewall, err error) {
	var opts []iptables.Option
	if k.legacy {
		opts = append(opts, iptables.LegacyBinaries())
	}
	var rollback undo.Stack
	ok := false
	defer rollback.Unless(&ok)
	run := iptables.NewWarm(host, opts...)
	rollback.Push(run.Close)
	maps := nftports.New(host)
	rollback.Push(maps.Close)
	fw := firewall.New(run, maps, dc.EnableIP6Tables)
	if err := fw.Setup(); err != nil {
		return nil, err
	}
	ct, err := portmapper.NewNetlinkConntrack(host)
	if err != nil {
		return nil, err
	}
	rollback.Push(ct.Close)
	isLegacy, err := run.Legacy()
	if err != nil { // Setup ran the same binary, so this is unexpected
		return nil, err
	}
	var watch *nfwatch.Watcher
	werr := errNoEvents
	if !k.noEvents {
		watch, werr = nfwatch.Open(host, run.Forked)
	}
	if werr != nil {
		watch = nil
	}
	every, trigger := healPeriod(k.every, watch != nil, isLegacy)
	if werr != nil {
		log.Warn("nftables events unavailable: firewall repairs wait for the periodic check", "every", every, "err", werr)
	}
	if isLegacy {
		log.Info("iptables is iptables-legacy: no event reports a change of its rules, firewall checks run often", "every", every)
	}
	pm := portmapper.New(portmapper.NSReserver{NS: host}, fw, ct)
	pm.SetLogger(log)
	ok = true
	return &hostFirewall{
		run:  run,
		maps: maps,
		fw:   fw,
		pm:   pm,
		ct:   ct,
		sys:  firewall.NSSysctl{NS: host},
		heal: newHealer(fw, watch, every, trigger, log),

		loadModule: firewall.LoadModule,
	}, nil
}

// close finishes pending port releases and frees sockets and processes;
// rules of live networks and endpoints stay for the next process to adopt.
func (h *hostFirewall) close() error {
	h.heal.close()
	err := h.pm.Close()
	h.ct.Close()
	h.run.Close()
	return errors.Join(err, h.maps.Close())
}

func (h *hostFirewall) addNetwork(c *networkConfig) error {
	cfg := firewall.NetworkConfig{
		ID:         c.ID,
		Bridge:     c.BridgeName,
		Subnet:     c.PoolIPv4,
		ICC:        c.EnableICC,
		Masquerade: c.EnableIPMasquerade,
		Internal:   c.Internal,
		HostIP:     c.HostIP,
		// No userland proxy is ever run: loopback and hairpin access
		// to published ports are by NAT, always.
		Hairpin: true,

		GatewayModeIPv4: firewall.GatewayMode(c.GatewayModeIPv4),
		GatewayModeIPv6: firewall.GatewayMode(c.GatewayModeIPv6),
	}
	if c.EnableIPv6 {
		cfg.SubnetV6 = c.PoolIPv6
	}
	if c.PoolIPv4 == nil && !h.fw.IPv6() {
		return types.BadRequestErrorf("creating bridge network %s: an IPv6-only network needs the bridge driver option EnableIP6Tables (it is false)", c.ID)
	}
	if !c.EnableICC {
		// Without br_netfilter, frames between two ports of one bridge
		// never reach iptables and the ICC DROP would do nothing: then
		// the network is not made.
		if err := firewall.RequireBridgeNetfilter(h.sys, h.loadModule, h.fw.IPv6()); err != nil {
			return types.Wrapf(err, "network %s with inter-container communication off", c.ID)
		}
	}
	return h.fw.SetupNetwork(cfg)
}

// delNetwork lets pending port releases finish (they may name the
// bridge), then removes the network's rules.
func (h *hostFirewall) delNetwork(c *networkConfig) error {
	ferr := h.pm.Flush()
	return errors.Join(ferr, h.fw.TeardownNetwork(c.ID))
}

func (h *hostFirewall) programEndpoint(c *networkConfig, ep endpointAddrs, bindings []types.PortBinding) ([]types.PortBinding, error) {
	if len(bindings) == 0 {
		return nil, nil
	}
	pe := portmapper.Endpoint{ID: ep.ID, Bridge: c.BridgeName,
		Routed4:  c.GatewayModeIPv4 == string(firewall.GatewayRouted),
		Routed6:  c.GatewayModeIPv6 == string(firewall.GatewayRouted),
		Trusted4: trustedIn(c, c.GatewayModeIPv4), Trusted6: trustedIn(c, c.GatewayModeIPv6)}
	if ep.IPv4 != nil {
		pe.IPv4 = ep.IPv4.IP
	}
	if ep.IPv6 != nil {
		pe.IPv6 = ep.IPv6.IP
	}
	return h.pm.MapPorts(pe, withDefaultHostIP(bindings, c.DefaultBindingIP))
}

// trustedIn returns the network's trusted host interfaces where a family
// in gateway mode mode needs them: in a protected NAT family. Routed
// ports are open to every interface, an unprotected family is open.
func trustedIn(c *networkConfig, mode string) []string {
	switch firewall.GatewayMode(mode) {
	case "", firewall.GatewayNAT:
		return c.TrustedIfaces
	}
	return nil
}

// withDefaultHostIP gives the network's host_binding_ipv4 to the bindings
// that name no host IP; an explicit 0.0.0.0 or :: still means every
// address, as upstream.
func withDefaultHostIP(bindings []types.PortBinding, def net.IP) []types.PortBinding {
	if def == nil || def.IsUnspecified() {
		return bindings
	}
	out := make([]types.PortBinding, len(bindings))
	for i, b := range bindings {
		if len(b.HostIP) == 0 {
			b.HostIP = types.GetIPCopy(def)
		}
		out[i] = b
	}
	return out
}

func (h *hostFirewall) setLinks(_ *networkConfig, ep endpointAddrs, links []firewall.Link) error {
	return h.fw.SetLinks(ep.ID, links)
}

// revokeEndpoint hands the endpoint's ports to the portmapper's release
// worker and returns at once (see portmapper.Release for why).
func (h *hostFirewall) revokeEndpoint(_ *networkConfig, ep endpointAddrs) error {
	return h.pm.Release(ep.ID)
}

// flush waits for pending releases; for tests and benchmarks.
func (h *hostFirewall) flush() error { return h.pm.Flush() }

// mergeBindings is the union of binding lists, each binding once (the
// container address does not count: the endpoint's address is used).
func mergeBindings(lists ...[]types.PortBinding) []types.PortBinding {
	var out []types.PortBinding
	for _, l := range lists {
	next:
		for _, b := range l {
			for _, o := range out {
				if o.Proto == b.Proto && o.Port == b.Port && o.HostPort == b.HostPort &&
					o.HostPortEnd == b.HostPortEnd && ipEqual(o.HostIP, b.HostIP) {
					continue next
				}
			}
			out = append(out, b.GetCopy())
		}
	}
	return out
}

// rejoinRouted undoes, in operational bindings about to be published
// again, the split of one binding on every host address into a routed
// family's (host port 0) and the other family's (its host port): the two
// become that one binding again, on 0.0.0.0 and the other family's port,
// which publishes both as before. Kept apart, the routed one would be
// published in both families (an unspecified host address means both),
// taking a second host port in the other.
func rejoinRouted(oper []types.PortBinding) []types.PortBinding {
	out := make([]types.PortBinding, 0, len(oper))
	var routed []types.PortBinding
	for _, b := range oper {
		if b.HostPort == 0 && (b.HostIP == nil || b.HostIP.IsUnspecified()) {
			routed = append(routed, b)
			continue
		}
		out = append(out, b.GetCopy())
	}
next:
	for _, r := range routed {
		for i, b := range out {
			if b.Proto == r.Proto && b.Port == r.Port && (b.IP.To4() == nil) != (r.IP.To4() == nil) &&
				b.HostIP != nil && b.HostIP.IsUnspecified() {
				// 0.0.0.0, not nil: no default binding address applies.
				out[i].HostIP = net.IPv4zero.To4()
				continue next
			}
		}
		out = append(out, r.GetCopy())
	}
	return out
}

func mergeExposed(lists ...[]types.TransportPort) []types.TransportPort {
	var out []types.TransportPort
	seen := map[types.TransportPort]bool{}
	for _, l := range lists {
		for _, p := range l {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

func ipEqual(a, b net.IP) bool {
	if a == nil || a.IsUnspecified() {
		return b == nil || b.IsUnspecified()
	}
	return a.Equal(b)
}

// portOptions reads netlabel.PortMap and netlabel.ExposedPorts from a
// label map; other types are refused.
func portOptions(what string, opts map[string]any) ([]types.PortBinding, []types.TransportPort, error) {
	var pbs []types.PortBinding
	var eps []types.TransportPort
	if v, ok := opts[labelPortMap]; ok && v != nil {
		l, ok := v.([]types.PortBinding)
		if !ok {
			return nil, nil, types.BadRequestErrorf("%s: option %s must be []types.PortBinding, not %T", what, labelPortMap, v)
		}
		pbs = l
	}
	if v, ok := opts[labelExposedPorts]; ok && v != nil {
		l, ok := v.([]types.TransportPort)
		if !ok {
			return nil, nil, types.BadRequestErrorf("%s: option %s must be []types.TransportPort, not %T", what, labelExposedPorts, v)
		}
		eps = l
	}
	return pbs, eps, nil
}

// operPortOption reads netlabel.OperPortMap from a label map: nil when
// absent, an error when not a []types.PortBinding.
func operPortOption(what string, opts map[string]any) ([]types.PortBinding, error) {
	v, ok := opts[netlabel.OperPortMap]
	if !ok || v == nil {
		return nil, nil
	}
	l, ok := v.([]types.PortBinding)
	if !ok {
		return nil, types.BadRequestErrorf("%s: option %s must be []types.PortBinding, not %T", what, netlabel.OperPortMap, v)
	}
	return l, nil
}

// pruneUnclaimed drops the rules and port map elements a previous process left for networks and
// endpoints that were not set up again in this one (see CollectGarbage).
func (h *hostFirewall) pruneUnclaimed() error { return h.fw.PruneUnclaimed() }
