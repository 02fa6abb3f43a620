// Package macvlan_test runs controllers with macvlan networks in throwaway
// namespaces: a "host" whose physical interfaces are veths to "LAN"
// namespaces holding a neighbour and a router.
package macvlan_test

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/macvlan"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
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

// rig is one controller's world.
type rig struct {
	t    *testing.T
	host *testutil.HostNS
	lans []*testutil.HostNS
	base []config.Option
	c    *libnetwork.Controller
}

// newRig makes a host namespace with nLANs parents lan0.. and starts a
// controller in it.
func newRig(t *testing.T, nLANs int) *rig {
	t.Helper()
	testutil.RequireRoot(t)
	r := &rig{t: t, host: testutil.NewHostNS(t)}
	for k := range nLANs {
		r.lans = append(r.lans, r.addLAN(k))
	}
	dir := t.TempDir()
	r.base = []config.Option{
		config.OptionExecRoot(filepath.Join(dir, "run")),
		config.OptionDataDir(filepath.Join(dir, "lib")),
		config.OptionPluginDirs(filepath.Join(dir, "plugins")),
		config.OptionHostNetNS(r.host.Path()),
	}
	t.Cleanup(func() {
		if r.c != nil {
			teardown(t, r.c)
			r.c.Stop()
		}
	})
	r.start()
	return r
}

// start stops the running controller, if any, without tearing anything
// down (as a process exit would), and starts one on the same state.
func (r *rig) start(opts ...config.Option) *libnetwork.Controller {
	r.t.Helper()
	if r.c != nil {
		r.c.Stop()
	}
	c, err := libnetwork.New(append(slices.Clone(r.base), opts...)...)
	if err != nil {
		r.t.Fatalf("libnetwork.New: %v", err)
	}
	r.c = c
	return c
}

// addLAN makes parent lan<k> in the host, a veth whose other end "wire"
// is in a new LAN namespace with the router's and the neighbour's
// addresses (no DAD: usable at once) and beyond on its lo.
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
	for _, a := range []string{routerV4(k) + "/24", neighbour(k) + "/24", routerV6(k) + "/64", neighV6(k) + "/64"} {
		addr, _ := netlink.ParseAddr(a)
		addr.Flags = unix.IFA_F_NODAD
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
	sb, err := r.c.NewSandbox(name)
	if err != nil {
		r.t.Fatal(err)
	}
	ep, err := n.CreateEndpoint(name, epOpts...)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := ep.Join(sb); err != nil {
		r.t.Fatalf("joining %s: %v", name, err)
	}
	return sb, ep
}

func teardown(t *testing.T, c *libnetwork.Controller) {
	for _, sb := range c.Sandboxes() {
		if err := sb.Delete(); err != nil {
			t.Errorf("teardown: deleting sandbox %s: %v", sb.ContainerID(), err)
		}
	}
	for _, n := range c.Networks() {
		for _, ep := range n.Endpoints() {
			if err := ep.Delete(true); err != nil {
				t.Errorf("teardown: deleting endpoint %s: %v", ep.Name(), err)
			}
		}
		if err := n.Delete(); err != nil && !types.IsForbidden(err) {
			t.Errorf("teardown: deleting network %s: %v", n.Name(), err)
		}
	}
}

// sandboxNS opens a sandbox's namespace for inspection.
func sandboxNS(t *testing.T, sb *libnetwork.Sandbox) (*netnsutil.NS, *netlink.Handle) {
	t.Helper()
	ns, err := netnsutil.Open(sb.Key())
	if err != nil {
		t.Fatalf("opening sandbox key %s: %v", sb.Key(), err)
	}
	h, err := netlink.NewHandleAt(ns.Handle())
	if err != nil {
		ns.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); ns.Close() })
	return ns, h
}

func addrOf(ep *libnetwork.Endpoint) string { return ep.Info().Iface().Address().IP.String() }

// serveTCP listens on addr inside ns and answers each connection with
// the peer's address; it stops at test end.
func serveTCP(t *testing.T, ns *netnsutil.NS, addr string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
			_, _ = io.WriteString(conn, host)
			conn.Close()
		}
	}()
}

// dial connects from inside ns to addr and returns what the server says
// (the address it saw us at). A from other than "" is the local address.
func dial(ns *netnsutil.NS, from, addr string) (string, error) {
	var reply string
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: 3 * time.Second}
		if from != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
		}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(conn)
		reply = string(b)
		return err
	})
	return reply, err
}

// mustReach dials addr from ns, from the local address from, and checks
// the server saw us there.
func mustReach(t *testing.T, ns *netnsutil.NS, addr, from string) {
	t.Helper()
	from = net.ParseIP(from).String()
	got, err := dial(ns, from, addr)
	if err != nil || got != from {
		t.Fatalf("dialing %s: got %q, %v; want to be seen at %s", addr, got, err, from)
	}
}

// mustNotReach dials addr from ns and checks the connection fails.
func mustNotReach(t *testing.T, ns *netnsutil.NS, addr string) {
	t.Helper()
	if got, err := dial(ns, "", addr); err == nil {
		t.Fatalf("dialing %s succeeded (server saw %s); want it unreachable", addr, got)
	}
}

func linkNames(t *testing.T, h *netlink.Handle) []string {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	return names
}
