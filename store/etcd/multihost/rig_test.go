package multihost_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/internal/etcdproc"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"

	// The provider, linked as a user's program links it.
	_ "github.com/opencnm/libnetwork/store/etcd"
)

// lab is a cluster of hosts over one real etcd member on a unix socket in
// the test's temp dir; the member outlives the controllers' teardown.
type lab struct {
	*testrig.Cluster
	etcd *etcdproc.Member
}

func newLab(t testing.TB, n int, o testrig.ClusterOptions) *lab {
	t.Helper()
	testutil.RequireRoot(t)
	m := etcdproc.StartT(t, etcdproc.Options{})
	o.Store = testrig.EtcdStore(m.Endpoint())
	return &lab{Cluster: testrig.NewCluster(t, n, o), etcd: m}
}

// host is the lab's host i, 1-based.
func (l *lab) host(i int) *testrig.Host { return l.Hosts[i-1] }

// store is a client of the lab's etcd as the controllers see it, for
// checks of what it holds; closed when the test ends.
func (l *lab) store(t testing.TB) *globalstore.Store {
	t.Helper()
	kv, err := globalstore.Open("etcd", globalstore.Config{Endpoints: []string{l.etcd.Endpoint()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kv.Close() })
	return globalstore.New(kv, globalstore.Options{Timeout: 10 * time.Second})
}

// keys lists the etcd keys under the store's prefix that contain part.
func (l *lab) keys(t testing.TB, part string) []string {
	t.Helper()
	st := l.store(t)
	kvs, _, err := st.KV().List(context.Background(), "/opencnm/")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range kvs {
		if strings.Contains(kv.Key, part) {
			out = append(out, kv.Key)
		}
	}
	return out
}

// overlay creates a dual-stack overlay network on h from the given pools.
func overlay(t testing.TB, h *testrig.Host, name, v4, v6 string, opts ...libnetwork.NetworkOption) *libnetwork.Network {
	t.Helper()
	nw, err := createOverlay(h, name, v4, v6, opts...)
	if err != nil {
		t.Fatalf("%s: creating overlay network %s: %v", h.ID, name, err)
	}
	return nw
}

func createOverlay(h *testrig.Host, name, v4, v6 string, opts ...libnetwork.NetworkOption) (*libnetwork.Network, error) {
	ipv6 := []*libnetwork.IpamConf(nil)
	if v6 != "" {
		ipv6 = []*libnetwork.IpamConf{{PreferredPool: v6}}
		opts = append(opts, libnetwork.NetworkOptionEnableIPv6(true))
	}
	opts = append([]libnetwork.NetworkOption{libnetwork.NetworkOptionIpam("default", "",
		[]*libnetwork.IpamConf{{PreferredPool: v4}}, ipv6, nil)}, opts...)
	return h.Controller().NewNetwork("overlay", name, "", opts...)
}

// netOn is the network called name as host h's controller finds it.
func netOn(t testing.TB, h *testrig.Host, name string) *libnetwork.Network {
	t.Helper()
	nw, err := h.Controller().NetworkByName(name)
	if err != nil {
		t.Fatalf("%s: network %s: %v", h.ID, name, err)
	}
	return nw
}

// ctr is a container: an endpoint joined to a sandbox of its own on a host.
type ctr struct {
	name   string
	h      *testrig.Host
	ep     *libnetwork.Endpoint
	sb     *libnetwork.Sandbox
	ns     *netnsutil.NS
	nl     *netlink.Handle
	v4, v6 netip.Addr
	mac    string
}

// run starts container name on host h, on network netName as h finds it.
func run(t testing.TB, h *testrig.Host, netName, name string, opts ...libnetwork.EndpointOption) *ctr {
	t.Helper()
	nw := netOn(t, h, netName)
	ep, err := nw.CreateEndpoint(name, opts...)
	if err != nil {
		t.Fatalf("%s: creating endpoint %s: %v", h.ID, name, err)
	}
	sb := sandbox(t, h, name)
	if err := ep.Join(sb); err != nil {
		t.Fatalf("%s: joining %s: %v", h.ID, name, err)
	}
	c := &ctr{name: name, h: h, ep: ep, sb: sb}
	c.ns, c.nl = sandboxNS(t, sb)
	iface := ep.Info().Iface()
	if a := iface.Address(); a != nil {
		c.v4, _ = netip.AddrFromSlice(a.IP.To4())
	}
	if a := iface.AddressIPv6(); a != nil {
		c.v6, _ = netip.AddrFromSlice(a.IP)
	}
	c.mac = iface.MacAddress().String()
	return c
}

// sandbox makes a container's sandbox on h. Names the embedded resolver
// does not know go to the host namespace's loopback, where nothing
// listens: no query leaves the namespaces the test made.
func sandbox(t testing.TB, h *testrig.Host, name string) *libnetwork.Sandbox {
	t.Helper()
	origin := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(origin, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sb, err := h.Controller().NewSandbox(name, libnetwork.OptionOriginResolvConfPath(origin))
	if err != nil {
		t.Fatalf("%s: sandbox %s: %v", h.ID, name, err)
	}
	return sb
}

// sandboxNS opens a sandbox's namespace for the test's checks.
func sandboxNS(t testing.TB, sb *libnetwork.Sandbox) (*netnsutil.NS, *netlink.Handle) {
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

// sendDF sends UDP datagrams of size bytes with don't-fragment set from
// c to d's IPv4 address until one arrives (a few seconds at most). A
// datagram over the path MTU fails at the sender (EMSGSIZE).
func sendDF(c, d *ctr, size int) error {
	var srv *net.UDPConn
	if err := d.ns.Do(func() (err error) {
		srv, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(d.v4, 0)))
		return err
	}); err != nil {
		return err
	}
	defer srv.Close()
	var cli *net.UDPConn
	if err := c.ns.Do(func() (err error) {
		cli, err = net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr))
		return err
	}); err != nil {
		return err
	}
	defer cli.Close()
	raw, err := cli.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
	}); err != nil || serr != nil {
		return errors.Join(err, serr)
	}
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, size+1)
		_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := srv.Read(buf)
		if err == nil && n != size {
			err = fmt.Errorf("got %d bytes, want %d", n, size)
		}
		got <- err
	}()
	payload := make([]byte, size)
	for {
		if _, err := cli.Write(payload); err != nil {
			return fmt.Errorf("sending %d bytes: %w", size, err)
		}
		select {
		case err := <-got:
			return err
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// stop takes the container down as an orderly container stop does.
func (c *ctr) stop(t testing.TB) {
	t.Helper()
	if err := c.ep.Leave(c.sb); err != nil {
		t.Fatalf("%s: leaving %s: %v", c.h.ID, c.name, err)
	}
	if err := c.sb.Delete(); err != nil {
		t.Fatalf("%s: deleting sandbox %s: %v", c.h.ID, c.name, err)
	}
	if err := c.ep.Delete(false); err != nil {
		t.Fatalf("%s: deleting endpoint %s: %v", c.h.ID, c.name, err)
	}
}

// reach checks TCP and UDP from c to each of to, over IPv4 and (where
// both have one) IPv6: the answer comes from the right server, and the
// server saw c's own address (no NAT on an overlay).
func reach(t *testing.T, from *ctr, to ...*ctr) {
	t.Helper()
	for _, d := range to {
		for _, pair := range [][2]netip.Addr{{from.v4, d.v4}, {from.v6, d.v6}} {
			if !pair[0].IsValid() || !pair[1].IsValid() {
				continue
			}
			for _, proto := range []string{"tcp", "udp"} {
				addr := testrig.Serve(t, d.ns, proto, netip.AddrPortFrom(pair[1], 0).String(), d.name)
				got := testrig.MustFetch(t, from.ns, proto, addr, d.name)
				if got != pair[0].String() {
					t.Errorf("%s %s(%s) → %s(%s): the server saw %s, want %s",
						proto, from.name, from.h.ID, d.name, d.h.ID, got, pair[0])
				}
			}
		}
	}
}

// eventually polls check until it returns nil or bound passes, and
// fails with its last error. Bounds are generous: the machine is shared.
func eventually(t testing.TB, bound time.Duration, what string, check func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(bound); ; time.Sleep(20 * time.Millisecond) {
		if err = check(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still after %v: %v", what, bound, err)
		}
	}
}

// forbiddenSaying is nil when err is of class Forbidden and its message
// says every one of want.
func forbiddenSaying(err error, want ...string) error {
	if err == nil {
		return fmt.Errorf("no error")
	}
	if !types.IsForbidden(err) {
		return fmt.Errorf("%v: not Forbidden", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			return fmt.Errorf("%q does not say %q", err, w)
		}
	}
	return nil
}
