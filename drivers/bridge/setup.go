package bridge

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/drivers/internal/linkerr"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/macaddr"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/types"
)

// bridgeIPv6LinkLocal is the address every IPv6 bridge carries, so that
// containers have a fixed next hop whatever the v6 subnet.
var bridgeIPv6LinkLocal = &net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)}

// setupNetwork does the kernel work of CreateNetwork. On failure it undoes
// every step it finished and returns the error; on success it returns the
// stack that undoes exactly its work, for DeleteNetwork.
//
// When the driver creates the bridge, deleting the bridge is the only undo
// needed: addresses and per-device sysctls go with it. For a pre-existing
// bridge each change is undone one by one and the bridge stays.
func (d *Driver) setupNetwork(c *networkConfig) (teardown undo.Stack, brIndex int, err error) {
	var rollback undo.Stack
	success := false
	defer func() {
		if uerr := rollback.Unless(&success); uerr != nil {
			err = errors.Join(err, fmt.Errorf("rolling back bridge network %s: %w", c.ID, uerr))
		}
	}()
	// both registers an undo for rollback and for DeleteNetwork.
	both := func(f func() error) { rollback.Push(f); teardown.Push(f) }

	br, created, err := d.ensureBridge(c)
	if err != nil {
		return undo.Stack{}, 0, err
	}
	if created {
		del := func() error { return d.delLinkByName(c.BridgeName) }
		rollback.Push(del)
		// The legacy default bridge outlives its network, as docker0 does.
		if !c.DefaultBridge {
			teardown.Push(del)
		}
	}
	// onExisting registers an undo that matters only on an adopted bridge.
	onExisting := func(f func() error) {
		if !created {
			both(f)
		}
	}
	if err := d.step("bridge"); err != nil {
		return undo.Stack{}, 0, err
	}

	old, err := d.swapSysctls(bridgeSysctls(c, d.cfg.EnableIPForwarding))
	// Restore what was written even when a later write failed.
	onExisting(func() error { return d.writeSysctls(old) })
	if err != nil {
		return undo.Stack{}, 0, types.InternalErrorf("configuring bridge %s: %w", c.BridgeName, err)
	}
	if err := d.step("sysctl"); err != nil {
		return undo.Stack{}, 0, err
	}

	for _, a := range bridgeAddrs(c) {
		added, err := d.ensureAddr(br, a)
		if err != nil {
			return undo.Stack{}, 0, err
		}
		if added {
			a := a
			onExisting(func() error { return d.delAddr(br, a) })
		}
		if err := d.step("addr " + a.String()); err != nil {
			return undo.Stack{}, 0, err
		}
	}

	if br.Attrs().Flags&net.FlagUp == 0 {
		if err := d.nl.LinkSetUp(br); err != nil {
			return undo.Stack{}, 0, types.InternalErrorf("setting bridge %s up: %w", c.BridgeName, err)
		}
		onExisting(func() error { return ignoreGone(d.nl.LinkSetDown(br)) })
	}
	if err := d.step("up"); err != nil {
		return undo.Stack{}, 0, err
	}

	if c.EnableIPv6 && c.PoolIPv6 != nil && d.cfg.EnableIPForwarding {
		// Host-wide and shared by every v6 network: set, never reset. As
		// for IPv4 in New, the ip6tables FORWARD policy becomes DROP only
		// if this flipped forwarding on.
		var fw *firewall.Firewall
		if hf, ok := d.fw.(*hostFirewall); ok {
			fw = hf.fw
		}
		if _, err := firewall.EnableIPForwarding(firewall.NSSysctl{NS: d.host}, fw, true); err != nil {
			return undo.Stack{}, 0, types.InternalErrorf("enabling ipv6 forwarding for bridge %s: %w", c.BridgeName, err)
		}
	}

	if err := d.fw.addNetwork(c); err != nil {
		return undo.Stack{}, 0, types.Wrapf(err, "programming firewall for bridge network %s", c.ID)
	}
	both(func() error { return d.fw.delNetwork(c) })
	if err := d.step("firewall"); err != nil {
		return undo.Stack{}, 0, err
	}

	success = true
	return teardown, br.Attrs().Index, nil
}

