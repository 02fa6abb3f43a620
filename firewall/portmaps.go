package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/opencnm/libnetwork/types"
)

// PortMaps is the narrow interface in front of the native nftables table
// that holds the published ports' DNAT (see the package comment for why
// they are not iptables rules): two maps per family, one keyed by
// protocol and host port for ports published on every host address, one
// keyed by host address, protocol and host port, both giving the container
// address and port. Their chains are fixed; publishing a port only adds
// map elements, which the kernel does not re-validate the table for.
//
// Implementations: nftports.Maps (netlink, in one namespace) and
// fakenft.Fake (in memory, for golden listings without root).
type PortMaps interface {
	// Ensure creates fam's table, maps and chains when they are missing
	// (never replacing them: a live restore keeps forwarding) and returns
	// the elements they hold.
	Ensure(fam Family) ([]PortElem, error)
	// Update deletes del and adds add in one transaction: all or nothing.
	Update(fam Family, add, del []PortElem) error
	// List returns the elements of fam's maps (none when there is no table).
	List(fam Family) ([]PortElem, error)
	// Remove deletes fam's table; no table is success.
	Remove(fam Family) error
}

// PortElem is one map element: Proto HostIP:HostPort -> ContainerIP:
// ContainerPort, HostIP invalid (the zero Addr) for every host address.
// Owner is the endpoint tag (cnm-ep-ID) kept in the element's comment,
// so leftovers of a dead process can be attributed.
type PortElem struct {
	Proto         types.Protocol
	HostIP        netip.Addr
	HostPort      uint16
	ContainerIP   netip.Addr
	ContainerPort uint16
	Owner         string
}

// ElemKey identifies an element within its family's maps: one host port
// is forwarded to one place.
type ElemKey struct {
	Proto    types.Protocol
	HostIP   netip.Addr
	HostPort uint16
}

// Key returns e's identity.
func (e PortElem) Key() ElemKey { return ElemKey{e.Proto, e.HostIP, e.HostPort} }

// Family returns the family whose maps hold e.
func (e PortElem) Family() Family {
	if e.ContainerIP.Is4() {
		return IPv4
	}
	return IPv6
}

func (e PortElem) String() string {
	host := "*"
	if e.HostIP.IsValid() {
		host = e.HostIP.String()
	}
	return fmt.Sprintf("%s %s -> %s %s", e.Proto, net.JoinHostPort(host, fmt.Sprint(e.HostPort)),
		netip.AddrPortFrom(e.ContainerIP, e.ContainerPort), e.Owner)
}

// SortElems orders elements deterministically (for listings and golden
// files).
func SortElems(es []PortElem) {
	sort.Slice(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.HostIP != b.HostIP {
			return a.HostIP.Less(b.HostIP)
		}
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		return a.HostPort < b.HostPort
	})
}

func elemOf(owner string, p PortForward) PortElem {
	e := PortElem{Proto: p.Proto, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Owner: owner}
	e.ContainerIP, _ = netip.AddrFromSlice(p.ContainerIP)
	e.ContainerIP = e.ContainerIP.Unmap()
	if hip := familyIP(p.family(), p.HostIP); hip != nil {
		e.HostIP, _ = netip.AddrFromSlice(hip)
		e.HostIP = e.HostIP.Unmap()
	}
	return e
}

type elemKey struct {
	fam Family
	ElemKey
}

func keyOf(e PortElem) elemKey { return elemKey{e.Family(), e.Key()} }

// portOwner is one endpoint's installed elements.
type portOwner struct {
	elems   map[elemKey]PortElem
	claimed bool // set by this process (false: adopted leftover)
}

func (fw *Firewall) recordElemLocked(e PortElem) {
	k := keyOf(e)
	if prev, ok := fw.elems[k]; ok {
		fw.forgetElemLocked(prev)
	}
	fw.elems[k] = e
	o := fw.ports[e.Owner]
	if o == nil {
		o = &portOwner{elems: map[elemKey]PortElem{}}
		fw.ports[e.Owner] = o
	}
	o.elems[k] = e
}

func (fw *Firewall) forgetElemLocked(e PortElem) {
	k := keyOf(e)
	if cur, ok := fw.elems[k]; ok && cur == e {
		delete(fw.elems, k)
	}
	if o := fw.ports[e.Owner]; o != nil {
		delete(o.elems, k)
		if len(o.elems) == 0 {
			delete(fw.ports, e.Owner)
		}
	}
}

