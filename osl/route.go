package osl

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/types"
)

// SetGateway makes the IPv4 default route go via gw, through the interface
// the kernel routes gw to (which must be directly connected). An existing
// IPv4 default route is replaced, so setting the same gateway twice is fine.
func (s *Sandbox) SetGateway(gw net.IP) error {
	if gw.To4() == nil {
		return types.BadRequestErrorf("setting gateway %v in sandbox %s: not an IPv4 address", gw, s.key)
	}
	return s.setGateway(gw.To4(), netlink.FAMILY_V4)
}

// SetGatewayIPv6 is SetGateway for the IPv6 default route.
func (s *Sandbox) SetGatewayIPv6(gw net.IP) error {
	if gw.To4() != nil || len(gw) != net.IPv6len {
		return types.BadRequestErrorf("setting IPv6 gateway %v in sandbox %s: not an IPv6 address", gw, s.key)
	}
	return s.setGateway(gw, netlink.FAMILY_V6)
}

// UnsetGateway deletes the IPv4 default route(s). None is not an error.
func (s *Sandbox) UnsetGateway() error { return s.unsetGateway(netlink.FAMILY_V4) }

// UnsetGatewayIPv6 deletes the IPv6 default route(s). None is not an error.
func (s *Sandbox) UnsetGatewayIPv6() error { return s.unsetGateway(netlink.FAMILY_V6) }

// DefaultGateways returns the gateways of the sandbox's IPv4 and IPv6
// default routes (nil for a route through a device only), read in one
// dump. None is an empty list.
func (s *Sandbox) DefaultGateways() (v4, v6 []net.IP, err error) {
	op := fmt.Sprintf("listing default routes in sandbox %s", s.key)
	if err := s.use(op); err != nil {
		return nil, nil, err
	}
	defer s.life.RUnlock()
	routes, err := s.nl.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, kernelErr(err, "%s", op)
	}
	for _, r := range routes {
		switch {
		case !isDefault(r.Dst):
		case r.Family == netlink.FAMILY_V6:
			v6 = append(v6, r.Gw)
		default:
			v4 = append(v4, r.Gw)
		}
	}
	return v4, v6, nil
}

func (s *Sandbox) setGateway(gw net.IP, family int) error {
	op := fmt.Sprintf("setting gateway %s in sandbox %s", gw, s.key)
	if err := s.use(op); err != nil {
		return err
	}
	defer s.life.RUnlock()
	routes, err := s.nl.RouteGet(gw)
	if err != nil {
		return kernelErr(err, "%s: no route to the gateway", op)
	}
	if len(routes) == 0 {
		return types.ForbiddenErrorf("%s: no route to the gateway", op)
	}
	via := routes[0]
	switch {
	case via.Type == unix.RTN_LOCAL:
		return types.BadRequestErrorf("%s: the gateway is an address of the sandbox", op)
	case via.Gw != nil:
		return types.ForbiddenErrorf("%s: the gateway is not on a connected network (reached via %s)", op, via.Gw)
	}
	r := &netlink.Route{LinkIndex: via.LinkIndex, Gw: gw, Dst: zeroNet(family)}
	if err := s.nl.RouteReplace(r); err != nil {
		return kernelErr(err, "%s: adding default route", op)
	}
	return nil
}

func (s *Sandbox) unsetGateway(family int) error {
	op := fmt.Sprintf("unsetting gateway in sandbox %s", s.key)
	if err := s.use(op); err != nil {
		return err
	}
	defer s.life.RUnlock()
	routes, err := s.nl.RouteList(nil, family)
	if err != nil {
		return kernelErr(err, "%s: listing routes", op)
	}
	for i := range routes {
		if !isDefault(routes[i].Dst) {
			continue
		}
		if err := s.nl.RouteDel(&routes[i]); err != nil && !isGone(err) {
			return kernelErr(err, "%s: deleting default route", op)
		}
	}
	return nil
}

