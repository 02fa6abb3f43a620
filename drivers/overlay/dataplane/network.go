package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/drivers/internal/linkreap"
	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// DefaultPort is the IANA VXLAN port.
const DefaultPort = 4789

// VXLAN encapsulation overhead: outer Ethernet (14) + IP + UDP (8) +
// VXLAN (8) headers, with a 20-byte IPv4 or 40-byte IPv6 outer header.
const (
	OverheadIPv4 = 50
	OverheadIPv6 = 70
)

// Names of the devices inside a network namespace, which holds one
// network's data plane only.
const (
	BridgeName = "br0"
	vxlanName  = "vxlan0"
)

// linkGroup is the device group of every link the package makes in a
// network namespace, so teardown deletes them all with one request: the
// kernel waits for RCU once per deleted batch (~20 ms), not per device.
const linkGroup = 0x6f76 // "ov"

// Config describes one overlay network's data plane on one host.
type Config struct {
	VNI uint32 // VXLAN network identifier, 1 to 2^24-1
	// HostNS is the host's (underlay) namespace: the VXLAN device's UDP
	// socket is bound there, and LocalVTEP must be one of its addresses.
	HostNS *netnsutil.NS
	// NSPath is where the network's namespace is bind-mounted; a
	// namespace left there by a crash is cleared first.
	NSPath    string
	LocalVTEP netip.Addr // this host's underlay address
	Port      int        // UDP port; 0 is DefaultPort
	// MTU of the overlay's links; 0 is the underlay link's MTU minus
	// the VXLAN overhead. More than that is refused.
	MTU int
}

// Network is one overlay network's data plane on one host. Its methods
// are safe for concurrent use.
type Network struct {
	cfg  Config
	mtu  int
	ns   *netnsutil.NS
	nl   *netlink.Handle // in ns
	vx   int             // VXLAN device index in ns
	br   int             // bridge index in ns
	peer *peerSet
	ann  *announcer
	raw  *nl.NetlinkSocket // in ns, for what the netlink library has no call for
	// reap deletes detached endpoints' veths in the background, over
	// reapSock (in ns; its own, as reap runs concurrently with raw's users).
	reap     *linkreap.Reaper
	reapSock *nl.NetlinkSocket

	// mu guards eps and deleted; peer operations hold it for reading so
	// they never run on a torn-down network.
	mu      sync.RWMutex
	eps     map[string]*attached
	deleted bool
}

// Create builds the data plane: the namespace at cfg.NSPath, the bridge
// and the VXLAN device, all up and with the network's MTU. On failure
// nothing of it is left.
func Create(cfg Config) (_ *Network, err error) {
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	cfg.LocalVTEP = cfg.LocalVTEP.Unmap()
	obj := fmt.Sprintf("network vni %d", cfg.VNI)
	switch {
	case cfg.VNI == 0 || cfg.VNI >= 1<<24:
		return nil, invalid("creating", obj, "VNI must be 1 to %d", 1<<24-1)
	case cfg.HostNS == nil:
		return nil, invalid("creating", obj, "no host namespace")
	case cfg.NSPath == "":
		return nil, invalid("creating", obj, "no namespace path")
	case !cfg.LocalVTEP.IsValid() || cfg.LocalVTEP.IsUnspecified() || cfg.LocalVTEP.IsMulticast():
		return nil, invalid("creating", obj, "local VTEP %v is not a unicast address", cfg.LocalVTEP)
	case cfg.Port < 1 || cfg.Port > 65535:
		return nil, invalid("creating", obj, "port %d out of range", cfg.Port)
	}
	host, err := netlink.NewHandleAt(cfg.HostNS.Handle())
	if err != nil {
		return nil, kernelErr("creating", obj, fmt.Errorf("netlink handle in host namespace: %w", err))
	}
	defer host.Close()
	mtu, err := networkMTU(host, cfg, obj)
	if err != nil {
		return nil, err
	}
	if err := clearLeftover(cfg.NSPath); err != nil {
		return nil, kernelErr("creating", obj, err)
	}

	n := &Network{cfg: cfg, mtu: mtu, eps: map[string]*attached{}}
	ok := false
	defer func() {
		if !ok {
			if terr := n.teardown(); terr != nil {
				err = errors.Join(err, terr)
			}
		}
	}()
	if n.ns, err = netnsutil.New(cfg.NSPath); err != nil {
		return nil, kernelErr("creating", obj, err)
	}
	if n.nl, err = netlink.NewHandleAt(n.ns.Handle()); err != nil {
		return nil, kernelErr("creating", obj, fmt.Errorf("netlink handle in network namespace: %w", err))
	}
	if err := n.openRaw(); err != nil {
		return nil, kernelErr("creating", obj, fmt.Errorf("netlink socket in network namespace: %w", err))
	}
	if err := n.openReaper(); err != nil {
		return nil, kernelErr("creating", obj, fmt.Errorf("netlink socket in network namespace: %w", err))
	}
	noSnooping := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName, MTU: mtu, Group: linkGroup},
		MulticastSnooping: &noSnooping}
	if err := n.nl.LinkAdd(br); err != nil {
		return nil, kernelErr("creating", obj, fmt.Errorf("bridge: %w", err))
	}
	if n.br, err = linkIndex(n.nl, BridgeName); err != nil {
		return nil, kernelErr("creating", obj, err)
	}
	// Sent from the host namespace with the network namespace as the
	// target: the device's socket belongs to the sender's namespace.
	vx := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: vxlanName, MTU: mtu, Group: linkGroup, Namespace: netlink.NsFd(n.ns.Fd())},
		VxlanId:   int(cfg.VNI), SrcAddr: cfg.LocalVTEP.AsSlice(), Port: cfg.Port,
		Learning: false, Proxy: true,
	}
	if err := host.LinkAdd(vx); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, &ConflictError{Op: "creating", Object: obj,
				Reason: "another VXLAN device of the host uses this VNI and port", Err: err}
		}
		return nil, kernelErr("creating", obj, fmt.Errorf("vxlan device: %w", err))
	}
	if n.vx, err = linkIndex(n.nl, vxlanName); err != nil {
		return nil, kernelErr("creating", obj, err)
	}
	if err := n.nl.LinkSetMasterByIndex(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: n.vx}}, n.br); err != nil {
		return nil, kernelErr("creating", obj, fmt.Errorf("enslaving vxlan device: %w", err))
	}
	for _, idx := range []int{n.br, n.vx} {
		// Opening the VXLAN device binds its UDP socket: EADDRINUSE if
		// something else holds the port in the host namespace.
		if err := n.nl.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx}}); err != nil {
			return nil, kernelErr("creating", obj, fmt.Errorf("bringing link %d up: %w", idx, err))
		}
	}
	if err := n.openAnnouncer(); err != nil {
		return nil, kernelErr("creating", obj, err)
	}
	n.peer = newPeerSet(n.nl, n.vx, cfg.LocalVTEP)
	ok = true
	return n, nil
}

