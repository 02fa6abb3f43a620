package firewall

import (
	"errors"
	"net"
	"strconv"

	"github.com/opencnm/libnetwork/internal/names"
	"github.com/opencnm/libnetwork/types"
)

// PortForward is one published port as the firewall sees it: traffic to
// HostIP:HostPort (any local address when HostIP is nil or unspecified) is
// DNATed to ContainerIP:ContainerPort. HostIP, when set, must be of the
// container address's family.
//
// A Routed forward is a port published in a family whose gateway mode is
// GatewayRouted: no host port (HostIP and HostPort are ignored), only the
// container port opened at the container's address (routedRules).
//
// Trusted names the host interfaces from which the container port is
// also reached directly at the container's address, despite the
// network's direct-access protection (its trusted host interfaces, in a
// protected NAT family; trustedRules). A Routed forward takes none: its
// accept already covers every interface.
type PortForward struct {
	Proto         types.Protocol
	HostIP        net.IP
	HostPort      uint16
	ContainerIP   net.IP
	ContainerPort uint16
	Routed        bool
	Trusted       []string
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
	if p.ContainerIP == nil || p.ContainerIP.IsUnspecified() || (p.HostPort == 0 && !p.Routed) || p.ContainerPort == 0 {
		return types.BadRequestErrorf("invalid port forward %v: container address and both ports are required", p)
	}
	if p.HostIP != nil && !p.HostIP.IsUnspecified() && (p.HostIP.To4() == nil) != (p.ContainerIP.To4() == nil) {
		return types.BadRequestErrorf("invalid port forward %v: host and container addresses of different families", p)
	}
	if p.Routed && len(p.Trusted) > 0 {
		return types.BadRequestErrorf("invalid port forward %v: a routed forward takes no trusted interfaces", p)
	}
	for _, ifc := range p.Trusted {
		// An interface match of the accepts.
		if err := names.Iface(ifc); err != nil {
			return types.Wrapf(err, "invalid port forward %v: invalid trusted interface", p)
		}
	}
	return nil
}

// SetPortForwards makes the published ports of endpoint id exactly fwds
// (on bridge): map elements are added and deleted in one transaction per
// family, so neither the work here nor what the kernel re-validates grows
// with the ports other endpoints publish. Only SCTP ports add an iptables
// rule (the checksum fill). An endpoint's first call that fails leaves
// nothing.
//
// bridge is not needed by the DNAT itself: the network's own rules accept
// and hairpin-masquerade DNATed traffic into its bridge (networkRules). It
// is the interface of a routed forward's accept (routedRules) and of a
// trusted interface's (trustedRules).
func (fw *Firewall) SetPortForwards(id, bridge string, fwds []PortForward) error {
	if err := names.ID(id); err != nil {
		return types.Wrapf(err, "invalid port forwards: invalid endpoint id")
	}
	owner := EndpointOwner(id)
	var rules []Rule
	var elems []PortElem
	seen := map[elemKey]bool{}
	for _, p := range fwds {
		if err := p.validate(); err != nil {
			return err
		}
		if p.family() == IPv6 && !fw.IPv6() {
			return types.BadRequestErrorf("invalid port forward %v: ip6tables is not enabled", p)
		}
		if p.Routed {
			// The bridge is an interface match of the accept.
			if err := names.Iface(bridge); err != nil {
				return types.Wrapf(err, "invalid port forward %v: invalid bridge name", p)
			}
			// The same container port twice is one rule (setOwned
			// keys rules by their spec).
			rules = append(rules, routedRules(owner, bridge, p)...)
			rules = append(rules, portRules(owner, p)...)
			continue
		}
		if len(p.Trusted) > 0 {
			if err := names.Iface(bridge); err != nil {
				return types.Wrapf(err, "invalid port forward %v: invalid bridge name", p)
			}
			rules = append(rules, trustedRules(owner, bridge, p)...)
		}
		e := elemOf(owner, p)
		if seen[keyOf(e)] {
			return types.BadRequestErrorf("invalid port forwards of endpoint %s: host port %s/%d published twice", id, p.Proto, p.HostPort)
		}
		seen[keyOf(e)] = true
		elems = append(elems, e)
		rules = append(rules, portRules(owner, p)...)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fresh := fw.ports[owner] == nil && fw.owners[owner] == nil
	var del []PortElem
	for _, e := range fw.ownerElemsLocked(owner) {
		if !seen[keyOf(e)] {
			del = append(del, e)
		}
	}
	err := fw.updateElemsLocked(elems, del)
	if err == nil {
		err = fw.setOwnedLocked(owner, rules, nil)
	}
	if o := fw.ports[owner]; o != nil {
		o.claimed = true
	}
	if err != nil {
		if fresh {
			err = errors.Join(err, fw.removePortsLocked([]string{id}))
		}
		return types.Wrapf(err, "setting up port forwarding of endpoint %s", id)
	}
	return nil
}

// RemovePortForwards removes the published ports of the endpoints ids:
// their map elements in one transaction per family, and their SCTP
// checksum rules. Endpoints with nothing published are success.
func (fw *Firewall) RemovePortForwards(ids ...string) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if err := fw.removePortsLocked(ids); err != nil {
		return types.Wrapf(err, "removing port forwarding of endpoints %v", ids)
	}
	return nil
}

func (fw *Firewall) removePortsLocked(ids []string) error {
	var del []PortElem
	var t tx
	for _, id := range ids {
		owner := EndpointOwner(id)
		del = append(del, fw.ownerElemsLocked(owner)...)
		if o := fw.owners[owner]; o != nil {
			for _, r := range sortedRules(o.rules) {
				t.del(r)
			}
		}
	}
	return errors.Join(fw.updateElemsLocked(nil, del), fw.commitLocked(t.ops, false))
}

// portRules returns the iptables rules one forward still needs: for SCTP,
// the checksum fill (not on the path the port maps were made for, and the
// kernel may lack SCTP altogether). The DNAT is a map element, the
// forward ACCEPT and the hairpin masquerade are the network's rules.
func portRules(owner string, p PortForward) []Rule {
	if p.Proto != types.SCTP {
		return nil
	}
	return []Rule{{Family: p.family(), Table: TableMangle, Chain: chainPostroute,
		Spec: spec(owner, "-p sctp -m sctp --sport "+strconv.Itoa(int(p.ContainerPort)), "CHECKSUM --checksum-fill")}}
}
