// Package macvlan_test runs controllers with macvlan networks in throwaway
// namespaces: a "host" whose physical interfaces are veths to "LAN"
// namespaces holding a neighbour and a router.
package macvlan_test

import (
	"fmt"
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/macvlan"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
)

// Addresses of the LAN behind every parent k (lan<k> on the host, wire in
// the LAN namespace): 192.0.<k+2>.0/24 and 2001:db8:<k>::/64, the router
// at .1 / ::1, a neighbour at .2 / ::2.
func lanV4(k int) string     { return fmt.Sprintf("192.0.%d.0/24", k+2) }
func lanV6(k int) string     { return fmt.Sprintf("2001:db8:%d::/64", k+1) }
func routerV4(k int) string  { return fmt.Sprintf("192.0.%d.1", k+2) }
func neighbour(k int) string { return fmt.Sprintf("192.0.%d.2", k+2) }
func routerV6(k int) string  { return fmt.Sprintf("2001:db8:%d::1", k+1) }
func neighV6(k int) string   { return fmt.Sprintf("2001:db8:%d::2", k+1) }

// Containers get addresses off the LAN's own (.1, .2, ::1, ::2).
func subPool(k int) string   { return fmt.Sprintf("192.0.%d.128/25", k+2) }
func subPoolV6(k int) string { return fmt.Sprintf("2001:db8:%d::100/120", k+1) }

// beyond is an address "on the internet": the router's own, off the LAN,
// reached only through the containers' default route.
const beyond = "198.51.100.1"

// rig is one controller's world, restartable on the same state.
type rig struct {
	t    *testing.T
	r    *testrig.Restartable
	host *testutil.HostNS
	lans []*testutil.HostNS
	c    *libnetwork.Controller

	// hairpin makes each LAN a switch in reflective relay: wire is a
	// port, with hairpin on, of a bridge "br" holding the LAN's
	// addresses, so frames come back out of the port they arrived on
	// (what a VEPA needs). Off, the LAN never returns a frame to its
	// sender's port, and the host reaches none of its containers.
	hairpin bool
}

// newRig makes a host namespace with nLANs parents lan0.. and starts a
// controller in it.
func newRig(t *testing.T, nLANs int) *rig {
	t.Helper()
	return newRigWith(t, nLANs, false)
}

// newRigWith is newRig whose LANs are hairpin switches when hairpin is set.
func newRigWith(t *testing.T, nLANs int, hairpin bool) *rig {
	t.Helper()
	rs := testrig.NewRestartable(t)
	r := &rig{t: t, r: rs, host: rs.Host, hairpin: hairpin}
	for k := range nLANs {
		r.lans = append(r.lans, r.addLAN(k))
	}
	// Cleanups run last-in first-out: the controller's teardown must run
	// before the LANs go, for deleting a LAN deletes its parent and the
	// macvlans on it while their sandboxes are still being torn down.
	// NewRestartable's own teardown then finds nothing left.
	t.Cleanup(func() {
		if rs.Last != nil {
			testrig.Teardown(t, rs.Last)
		}
	})
	r.start()
	return r
}

// start stops the running controller, if any, without tearing anything
// down (as a process exit would), and starts one on the same state.
func (r *rig) start(opts ...config.Option) *libnetwork.Controller {
	r.t.Helper()
	r.c = r.r.Start(opts...)
	return r.c
}