// networkMTU returns cfg.MTU, or the underlay link's MTU minus the
// VXLAN overhead; the underlay link is the one holding the local VTEP.
func networkMTU(host *netlink.Handle, cfg Config, obj string) (int, error) {
	addrs, err := host.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return 0, kernelErr("creating", obj, fmt.Errorf("listing host addresses: %w", err))
	}
	under := 0
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == cfg.LocalVTEP {
			under = a.LinkIndex
			break
		}
	}
	if under == 0 {
		return 0, invalid("creating", obj, "local VTEP %s is not an address of the host namespace", cfg.LocalVTEP)
	}
	l, err := host.LinkByIndex(under)
	if err != nil {
		return 0, kernelErr("creating", obj, fmt.Errorf("underlay link: %w", err))
	}
	overhead := OverheadIPv4
	if cfg.LocalVTEP.Is6() {
		overhead = OverheadIPv6
	}
	most := l.Attrs().MTU - overhead
	switch {
	case cfg.MTU == 0:
		return most, nil
	case cfg.MTU > most:
		return 0, invalid("creating", obj, "MTU %d exceeds what underlay %s (MTU %d) carries: at most %d",
			cfg.MTU, l.Attrs().Name, l.Attrs().MTU, most)
	case cfg.MTU < 68:
		return 0, invalid("creating", obj, "MTU %d below the IPv4 minimum of 68", cfg.MTU)
	}
	return cfg.MTU, nil
}

func linkIndex(h *netlink.Handle, name string) (int, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("reading back %s: %w", name, err)
	}
	return l.Attrs().Index, nil
}

// RemoveLeftover removes the data plane a crash left at path (its VXLAN
// device, then its namespace); nothing there is success.
func RemoveLeftover(path string) error {
	if err := clearLeftover(path); err != nil {
		return kernelErr("removing", "leftover namespace "+path, err)
	}
	return nil
}

// clearLeftover deletes the VXLAN device of a namespace a crash left at
// path, and the veths Detach left for its reaper, then the namespace. The
// device must go explicitly: a namespace is freed asynchronously, and
// until then its device keeps the VNI taken on the host's socket, so a
// new one would get EEXIST. So must the veths: until then their
// container ends keep their names in the containers' namespaces.
func clearLeftover(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if ns, err := netnsutil.Open(path); err == nil {
		var sock *nl.NetlinkSocket
		if ns.Do(func() (err error) { sock, err = nl.Subscribe(unix.NETLINK_ROUTE); return err }) == nil {
			_ = groupDelete(sock, reapGroup)
			sock.Close()
		}
		if h, err := netlink.NewHandleAt(ns.Handle()); err == nil {
			if l, err := h.LinkByName(vxlanName); err == nil {
				_ = h.LinkDel(l)
			}
			h.Close()
		}
		ns.Close()
	}
	return netnsutil.Remove(path)
}