// updateElemsLocked applies add and del to the maps, one transaction per
// family, and records what was applied. Elements another owner holds at
// an added key are deleted in the same transaction (a key maps to one
// place; the kernel refuses to overwrite an element's data).
func (fw *Firewall) updateElemsLocked(add, del []PortElem) error {
	for _, fam := range []Family{IPv4, IPv6} {
		var a, d []PortElem
		gone := map[elemKey]bool{}
		for _, e := range del {
			if e.Family() == fam && fw.elems[keyOf(e)] == e {
				d = append(d, e)
				gone[keyOf(e)] = true
			}
		}
		for _, e := range add {
			if e.Family() != fam {
				continue
			}
			if cur, ok := fw.elems[keyOf(e)]; ok && !gone[keyOf(e)] {
				if cur == e {
					continue
				}
				d = append(d, cur)
				gone[keyOf(e)] = true
			}
			a = append(a, e)
		}
		if len(a) == 0 && len(d) == 0 {
			continue
		}
		if err := fw.applyElemsLocked(fam, a, d); err != nil {
			return err
		}
	}
	return nil
}

// applyElemsLocked runs one family's transaction. When it fails (someone
// changed the maps behind our back: deleting a missing element fails the
// whole transaction), the maps are read, what they already reflect is
// dropped and the rest retried once; if that fails too, the record of the
// touched keys is set to what the kernel has, so an undo removes exactly
// what exists.
func (fw *Firewall) applyElemsLocked(fam Family, add, del []PortElem) error {
	err := fw.maps.Update(fam, add, del)
	if err == nil {
		fw.recordElemsLocked(add, del)
		return nil
	}
	have, lerr := fw.kernelElemsLocked(fam)
	if lerr != nil {
		return types.InternalErrorf("updating %s port maps: %w (and listing them to recover: %v)", fam, err, lerr)
	}
	var a, d []PortElem
	for _, e := range del {
		if cur, ok := have[keyOf(e)]; ok && sameElemData(cur, e) {
			d = append(d, cur)
		}
	}
	for _, e := range add {
		if cur, ok := have[keyOf(e)]; ok && cur == e {
			continue
		} else if ok && !containsKey(d, e) {
			d = append(d, cur)
		}
		a = append(a, e)
	}
	if err = fw.maps.Update(fam, a, d); err == nil {
		fw.recordElemsLocked(add, del)
		return nil
	}
	if have, lerr = fw.kernelElemsLocked(fam); lerr != nil {
		return types.InternalErrorf("updating %s port maps: %w (and listing them to recover: %v)", fam, err, lerr)
	}
	for _, e := range append(append([]PortElem(nil), add...), del...) {
		if cur, ok := fw.elems[keyOf(e)]; ok {
			fw.forgetElemLocked(cur)
		}
		if cur, ok := have[keyOf(e)]; ok {
			fw.recordElemLocked(cur)
		}
	}
	return types.InternalErrorf("updating %s port maps: %w", fam, err)
}

func (fw *Firewall) recordElemsLocked(add, del []PortElem) {
	for _, e := range del {
		fw.forgetElemLocked(e)
	}
	for _, e := range add {
		fw.recordElemLocked(e)
	}
}

func (fw *Firewall) kernelElemsLocked(fam Family) (map[elemKey]PortElem, error) {
	es, err := fw.maps.List(fam)
	if err != nil {
		return nil, err
	}
	out := make(map[elemKey]PortElem, len(es))
	for _, e := range es {
		out[keyOf(e)] = e
	}
	return out, nil
}

func sameElemData(a, b PortElem) bool {
	return a.ContainerIP == b.ContainerIP && a.ContainerPort == b.ContainerPort
}

func containsKey(es []PortElem, e PortElem) bool {
	for _, x := range es {
		if keyOf(x) == keyOf(e) {
			return true
		}
	}
	return false
}

// ownerElemsLocked returns owner's recorded elements, sorted.
func (fw *Firewall) ownerElemsLocked(owner string) []PortElem {
	o := fw.ports[owner]
	if o == nil {
		return nil
	}
	out := make([]PortElem, 0, len(o.elems))
	for _, e := range o.elems {
		out = append(out, e)
	}
	SortElems(out)
	return out
}

// adoptElemsLocked records the elements Setup found, unclaimed.
func (fw *Firewall) adoptElemsLocked(es []PortElem) {
	for _, e := range es {
		if _, ok := fw.elems[keyOf(e)]; !ok {
			fw.recordElemLocked(e)
		}
	}
}

// checkElemsLocked compares the recorded elements of fam with the kernel.
func (fw *Firewall) checkElemsLocked(fam Family) ([]string, error) {
	have, err := fw.maps.List(fam)
	if err != nil {
		return nil, err
	}
	in := map[PortElem]bool{}
	for _, e := range have {
		in[e] = true
	}
	var problems []string
	for k, e := range fw.elems {
		if k.fam == fam && !in[e] {
			problems = append(problems, fmt.Sprintf("%s port map element %s missing", fam, e))
		}
	}
	sort.Strings(problems)
	return problems, nil
}