// ensureBridge returns the bridge named in c, creating it if absent.
// created reports whether this call made it.
func (d *Driver) ensureBridge(c *networkConfig) (br netlink.Link, created bool, err error) {
	existing := func() (netlink.Link, error) {
		l, err := d.nl.LinkByName(c.BridgeName)
		if err != nil {
			return nil, err
		}
		if _, ok := l.(*netlink.Bridge); !ok {
			return nil, types.ForbiddenErrorf("creating bridge network %s: link %s exists and is a %s, not a bridge", c.ID, c.BridgeName, l.Type())
		}
		return l, nil
	}
	l, err := existing()
	if err == nil {
		// A bridge tagged with this network's ID is one an earlier run of
		// the driver made (a restart): it is still ours to delete.
		ours := l.Attrs().Alias == networkTag(c.ID)
		// An adopted bridge whose MAC nobody set takes the lowest of its
		// ports' MACs, so joins and leaves would change the gateway's MAC
		// under the containers' neighbour caches. Setting the MAC it has
		// marks it set (the kernel's addr_assign_type), which stops that.
		// A bridge the driver made (tagged, or in BridgeGroup after a crash
		// before the tag) got its MAC in the creating request, so it is set
		// already, and it must not be set again: any MAC change, even to
		// the same value, makes the kernel flush every neighbour entry of
		// the bridge, the permanent ones the host reaches kept containers
		// through included (see neigh.go), and their flows stall until
		// the restore re-adds them.
		if !ours && l.Attrs().Group != BridgeGroup {
			if err := d.nl.LinkSetHardwareAddr(l, l.Attrs().HardwareAddr); err != nil && !isLinkNotFound(err) {
				return nil, false, types.InternalErrorf("pinning the mac of bridge %s: %w", c.BridgeName, err)
			}
		}
		return l, ours, nil
	}
	if !isLinkNotFound(err) {
		return nil, false, types.Wrapf(err, "looking up bridge %s", c.BridgeName)
	}
	if c.DefaultBridge && c.BridgeName != defaultBridgeName {
		return nil, false, types.ForbiddenErrorf("creating bridge network %s: default bridge %s must be created beforehand", c.ID, c.BridgeName)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = c.BridgeName
	attrs.MTU = c.Mtu
	// A bridge without a set MAC takes the lowest of its ports' MACs and
	// changes it as containers come and go, which breaks neighbours'
	// caches. Pin one derived from the gateway: stable across restarts.
	attrs.HardwareAddr = bridgeMAC(c.AddressIPv4)
	// The group, unlike the alias, is set by the creating request itself,
	// so a crash before the alias lands still leaves the bridge marked ours.
	attrs.Group = BridgeGroup
	b := &netlink.Bridge{LinkAttrs: attrs}
	if err := d.nl.LinkAdd(b); err != nil {
		if errors.Is(err, unix.EEXIST) {
			// Made by someone else since the lookup: adopt it if it is a bridge.
			l, err := existing()
			if err != nil {
				return nil, false, types.Wrapf(err, "looking up bridge %s", c.BridgeName)
			}
			return l, false, nil
		}
		return nil, false, types.InternalErrorf("creating bridge %s: %w", c.BridgeName, err)
	}
	// The kernel ignores an alias given at creation; set it now.
	if err := d.nl.LinkSetAlias(b, networkTag(c.ID)); err != nil {
		_ = d.delLinkByName(c.BridgeName)
		return nil, false, types.InternalErrorf("tagging bridge %s: %w", c.BridgeName, err)
	}
	return b, true, nil
}

// bridgeMAC is 02:42 followed by the gateway's four bytes, or random when
// the bridge has no IPv4 gateway.
func bridgeMAC(gw *net.IPNet) net.HardwareAddr {
	if gw != nil {
		if v4 := gw.IP.To4(); v4 != nil {
			return net.HardwareAddr{0x02, 0x42, v4[0], v4[1], v4[2], v4[3]}
		}
	}
	return macaddr.Random()
}

// bridgeAddrs lists the addresses the bridge must carry.
func bridgeAddrs(c *networkConfig) []*net.IPNet {
	var addrs []*net.IPNet
	if !c.InhibitIPv4 && !c.isolated(false) && c.AddressIPv4 != nil {
		addrs = append(addrs, c.AddressIPv4)
	}
	if c.EnableIPv6 && !c.isolated(true) {
		addrs = append(addrs, bridgeIPv6LinkLocal)
		if c.AddressIPv6 != nil {
			addrs = append(addrs, c.AddressIPv6)
		}
	}
	return addrs
}

// ensureAddr adds a to link unless it is there; added reports whether it
// was added by this call.
func (d *Driver) ensureAddr(link netlink.Link, a *net.IPNet) (added bool, err error) {
	family := netlink.FAMILY_V4
	if a.IP.To4() == nil {
		family = netlink.FAMILY_V6
	}
	addrs, err := d.nl.AddrList(link, family)
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		addrs, err = d.nl.AddrList(link, family)
	}
	if err != nil {
		return false, types.InternalErrorf("listing addresses of %s: %w", link.Attrs().Name, err)
	}
	for _, have := range addrs {
		if have.IP.Equal(a.IP) {
			if have.Mask.String() != a.Mask.String() {
				return false, types.ForbiddenErrorf("bridge %s already has %s with another prefix length", link.Attrs().Name, have.IPNet)
			}
			return false, nil
		}
	}
	addr := &netlink.Addr{IPNet: a}
	if family == netlink.FAMILY_V6 {
		// Skip duplicate address detection: the bridge is the only holder
		// by construction, and DAD would leave the gateway "tentative"
		// (unusable) for a second after every create.
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := d.nl.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return false, types.InternalErrorf("adding address %s to %s: %w", a, link.Attrs().Name, err)
	}
	return true, nil
}

