package osl

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/names"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// InterfaceConfig describes a link to put into the sandbox.
type InterfaceConfig struct {
	// SrcName is a link in the host namespace to move in (via hostNL) and
	// rename to DstName. Empty when the link already exists inside the
	// sandbox under DstName (a driver created it there directly).
	SrcName string
	// HostNS is the namespace hostNL is open in. Required with SrcName: a
	// netlink handle cannot name its own namespace, and moving the link back
	// (on rollback or RemoveInterface) needs it. The sandbox keeps the
	// pointer until the interface is removed; the caller keeps it open.
	HostNS *netnsutil.NS
	// DstName is the name inside the sandbox (usually from ReserveName).
	DstName string
	// MacAddress is set if non-nil and different from the link's.
	MacAddress net.HardwareAddr
	// MTU is set if > 0.
	MTU int
	// Address is the IPv4 address, or nil. It must not overlap a route
	// already in the sandbox.
	Address *net.IPNet
	// AddressIPv6 is the IPv6 address, or nil. It is added without duplicate
	// address detection, and IPv6 is enabled on the interface and on lo.
	AddressIPv6 *net.IPNet
	// LinkLocal are extra link-local addresses (either family).
	LinkLocal []*net.IPNet
	// Routes are extra connected routes through this interface.
	Routes []*net.IPNet
}

// Interface is an interface the sandbox holds, as configured.
type Interface struct {
	SrcName     string // host-side name it returns to; empty if it was created inside
	DstName     string
	MacAddress  net.HardwareAddr // as read back from the kernel
	MTU         int              // as read back from the kernel
	Address     *net.IPNet
	AddressIPv6 *net.IPNet
	LinkLocal   []*net.IPNet
	Routes      []*net.IPNet
}

type iface struct {
	Interface
	host *netnsutil.NS // where a moved-in link goes back to
}

func (i *iface) copy() Interface {
	c := i.Interface
	c.MacAddress = types.GetMacCopy(i.MacAddress)
	c.Address = types.GetIPNetCopy(i.Address)
	c.AddressIPv6 = types.GetIPNetCopy(i.AddressIPv6)
	c.LinkLocal = copyNets(i.LinkLocal)
	c.Routes = copyNets(i.Routes)
	return c
}

func copyNets(in []*net.IPNet) []*net.IPNet {
	if in == nil {
		return nil
	}
	out := make([]*net.IPNet, len(in))
	for i, n := range in {
		out[i] = types.GetIPNetCopy(n)
	}
	return out
}

func (c *InterfaceConfig) validate(hostNL *netlink.Handle) error {
	if c.DstName == "lo" {
		return types.BadRequestErrorf("adding interface lo: invalid name")
	}
	if err := names.Iface(c.DstName); err != nil {
		return types.Wrapf(err, "adding interface: invalid name")
	}
	if c.SrcName != "" {
		if err := names.Iface(c.SrcName); err != nil {
			return types.Wrapf(err, "adding interface %s: invalid source name", c.DstName)
		}
	}
	switch {
	case c.SrcName != "" && (hostNL == nil || c.HostNS == nil):
		return types.BadRequestErrorf("adding interface %s: moving host link %s in needs the host netlink handle and HostNS", c.DstName, c.SrcName)
	case c.Address != nil && c.Address.IP.To4() == nil:
		return types.BadRequestErrorf("adding interface %s: %s is not an IPv4 address", c.DstName, c.Address)
	case c.AddressIPv6 != nil && (c.AddressIPv6.IP.To4() != nil || len(c.AddressIPv6.IP) != net.IPv6len):
		return types.BadRequestErrorf("adding interface %s: %s is not an IPv6 address", c.DstName, c.AddressIPv6)
	case c.MTU < 0:
		return types.BadRequestErrorf("adding interface %s: invalid MTU %d", c.DstName, c.MTU)
	}
	return nil
}

