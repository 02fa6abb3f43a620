package libnetwork

import (
	"errors"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// allocatePools requests the network's pools, gateways and aux addresses,
// pushing the release of each onto undo.
func (n *Network) allocatePools(undo *undo.Stack) error {
	if n.addrSpace == "" {
		if n.scope == "global" {
			n.addrSpace = n.ipam.global
		} else {
			n.addrSpace = n.ipam.local
		}
	}
	if !n.disableIPv4 {
		v4 := n.ipamV4Config
		if len(v4) == 0 {
			v4 = []*IpamConf{{}}
		}
		infos, err := n.allocateFamily(v4, false, undo)
		if err != nil {
			return err
		}
		n.ipamV4Info = infos
	}
	if !n.enableIPv6 {
		return nil
	}
	v6 := n.ipamV6Config
	if len(v6) == 0 {
		v6 = []*IpamConf{{}}
	}
	var err error
	n.ipamV6Info, err = n.allocateFamily(v6, true, undo)
	return err
}

func (n *Network) allocateFamily(confs []*IpamConf, v6 bool, undo *undo.Stack) ([]*IpamInfo, error) {
	var infos []*IpamInfo
	for _, conf := range confs {
		req := ipamapi.PoolRequest{
			AddressSpace: n.addrSpace, Pool: conf.PreferredPool, SubPool: conf.SubPool,
			Options: n.ipamOptions, V6: v6,
		}
		if conf.PreferredPool == "" {
			req.Exclude = n.ctrl.usedPrefixes(v6, n.id)
		}
		pool, err := n.ipam.RequestPool(req)
		if err != nil {
			return nil, types.Wrapf(err, "requesting address pool for network %s", n.name)
		}
		info := &IpamInfo{PoolID: pool.PoolID, Meta: pool.Meta}
		undo.PushFunc(func() { n.releaseInfo(info) })
		info.AddressSpace = n.addrSpace
		info.Pool = prefixToIPNet(pool.Pool)
		if err := n.allocateGateway(info, conf); err != nil {
			return nil, err
		}
		if err := n.reserveAux(info, conf); err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}

func (n *Network) allocateGateway(info *IpamInfo, conf *IpamConf) error {
	gwOpts := map[string]string{ipamapi.RequestAddressType: netlabel.Gateway}
	var prefer netip.Addr
	switch {
	case conf.Gateway != "":
		a, err := netip.ParseAddr(conf.Gateway)
		if err != nil {
			return types.BadRequestErrorf("invalid gateway %s for network %s: %w", conf.Gateway, n.name, err)
		}
		prefer = a.Unmap()
	case info.Meta[netlabel.Gateway] != "":
		gw, err := types.ParseCIDR(info.Meta[netlabel.Gateway])
		if err != nil {
			return types.BadRequestErrorf("invalid gateway %q returned by IPAM for network %s: %w", info.Meta[netlabel.Gateway], n.name, err)
		}
		if !info.Pool.Contains(gw.IP) {
			return types.InternalErrorf("gateway %s returned by IPAM for network %s is outside pool %s", gw.IP, n.name, info.Pool)
		}
		info.Gateway = gw
		return nil
	}
	gw, _, err := n.ipam.RequestAddress(info.PoolID, prefer, gwOpts)
	if err != nil {
		return types.Wrapf(err, "requesting gateway address for network %s", n.name)
	}
	if !gw.IsValid() {
		return nil
	}
	// A driver may answer another gateway than asked (a plugin has its own
	// rules): its answer is used, if it is in the pool.
	if pool := ipNetToPrefix(info.Pool); !pool.Contains(gw.Addr()) {
		_ = n.ipam.ReleaseAddress(info.PoolID, gw.Addr())
		return types.InternalErrorf("requesting gateway address for network %s: IPAM driver %s answered %s, outside pool %s", n.name, n.ipamType, gw.Addr(), pool)
	}
	info.Gateway = prefixToIPNet(gw)
	info.gwFromIPAM = true
	return nil
}

// requestExact asks IPAM for exactly addr in the pool. An answer other
// than addr is given back and fails: the caller needs that very address
// (a record's, or an explicit one).
func (n *Network) requestExact(poolID string, addr netip.Addr, opts map[string]string) error {
	got, _, err := n.ipam.RequestAddress(poolID, addr, opts)
	if err != nil {
		return err
	}
	if got.Addr() != addr {
		if got.IsValid() {
			_ = n.ipam.ReleaseAddress(poolID, got.Addr())
		}
		return types.InternalErrorf("IPAM driver %s answered %s for address %s in pool %s", n.ipamType, got.Addr(), addr, poolID)
	}
	return nil
}

func (n *Network) reserveAux(info *IpamInfo, conf *IpamConf) error {
	if len(conf.AuxAddresses) == 0 {
		return nil
	}
	info.AuxAddresses = map[string]*net.IPNet{}
	info.auxFromIPAM = map[string]bool{}
	for name, s := range conf.AuxAddresses {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return types.BadRequestErrorf("invalid auxiliary address %s=%s for network %s: %w", name, s, n.name, err)
		}
		a = a.Unmap()
		pool := ipNetToPrefix(info.Pool)
		if !pool.Contains(a) {
			return types.BadRequestErrorf("auxiliary address %s=%s is outside pool %s of network %s", name, s, pool, n.name)
		}
		info.AuxAddresses[name] = prefixToIPNet(netip.PrefixFrom(a, pool.Bits()))
		err = n.requestExact(info.PoolID, a, nil)
		switch {
		case err == nil:
			info.auxFromIPAM[name] = true
		case errors.Is(err, ipamapi.ErrIPOutOfRange):
			// Outside the sub-pool: nothing there to reserve.
		default:
			return types.Wrapf(err, "reserving auxiliary address %s=%s for network %s", name, s, n.name)
		}
	}
	return nil
}

// releaseInfo gives back what allocateFamily got for one pool.
func (n *Network) releaseInfo(info *IpamInfo) {
	for name, used := range info.auxFromIPAM {
		if used {
			_ = n.ipam.ReleaseAddress(info.PoolID, ipNetToPrefix(info.AuxAddresses[name]).Addr())
		}
	}
	if info.gwFromIPAM && info.Gateway != nil {
		_ = n.ipam.ReleaseAddress(info.PoolID, ipNetToPrefix(info.Gateway).Addr())
	}
	_ = n.ipam.ReleasePool(info.PoolID)
}

func (n *Network) releasePools() {
	if n.ipam == nil {
		return
	}
	for _, info := range append(append([]*IpamInfo(nil), n.ipamV4Info...), n.ipamV6Info...) {
		n.releaseInfo(info)
	}
}

// usedPrefixes lists what an automatically chosen pool must not overlap:
// the host namespace's routes (but not default routes) and the pools of
// every other network.
func (c *Controller) usedPrefixes(v6 bool, except string) []netip.Prefix {
	family := netlink.FAMILY_V4
	if v6 {
		family = netlink.FAMILY_V6
	}
	var out []netip.Prefix
	if routes, err := c.hostNL.RouteList(nil, family); err == nil {
		for _, r := range routes {
			if r.Dst == nil {
				continue
			}
			if p := ipNetToPrefix(r.Dst); p.IsValid() && p.Bits() > 0 && !p.Addr().IsLinkLocalUnicast() {
				out = append(out, p.Masked())
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, nw := range c.networks {
		if id == except {
			continue
		}
		infos := nw.ipamV4Info
		if v6 {
			infos = nw.ipamV6Info
		}
		for _, i := range infos {
			if p := ipNetToPrefix(i.Pool); p.IsValid() && p.Bits() > 0 {
				out = append(out, p.Masked())
			}
		}
	}
	return out
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	if !p.IsValid() {
		return nil
	}
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

func ipNetToPrefix(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}
	}
	a = a.Unmap()
	if a.Is4() && bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(a, ones)
}

func ipToAddr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}