// MTU returns the MTU of the network's links.
func (n *Network) MTU() int { return n.mtu }

// NSPath returns where the network's namespace is mounted.
func (n *Network) NSPath() string { return n.cfg.NSPath }

// LocalVTEP returns this host's VTEP address.
func (n *Network) LocalVTEP() netip.Addr { return n.cfg.LocalVTEP }

// AddPeer programs a remote endpoint: a permanent FDB entry of its MAC
// to its VTEP and permanent neighbour entries of its addresses, then
// announces it to the local endpoints (announce.go). Adding it again
// with the same fields does nothing; with other fields its entries are
// replaced. On failure the entries are as before.
func (n *Network) AddPeer(p Peer) error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.deleted {
		return &ConflictError{Op: "adding", Object: "peer " + p.ID, Reason: "the network's data plane is deleted"}
	}
	changed, err := n.peer.add(p)
	if changed && len(n.eps) > 0 {
		_ = n.ann.announce(p) // best effort, see announcer
	}
	return err
}

// RemovePeer removes a remote endpoint's entries, except those another
// peer still claims, which are set to that peer's value. An unknown ID
// is success.
func (n *Network) RemovePeer(id string) error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.deleted {
		return nil
	}
	return n.peer.remove(id)
}

// Peers returns the programmed peers sorted by ID.
func (n *Network) Peers() []Peer { return n.peer.list() }

// Reconcile makes the programmed peers exactly desired and repairs every
// FDB and neighbour entry of the VXLAN device that differs from what
// they claim (deleted, changed or added by hand), reporting what it did.
func (n *Network) Reconcile(desired []Peer) (Report, error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.deleted {
		return Report{}, &ConflictError{Op: "reconciling", Object: "peers", Reason: "the network's data plane is deleted"}
	}
	rep, err := n.peer.reconcile(desired)
	if len(n.eps) > 0 {
		for _, p := range n.peer.list() {
			if slices.Contains(rep.Added, p.ID) {
				_ = n.ann.announce(p) // best effort, see announcer
			}
		}
	}
	return rep, err
}

// Delete tears the data plane down: the endpoints' veths (those waiting
// for the reaper included), the VXLAN device and the bridge are deleted
// explicitly (so the VNI and the containers' interface names are free at
// once), then the namespace. Deleting twice, or what is already gone,
// is success.
func (n *Network) Delete() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.deleted {
		return nil
	}
	if err := n.teardown(); err != nil {
		return err
	}
	n.deleted = true
	return nil
}

// teardown deletes whatever of the data plane exists. It tries every
// link even when one fails; the namespace goes only when they are all
// gone, so a failed teardown can be retried.
func (n *Network) teardown() error {
	var errs []error
	obj := fmt.Sprintf("network vni %d", n.cfg.VNI)
	if n.reap != nil {
		// Deletes what waits; on failure the group delete below retries.
		_ = n.reap.Close()
	}
	if n.reapSock != nil {
		if err := groupDelete(n.reapSock, reapGroup); err != nil {
			errs = append(errs, err)
		}
	}
	if n.raw != nil {
		// One request for all; if it fails, the deletes by name below
		// are the fallback, and their errors are the ones that count.
		_ = groupDelete(n.raw, linkGroup)
	}
	if n.nl != nil {
		for id, ep := range n.eps {
			if err := delLink(n.nl, ep.hostName); err != nil {
				errs = append(errs, err)
			} else {
				delete(n.eps, id)
			}
		}
		for _, name := range []string{vxlanName, BridgeName} {
			errs = append(errs, delLink(n.nl, name))
		}
		if err := errors.Join(errs...); err != nil {
			return kernelErr("deleting", obj, err)
		}
		n.nl.Close()
		n.nl = nil
	}
	n.ann.close()
	n.closeSockets()
	if n.ns != nil {
		n.ns.Close()
		n.ns = nil
	}
	if err := netnsutil.Remove(n.cfg.NSPath); err != nil {
		return kernelErr("deleting", obj, err)
	}
	return nil
}

// closeSockets closes the raw sockets; the reaper is closed already.
func (n *Network) closeSockets() {
	for _, s := range []**nl.NetlinkSocket{&n.raw, &n.reapSock} {
		if *s != nil {
			(*s).Close()
			*s = nil
		}
	}
}

// delLink deletes the link called name; one already gone is success.
func delLink(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err == nil {
		err = h.LinkDel(l)
	}
	if err != nil && !gone(err) {
		return fmt.Errorf("deleting link %s: %w", name, err)
	}
	return nil
}