// wantsIPv6 reports whether the interface gets any IPv6 address.
func (c *InterfaceConfig) wantsIPv6() bool {
	if c.AddressIPv6 != nil {
		return true
	}
	for _, ll := range c.LinkLocal {
		if ll.IP.To4() == nil {
			return true
		}
	}
	return false
}

// strip undoes AddInterface's configuration of a link created inside the
// sandbox: its routes and addresses go, and it is left down. Errors are
// ignored: the driver deletes the link anyway.
func (s *Sandbox) strip(link netlink.Link, addrs []netlink.Addr, routes []*netlink.Route) {
	for _, r := range routes {
		_ = s.nl.RouteDel(r)
	}
	for i := range addrs {
		_ = s.nl.AddrDel(link, &addrs[i])
	}
	_ = s.nl.LinkSetDown(link)
}

// moveOut sends a moved-in link back to the host: down, renamed to
// srcName, moved into host. Moving drops its addresses and routes.
func (s *Sandbox) moveOut(link netlink.Link, srcName string, host *netnsutil.NS) error {
	if err := s.nl.LinkSetDown(link); err != nil {
		return kernelErr(err, "setting %s down", link.Attrs().Name)
	}
	name := link.Attrs().Name
	if name != srcName {
		if err := s.nl.LinkSetName(link, srcName); err != nil {
			return kernelErr(err, "renaming %s back to %s", name, srcName)
		}
	}
	if err := s.nl.LinkSetNsFd(link, host.Fd()); err != nil {
		if name != srcName {
			_ = s.nl.LinkSetName(link, name)
		}
		return kernelErr(err, "moving %s back to the host namespace", srcName)
	}
	return nil
}

// RemoveInterface takes dstName out of the sandbox. A link moved in by
// AddInterface is set down, renamed back to its SrcName and moved back to
// the host namespace; any other link (created inside, or found by Open) is
// deleted, which for a veth also deletes its peer. An interface that is
// already gone is not an error.
func (s *Sandbox) RemoveInterface(dstName string) error {
	if dstName == "lo" || dstName == "" {
		return types.BadRequestErrorf("removing interface %q from sandbox %s: invalid name", dstName, s.key)
	}
	op := fmt.Sprintf("removing interface %s from sandbox %s", dstName, s.key)
	if err := s.use(op); err != nil {
		return err
	}
	defer s.life.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()

	rec := s.ifaces[dstName]
	link, err := s.nl.LinkByName(dstName)
	switch {
	case err != nil && isGone(err):
	case err != nil:
		return kernelErr(err, "%s: finding link", op)
	case rec != nil && rec.SrcName != "" && rec.host != nil:
		if err := s.moveOut(link, rec.SrcName, rec.host); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	default:
		if err := s.nl.LinkDel(link); err != nil && !isGone(err) {
			return kernelErr(err, "%s: deleting link", op)
		}
	}
	delete(s.ifaces, dstName)
	s.settleLoopbackIPv6()
	return nil
}

// DetachInterface takes an interface out of service at once without paying
// for its deletion: a link created inside the sandbox is set down, loses its
// addresses and is renamed "gone<ifindex>", so its name is free for the next
// join; the caller (its driver) deletes it later, or the kernel reaps it with
// the namespace. Deleting a veth waits ~20-30 ms on the kernel here, against
// well under 1 ms for this. A link moved in from the host is moved back, as
// RemoveInterface does, since its owner expects it back. Gone already is nil.
func (s *Sandbox) DetachInterface(dstName string) error {
	if dstName == "lo" || dstName == "" {
		return types.BadRequestErrorf("detaching interface %q from sandbox %s: invalid name", dstName, s.key)
	}
	s.mu.Lock()
	rec := s.ifaces[dstName]
	s.mu.Unlock()
	if rec != nil && rec.SrcName != "" && rec.host != nil {
		return s.RemoveInterface(dstName)
	}
	op := fmt.Sprintf("detaching interface %s from sandbox %s", dstName, s.key)
	if err := s.use(op); err != nil {
		return err
	}
	defer s.life.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	link, err := s.nl.LinkByName(dstName)
	switch {
	case err != nil && isGone(err):
	case err != nil:
		return kernelErr(err, "%s: finding link", op)
	default:
		if err := s.nl.LinkSetDown(link); err != nil && !isGone(err) {
			return kernelErr(err, "%s: setting link down", op)
		}
		if err := s.removeAddrs(link, op); err != nil {
			return err
		}
		if err := s.nl.LinkSetName(link, fmt.Sprintf("gone%d", link.Attrs().Index)); err != nil && !isGone(err) {
			return kernelErr(err, "%s: renaming link", op)
		}
	}
	delete(s.ifaces, dstName)
	s.settleLoopbackIPv6()
	return nil
}

