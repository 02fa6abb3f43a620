// Package bridge is the CNM bridge driver: one Linux bridge per network in
// the controller's host namespace, one veth pair per joined endpoint.
//
// All kernel work goes through a single netlink handle opened in the host
// namespace; the only namespace switch is netnsutil.NS.Do for writes under
// /proc/sys. At Join the container end of the veth is created directly
// inside the sandbox's namespace, in the same netlink request as the host
// end, so a crash can never leave a half-moved pair on the host.
//
// Leave only takes the host end of a veth down; one background goroutine
// (stopped by Close) deletes retired veths in batches, because each device
// deletion makes the kernel wait ~20 ms (see reaper.go).
//
// Firewalling (NAT, isolation, published ports) goes through the fw seam
// (firewall.go): with EnableIPTables (the default) it is the firewall and
// portmapper packages on the host namespace (hostfw.go). Published ports
// are unpublished off the caller's path: iptables-nft deletions cost
// 10-20 ms a transaction, so a background worker batches them (see
// portmapper.Release).
//
// Differences from upstream libnetwork, on purpose:
//   - ICC and masquerade default to true whether options come as string
//     labels or as options.Generic (upstream: false for the latter).
//   - Driver defaults are iptables, ip6tables and forwarding on, userland
//     proxy off (upstream: everything off). No proxy process is ever run:
//     EnableUserlandProxy=true behaves as false (published ports stay
//     reachable from the host's loopback by NAT) and UserlandProxyPath
//     names nothing to run; both are only reported by Notices.
//   - Without EnableIPTables there is no NAT, so published ports are
//     refused (BadRequest) instead of being accepted and never answering.
//   - Teardown of an unknown network or endpoint succeeds (upstream returns
//     NotFound or a maskable error), so the controller can retry freely.
//   - The bridge MAC is pinned at creation (derived from the gateway), so
//     it does not change as ports come and go.
//   - A pre-existing bridge keeps its other addresses; the driver only adds
//     the ones it needs and removes exactly those again.
package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

// NetworkType is the name of this driver.
const NetworkType = "bridge"

// Capability returns the bridge driver's capability: its state and its
// connectivity are both local to one host.
func Capability() driverapi.Capability {
	return driverapi.Capability{DataScope: driverapi.LocalScope, ConnectivityScope: driverapi.LocalScope}
}

// ServesNames reports whether the controller's embedded resolver answers
// for the network's endpoints: not on a network made with the legacy
// DefaultBridge option (Docker's default bridge, where containers find
// each other through links in /etc/hosts instead). The option is read in
// every form CreateNetwork accepts (label string, or struct-field name
// with a bool or string). It runs per DNS query, so it allocates nothing.
func (d *Driver) ServesNames(options map[string]any) bool { return !defaultBridgeOption(options) }

func defaultBridgeOption(generic map[string]any) bool {
	truthy := func(v any) bool {
		switch v := v.(type) {
		case bool:
			return v
		case string:
			if v == "" {
				return false // ParseBool("") allocates its error
			}
			b, err := strconv.ParseBool(v)
			return err == nil && b
		}
		return false
	}
	switch g := generic[netlabel.GenericData].(type) {
	case map[string]string:
		return truthy(g[DefaultBridge])
	case options.Generic:
		return truthy(g[DefaultBridge]) || truthy(g["DefaultBridge"])
	case map[string]any:
		return truthy(g[DefaultBridge]) || truthy(g["DefaultBridge"])
	}
	return false
}

// Driver is the bridge network driver. It is safe for concurrent use.
type Driver struct {
	host *netnsutil.NS   // the controller's host namespace; owned by the caller
	nl   *netlink.Handle // every netlink request; safe for concurrent use
	// raw sends the requests the netlink library has no call for; it
	// serialises its users.
	raw *nl.SocketHandle
	// reaper deletes left veths in the background (see reaper.go).
	reaper vethReaper
	// ipv6Conf is the host's /proc/sys/net/ipv6/conf, kept open so that a
	// join's sysctl write costs O(1) however many sandboxes exist (see
	// netnsutil.SysctlDir); nil when the kernel has no IPv6.
	ipv6Conf *netnsutil.SysctlDir
	cfg      driverConfig

	// fw programs the host firewall: a *hostFirewall with iptables, a
	// noFirewall without (never nil).
	fw firewaller
	// failAfter, when set by a test, is called after each named step of a
	// multi-step kernel operation; an error it returns is treated as that
	// step's failure, to prove that the rollback leaves nothing behind.
	failAfter func(step string) error

	// linkMu serialises every change of legacy link rules and of the
	// endpoint fields they are computed from (links.go). Taken before mu.
	linkMu sync.Mutex

	// Lock order: mu is a leaf; it is never held across netlink or sysctl
	// work. Kernel work on one network or endpoint is kept exclusive by the
	// state flags below (creating/deleting, endpoint busy), not by locks.
	mu       sync.Mutex
	networks map[string]*network // guarded by mu; includes networks being created or deleted
}

var _ driverapi.Driver = (*Driver)(nil)
var _ driverapi.ExternalConnectivity = (*Driver)(nil)
var _ driverapi.Closer = (*Driver)(nil)

