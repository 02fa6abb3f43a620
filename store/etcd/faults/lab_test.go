package faults_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/internal/etcdproc"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"

	// The provider, linked as a user's program links it.
	_ "github.com/opencnm/libnetwork/store/etcd"
)

// The lease TTL and store timeout of the fault tests: short, so a dead
// host's lease runs out within seconds, and long enough that a loaded
// machine does not miss a renewal (renewals go every TTL/3).
const (
	faultTTL       = 3 * time.Second
	faultKVTimeout = 2 * time.Second
)

// lab is a cluster of in-process hosts over one etcd member on a unix
// socket in the test's temp dir, with a client of its own for checks.
type lab struct {
	*testrig.Cluster
	etcd *etcdproc.Member
	st   *globalstore.Store
}

func newLab(t *testing.T, n int) *lab { t.Helper(); return newLabTTL(t, n, faultTTL) }

// newLabTTL is newLab with hosts on lease TTL ttl.
func newLabTTL(t *testing.T, n int, ttl time.Duration) *lab {
	t.Helper()
	testutil.RequireRoot(t)
	m := etcdproc.StartT(t, etcdproc.Options{})
	l := &lab{etcd: m}
	l.Cluster = testrig.NewCluster(t, n, testrig.ClusterOptions{Store: testrig.EtcdStore(m.Endpoint()),
		LeaseTTL: ttl, KVTimeout: faultKVTimeout})
	kv, err := globalstore.Open("etcd", globalstore.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kv.Close() })
	l.st = globalstore.New(kv, globalstore.Options{Timeout: 5 * time.Second})
	return l
}

func (l *lab) host(i int) *testrig.Host { return l.Hosts[i-1] }

// overlay creates an IPv4 overlay network on h from pool.
func overlay(t *testing.T, h *testrig.Host, name, pool string) *libnetwork.Network {
	t.Helper()
	nw, err := h.Controller().NewNetwork("overlay", name, "", libnetwork.NetworkOptionIpam("default", "",
		[]*libnetwork.IpamConf{{PreferredPool: pool}}, nil, nil))
	if err != nil {
		t.Fatalf("%s: creating overlay network %s: %v", h.ID, name, err)
	}
	return nw
}

// hostKeys is what the store holds of host id: its host record, and its
// endpoints and peers on network nid (their names and addresses go with
// the endpoint records, in the same transactions).
type hostKeys struct {
	host  bool
	lease globalstore.LeaseID
	eps   []globalstore.Endpoint
	peers []globalstore.Peer
}

func (k hostKeys) empty() bool { return !k.host && len(k.eps) == 0 && len(k.peers) == 0 }

func (k hostKeys) String() string {
	var eps, peers []string
	for _, e := range k.eps {
		eps = append(eps, fmt.Sprintf("%s(%s %v)", e.Name, e.ID[:8], e.Addrs))
	}
	for _, p := range k.peers {
		peers = append(peers, fmt.Sprintf("%s(%v)", p.EndpointID[:8], p.IPs))
	}
	return fmt.Sprintf("host record %v, endpoints %v, peers %v", k.host, eps, peers)
}

func (l *lab) keysOf(t testing.TB, id, nid string) hostKeys {
	t.Helper()
	ctx := context.Background()
	var k hostKeys
	hs, err := l.st.Hosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.ID == id {
			k.host, k.lease = true, h.Lease
		}
	}
	eps, err := l.st.Endpoints(ctx, nid)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range eps {
		if e.Host == id {
			k.eps = append(k.eps, e)
		}
	}
	peers, err := l.st.Peers(ctx, nid)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.Host == id {
			k.peers = append(k.peers, p)
		}
	}
	return k
}

// orphanClaims lists the endpoint-name and address claims of network nid
// whose owner is neither an endpoint in the store nor the network itself
// (its gateway): what a host that died mid-operation could leave.
func (l *lab) orphanClaims(t testing.TB, nid string) []string {
	t.Helper()
	ctx := context.Background()
	eps, err := l.st.Endpoints(ctx, nid)
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]bool{nid: true}
	for _, e := range eps {
		owners[e.ID] = true
	}
	base := globalstore.DefaultPrefix + "/nets/" + nid + "/"
	var out []string
	for _, kind := range []string{"epname/", "addr/"} {
		kvs, _, err := l.st.KV().List(ctx, base+kind)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range kvs {
			if !owners[string(kv.Value)] {
				out = append(out, strings.TrimPrefix(kv.Key, base)+" owned by "+string(kv.Value))
			}
		}
	}
	return out
}

// eventually polls check until it returns nil or bound passes, failing
// with its last error; it returns how long it took.
func eventually(t testing.TB, bound time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for deadline := start.Add(bound); ; time.Sleep(20 * time.Millisecond) {
		if err = check(); err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still after %v: %v", what, bound, err)
		}
	}
}

