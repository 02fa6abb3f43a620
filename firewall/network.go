package firewall

import (
	"net"

	"github.com/opencnm/libnetwork/internal/names"
	"github.com/opencnm/libnetwork/types"
)

// NetworkConfig is what the firewall needs to know about one bridge network.
type NetworkConfig struct {
	ID     string     // network ID: the rules' owner (comment cnm-net-ID)
	Bridge string     // bridge interface name
	Subnet *net.IPNet // IPv4 subnet (host bits are masked off); nil for an IPv6-only network
	// SubnetV6 is the IPv6 subnet; nil for none. Programmed only when the
	// Firewall was made with IPv6.
	SubnetV6 *net.IPNet
	// ICC lets containers on the bridge talk to each other.
	ICC bool
	// Masquerade source-NATs traffic leaving the bridge for elsewhere.
	Masquerade bool
	// Internal networks get no outside connectivity: only the drops in
	// DOCKER-ISOLATION-STAGE-1 and the ICC rule.
	Internal bool
	// HostIP, when set, is the SNAT source (--to-source) of its family
	// instead of MASQUERADE.
	HostIP net.IP
	// Hairpin masquerades traffic from the host's own addresses into the
	// bridge, so DNATed connections from the host (including its loopback,
	// with route_localnet=1 on the bridge) and from containers to published
	// ports get their replies back. On whenever there is no userland proxy.
	Hairpin bool
	// GatewayModeIPv4 and GatewayModeIPv6 say, per family, whether the
	// containers are shielded from direct access (GatewayNAT, the
	// default when empty) or not (GatewayNATUnprotected), or routed
	// without NAT, reached directly at their published ports only
	// (GatewayRouted: Masquerade and Hairpin do not apply there);
	// GatewayIsolated is for internal networks, whose rules it leaves
	// as they are.
	GatewayModeIPv4, GatewayModeIPv6 GatewayMode
	// A network's trusted host interfaces are no part of its own rules:
	// they open its endpoints' published ports (PortForward.Trusted).
}

func (c NetworkConfig) validate() error {
	// The callers validated both already; the firewall checks again because
	// a bridge name is an interface match here (a "+" would make it a
	// wildcard) and the ID its rules' owner.
	if err := names.ID(c.ID); err != nil {
		return types.Wrapf(err, "network firewall config: invalid network id")
	}
	if err := names.Iface(c.Bridge); err != nil {
		return types.Wrapf(err, "network %s firewall config: invalid bridge name", c.ID)
	}
	if c.Subnet == nil && c.SubnetV6 == nil {
		return types.BadRequestErrorf("network %s firewall config: no subnet", c.ID)
	}
	if c.Subnet != nil && c.Subnet.IP.To4() == nil {
		return types.BadRequestErrorf("network %s firewall config: invalid ipv4 subnet %v", c.ID, c.Subnet)
	}
	if c.SubnetV6 != nil && c.SubnetV6.IP.To4() != nil {
		return types.BadRequestErrorf("network %s firewall config: invalid ipv6 subnet %v", c.ID, c.SubnetV6)
	}
	return c.validateProtection()
}

// SetupNetwork installs the network's rules, or changes them to match cfg
// when the network is already set up (e.g. ICC switched off): missing rules
// are added before obsolete ones go, all in one restore per family.
// Repeating it adds nothing. If it fails on a network not set up before,
// nothing of it is left installed.
func (fw *Firewall) SetupNetwork(cfg NetworkConfig) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.Subnet == nil && !fw.IPv6() {
		return types.BadRequestErrorf("network %s firewall config: IPv6-only network on a firewall without IPv6", cfg.ID)
	}
	var want []Rule
	if cfg.Subnet != nil {
		want = append(want, networkRules(IPv4, cfg, cfg.Subnet)...)
	}
	if cfg.SubnetV6 != nil && fw.IPv6() {
		want = append(want, networkRules(IPv6, cfg, cfg.SubnetV6)...)
	}
	if err := fw.setOwned(NetworkOwner(cfg.ID), want); err != nil {
		return types.Wrapf(err, "setting up firewall rules of network %s", cfg.ID)
	}
	return nil
}

// TeardownNetwork removes every rule of network id. A network with no
// rules (never set up, or already torn down) is success.
func (fw *Firewall) TeardownNetwork(id string) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if err := fw.removeOwnerLocked(NetworkOwner(id)); err != nil {
		return types.Wrapf(err, "tearing down firewall rules of network %s", id)
	}
	return nil
}

// forwardPos is where a network's FORWARD rules are inserted: right after
// the DOCKER-USER and DOCKER-ISOLATION-STAGE-1 jumps Setup keeps on top,
// so they come before anything else in FORWARD (such as a final DROP).
const forwardPos = 3