// The optional contracts drivertest.Run checks only where they are
// implemented: asserted here so a drifted signature fails to compile
// instead of skipping its conformance check.
var (
	_ driverapi.JoinRestorer     = (*Driver)(nil)
	_ driverapi.GarbageCollector = (*Driver)(nil)
	_ driverapi.NetworkAbandoner = (*Driver)(nil)
	_ driverapi.FirewallRepairer = (*Driver)(nil)
	_ driverapi.NameServer       = (*Driver)(nil)
	_ driverapi.NetworkValidator = (*Driver)(nil)
)

// New returns a bridge driver that puts bridges and host-side veth ends
// into host. cfg is config.Config.DriverCfg["bridge"]: its
// netlabel.GenericData entry (options.Generic, map[string]any or
// map[string]string) may set EnableIPForwarding, EnableIPTables,
// EnableIP6Tables, EnableUserlandProxy and UserlandProxyPath.
//
// With EnableIPTables, New sets up the global chains in host (adopting
// rules a previous process left). With EnableIPForwarding it turns on
// net.ipv4.ip_forward in host; only when it flipped it from 0 itself (and
// iptables is on) does it also set the FORWARD policy to DROP, so a host
// that already routed keeps its policy (firewall.EnableIPForwarding).
// cfg's netlabel.Logger entry (*slog.Logger; none: discard) receives what
// background work did or failed to do: firewall repairs, veth reaping,
// port releases.
// Neither is undone at Close: other users of the host may rely on them.
func New(host *netnsutil.NS, cfg map[string]any) (_ *Driver, err error) {
	if host == nil {
		return nil, types.BadRequestErrorf("creating bridge driver: no host namespace")
	}
	dc, err := parseDriverConfig(cfg)
	if err != nil {
		return nil, err
	}
	h, err := netlink.NewHandleAt(host.Handle())
	if err != nil {
		return nil, types.InternalErrorf("creating bridge driver: netlink handle in %s: %w", host.Path(), err)
	}
	sock, err := rawSocket(host)
	if err != nil {
		h.Close()
		return nil, types.InternalErrorf("creating bridge driver: netlink socket in %s: %w", host.Path(), err)
	}
	log, _ := cfg[netlabel.Logger].(*slog.Logger)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r, err := newReaper(host, log)
	if err != nil {
		sock.Close()
		h.Close()
		return nil, types.InternalErrorf("creating bridge driver: %w", err)
	}
	d := &Driver{host: host, nl: h, raw: &nl.SocketHandle{Socket: sock}, reaper: r, cfg: dc, networks: map[string]*network{}, fw: noFirewall{}}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.ipv6Conf, err = host.OpenSysctlDir("net/ipv6/conf"); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return nil, types.InternalErrorf("creating bridge driver: %w", err)
		}
		d.ipv6Conf, err = nil, nil
	}
	var fw *firewall.Firewall
	if dc.EnableIPTables {
		var k fwKnobs // every 0: chosen by what events can see (newHostFirewall)
		if d, ok := cfg[knobs.BridgeRepairEvery].(time.Duration); ok && d > 0 {
			k.every = d
		}
		k.legacy, _ = cfg[knobs.BridgeIPTablesLegacy].(bool)
		k.noEvents, _ = cfg[knobs.BridgeNoEvents].(bool)
		hf, err := newHostFirewall(host, dc, log, k)
		if err != nil {
			return nil, types.Wrapf(err, "creating bridge driver")
		}
		d.fw, fw = hf, hf.fw
	}
	if dc.EnableIPForwarding {
		// Containers reach beyond their bridge only if the host routes.
		if _, err := firewall.EnableIPForwarding(firewall.NSSysctl{NS: host}, fw, false); err != nil {
			return nil, types.Wrapf(err, "creating bridge driver")
		}
	}
	return d, nil
}

// Notices returns what the controller should log once about the driver's
// configuration: options accepted for drop-in callers that have nothing
// to do here (no userland proxy is ever run; see CONTRACT.md).
func (d *Driver) Notices() []string {
	var out []string
	if d.cfg.EnableUserlandProxy {
		out = append(out, "bridge driver: EnableUserlandProxy=true: no userland proxy is run; published ports are reached by NAT, from the host's loopback too, as with false")
	}
	if d.cfg.UserlandProxyPath != "" {
		out = append(out, fmt.Sprintf("bridge driver: UserlandProxyPath %q: nothing is run", d.cfg.UserlandProxyPath))
	}
	return out
}

// Type returns "bridge".
func (d *Driver) Type() string { return NetworkType }

// Close finishes deleting the veths of left endpoints and releases the
// driver's netlink sockets. Networks and joined endpoints stay in the
// kernel: the controller deletes them, or a restart adopts them.
func (d *Driver) Close() error {
	err := d.fw.close()
	d.reaper.close()
	_ = d.ipv6Conf.Close()
	d.raw.Socket.Close()
	d.nl.Close()
	return err
}

// step runs the test hook for a finished step; nil in production.
func (d *Driver) step(name string) error {
	if d.failAfter == nil {
		return nil
	}
	if err := d.failAfter(name); err != nil {
		return types.InternalErrorf("injected failure after %s: %w", name, err)
	}
	return nil
}
