package portmapper

import (
	"errors"
	"io"
	"net"

	"github.com/opencnm/libnetwork/types"
)

// request is one user binding with the families it is published in: the
// same host port is taken in each (so "-p 8080" means 8080 on IPv4 and
// IPv6 alike, also when the port is chosen for the caller).
type request struct {
	orig  types.PortBinding
	sides []types.PortBinding // per family: IP = container address, HostIP set
}

// expand validates bindings and splits each into its families.
func expand(ep Endpoint, bindings []types.PortBinding, v6ok bool) ([]request, error) {
	if ep.IPv4 != nil && ep.IPv4.To4() == nil || ep.IPv6 != nil && ep.IPv6.To4() != nil {
		return nil, types.BadRequestErrorf("mapping ports of endpoint %s: bad container addresses %v, %v", ep.ID, ep.IPv4, ep.IPv6)
	}
	var reqs []request
	for _, b := range bindings {
		switch b.Proto {
		case types.TCP, types.UDP, types.SCTP:
		default:
			return nil, types.BadRequestErrorf("invalid port binding %s: unsupported protocol %s", b, b.Proto)
		}
		if b.Port == 0 {
			return nil, types.BadRequestErrorf("invalid port binding %s: container port is 0", b)
		}
		if b.HostPortEnd != 0 && (b.HostPort == 0 || b.HostPortEnd < b.HostPort) {
			return nil, types.BadRequestErrorf("invalid port binding %s: bad host port range", b)
		}
		r := request{orig: b}
		side := func(cip, hip net.IP) {
			s := b.GetCopy()
			s.IP, s.HostIP = types.GetIPCopy(cip), types.GetIPCopy(hip)
			r.sides = append(r.sides, s)
		}
		switch {
		case b.HostIP == nil || b.HostIP.Equal(net.IPv4zero):
			if ep.IPv4 != nil {
				side(ep.IPv4, net.IPv4zero.To4())
			}
			if ep.IPv6 != nil && v6ok {
				side(ep.IPv6, net.IPv6unspecified)
			}
		case b.HostIP.To4() != nil:
			if ep.IPv4 != nil {
				side(ep.IPv4, b.HostIP.To4())
			}
		case b.HostIP.IsLoopback():
			// The kernel never delivers a packet to ::1 that arrived on
			// another interface (RFC 4291 2.5.3): the container's answer,
			// addressed back to ::1 by the NAT, would be dropped, and
			// there is no userland proxy to carry it. Refused rather than
			// published dead.
			return nil, types.BadRequestErrorf("invalid port binding %s: the IPv6 loopback address cannot be published (the kernel does not NAT ::1 to a container); use 127.0.0.1 or another host address", b)
		default:
			if ep.IPv6 != nil && v6ok {
				side(ep.IPv6, b.HostIP)
			}
		}
		if len(r.sides) == 0 {
			return nil, types.BadRequestErrorf("invalid port binding %s: endpoint %s has no address of the host address's family", b, ep.ID)
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

// reserveLocked takes a host port for every side of r outside a routed
// family and appends the operational bindings and sockets to m; a routed
// side is appended with host port 0.
func (pm *PortMapper) reserveLocked(m *mapping, r request) error {
	var nat []types.PortBinding
	for _, s := range r.sides {
		if m.ep.routed(s.IP) {
			// No host port: the accept opens the container port itself.
			s.HostPort, s.HostPortEnd = 0, 0
			m.bindings = append(m.bindings, s)
			continue
		}
		nat = append(nat, s)
	}
	if len(nat) == 0 {
		return nil
	}
	r.sides = nat
	b := r.orig
	switch {
	case b.HostPort != 0 && (b.HostPortEnd == 0 || b.HostPortEnd == b.HostPort):
		err := pm.tryLocked(m, r, b.HostPort)
		if errors.Is(err, ErrPortInUse) {
			return types.ForbiddenErrorf("bind for %s failed: %w", hostPortString(r.sides[0].HostIP, b.HostPort), err)
		}
		return err
	case b.HostPort != 0:
		for p := int(b.HostPort); p <= int(b.HostPortEnd); p++ {
			err := pm.tryLocked(m, r, uint16(p))
			if !errors.Is(err, ErrPortInUse) {
				return err
			}
		}
		return types.ForbiddenErrorf("mapping %s: every host port in %d-%d is already allocated", b, b.HostPort, b.HostPortEnd)
	}
	lo, hi, err := pm.res.EphemeralRange()
	if err != nil {
		return types.Wrapf(err, "mapping %s", b)
	}
	if pm.cursor < lo || pm.cursor > hi {
		pm.cursor = lo
	}
	n := int(hi) - int(lo) + 1
	for i := 0; i < n; i++ {
		p := pm.cursor
		if pm.cursor == hi {
			pm.cursor = lo
		} else {
			pm.cursor++
		}
		err := pm.tryLocked(m, r, p)
		if !errors.Is(err, ErrPortInUse) {
			return err
		}
	}
	return types.ForbiddenErrorf("mapping %s: every port of the ephemeral range %d-%d is already allocated", b, lo, hi)
}

// tryLocked takes port for every side of r, or nothing. It fails with an
// error wrapping ErrPortInUse when any side's port is taken.
func (pm *PortMapper) tryLocked(m *mapping, r request, port uint16) error {
	for _, s := range r.sides {
		if pm.takenLocked(s.Proto, s.HostIP, port) {
			return ErrPortInUse
		}
	}
	var closers []io.Closer
	for _, s := range r.sides {
		c, err := pm.res.Reserve(s.Proto, s.HostIP, port)
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
			if errors.Is(err, ErrPortInUse) {
				return err
			}
			return types.InternalErrorf("reserving host port %s/%s: %w", s.Proto, hostPortString(s.HostIP, port), err)
		}
		closers = append(closers, c)
	}
	for _, s := range r.sides {
		s.HostPort, s.HostPortEnd = port, 0
		m.bindings = append(m.bindings, s)
		k := keyOf(s.Proto, s.HostIP, port)
		if pm.held[k] == nil {
			pm.held[k] = map[string]int{}
		}
		pm.held[k][hostIPKey(s.HostIP)]++
	}
	m.closers = append(m.closers, closers...)
	return nil
}