// addLAN makes parent lan<k> in the host, a veth whose other end "wire"
// is in a new LAN namespace with the neighbour's address (first, so the
// LAN's own connections come from it) and the router's (no DAD: usable at
// once), and beyond on its lo.
func (r *rig) addLAN(k int) *testutil.HostNS {
	t := r.t
	lan := testutil.NewNamedNS(t, fmt.Sprintf("lan%d", k))
	attrs := netlink.NewLinkAttrs()
	attrs.Name = fmt.Sprintf("lan%d", k)
	v := &netlink.Veth{LinkAttrs: attrs, PeerName: "wire", PeerNamespace: netlink.NsFd(lan.Fd())}
	if err := r.host.Netlink.LinkAdd(v); err != nil {
		t.Fatalf("making %s: %v", attrs.Name, err)
	}
	up(t, r.host.Netlink, attrs.Name)
	wire := up(t, lan.Netlink, "wire")
	if r.hairpin {
		battrs := netlink.NewLinkAttrs()
		battrs.Name = "br"
		br := &netlink.Bridge{LinkAttrs: battrs}
		if err := lan.Netlink.LinkAdd(br); err != nil {
			t.Fatalf("making the bridge of lan%d: %v", k, err)
		}
		if err := lan.Netlink.LinkSetMaster(wire, br); err != nil {
			t.Fatalf("making wire a port of lan%d's bridge: %v", k, err)
		}
		if err := lan.Netlink.LinkSetHairpin(wire, true); err != nil {
			t.Fatalf("hairpin on lan%d's wire: %v", k, err)
		}
		wire = up(t, lan.Netlink, "br")
	}
	for _, a := range []string{neighbour(k) + "/24", routerV4(k) + "/24", neighV6(k) + "/64", routerV6(k) + "/64"} {
		addr, _ := netlink.ParseAddr(a)
		addr.Flags = unix.IFA_F_NODAD
		if a == routerV6(k)+"/64" {
			// Deprecated (still answering), so IPv6 source selection
			// picks the neighbour's address too.
			addr.ValidLft, addr.PreferedLft = 0xffffffff, 0
		}
		if err := lan.Netlink.AddrAdd(wire, addr); err != nil {
			t.Fatalf("adding %s in lan%d: %v", a, k, err)
		}
	}
	lo, _ := lan.Netlink.LinkByName("lo")
	addr, _ := netlink.ParseAddr(beyond + "/32")
	if err := lan.Netlink.AddrAdd(lo, addr); err != nil {
		t.Fatal(err)
	}
	return lan
}

func up(t *testing.T, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err == nil {
		err = h.LinkSetUp(l)
	}
	if err != nil {
		t.Fatalf("bringing %s up: %v", name, err)
	}
	return l
}

// macvlanNet creates a macvlan network on parent ("" for none) with the
// LAN k's subnet and router as gateway, and the given extra driver options.
func (r *rig) macvlanNet(name, parent string, k int, driverOpts map[string]string, opts ...libnetwork.NetworkOption) *libnetwork.Network {
	r.t.Helper()
	n, err := r.c.NewNetwork("macvlan", name, "", append(netOpts(parent, k, driverOpts), opts...)...)
	if err != nil {
		r.t.Fatalf("creating macvlan network %s on %q: %v", name, parent, err)
	}
	return n
}

func netOpts(parent string, k int, driverOpts map[string]string) []libnetwork.NetworkOption {
	do := map[string]string{}
	for key, v := range driverOpts {
		do[key] = v
	}
	if parent != "" {
		do[macvlan.ParentOpt] = parent
	}
	return []libnetwork.NetworkOption{
		libnetwork.NetworkOptionGeneric(options.Generic{netlabel.GenericData: do}),
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: lanV4(k), SubPool: subPool(k), Gateway: routerV4(k)}}, nil, nil),
	}
}

// container makes a sandbox with its own namespace and joins it to n as
// endpoint name.
func (r *rig) container(n *libnetwork.Network, name string, epOpts ...libnetwork.EndpointOption) (*libnetwork.Sandbox, *libnetwork.Endpoint) {
	r.t.Helper()
	sb := testrig.Must[*libnetwork.Sandbox](r.t)(r.c.NewSandbox(name))
	return sb, testrig.Joined(r.t, n, sb, name, epOpts...)
}

func addrOf(ep *libnetwork.Endpoint) string { return testrig.EpIP(ep) }

// reach fetches from the server tagged tag at addr from ns and checks it
// saw us at from.
func reach(t *testing.T, ns *netnsutil.NS, addr, tag, from string) {
	t.Helper()
	if got, want := testrig.MustFetch(t, ns, "tcp", addr, tag), net.ParseIP(from).String(); got != want {
		t.Fatalf("%s saw us at %s, want %s", addr, got, want)
	}
}

func mustLinks(t *testing.T, h *netlink.Handle) []netlink.Link {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	return links
}
