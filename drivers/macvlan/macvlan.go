// Package macvlan is the CNM macvlan driver: containers sit directly on the
// LAN of a host interface (the network's parent), each with its own MAC
// address, with no bridge, NAT or firewall of the host in between.
//
// At Join the container's macvlan link is created directly inside the
// sandbox's namespace, in one netlink request whose lower device is the
// parent in the host namespace (the kernel resolves IFLA_LINK in the
// requesting socket's namespace and creates the link in IFLA_NET_NS_FD), so
// nothing is ever made in the host and moved. Every macvlan link carries
// its endpoint's ID as its alias, every stand-in parent its network's, so
// garbage collection tells the driver's leftovers from anything else, in
// the host namespace and inside kept sandbox namespaces.
//
// Choices (docs/macvlan.md says why):
//   - No parent: the network is internal and its parent is a veth pair the
//     driver makes in the host namespace ("mvi-"/"mvo-" + 11 hex digits of
//     the network ID's hash, both up, no addresses, IPv6 off), tagged with
//     the network and deleted with it. This kernel has no dummy link type.
//   - A parent named like an 802.1q sub-interface (eth0.10) that does not
//     exist is refused NotImplemented; the message says whether the kernel
//     lacks 8021q (probed at New) or only the driver's creation of it. An
//     existing link is used as given whatever its name.
//   - Published ports are BadRequest: there is no NAT on a macvlan network.
//   - The host cannot reach its own macvlan containers through the parent
//     (the kernel does not pass frames between a lower device and its
//     macvlans); that is the kernel's behaviour, not the driver's.
package macvlan

import (
	"net"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/internal/linkerr"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// NetworkType is the name of this driver.
const NetworkType = "macvlan"

// Capability returns the macvlan driver's capability: its state is local
// to one host, its containers are reachable from the whole LAN.
func Capability() driverapi.Capability {
	return driverapi.Capability{DataScope: driverapi.LocalScope, ConnectivityScope: driverapi.GlobalScope}
}

// Tags written as link aliases, as the bridge driver's: the ID follows
// verbatim (a valid ID always fits the kernel's 255-byte alias).
const (
	tagNetwork  = "opencnm:net:"
	tagEndpoint = "opencnm:ep:"
)

func networkTag(nid string) string  { return tagNetwork + nid }
func endpointTag(eid string) string { return tagEndpoint + eid }

// hostLinks is what the driver asks of the host namespace's netlink; a
// *netlink.Handle is one, and unit tests put a fake in its place.
type hostLinks interface {
	LinkByName(name string) (netlink.Link, error)
	LinkByIndex(index int) (netlink.Link, error)
	LinkList() ([]netlink.Link, error)
	LinkAdd(link netlink.Link) error
	LinkDel(link netlink.Link) error
	LinkSetAlias(link netlink.Link, alias string) error
	LinkSetUp(link netlink.Link) error
	LinkSetIP6AddrGenMode(link netlink.Link, mode int) error
}

// Driver is the macvlan network driver. It is safe for concurrent use.
type Driver struct {
	host *netnsutil.NS // the controller's host namespace; owned by the caller
	nl   hostLinks     // every netlink request in host
	// closeNL releases nl; nil for a fake.
	closeNL func()
	// vlan says whether the kernel can make 802.1q links; asked once, at
	// the first parent that needs it (vlan.go).
	vlan vlanSupport
	// reap deletes left endpoints' links in the background (reaper.go).
	reap *reaper

	// Lock order: mu is a leaf, never held across kernel work. Kernel work
	// on one network or endpoint is kept exclusive by the state flags
	// (network creating/deleting, endpoint busy).
	mu       sync.Mutex
	networks map[string]*network // guarded by mu; includes networks being created or deleted
}

var _ driverapi.Driver = (*Driver)(nil)
var _ driverapi.Closer = (*Driver)(nil)
var _ driverapi.JoinRestorer = (*Driver)(nil)
var _ driverapi.GarbageCollector = (*Driver)(nil)
var _ driverapi.SandboxGarbageCollector = (*Driver)(nil)
var _ driverapi.NetworkValidator = (*Driver)(nil)
var _ driverapi.NetworkAbandoner = (*Driver)(nil)

// New returns a macvlan driver whose parents and stand-in parents are in
// host.
func New(host *netnsutil.NS) (*Driver, error) {
	if host == nil {
		return nil, types.BadRequestErrorf("creating macvlan driver: no host namespace")
	}
	h, err := netlink.NewHandleAt(host.Handle())
	if err != nil {
		return nil, types.InternalErrorf("creating macvlan driver: netlink handle in %s: %w", host.Path(), err)
	}
	d := newDriver(host, h)
	d.closeNL = h.Close
	d.vlan.probe = func() error { return probeVLAN(h) }
	return d, nil
}

func newDriver(host *netnsutil.NS, nl hostLinks) *Driver {
	d := &Driver{host: host, nl: nl, networks: map[string]*network{}}
	d.reap = newReaper(d.removeLink)
	return d
}

// Type returns "macvlan".
func (d *Driver) Type() string { return NetworkType }

// Close finishes deleting the links of left endpoints and releases the
// driver's netlink socket. Networks and joined endpoints stay in the
// kernel: the controller deletes them, or a restart takes them back.
func (d *Driver) Close() error {
	d.reap.close()
	if d.closeNL != nil {
		d.closeNL()
	}
	return nil
}

// The local names keep the call sites short; the classification is
// shared with the other link-owning drivers.
func isLinkNotFound(err error) bool { return linkerr.IsNotFound(err) }

func ignoreGone(err error) error { return linkerr.IgnoreGone(err) }

func ipCopy(ipn *net.IPNet) net.IP {
	if ipn == nil {
		return nil
	}
	return types.GetIPCopy(ipn.IP)
}
