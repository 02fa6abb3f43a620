package firewall

import (
	"net"
	"strconv"

	"github.com/opencnm/libnetwork/types"
)

// GatewayMode is how hosts outside a network reach its containers in one
// family, with moby's names. The zero value is GatewayNAT.
type GatewayMode string

// The gateway modes this package implements.
const (
	// GatewayNAT: containers are reached only through published host
	// ports (DNAT); a packet routed to a container address from outside
	// the bridge is dropped (direct-access protection), unless it arrives
	// on one of the network's trusted host interfaces.
	GatewayNAT GatewayMode = "nat"
	// GatewayNATUnprotected: NAT as GatewayNAT, without the protection:
	// whoever routes the subnet via the host reaches every container port
	// (an accept in filter DOCKER, whatever the FORWARD policy).
	GatewayNATUnprotected GatewayMode = "nat-unprotected"
	// GatewayIsolated is for internal networks only: their bridge has no
	// address in the family (the driver's doing); the rules are the
	// internal network's.
	GatewayIsolated GatewayMode = "isolated"
	// GatewayRouted: no NAT in the family (no masquerade, no host port
	// DNAT); hosts routing the subnet via this one reach the containers'
	// published ports at the containers' own addresses (per-endpoint
	// accepts, see routedRules) and ICMP; everything else stays dropped.
	GatewayRouted GatewayMode = "routed"
)

func (m GatewayMode) valid() bool {
	return m == "" || m == GatewayNAT || m == GatewayNATUnprotected || m == GatewayIsolated || m == GatewayRouted
}

func (c NetworkConfig) mode(fam Family) GatewayMode {
	if fam == IPv6 {
		return c.GatewayModeIPv6
	}
	return c.GatewayModeIPv4
}

// routed reports whether fam is routed without NAT.
func (c NetworkConfig) routed(fam Family) bool { return c.mode(fam) == GatewayRouted }

// protected reports whether the network's containers in fam are shielded
// from direct access.
func (c NetworkConfig) protected(fam Family) bool {
	return c.mode(fam) != GatewayNATUnprotected
}

func (c NetworkConfig) validateProtection() error {
	for _, m := range []GatewayMode{c.GatewayModeIPv4, c.GatewayModeIPv6} {
		if !m.valid() {
			return types.BadRequestErrorf("network %s firewall config: gateway mode %q not implemented", c.ID, m)
		}
		if m == GatewayIsolated && !c.Internal {
			return types.BadRequestErrorf("network %s firewall config: gateway mode %q needs an internal network", c.ID, m)
		}
		if m == GatewayRouted && c.Internal {
			return types.BadRequestErrorf("network %s firewall config: gateway mode %q has no meaning on an internal network", c.ID, m)
		}
	}
	return nil
}

// directAccessRules returns, for a protected family of a network with
// outside connectivity, what keeps hosts other than this one from reaching
// its containers except through a published port:
//
//   - filter DOCKER, after the DNAT accept: whatever else enters the
//     bridge from another interface is dropped, whatever the FORWARD
//     policy (a host that forwarded before the controller started keeps
//     its ACCEPT).
//   - raw PREROUTING: a packet for a container address arriving on any
//     interface but the bridge is dropped before conntrack and NAT see it.
//     The host's own addresses in the subnet (the gateway) are exempt, and
//     so is the host's own traffic (it does not pass PREROUTING). Only
//     for masquerading networks: without NAT, the answers to the
//     containers' own connections come back to their addresses, which
//     raw cannot tell from new traffic (the filter drop, behind the
//     RELATED,ESTABLISHED accept, still applies).
//
// A routed family gets an ICMP accept before the filter drop (as moby:
// path MTU discovery and ping reach the containers), and its published
// ports their endpoints' accepts, inserted above (routedRules). The
// network's trusted interfaces are no rule of its own: each published
// port of a NAT family is accepted from them at the container's address
// by its endpoint's rules, above both drops (trustedRules).
func directAccessRules(fam Family, cfg NetworkConfig, n string, nat bool) []Rule {
	owner := NetworkOwner(cfg.ID)
	br := cfg.Bridge
	rule := func(table, chain, matches, target string) Rule {
		return Rule{Family: fam, Table: table, Chain: chain, Spec: spec(owner, matches, target)}
	}
	var rules []Rule
	if nat {
		rules = append(rules, rule(TableRaw, chainPrerouting, "-d "+n+" ! -i "+br+" -m addrtype ! --dst-type LOCAL", "DROP"))
	}
	if cfg.routed(fam) {
		rules = append(rules, rule(TableFilter, ChainDocker, "-o "+br+" -p "+icmpProto(fam), "ACCEPT"))
	}
	return append(rules, rule(TableFilter, ChainDocker, "! -i "+br+" -o "+br, "DROP"))
}