func (d *Driver) delAddr(link netlink.Link, a *net.IPNet) error {
	err := d.nl.AddrDel(link, &netlink.Addr{IPNet: a})
	if err == nil || errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return types.InternalErrorf("removing address %s from %s: %w", a, link.Attrs().Name, err)
}

// delLinkByName deletes a link; one that is already gone is not an error.
func (d *Driver) delLinkByName(name string) error {
	l, err := d.nl.LinkByName(name)
	if err != nil {
		if isLinkNotFound(err) {
			return nil
		}
		return types.InternalErrorf("looking up link %s: %w", name, err)
	}
	if err := ignoreGone(d.nl.LinkDel(l)); err != nil {
		return types.InternalErrorf("deleting link %s: %w", name, err)
	}
	return nil
}

// The local names keep the call sites short; the classification is
// shared with the other link-owning drivers.
func isLinkNotFound(err error) bool { return linkerr.IsNotFound(err) }

func ignoreGone(err error) error { return linkerr.IgnoreGone(err) }

// sysctl is one value under /proc/sys. optional ones are skipped when the
// file does not exist (IPv6 disabled on the kernel command line).
type sysctl struct {
	path     string
	value    string
	optional bool
}

// bridgeSysctls are the per-device settings a bridge needs; forwarding
// is the driver's EnableIPForwarding.
func bridgeSysctls(c *networkConfig, forwarding bool) []sysctl {
	br := c.BridgeName
	var list []sysctl
	if c.EnableIPv6 && c.isolated(true) {
		// No address at all, the kernel's link-local one included
		// (generated when IPv6 comes up on the link, so set first).
		list = append(list, sysctl{path: "net/ipv6/conf/" + br + "/addr_gen_mode", value: "1"})
	}
	if c.EnableIPv6 {
		list = append(list, sysctl{path: "net/ipv6/conf/" + br + "/disable_ipv6", value: "0"})
	}
	// The bridge is a router for its containers: it must not configure
	// itself from router advertisements arriving on it.
	list = append(list, sysctl{path: "net/ipv6/conf/" + br + "/accept_ra", value: "0", optional: !c.EnableIPv6})
	if c.EnableIPv6 && forwarding && !c.isolated(true) {
		// The bridge answers neighbour solicitations for its containers'
		// IPv6 addresses (neigh.go): proxy NDP, which the kernel does only
		// on a forwarding interface, and at once rather than after the
		// random delay meant for proxies that may lose to the owner (the
		// owner's port never sees the solicitation).
		list = append(list,
			sysctl{path: "net/ipv6/conf/" + br + "/forwarding", value: "1"},
			sysctl{path: "net/ipv6/conf/" + br + "/proxy_ndp", value: "1"},
			sysctl{path: "net/ipv6/neigh/" + br + "/proxy_delay", value: "0"})
	}
	// DNAT of published ports reached through 127.0.0.1 needs
	// loopback-sourced packets to be routable out of the bridge. There is
	// no userland proxy to carry them instead, whatever
	// EnableUserlandProxy says.
	list = append(list, sysctl{path: "net/ipv4/conf/" + br + "/route_localnet", value: "1"})
	return list
}

// swapSysctls writes list in the host namespace and returns the previous
// values of the entries it changed, also when it fails half way.
func (d *Driver) swapSysctls(list []sysctl) (old []sysctl, err error) {
	err = d.host.Do(func() error {
		for _, s := range list {
			p := filepath.Join("/proc/sys", s.path)
			prev, err := os.ReadFile(p)
			if err != nil {
				if s.optional && errors.Is(err, os.ErrNotExist) {
					continue
				}
				return fmt.Errorf("reading %s: %w", p, err)
			}
			cur := strings.TrimSpace(string(prev))
			if cur == s.value {
				continue
			}
			if err := os.WriteFile(p, []byte(s.value), 0o644); err != nil {
				return fmt.Errorf("writing %s: %w", p, err)
			}
			old = append(old, sysctl{path: s.path, value: cur, optional: true})
		}
		return nil
	})
	return old, err
}

// writeSysctls writes list in the host namespace. Optional entries whose
// file is gone (a device deleted meanwhile) are skipped.
func (d *Driver) writeSysctls(list []sysctl) error {
	if len(list) == 0 {
		return nil
	}
	return d.host.Do(func() error {
		for _, s := range list {
			p := filepath.Join("/proc/sys", s.path)
			if err := os.WriteFile(p, []byte(s.value), 0o644); err != nil {
				if s.optional && errors.Is(err, os.ErrNotExist) {
					continue
				}
				return fmt.Errorf("writing %s: %w", p, err)
			}
		}
		return nil
	})
}
