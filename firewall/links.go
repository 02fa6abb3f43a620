package firewall

import (
	"net"
	"strconv"

	"github.com/opencnm/libnetwork/internal/names"
	"github.com/opencnm/libnetwork/types"
)

// Link is one legacy container link (upstream's --link) on a bridge whose
// ICC is off: Parent may open connections to Child on Ports, and nothing
// else between them is let through by it.
type Link struct {
	Bridge   string
	ParentIP net.IP
	ChildIP  net.IP
	Ports    []types.TransportPort
}

// LinkOwner is the comment tag of the link rules an endpoint's join made;
// injective as EndpointOwner, and distinct from it, whose rules
// SetPortForwards owns.
func LinkOwner(id string) string { return commentPrefix + "link-" + names.Tag(id) }

func (l Link) validate() error {
	if l.Bridge == "" || len(l.Bridge) > 15 {
		return types.BadRequestErrorf("invalid link: bridge name %q", l.Bridge)
	}
	if l.ParentIP == nil || l.ChildIP == nil || (l.ParentIP.To4() == nil) != (l.ChildIP.To4() == nil) {
		return types.BadRequestErrorf("invalid link %s -> %s: two addresses of one family are needed", l.ParentIP, l.ChildIP)
	}
	for _, p := range l.Ports {
		switch p.Proto {
		case types.TCP, types.UDP, types.SCTP:
		default:
			return types.BadRequestErrorf("invalid link %s -> %s: unsupported protocol %s", l.ParentIP, l.ChildIP, p.Proto)
		}
		if p.Port == 0 {
			return types.BadRequestErrorf("invalid link %s -> %s: port 0", l.ParentIP, l.ChildIP)
		}
	}
	return nil
}

// SetLinks makes the link rules of endpoint id exactly links, as
// upstream's: per port of each link, in the filter DOCKER chain (which
// FORWARD jumps to before the ICC drop), an ACCEPT from parent to child
// on the destination port and one back on the source port. A first call
// that fails leaves nothing; an empty list removes them all.
func (fw *Firewall) SetLinks(id string, links []Link) error {
	var want []Rule
	owner := LinkOwner(id)
	for _, l := range links {
		if err := l.validate(); err != nil {
			return err
		}
		fam, bits := IPv4, "/32"
		if l.ParentIP.To4() == nil {
			fam, bits = IPv6, "/128"
			if !fw.IPv6() {
				return types.BadRequestErrorf("invalid link %s -> %s: ip6tables is not enabled", l.ParentIP, l.ChildIP)
			}
		}
		par, chl := l.ParentIP.String()+bits, l.ChildIP.String()+bits
		io := " -i " + l.Bridge + " -o " + l.Bridge
		for _, p := range l.Ports {
			proto := p.Proto.String()
			m := " -p " + proto + " -m " + proto
			port := strconv.Itoa(int(p.Port))
			want = append(want,
				Rule{Family: fam, Table: TableFilter, Chain: ChainDocker,
					Spec: spec(owner, "-s "+par+" -d "+chl+io+m+" --dport "+port, "ACCEPT")},
				Rule{Family: fam, Table: TableFilter, Chain: ChainDocker,
					Spec: spec(owner, "-s "+chl+" -d "+par+io+m+" --sport "+port, "ACCEPT")})
		}
	}
	if err := fw.setOwned(owner, want); err != nil {
		return types.Wrapf(err, "setting up links of endpoint %s", id)
	}
	return nil
}

// RemoveLinks removes the link rules of endpoint id; none is success.
func (fw *Firewall) RemoveLinks(id string) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if err := fw.removeOwnerLocked(LinkOwner(id)); err != nil {
		return types.Wrapf(err, "removing links of endpoint %s", id)
	}
	return nil
}