// AddStaticRoute adds a driver's route: NEXTHOP routes go via r.NextHop
// (through ifName when given, else wherever the kernel routes the next hop),
// CONNECTED routes go directly through ifName.
func (s *Sandbox) AddStaticRoute(r *types.StaticRoute, ifName string) error {
	op := fmt.Sprintf("adding static route %s in sandbox %s", routeDesc(r), s.key)
	if err := s.use(op); err != nil {
		return err
	}
	defer s.life.RUnlock()
	nr, err := s.staticRoute(r, ifName, op)
	if err != nil {
		return err
	}
	if err := s.nl.RouteAdd(nr); err != nil {
		return kernelErr(err, "%s", op)
	}
	return nil
}

// RemoveStaticRoute deletes a route added by AddStaticRoute. A route or
// interface that is already gone is not an error.
func (s *Sandbox) RemoveStaticRoute(r *types.StaticRoute, ifName string) error {
	op := fmt.Sprintf("removing static route %s in sandbox %s", routeDesc(r), s.key)
	if err := s.use(op); err != nil {
		return err
	}
	defer s.life.RUnlock()
	nr, err := s.staticRoute(r, ifName, op)
	if err != nil {
		if types.IsNotFound(err) {
			return nil // the interface went, and its routes with it
		}
		return err
	}
	if err := s.nl.RouteDel(nr); err != nil && !isGone(err) {
		return kernelErr(err, "%s", op)
	}
	return nil
}

// staticRoute translates r into a netlink route, under the lifetime lock.
func (s *Sandbox) staticRoute(r *types.StaticRoute, ifName, op string) (*netlink.Route, error) {
	if r == nil || r.Destination == nil {
		return nil, types.BadRequestErrorf("%s: no destination", op)
	}
	nr := &netlink.Route{Dst: maskedNet(r.Destination)}
	if ifName != "" {
		l, err := s.nl.LinkByName(ifName)
		if err != nil {
			return nil, kernelErr(err, "%s: finding interface %s", op, ifName)
		}
		nr.LinkIndex = l.Attrs().Index
	}
	switch r.RouteType {
	case types.NEXTHOP:
		if r.NextHop == nil {
			return nil, types.BadRequestErrorf("%s: next-hop route without a next hop", op)
		}
		if (r.NextHop.To4() == nil) != (r.Destination.IP.To4() == nil) {
			return nil, types.BadRequestErrorf("%s: next hop %s and destination differ in family", op, r.NextHop)
		}
		nr.Gw = r.NextHop
	case types.CONNECTED:
		if ifName == "" {
			return nil, types.BadRequestErrorf("%s: connected route without an interface", op)
		}
		nr.Scope = netlink.SCOPE_LINK
	default:
		return nil, types.BadRequestErrorf("%s: unknown route type %d", op, r.RouteType)
	}
	return nr, nil
}

// checkRouteConflict refuses an IPv4 address whose network overlaps a
// route already in the sandbox: traffic for one of them would silently go
// the wrong way. Default routes do not count.
func (s *Sandbox) checkRouteConflict(addr *net.IPNet) error {
	routes, err := s.nl.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return kernelErr(err, "listing routes to check address %s", addr)
	}
	for _, r := range routes {
		if isDefault(r.Dst) {
			continue
		}
		if r.Dst.Contains(addr.IP) || addr.Contains(r.Dst.IP) {
			return types.ForbiddenErrorf("address %s conflicts with existing route %s", addr, r.Dst)
		}
	}
	return nil
}

func routeDesc(r *types.StaticRoute) string {
	if r == nil || r.Destination == nil {
		return "<nil>"
	}
	if r.RouteType == types.NEXTHOP {
		return fmt.Sprintf("%s via %s", r.Destination, r.NextHop)
	}
	return r.Destination.String()
}

// isDefault reports whether dst is a default route's destination (netlink
// reports it as nil or as 0.0.0.0/0, ::/0 depending on version).
func isDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0
}

func zeroNet(family int) *net.IPNet {
	if family == netlink.FAMILY_V6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}

// maskedNet clears host bits: the kernel refuses a route destination with
// them set, while callers often pass an interface address as a prefix.
func maskedNet(n *net.IPNet) *net.IPNet {
	ip := n.IP
	if v4 := ip.To4(); v4 != nil && len(n.Mask) == net.IPv4len {
		ip = v4
	}
	return &net.IPNet{IP: ip.Mask(n.Mask), Mask: append(net.IPMask(nil), n.Mask...)}
}