// sandbox makes a container's sandbox on c. Names the embedded resolver
// does not know go to the host namespace's loopback, where nothing
// listens: no query leaves the namespaces the test made.
func sandbox(c *libnetwork.Controller, dir, name string, opts ...libnetwork.SandboxOption) (*libnetwork.Sandbox, error) {
	origin := filepath.Join(dir, "resolv.conf")
	if _, err := os.Stat(origin); err != nil {
		if err := os.WriteFile(origin, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
			return nil, err
		}
	}
	return c.NewSandbox(name, append([]libnetwork.SandboxOption{libnetwork.OptionOriginResolvConfPath(origin)}, opts...)...)
}

// addrOf is an endpoint's IPv4 address.
func addrOf(ep *libnetwork.Endpoint) netip.Addr {
	a, _ := netip.AddrFromSlice(ep.Info().Iface().Address().IP.To4())
	return a
}

// remoteHost is a host whose controller the test runs apart from the
// cluster's (in a child process, or started and stopped by the test): a
// namespace on the lab's underlay and state directories on a tmpfs.
type remoteHost struct {
	id     string
	ns     *testutil.HostNS // nil in the child
	nsPath string
	addr   netip.Addr
	dir    string
	etcd   string
}

func (l *lab) addRemoteHost(t *testing.T, id string) *remoteHost {
	t.Helper()
	ns := testutil.NewNamedNS(t, id)
	v4, _ := l.Underlay.Plug(t, ns)
	return &remoteHost{id: id, ns: ns, nsPath: ns.Path(), addr: v4.Addr(), dir: testrig.TmpfsDir(t), etcd: l.etcd.Endpoint()}
}

// options are the host's controller options, keeping the sandboxes of
// active (their IDs) live.
func (r *remoteHost) options(active []string) []config.Option {
	keep := map[string]any{}
	for _, id := range active {
		keep[id] = []libnetwork.SandboxOption(nil)
	}
	return []config.Option{
		config.OptionExecRoot(filepath.Join(r.dir, "run")),
		config.OptionDataDir(filepath.Join(r.dir, "lib")),
		config.OptionPluginDirs(filepath.Join(r.dir, "plugins")),
		config.OptionHostNetNS(r.nsPath),
		config.OptionDiscoveryAddress(r.addr.String()),
		config.OptionHostID(r.id),
		config.OptionHostLeaseTTL(faultTTL),
		config.OptionKVTimeout(faultKVTimeout),
		config.OptionKVProvider("etcd"), config.OptionKVProviderURL(r.etcd),
		config.OptionActiveSandboxes(keep),
	}
}

// teardown takes down what the host's controller made, with a controller
// started on its state (the test's last one was killed or stopped), and
// the lab's global networks with it (see dropGlobal).
func (r *remoteHost) teardown(t *testing.T, l *lab, active []string) {
	t.Helper()
	c, err := libnetwork.New(r.options(active)...)
	if err != nil {
		t.Errorf("%s: New for teardown: %v", r.id, err)
		return
	}
	defer c.Stop()
	l.dropGlobal(t, c)
}

// dropGlobal deletes every container, endpoint and global network of
// the lab's running hosts and of extra (controllers the cluster does not
// know), and waits until every one of them has dropped the networks (and
// with them the overlay data planes' namespaces). Tests call it where the
// cluster's own teardown would come too late: after a controller of
// theirs stopped, or after the etcd members they started were killed.
func (l *lab) dropGlobal(t *testing.T, extra ...*libnetwork.Controller) {
	t.Helper()
	cs := extra
	for _, h := range l.Hosts {
		if c := h.Controller(); c != nil {
			cs = append(cs, c)
		}
	}
	for _, c := range cs {
		for _, sb := range c.Sandboxes() {
			if err := sb.Delete(); err != nil {
				t.Errorf("teardown: deleting sandbox %s: %v", sb.ContainerID(), err)
			}
		}
	}
	for _, c := range cs {
		for _, n := range c.Networks() {
			for _, ep := range n.Endpoints() {
				if err := ep.Delete(true); err != nil && !types.IsNotFound(err) {
					t.Errorf("teardown: deleting endpoint %s: %v", ep.Name(), err)
				}
			}
		}
	}
	for _, n := range cs[0].Networks() {
		if n.Type() == "overlay" {
			if err := n.Delete(); err != nil && !types.IsNotFound(err) {
				t.Errorf("teardown: deleting network %s: %v", n.Name(), err)
			}
		}
	}
	for _, c := range cs {
		eventually(t, 10*time.Second, "teardown: the overlay networks dropped everywhere", func() error {
			for _, n := range c.Networks() {
				if n.Type() == "overlay" {
					return fmt.Errorf("network %s still here", n.Name())
				}
			}
			return nil
		})
	}
}
