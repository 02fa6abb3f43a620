package libnetwork

import (
	"net"
	"net/netip"
	"strings"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/types"
)

// Name resolution for the embedded resolver. Records are not copied into a
// separate table: the model under ctrl.mu already holds every endpoint of
// every network with its name, aliases and addresses, from CreateEndpoint to
// Delete (as upstream, a Leave alone keeps a name resolvable). A lookup walks
// the endpoints of the few networks the sandbox is attached to, which costs
// well under a microsecond for networks of tens of endpoints and needs no
// bookkeeping that could drift from the model.

// servesNames reports whether the endpoints of n are resolvable by name
// through the embedded resolver: every network but the address-less ones
// and those whose driver says they do not (driverapi.NameServer).
func (n *Network) servesNames() bool {
	if n.addressLess() {
		return false
	}
	if ns, ok := n.driver.Driver.(driverapi.NameServer); ok {
		return ns.ServesNames(n.generic)
	}
	return true
}

// ResolveName returns the addresses of name as the sandbox's embedded
// resolver sees it: an endpoint name or CreateOptionMyAlias alias on one of
// the networks the sandbox is attached to, a join-time alias
// (CreateOptionAlias) of one of the sandbox's endpoints, or any of those
// followed by ".<network name>". Matching ignores case and a trailing dot.
// ipType is types.IPv4, types.IPv6 or types.IP (both). The bool is true when
// the name is known but has no address of the asked family, so the resolver
// answers "no records" instead of forwarding the name.
func (sb *Sandbox) ResolveName(name string, ipType int) ([]net.IP, bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name == "" {
		return nil, false
	}
	c := sb.ctrl
	c.mu.Lock()
	defer c.mu.Unlock()
	// First the whole name on every network, in the sandbox's endpoint
	// order; then each shorter prefix with the rest naming the network
	// ("web.frontend": "web" on network "frontend"). Network names may
	// contain dots, so every split point is tried.
	prefix, netName := name, ""
	for {
		for _, ep := range sb.endpoints {
			n := ep.network
			if !n.servesNames() || (netName != "" && !strings.EqualFold(n.name, netName)) {
				continue
			}
			target := prefix
			if real, ok := lookupFold(sb.aliases[ep.id], prefix); ok {
				target = real
			}
			if ips, known := n.resolveNameLocked(target, ipType); known {
				return ips, len(ips) == 0
			}
		}
		i := strings.LastIndexByte(prefix, '.')
		if i <= 0 {
			return nil, false
		}
		prefix, netName = name[:i], name[i+1:]
	}
}

// ResolveIP returns "<endpoint name>.<network name>" for the endpoint that
// has ip on one of the networks the sandbox is attached to, or "" (the
// answer to a PTR query through the embedded resolver).
func (sb *Sandbox) ResolveIP(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	addr = addr.Unmap()
	c := sb.ctrl
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ep := range sb.endpoints {
		n := ep.network
		if !n.servesNames() {
			continue
		}
		for _, other := range n.endpoints {
			if other.deleting {
				continue
			}
			if ipNetHas(other.iface.addr, addr) || ipNetHas(other.iface.addrv6, addr) {
				return other.name + "." + n.name
			}
		}
		if name := n.remoteNameOfLocked(addr); name != "" {
			return name + "." + n.name
		}
	}
	return ""
}

// remoteNameOfLocked is the name of the endpoint of global network n on
// another host that has addr, or "". Caller holds ctrl.mu.
func (n *Network) remoteNameOfLocked(addr netip.Addr) string {
	if !n.global {
		return ""
	}
	var name string
	n.ctrl.mirror.remoteLocked(n.id, func(e *globalstore.Endpoint) bool {
		for _, p := range e.Addrs {
			if p.Addr().Unmap() == addr {
				name = e.Name
				return true
			}
		}
		return false
	})
	return name
}

// resolveNameLocked collects the addresses of the endpoints of n called
// name or aliased to it. known reports that at least one endpoint matched.
// Caller holds ctrl.mu.
func (n *Network) resolveNameLocked(name string, ipType int) (ips []net.IP, known bool) {
	for _, ep := range n.endpoints {
		if ep.deleting || !ep.answersTo(name) {
			continue
		}
		known = true
		if a := ep.iface.addr; a != nil && ipType != types.IPv6 {
			ips = append(ips, types.GetIPCopy(a.IP.To4()))
		}
		if a := ep.iface.addrv6; a != nil && ipType != types.IPv4 {
			ips = append(ips, types.GetIPCopy(a.IP))
		}
	}
	if n.global {
		// Endpoints on other hosts, from the mirror of the global store.
		n.ctrl.mirror.remoteLocked(n.id, func(e *globalstore.Endpoint) bool {
			if !answers(name, e.Name, e.Aliases) {
				return false
			}
			known = true
			for _, p := range e.Addrs {
				a := p.Addr().Unmap()
				if (a.Is4() && ipType != types.IPv6) || (a.Is6() && ipType != types.IPv4) {
					ips = append(ips, net.IP(a.AsSlice()))
				}
			}
			return false
		})
	}
	return ips, known
}

// answersTo reports whether name (lower case) is the endpoint's name or one
// of its CreateOptionMyAlias aliases. Both are read-only after creation.
func (ep *Endpoint) answersTo(name string) bool { return answers(name, ep.name, ep.myAliases) }

// answers reports whether name is own or one of aliases, without case.
func answers(name, own string, aliases []string) bool {
	if strings.EqualFold(own, name) {
		return true
	}
	for _, a := range aliases {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}

// lookupFold returns m[key] with key compared without case.
func lookupFold(m map[string]string, key string) (string, bool) {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

func ipNetHas(n *net.IPNet, addr netip.Addr) bool {
	if n == nil {
		return false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	return ok && a.Unmap() == addr
}
