package types

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// IP address kinds, as used by resolvconf and the resolver.
const (
	IP = iota // either family
	IPv4
	IPv6
)

// Route types of a StaticRoute.
const (
	NEXTHOP   = iota // route via NextHop
	CONNECTED        // route directly through the interface
)

// Protocol is an IP protocol number.
type Protocol uint8

// Protocols a port binding may use.
const (
	ICMP Protocol = 1
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case ICMP:
		return "icmp"
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	default:
		return strconv.Itoa(int(p))
	}
}

// ParseProtocol returns the protocol named s, or 0 when s names none.
func ParseProtocol(s string) Protocol {
	switch strings.ToLower(s) {
	case "icmp":
		return ICMP
	case "tcp":
		return TCP
	case "udp":
		return UDP
	case "sctp":
		return SCTP
	}
	return 0
}

// TransportPort is a protocol and port, e.g. tcp/80.
type TransportPort struct {
	Proto Protocol
	Port  uint16
}

func (t TransportPort) String() string { return fmt.Sprintf("%s/%d", t.Proto, t.Port) }

// Equal reports whether t and o name the same port.
func (t *TransportPort) Equal(o *TransportPort) bool {
	if t == o {
		return true
	}
	return o != nil && t.Proto == o.Proto && t.Port == o.Port
}

// GetCopy returns a copy of t.
func (t *TransportPort) GetCopy() TransportPort { return *t }

// FromString parses "proto/port".
func (t *TransportPort) FromString(s string) error {
	proto, port, ok := strings.Cut(s, "/")
	if !ok {
		return BadRequestErrorf("invalid transport port %q: want proto/port", s)
	}
	p := ParseProtocol(proto)
	if p == 0 {
		return BadRequestErrorf("invalid transport port %q: unknown protocol %q", s, proto)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return BadRequestErrorf("invalid transport port %q: %w", s, err)
	}
	t.Proto, t.Port = p, uint16(n)
	return nil
}

// PortBinding maps a container port to a host address and port (or range).
// HostPort 0 asks for a port chosen from the ephemeral range; HostPortEnd,
// when set, asks for any free port in [HostPort, HostPortEnd].
type PortBinding struct {
	Proto       Protocol
	IP          net.IP // container address
	Port        uint16 // container port
	HostIP      net.IP // nil or unspecified: every host address
	HostPort    uint16
	HostPortEnd uint16
}

// GetCopy returns a deep copy of p.
func (p PortBinding) GetCopy() PortBinding {
	return PortBinding{Proto: p.Proto, IP: GetIPCopy(p.IP), Port: p.Port, HostIP: GetIPCopy(p.HostIP),
		HostPort: p.HostPort, HostPortEnd: p.HostPortEnd}
}

// Equal reports whether p and o are the same binding.
func (p *PortBinding) Equal(o *PortBinding) bool {
	if p == o {
		return true
	}
	return o != nil && p.Proto == o.Proto && p.IP.Equal(o.IP) && p.Port == o.Port &&
		p.HostIP.Equal(o.HostIP) && p.HostPort == o.HostPort && p.HostPortEnd == o.HostPortEnd
}

// String renders p as proto/ip:port/hostip:hostport[-end].
func (p PortBinding) String() string {
	s := fmt.Sprintf("%s/%s:%d/%s:%d", p.Proto, ipStr(p.IP), p.Port, ipStr(p.HostIP), p.HostPort)
	if p.HostPortEnd != 0 && p.HostPortEnd != p.HostPort {
		s += fmt.Sprintf("-%d", p.HostPortEnd)
	}
	return s
}

func ipStr(ip net.IP) string {
	if ip == nil {
		return ""
	}
	if ip.To4() == nil {
		return "[" + ip.String() + "]"
	}
	return ip.String()
}

// HostAddr returns the host side of the binding as a net.Addr of its protocol.
func (p PortBinding) HostAddr() (net.Addr, error) { return addrFor(p.Proto, p.HostIP, p.HostPort) }

// ContainerAddr returns the container side of the binding as a net.Addr.
func (p PortBinding) ContainerAddr() (net.Addr, error) { return addrFor(p.Proto, p.IP, p.Port) }

func addrFor(proto Protocol, ip net.IP, port uint16) (net.Addr, error) {
	switch proto {
	case TCP:
		return &net.TCPAddr{IP: ip, Port: int(port)}, nil
	case UDP:
		return &net.UDPAddr{IP: ip, Port: int(port)}, nil
	case SCTP:
		// The standard library has no SCTP address type; IPAddr keeps the IP,
		// the port is in the binding itself.
		return &net.IPAddr{IP: ip}, nil
	}
	return nil, BadRequestErrorf("invalid port binding protocol %s", proto)
}

// StaticRoute is a route a driver asks the sandbox to install.
type StaticRoute struct {
	Destination *net.IPNet
	RouteType   int // NEXTHOP or CONNECTED
	NextHop     net.IP
}

// GetCopy returns a deep copy of r.
func (r *StaticRoute) GetCopy() *StaticRoute {
	return &StaticRoute{Destination: GetIPNetCopy(r.Destination), RouteType: r.RouteType, NextHop: GetIPCopy(r.NextHop)}
}

// InterfaceStatistics are the counters of one sandbox interface.
type InterfaceStatistics struct {
	RxBytes   uint64
	RxPackets uint64
	RxErrors  uint64
	RxDropped uint64
	TxBytes   uint64
	TxPackets uint64
	TxErrors  uint64
	TxDropped uint64
}

func (s *InterfaceStatistics) String() string {
	return fmt.Sprintf("\nRxBytes: %d, RxPackets: %d, RxErrors: %d, RxDropped: %d, TxBytes: %d, TxPackets: %d, TxErrors: %d, TxDropped: %d",
		s.RxBytes, s.RxPackets, s.RxErrors, s.RxDropped, s.TxBytes, s.TxPackets, s.TxErrors, s.TxDropped)
}

// GetIPCopy returns a copy of ip (nil stays nil).
func GetIPCopy(ip net.IP) net.IP {
	if ip == nil {
		return nil
	}
	return append(net.IP(nil), ip...)
}

// GetIPNetCopy returns a deep copy of n (nil stays nil).
func GetIPNetCopy(n *net.IPNet) *net.IPNet {
	if n == nil {
		return nil
	}
	return &net.IPNet{IP: GetIPCopy(n.IP), Mask: append(net.IPMask(nil), n.Mask...)}
}

// GetMacCopy returns a copy of mac (nil stays nil).
func GetMacCopy(mac net.HardwareAddr) net.HardwareAddr {
	if mac == nil {
		return nil
	}
	return append(net.HardwareAddr(nil), mac...)
}

// CompareIPNet reports whether a and b are the same address and mask.
func CompareIPNet(a, b *net.IPNet) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return a.IP.Equal(b.IP) && bytes.Equal(a.Mask, b.Mask)
}

// ParseCIDR parses s like net.ParseCIDR but keeps the host bits in the
// returned IPNet (10.0.0.5/24 stays 10.0.0.5/24).
func ParseCIDR(s string) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, BadRequestErrorf("invalid CIDR %q: %w", s, err)
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	n.IP = ip
	return n, nil
}