// settleLoopbackIPv6 turns IPv6 on lo back off in a namespace made by New
// once no interface has IPv6 any more, as it was when fresh. Best effort.
func (s *Sandbox) settleLoopbackIPv6() {
	if !s.fresh || !s.loIPv6 {
		return
	}
	for _, i := range s.ifaces {
		if i.AddressIPv6 != nil {
			return
		}
		for _, ll := range i.LinkLocal {
			if ll.IP.To4() == nil {
				return
			}
		}
	}
	if s.setIPv6("lo", false) == nil {
		s.loIPv6 = false
	}
}

// Statistics returns the counters of every link in the sandbox but lo,
// keyed by in-sandbox name.
func (s *Sandbox) Statistics() (map[string]*types.InterfaceStatistics, error) {
	if err := s.use("reading sandbox statistics"); err != nil {
		return nil, err
	}
	defer s.life.RUnlock()
	links, err := s.nl.LinkList()
	if err != nil {
		return nil, kernelErr(err, "reading statistics of sandbox %s", s.key)
	}
	out := map[string]*types.InterfaceStatistics{}
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || a.Statistics == nil {
			continue
		}
		st := a.Statistics
		out[a.Name] = &types.InterfaceStatistics{
			RxBytes: st.RxBytes, RxPackets: st.RxPackets, RxErrors: st.RxErrors, RxDropped: st.RxDropped,
			TxBytes: st.TxBytes, TxPackets: st.TxPackets, TxErrors: st.TxErrors, TxDropped: st.TxDropped,
		}
	}
	return out, nil
}

// rebuild fills the interface records from the kernel (Open). Called before
// s is shared, so it takes no locks.
func (s *Sandbox) rebuild() error {
	links, err := s.nl.LinkList()
	if err != nil {
		return kernelErr(err, "listing links of sandbox %s", s.key)
	}
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 {
			continue
		}
		rec := &iface{Interface: Interface{DstName: a.Name, MacAddress: types.GetMacCopy(a.HardwareAddr), MTU: a.MTU}}
		addrs, err := s.nl.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return kernelErr(err, "listing addresses of %s in sandbox %s", a.Name, s.key)
		}
		for _, ad := range addrs {
			switch {
			case ad.IP.To4() != nil && rec.Address == nil:
				rec.Address = types.GetIPNetCopy(ad.IPNet)
			case ad.IP.To4() == nil && ad.Scope == int(netlink.SCOPE_UNIVERSE) && rec.AddressIPv6 == nil:
				rec.AddressIPv6 = types.GetIPNetCopy(ad.IPNet)
			}
		}
		routes, err := s.nl.RouteList(l, netlink.FAMILY_ALL)
		if err != nil {
			return kernelErr(err, "listing routes of %s in sandbox %s", a.Name, s.key)
		}
		for _, r := range routes {
			// Connected routes someone added: not the kernel's prefix
			// routes, not router advertisements, not via a gateway.
			if r.Gw != nil || isDefault(r.Dst) || r.Protocol == unix.RTPROT_KERNEL || r.Protocol == unix.RTPROT_RA {
				continue
			}
			rec.Routes = append(rec.Routes, types.GetIPNetCopy(r.Dst))
		}
		s.ifaces[a.Name] = rec
	}
	return nil
}