// networkRules returns a network's rules in one family, in the order they
// are applied. Inserted rules come in reverse of their final order.
func networkRules(fam Family, cfg NetworkConfig, subnet *net.IPNet) []Rule {
	owner := NetworkOwner(cfg.ID)
	br := cfg.Bridge
	n := (&net.IPNet{IP: subnet.IP.Mask(subnet.Mask), Mask: subnet.Mask}).String()
	rule := func(table, chain string, pos int, matches, target string) Rule {
		return Rule{Family: fam, Table: table, Chain: chain, Pos: pos, Spec: spec(owner, matches, target)}
	}
	icc := "DROP"
	if cfg.ICC {
		icc = "ACCEPT"
	}
	iccRule := rule(TableFilter, chainForward, forwardPos, "-i "+br+" -o "+br, icc)
	if cfg.Internal {
		// Nothing is routed into or out of the bridge; what stays on it
		// is the ICC rule's. By interface, not address: bridged frames
		// traverse ip6tables too, and an address match would drop the
		// containers' neighbour discovery (multicast) among themselves,
		// and let in a packet from elsewhere with a forged source.
		return []Rule{
			iccRule,
			rule(TableFilter, ChainIsolation1, 1, "! -i "+br+" -o "+br, "DROP"),
			rule(TableFilter, ChainIsolation1, 1, "-i "+br+" ! -o "+br, "DROP"),
		}
	}
	nat := "MASQUERADE"
	if hostIP := familyIP(fam, cfg.HostIP); hostIP != nil {
		nat = "SNAT --to-source " + hostIP.String()
	}
	var rules []Rule
	routed := cfg.routed(fam)
	if !routed {
		// Published ports: their DNAT is a map element (portmaps.go);
		// what they need of iptables is per network, so publishing adds
		// no rule. DNATed traffic entering the bridge from elsewhere is
		// accepted (the only DNAT into a bridge is a published port's),
		// and a container reaching a container of its own network
		// through a published port is masqueraded, else the answer would
		// go straight back over the bridge, bypassing the NAT. A routed
		// family has no DNAT: its published ports are accepts of the
		// endpoints' own (routedRules).
		rules = append(rules,
			rule(TableNAT, chainPostroute, 0, "-s "+n+" -d "+n+" -o "+br+" -m conntrack --ctstate DNAT", "MASQUERADE"),
			rule(TableFilter, ChainDocker, 0, "! -i "+br+" -o "+br+" -m conntrack --ctstate DNAT", "ACCEPT"))
	}
	if cfg.protected(fam) {
		// After the DNAT accept: DOCKER's rules are appended in order.
		// Without NAT in the family, raw cannot tell the answers to the
		// containers' connections from new traffic: filter only.
		rules = append(rules, directAccessRules(fam, cfg, n, cfg.Masquerade && !routed)...)
	} else {
		// Unprotected: whatever enters the bridge from elsewhere is
		// accepted here, so the mode opens the containers' addresses
		// whatever the FORWARD policy (DROP when the controller turned
		// forwarding on). Other bridges' containers are still stopped
		// by the isolation chains, which come first.
		rules = append(rules, rule(TableFilter, ChainDocker, 0, "! -i "+br+" -o "+br, "ACCEPT"))
	}
	if cfg.Masquerade && !routed {
		rules = append(rules, rule(TableNAT, chainPostroute, 0, "-s "+n+" ! -o "+br, nat))
	}
	if cfg.Hairpin && !routed {
		rules = append(rules, rule(TableNAT, chainPostroute, 0, "-o "+br+" -m addrtype --src-type LOCAL", nat))
	}
	return append(rules,
		iccRule,
		rule(TableFilter, chainForward, forwardPos, "-i "+br+" ! -o "+br, "ACCEPT"),
		rule(TableFilter, chainForward, forwardPos, "-o "+br, ChainDocker),
		rule(TableFilter, chainForward, forwardPos, "-o "+br+" -m conntrack --ctstate RELATED,ESTABLISHED", "ACCEPT"),
		rule(TableFilter, ChainIsolation2, 1, "-o "+br, "DROP"),
		rule(TableFilter, ChainIsolation1, 1, "-i "+br+" ! -o "+br, ChainIsolation2),
	)
}

// familyIP returns ip if it belongs to fam, else nil.
func familyIP(fam Family, ip net.IP) net.IP {
	if ip == nil || ip.IsUnspecified() {
		return nil
	}
	if v4 := ip.To4(); v4 != nil {
		if fam == IPv4 {
			return v4
		}
		return nil
	}
	if fam == IPv6 {
		return ip
	}
	return nil
}
