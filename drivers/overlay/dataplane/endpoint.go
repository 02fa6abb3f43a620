package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// EndpointConfig is a local endpoint to plug into the network's bridge.
type EndpointConfig struct {
	ID     string
	NS     *netnsutil.NS // the container's namespace
	IfName string        // the interface's name in it ("eth0")
	// MAC of the container's interface; nil derives one from IPv4, or
	// else IPv6 (MACFromIP). A MAC derived from an address is reused
	// when the address is, on whichever host: prefer a random one kept
	// in the store.
	MAC  net.HardwareAddr
	IPv4 netip.Prefix // address with its subnet; zero for none
	IPv6 netip.Prefix // address with its subnet; zero for none
	// Bare leaves the container's end as created (MAC and MTU, down, no
	// addresses) for a caller that configures it itself, as a sandbox
	// does with an interface its driver made inside; the addresses are
	// still needed for the Peer. Attach then cannot wait for the
	// endpoint to be reachable: its first packets may be lost until the
	// kernel enables its bridge port.
	Bare bool
}

type attached struct {
	cfg      EndpointConfig
	hostName string
	peer     Peer
}

// MACFromIP derives a locally administered unicast MAC from an address:
// 02:42 and the address's last four bytes.
func MACFromIP(ip netip.Addr) net.HardwareAddr {
	b := ip.As16()
	return net.HardwareAddr{0x02, 0x42, b[12], b[13], b[14], b[15]}
}

// hostVethName names the bridge end of endpoint id's veth. It lives in
// the network's own namespace, so it only has to differ from the other
// endpoints of the network.
func hostVethName(id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("ve%08x", h.Sum32())
}

func (ep *EndpointConfig) check() error {
	obj := "endpoint " + ep.ID
	switch {
	case ep.ID == "":
		return invalid("attaching", "endpoint", "no endpoint ID")
	case ep.NS == nil:
		return invalid("attaching", obj, "no container namespace")
	case ep.IfName == "" || len(ep.IfName) > 15:
		return invalid("attaching", obj, "interface name %q must be 1 to 15 bytes", ep.IfName)
	case ep.IPv4.IsValid() && !ep.IPv4.Addr().Is4():
		return invalid("attaching", obj, "IPv4 address %s is not IPv4", ep.IPv4)
	case ep.IPv6.IsValid() && (!ep.IPv6.Addr().Is6() || ep.IPv6.Addr().Is4In6()):
		return invalid("attaching", obj, "IPv6 address %s is not IPv6", ep.IPv6)
	case !ep.IPv4.IsValid() && !ep.IPv6.IsValid():
		return invalid("attaching", obj, "no address")
	}
	ep.MAC = slices.Clone(ep.MAC) // kept; the caller's slice may change
	if ep.MAC == nil {
		if ep.IPv4.IsValid() {
			ep.MAC = MACFromIP(ep.IPv4.Addr())
		} else {
			ep.MAC = MACFromIP(ep.IPv6.Addr())
		}
	}
	if len(ep.MAC) != 6 || ep.MAC[0]&1 != 0 || isZeroMAC(ep.MAC) {
		return invalid("attaching", obj, "MAC %q is not a unicast Ethernet address", ep.MAC)
	}
	return nil
}

func (ep EndpointConfig) same(o EndpointConfig) bool {
	return ep.ID == o.ID && nsPath(ep.NS) == nsPath(o.NS) && ep.IfName == o.IfName &&
		bytes.Equal(ep.MAC, o.MAC) && ep.IPv4 == o.IPv4 && ep.IPv6 == o.IPv6 && ep.Bare == o.Bare
}

// nsPath is ns's path; an adopted endpoint has no namespace.
func nsPath(ns *netnsutil.NS) string {
	if ns == nil {
		return ""
	}
	return ns.Path()
}