// loopbackGuard returns the global rules that keep the host's loopback
// addresses to the host: a packet to or from 127.0.0.0/8 (::1) arriving on
// any interface but lo is dropped; one to it passes only when it belongs
// to a connection DNATed here (the answer to the host's own connection to a port
// published on its loopback). In mangle PREROUTING: after conntrack,
// before the published ports' DNAT, so a neighbour sending 127.0.0.1:port
// to the host's MAC is dropped before the DNAT would make it a forward;
// and it keeps a container (route_localnet=1 on its bridge, for hairpin
// without a proxy) from reaching services bound to the host's loopback.
// IPv6's kernel already drops ::1 from other interfaces; the rules say so
// for anyone reading the rules.
func loopbackGuard(fam Family) []Rule {
	lo := "127.0.0.0/8"
	if fam == IPv6 {
		lo = net.IPv6loopback.String() + "/128"
	}
	rule := func(matches string) Rule {
		return Rule{Family: fam, Table: TableMangle, Chain: chainPrerouting, Spec: spec(ownerGlobal, matches, "DROP")}
	}
	return []Rule{
		rule("-d " + lo + " ! -i lo -m conntrack ! --ctstate DNAT"),
		// No answer of ours comes from a loopback source over the wire.
		rule("-s " + lo + " ! -i lo"),
	}
}

// icmpProto is fam's ICMP as iptables -S names it.
func icmpProto(fam Family) string {
	if fam == IPv6 {
		return "ipv6-icmp"
	}
	return "icmp"
}

// routedRules returns what a port published in a routed family needs:
// inserted at the top of filter DOCKER, so it comes before the network's
// direct-access drop, an accept of the container port at the container's
// address for traffic entering the bridge from elsewhere. No host port is
// involved.
func routedRules(owner, bridge string, p PortForward) []Rule {
	fam := p.family()
	dst := hostRoute(p.ContainerIP)
	proto := p.Proto.String()
	matches := "-d " + dst +
		" ! -i " + bridge + " -o " + bridge + " -p " + proto + " -m " + proto + " --dport " + strconv.Itoa(int(p.ContainerPort))
	return []Rule{{Family: fam, Table: TableFilter, Chain: ChainDocker, Pos: 1, Spec: spec(owner, matches, "ACCEPT")}}
}

// trustedRules returns what a port published in a protected NAT family
// needs for each of the network's trusted host interfaces: the container
// port at the container's address accepted from that interface, in raw
// PREROUTING (before the network's raw drop) and in filter DOCKER (before
// its filter drop), both inserted at the top and owned by the endpoint.
// Nothing else of the container is opened to the interface.
func trustedRules(owner, bridge string, p PortForward) []Rule {
	fam := p.family()
	dst := hostRoute(p.ContainerIP)
	proto := p.Proto.String()
	port := " -p " + proto + " -m " + proto + " --dport " + strconv.Itoa(int(p.ContainerPort))
	var rules []Rule
	for _, ifc := range p.Trusted {
		rules = append(rules,
			Rule{Family: fam, Table: TableRaw, Chain: chainPrerouting, Pos: 1, Spec: spec(owner, "-d "+dst+" -i "+ifc+port, "ACCEPT")},
			Rule{Family: fam, Table: TableFilter, Chain: ChainDocker, Pos: 1, Spec: spec(owner, "-d "+dst+" -i "+ifc+" -o "+bridge+port, "ACCEPT")})
	}
	return rules
}

// hostRoute is ip as the single-address prefix iptables -S prints.
func hostRoute(ip net.IP) string {
	if ip.To4() != nil {
		return ip.To4().String() + "/32"
	}
	return ip.String() + "/128"
}
