package osl

import (
	"bytes"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/types"
)

// AddInterface puts a link into the sandbox and configures it: rename to
// DstName, MAC, MTU, IPv4 address, IPv6 address, link-local addresses, link
// up, connected routes. A reservation of DstName is consumed whatever the
// outcome.
//
// On any failure it undoes itself: a link moved in from the host goes back
// to HostNS under SrcName, stripped of what was configured here; a link
// that was created inside stays in the sandbox (down, without the
// addresses and routes added here) for its driver to delete.
func (s *Sandbox) AddInterface(hostNL *netlink.Handle, cfg InterfaceConfig) (retErr error) {
	if err := cfg.validate(hostNL); err != nil {
		return err
	}
	op := fmt.Sprintf("adding interface %s to sandbox %s", cfg.DstName, s.key)
	if err := s.use(op); err != nil {
		return err
	}
	defer s.life.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	defer delete(s.reserved, cfg.DstName)
	if _, ok := s.ifaces[cfg.DstName]; ok {
		return types.ForbiddenErrorf("%s: interface already in the sandbox", op)
	}

	a := &adding{s: s, hostNL: hostNL, cfg: cfg, op: op}
	ok := false
	defer func() {
		if err := a.rollback.Unless(&ok); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("rolling back: %w", err))
		}
	}()
	if err := a.findLink(); err != nil {
		return err
	}
	if cfg.SrcName == "" {
		// strip reads added and routes when it runs: all that was done.
		a.rollback.PushFunc(func() { s.strip(a.link, a.added, a.routes) })
	}
	for _, step := range []func() error{a.setAttrs, a.addAddresses, a.up, a.addRoutes} {
		if err := step(); err != nil {
			return err
		}
	}
	rec, err := a.record()
	if err != nil {
		return err
	}
	s.ifaces[cfg.DstName] = rec
	ok = true
	return nil
}

// adding is one AddInterface under way, under s.mu: each step pushes on
// rollback what takes it back, or records what it added for strip.
type adding struct {
	s        *Sandbox
	hostNL   *netlink.Handle // open in cfg.HostNS, for cfg.SrcName
	cfg      InterfaceConfig
	op       string // for errors: what is being done
	link     netlink.Link
	added    []netlink.Addr
	routes   []*netlink.Route
	rollback undo.Stack
}

// findLink moves the host link cfg.SrcName into the sandbox, or finds the
// link a driver made inside under cfg.DstName.
func (a *adding) findLink() error {
	s, cfg, op := a.s, a.cfg, a.op
	var err error
	if cfg.SrcName == "" {
		if a.link, err = s.nl.LinkByName(cfg.DstName); err != nil {
			return kernelErr(err, "%s: finding link in the sandbox", op)
		}
		return nil
	}
	hostNL := a.hostNL
	hl, err := hostNL.LinkByName(cfg.SrcName)
	if err != nil {
		return kernelErr(err, "%s: finding host link %s", op, cfg.SrcName)
	}
	if err := hostNL.LinkSetNsFd(hl, s.ns.Fd()); err != nil {
		return kernelErr(err, "%s: moving link %s into the sandbox", op, cfg.SrcName)
	}
	if a.link, err = s.nl.LinkByName(cfg.SrcName); err != nil {
		// Moved but unreadable: nothing can address it to send it back.
		return kernelErr(err, "%s: finding moved link %s", op, cfg.SrcName)
	}
	idx := a.link.Attrs().Index
	a.rollback.Push(func() error {
		l, err := s.nl.LinkByIndex(idx)
		if err != nil {
			return err
		}
		return s.moveOut(l, cfg.SrcName, cfg.HostNS)
	})
	return nil
}

