package firewall

import (
	"net"
	"strconv"

	"github.com/opencnm/libnetwork/types"
)

// PortForward is one published port as the firewall sees it: traffic to
// HostIP:HostPort (any local address when HostIP is nil or unspecified) is
// DNATed to ContainerIP:ContainerPort. HostIP, when set, must be of the
// container address's family.
type PortForward struct {
	Proto         types.Protocol
	HostIP        net.IP
	HostPort      uint16
	ContainerIP   net.IP
	ContainerPort uint16
}

func (p PortForward) family() Family {
	if p.ContainerIP.To4() != nil {
		return IPv4
	}
	return IPv6
}

func (p PortForward) validate() error {
	switch p.Proto {
	case types.TCP, types.UDP, types.SCTP:
	default:
		return types.BadRequestErrorf("invalid port forward %v: unsupported protocol %s", p, p.Proto)
	}
	if p.ContainerIP == nil || p.ContainerIP.IsUnspecified() || p.HostPort == 0 || p.ContainerPort == 0 {
		return types.BadRequestErrorf("invalid port forward %v: container address and both ports are required", p)
	}
	if p.HostIP != nil && !p.HostIP.IsUnspecified() && (p.HostIP.To4() == nil) != (p.ContainerIP.To4() == nil) {
		return types.BadRequestErrorf("invalid port forward %v: host and container addresses of different families", p)
	}
	return nil
}

// SetPortForwards makes the port rules of endpoint id exactly fwds (on
// bridge): new ones are added, ones no longer listed removed, all in one
// restore per family; an endpoint's first call that fails leaves nothing
// (but an empty port chain it created, see portChains). Only the
// endpoint's own rules are looked at, and they live in the endpoint's own
// bucket chains, so neither the work here nor the chains the restore
// touches grow with the number of ports other endpoints publish.
func (fw *Firewall) SetPortForwards(id, bridge string, fwds []PortForward) error {
	owner := EndpointOwner(id)
	b := bucketOf(id)
	var want []Rule
	var hairpins []Rule
	seen := map[string]bool{} // container addresses with a hairpin rule
	for _, p := range fwds {
		if err := p.validate(); err != nil {
			return err
		}
		if p.family() == IPv6 && !fw.IPv6() {
			return types.BadRequestErrorf("invalid port forward %v: ip6tables is not enabled", p)
		}
		want = append(want, portRules(owner, b, bridge, p)...)
		if ip := p.ContainerIP.String(); !seen[ip] {
			seen[ip] = true
			hairpins = append(hairpins, hairpinRule(owner, b, p))
		}
	}
	want = append(want, hairpins...)
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if err := fw.setOwnedLocked(owner, want, fw.portChainOpsLocked(want)); err != nil {
		return types.Wrapf(err, "setting up port forwarding rules of endpoint %s", id)
	}
	return nil
}

// RemovePortForwards removes every port rule of the endpoints ids in one
// restore per family: removals are what iptables-nft makes expensive (each
// transaction that deletes rules costs 10-20 ms whatever it deletes), so a
// caller with several endpoints to clear passes them together. Endpoints
// with no rules are success.
func (fw *Firewall) RemovePortForwards(ids ...string) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	var t tx
	for _, id := range ids {
		if o := fw.owners[EndpointOwner(id)]; o != nil {
			for _, r := range sortedRules(o.rules) {
				t.del(r)
			}
		}
	}
	if err := fw.commitLocked(t.ops, false); err != nil {
		return types.Wrapf(err, "removing port forwarding rules of endpoints %v", ids)
	}
	return nil
}

// portRules returns one forward's rules, in the endpoint's bucket b: the
// DNAT in nat DOCKER-PORTS-b, the ACCEPT in filter DOCKER-PORTS-b, and for
// SCTP the checksum fill. (The hairpin masquerade is one per container
// address, see hairpinRule.)
func portRules(owner string, b int, bridge string, p PortForward) []Rule {
	fam := p.family()
	proto := p.Proto.String()
	bits := hostBits(fam)
	to := p.ContainerIP.String() + ":" + strconv.Itoa(int(p.ContainerPort))
	if fam == IPv6 {
		to = "[" + p.ContainerIP.String() + "]:" + strconv.Itoa(int(p.ContainerPort))
	}
	cip := p.ContainerIP.String() + bits
	dport := func(port uint16) string {
		return "-p " + proto + " -m " + proto + " --dport " + strconv.Itoa(int(port))
	}
	dst := ""
	if hip := familyIP(fam, p.HostIP); hip != nil {
		dst = "-d " + hip.String() + bits + " "
	}
	rule := func(table, chain, matches, target string) Rule {
		return Rule{Family: fam, Table: table, Chain: chain, Spec: spec(owner, matches, target)}
	}
	rules := []Rule{
		rule(TableNAT, portChain(b), dst+dport(p.HostPort), "DNAT --to-destination "+to),
		rule(TableFilter, portChain(b), "-d "+cip+" ! -i "+bridge+" -o "+bridge+" "+dport(p.ContainerPort), "ACCEPT"),
	}
	if p.Proto == types.SCTP {
		rules = append(rules, rule(TableMangle, chainPostroute,
			"-p sctp -m sctp --sport "+strconv.Itoa(int(p.ContainerPort)), "CHECKSUM --checksum-fill"))
	}
	return rules
}

// hairpinRule masquerades a container reaching itself through one of its
// published ports: the DNAT sends the packet back out of the bridge with
// source and destination both the container, whose reply would otherwise
// bypass the NAT. One rule per container address covers all its ports,
// since nothing else can route a packet from a container to itself through
// the host. (Upstream writes one per port; with 200 ports that is 200
// rules every packet leaving a bridge walks.)
func hairpinRule(owner string, b int, p PortForward) Rule {
	fam := p.family()
	cip := p.ContainerIP.String() + hostBits(fam)
	return Rule{Family: fam, Table: TableNAT, Chain: hairpinChain(b),
		Spec: spec(owner, "-s "+cip+" -d "+cip, "MASQUERADE")}
}

func hostBits(fam Family) string {
	if fam == IPv6 {
		return "/128"
	}
	return "/32"
}