// Attach plugs a local endpoint in: a veth whose bridge end is a port of
// the network's bridge and whose other end is made directly in the
// container's namespace as ep.IfName, with the MAC, the network's MTU and
// the addresses (IPv6 without duplicate address detection: the store
// keeps addresses unique, and the VXLAN proxy would swallow the probe
// anyway), up. It returns the Peer other hosts program for it. Attaching
// the same endpoint again returns the same Peer; with other settings it
// is a ConflictError. On failure nothing of it is left. With ep.Bare the
// container's end is only created.
func (n *Network) Attach(ep EndpointConfig) (Peer, error) {
	if err := ep.check(); err != nil {
		return Peer{}, err
	}
	obj := "endpoint " + ep.ID
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.deleted {
		return Peer{}, &ConflictError{Op: "attaching", Object: obj, Reason: "the network's data plane is deleted"}
	}
	if a, ok := n.eps[ep.ID]; ok {
		if a.cfg.same(ep) {
			return a.peer, nil
		}
		return Peer{}, &ConflictError{Op: "attaching", Object: obj, Reason: "already attached with other settings"}
	}
	a := &attached{cfg: ep, hostName: hostVethName(ep.ID),
		peer: Peer{ID: ep.ID, MAC: ep.MAC, IPv4: ep.IPv4.Addr(), IPv6: ep.IPv6.Addr(), VTEP: n.cfg.LocalVTEP}}
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: a.hostName, MTU: n.mtu, MasterIndex: n.br, Flags: net.FlagUp, Group: linkGroup},
		PeerName:  ep.IfName, PeerNamespace: netlink.NsFd(ep.NS.Fd()),
		PeerHardwareAddr: ep.MAC, PeerMTU: uint32(n.mtu),
	}
	if n.reap.Pending() && n.waiting(a.hostName) {
		// The endpoint's own veth, detached, still waits for the reaper.
		// Found before the create, not by its EEXIST: the kernel makes
		// the container's end first, and deleting it again after the
		// bridge end's name clashed costs an RCU wait of its own.
		_ = n.reap.Flush() // on failure, the create reports the clash
	}
	err := n.nl.LinkAdd(veth)
	if errors.Is(err, unix.EEXIST) && n.reap.Pending() {
		// A detached veth waiting for the reaper may hold the container
		// end's name in its namespace.
		if ferr := n.reap.Flush(); ferr == nil {
			err = n.nl.LinkAdd(veth)
		}
	}
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return Peer{}, &ConflictError{Op: "attaching", Object: obj,
				Reason: fmt.Sprintf("%s or %s exists already", a.hostName, ep.IfName), Err: err}
		}
		return Peer{}, kernelErr("attaching", obj, fmt.Errorf("veth: %w", err))
	}
	if ep.Bare {
		n.eps[ep.ID] = a
		return a.peer, nil
	}
	if err := configureInside(ep, n.mtu); err != nil {
		return Peer{}, errors.Join(kernelErr("attaching", obj, err), delLink(n.nl, a.hostName))
	}
	if err := n.awaitReady(a.hostName, ep); err != nil {
		return Peer{}, errors.Join(kernelErr("attaching", obj, err), delLink(n.nl, a.hostName))
	}
	n.eps[ep.ID] = a
	return a.peer, nil
}

// waiting reports whether the link called name is a detached one,
// waiting for the reaper.
func (n *Network) waiting(name string) bool {
	l, err := n.nl.LinkByName(name)
	return err == nil && l.Attrs().Group == reapGroup
}

// awaitReady waits for the bridge end called name to forward and for
// the container's IPv6 address to have its local route, without which
// packets to it are dropped (port.go).
func (n *Network) awaitReady(name string, ep EndpointConfig) error {
	l, err := n.nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("reading back %s: %w", name, err)
	}
	if err := waitUntil(func() (bool, error) { return n.forwarding(l.Attrs().Index) }); err != nil {
		return err
	}
	if !ep.IPv6.IsValid() {
		return nil
	}
	h, err := netlink.NewHandleAt(ep.NS.Handle())
	if err != nil {
		return fmt.Errorf("netlink handle in container namespace: %w", err)
	}
	defer h.Close()
	inside, err := h.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("reading back %s: %w", ep.IfName, err)
	}
	local := &netlink.Route{Table: unix.RT_TABLE_LOCAL, LinkIndex: inside.Attrs().Index,
		Dst: &net.IPNet{IP: ep.IPv6.Addr().AsSlice(), Mask: net.CIDRMask(128, 128)}}
	return waitUntil(func() (bool, error) {
		rs, err := h.RouteListFiltered(netlink.FAMILY_V6, local, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST|netlink.RT_FILTER_OIF)
		if err != nil {
			return false, fmt.Errorf("listing local routes of %s: %w", ep.IfName, err)
		}
		return len(rs) > 0, nil
	})
}

// configureInside gives the container's end its addresses and brings it up.
func configureInside(ep EndpointConfig, mtu int) error {
	h, err := netlink.NewHandleAt(ep.NS.Handle())
	if err != nil {
		return fmt.Errorf("netlink handle in container namespace: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("reading back %s: %w", ep.IfName, err)
	}
	for _, p := range []netip.Prefix{ep.IPv4, ep.IPv6} {
		if !p.IsValid() {
			continue
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("adding %s to %s: %w", p, ep.IfName, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bringing %s up: %w", ep.IfName, err)
	}
	return nil
}

// Detach unplugs a local endpoint: it returns once the endpoint is cut
// off (its bridge end down, so no frame reaches or leaves it), and its
// veth, both ends, is deleted in the background (reap.go). An unknown ID,
// or a veth already gone, is success.
func (n *Network) Detach(id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	a, ok := n.eps[id]
	if !ok || n.deleted {
		return nil
	}
	if err := cutOff(n.raw, a.hostName); err != nil {
		if !gone(err) {
			return kernelErr("detaching", "endpoint "+id, err)
		}
	} else {
		n.reap.Queue(1)
	}
	delete(n.eps, id)
	return nil
}

// Endpoints returns the Peers of the attached endpoints, as other hosts
// program them.
func (n *Network) Endpoints() []Peer {
	n.mu.RLock()
	defer n.mu.RUnlock()
	out := make([]Peer, 0, len(n.eps))
	for _, a := range n.eps {
		out = append(out, a.peer)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