// setAttrs gives the link its name, MAC and MTU (down: a link must be down
// to be renamed; a driver may have left it up).
func (a *adding) setAttrs() error {
	s, cfg, op, link := a.s, a.cfg, a.op, a.link
	attrs := link.Attrs()
	if attrs.Flags&net.FlagUp != 0 {
		if err := s.nl.LinkSetDown(link); err != nil {
			return kernelErr(err, "%s: setting link down", op)
		}
	}
	if attrs.Name != cfg.DstName {
		if err := s.nl.LinkSetName(link, cfg.DstName); err != nil {
			return kernelErr(err, "%s: renaming %s", op, attrs.Name)
		}
	}
	if cfg.MacAddress != nil && !bytes.Equal(attrs.HardwareAddr, cfg.MacAddress) {
		if err := s.nl.LinkSetHardwareAddr(link, cfg.MacAddress); err != nil {
			return kernelErr(err, "%s: setting MAC address %s", op, cfg.MacAddress)
		}
	}
	if cfg.MTU > 0 && attrs.MTU != cfg.MTU {
		if err := s.nl.LinkSetMTU(link, cfg.MTU); err != nil {
			return kernelErr(err, "%s: setting MTU %d", op, cfg.MTU)
		}
	}
	return nil
}

// addAddresses adds the link's addresses, IPv6 enabled first when one is
// IPv6, after checking the IPv4 one overlaps no route of the sandbox.
func (a *adding) addAddresses() error {
	s, cfg, op := a.s, a.cfg, a.op
	if cfg.Address != nil {
		if err := s.checkRouteConflict(cfg.Address); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if cfg.wantsIPv6() {
		// A fresh namespace starts with IPv6 disabled; an IPv6 address cannot
		// be added until it is enabled on the link. lo gets ::1 back too.
		if err := s.setIPv6(cfg.DstName, true); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if err := s.setIPv6("lo", true); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		s.loIPv6 = true
	}
	addrs := append([]*net.IPNet{cfg.Address, cfg.AddressIPv6}, cfg.LinkLocal...)
	for _, ip := range addrs {
		if ip == nil {
			continue
		}
		addr := netlink.Addr{IPNet: ip}
		if ip.IP.To4() == nil {
			// No duplicate address detection: the address is ours by IPAM,
			// and DAD would hold it tentative (unusable) for a second or more.
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := s.nl.AddrAdd(a.link, &addr); err != nil {
			return kernelErr(err, "%s: adding address %s", op, ip)
		}
		a.added = append(a.added, addr)
	}
	return nil
}

// up sets the link up.
func (a *adding) up() error {
	if err := a.s.nl.LinkSetUp(a.link); err != nil {
		return kernelErr(err, "%s: setting link up", a.op)
	}
	return nil
}

// addRoutes adds the link's routes; it runs after up: the kernel refuses
// a route through a down link.
func (a *adding) addRoutes() error {
	for _, dst := range a.cfg.Routes {
		r := &netlink.Route{LinkIndex: a.link.Attrs().Index, Dst: maskedNet(dst), Scope: netlink.SCOPE_LINK}
		if err := a.s.nl.RouteAdd(r); err != nil {
			return kernelErr(err, "%s: adding route %s", a.op, dst)
		}
		a.routes = append(a.routes, r)
	}
	return nil
}

// record is what the sandbox keeps of the interface, with the MAC and MTU
// the kernel reports.
func (a *adding) record() (*iface, error) {
	cfg := a.cfg
	rec := &iface{host: cfg.HostNS, Interface: Interface{
		SrcName:     cfg.SrcName,
		DstName:     cfg.DstName,
		Address:     types.GetIPNetCopy(cfg.Address),
		AddressIPv6: types.GetIPNetCopy(cfg.AddressIPv6),
		LinkLocal:   copyNets(cfg.LinkLocal),
		Routes:      copyNets(cfg.Routes),
	}}
	if cfg.SrcName == "" {
		rec.host = nil
	}
	l, err := a.s.nl.LinkByIndex(a.link.Attrs().Index)
	if err != nil {
		return nil, kernelErr(err, "%s: reading link back", a.op)
	}
	rec.MacAddress = types.GetMacCopy(l.Attrs().HardwareAddr)
	rec.MTU = l.Attrs().MTU
	return rec, nil
}
