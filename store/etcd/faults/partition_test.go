package faults_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/internal/etcdproc"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// dialIn dials from inside ns.
func dialIn(ns *testutil.HostNS) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// partitionTTL is the lease TTL of the partition test: its fence margin
// (TTL/4, 1.5 s) is what the test's "fenced before expired" rests on.
const partitionTTL = 6 * time.Second

// newPartitionLab is three hosts and a 3-member etcd cluster, member i
// in host i's namespace on its underlay address: cutting a host off the
// underlay cuts its controller and its member off the majority.
func newPartitionLab(t *testing.T) *lab {
	t.Helper()
	testutil.RequireRoot(t)
	var clients, peers []string
	for i := 1; i <= 3; i++ {
		clients = append(clients, fmt.Sprintf("http://192.168.100.%d:2379", 10+i))
		peers = append(peers, fmt.Sprintf("m%d=http://192.168.100.%d:2380", i, 10+i))
	}
	// The controllers start before the members (New never waits for the
	// store) because the members live in the hosts' namespaces.
	cl := testrig.NewCluster(t, 3, testrig.ClusterOptions{Store: testrig.EtcdStore(strings.Join(clients, ",")),
		LeaseTTL: partitionTTL, KVTimeout: faultKVTimeout})
	var opts []etcdproc.Options
	for i, h := range cl.Hosts {
		if h.Addr.String() != fmt.Sprintf("192.168.100.%d", 11+i) {
			t.Fatalf("%s has underlay address %s", h.ID, h.Addr)
		}
		opts = append(opts, etcdproc.Options{Dir: t.TempDir(), Name: fmt.Sprintf("m%d", i+1),
			ClientURL: clients[i], PeerURL: fmt.Sprintf("http://%s:2380", h.Addr), InitialCluster: strings.Join(peers, ","),
			NetNS: h.NS.Path(), Dial: dialIn(h.NS)})
	}
	etcdproc.StartMembersT(t, opts)
	// The test's own client is on host-1's side of every cut.
	kv, err := globalstore.Open("etcd", globalstore.Config{Endpoints: clients[:2], DialTimeout: 5 * time.Second,
		Dialer: dialIn(cl.Hosts[0].NS)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kv.Close() })
	l := &lab{Cluster: cl, st: globalstore.New(kv, globalstore.Options{Timeout: 5 * time.Second})}
	// Runs before the members are killed: the global networks go while
	// the store is there (the cluster's own teardown runs after).
	t.Cleanup(func() {
		l.cut(t, 3, false)
		l.dropGlobal(t)
	})
	eventually(t, 30*time.Second, "every host's session", func() error {
		hs, err := l.st.Hosts(t.Context())
		if err != nil || len(hs) != 3 {
			return fmt.Errorf("hosts %v, %v", hs, err)
		}
		return nil
	})
	return l
}

// cut takes host i's underlay port down (on) or up again (off), in the
// lab's namespace: the host and its etcd member are cut off the rest.
func (l *lab) cut(t *testing.T, i int, on bool) {
	t.Helper()
	port, err := l.Underlay.Lab.Netlink.LinkByName(fmt.Sprintf("u%d", i))
	if err != nil {
		t.Fatal(err)
	}
	if on {
		err = l.Underlay.Lab.Netlink.LinkSetDown(port)
	} else {
		err = l.Underlay.Lab.Netlink.LinkSetUp(port)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// udpReach sends a datagram from c to d and waits for d's answer, a few
// tries of half a second each.
func udpReach(c, d *ctr) error {
	var srv *net.UDPConn
	if err := d.ns.Do(func() (err error) {
		srv, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(d.ip, 0)))
		return err
	}); err != nil {
		return err
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 16)
		for {
			n, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = srv.WriteToUDP(buf[:n], from)
		}
	}()
	var cli *net.UDPConn
	if err := c.ns.Do(func() (err error) {
		cli, err = net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr))
		return err
	}); err != nil {
		return err
	}
	defer cli.Close()
	buf := make([]byte, 16)
	var err error
	for try := 0; try < 4; try++ {
		if _, err = cli.Write([]byte("ping")); err != nil {
			continue
		}
		_ = cli.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err = cli.Read(buf); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%s → %s: %w", c.ip, d.ip, err)
}

// fdbTo lists host h's FDB entries toward VTEP vtep ("" for any other
// host's).
func fdbTo(t *testing.T, h *testrig.Host, vtep string) []string {
	var out []string
	for _, vx := range h.VXLANs(t) {
		for _, f := range vx.FDB {
			if vtep == "" || strings.HasSuffix(f, " dst "+vtep) {
				out = append(out, f)
			}
		}
	}
	return out
}

// A host cut off from the store (and its etcd member from the majority)
// longer than its lease stops forwarding to other hosts before its lease
// can expire, while its containers still reach each other. Meanwhile the
// others take one of its endpoints' name and another's address. On heal
// it claims its endpoints again: the untouched one forwards again, the two
// that lost a claim stay down (interface down, out of the store, no peer)
// and are reported by Conflicts, never duplicated.
func TestPartitionFenceHeal(t *testing.T) {
	l := newPartitionLab(t)
	overlay(t, l.host(1), "ov", "10.81.0.0/24")
	a := run(t, l.host(1), "ov", "a")
	c1 := run(t, l.host(3), "ov", "c1")
	c2 := run(t, l.host(3), "ov", "c2")
	c3 := run(t, l.host(3), "ov", "c3")
	h3 := l.host(3).Addr.String()
	eventually(t, 10*time.Second, "host-1 forwarding to host-3's containers", func() error {
		if n := len(fdbTo(t, l.host(1), h3)); n != 3 {
			return fmt.Errorf("%d FDB entries to host-3", n)
		}
		return udpReach(c3, a)
	})

	l.cut(t, 3, true)
	cutAt := time.Now()
	// One loop watches both sides: host-3's forwarding to the others and
	// host-1's view of host-3's endpoints.
	var fenced, expired time.Duration
	for deadline := cutAt.Add(partitionTTL + 10*time.Second); fenced == 0 || expired == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after the cut: host-3 fenced after %v, its endpoints gone on host-1 after %v (0: not yet); host-3's FDB %v",
				fenced, expired, fdbTo(t, l.host(3), ""))
		}
		if fenced == 0 && len(fdbTo(t, l.host(3), "")) == 0 {
			fenced = time.Since(cutAt)
		}
		if expired == 0 && !hasHostEndpoints(netOn(t, l.host(1), "ov"), "host-3") {
			expired = time.Since(cutAt)
		}
	}
	t.Logf("cut at 0: host-3 stopped forwarding to other hosts after %v, host-1 saw its endpoints gone after %v (lease TTL %v)",
		fenced.Round(time.Millisecond), expired.Round(time.Millisecond), partitionTTL)
	if fenced >= expired {
		t.Errorf("host-3 stopped forwarding after %v, not before its lease expired (%v)", fenced, expired)
	}
	if err := udpReach(c1, c2); err != nil {
		t.Errorf("same-host traffic on the cut-off host: %v", err)
	}
	if err := udpReach(c3, a); err == nil {
		t.Errorf("host-3's container still reaches host-1 while fenced")
	}
	// The majority takes c1's name and c2's address.
	nw2 := netOn(t, l.host(2), "ov")
	if _, err := nw2.CreateEndpoint("c1"); err != nil {
		t.Fatalf("host-2 taking the name c1 of the cut-off host's endpoint: %v", err)
	}
	if _, err := nw2.CreateEndpoint("thief", libnetwork.CreateOptionIpam(c2.ip.AsSlice(), nil, nil, nil)); err != nil {
		t.Fatalf("host-2 taking the address %s of the cut-off host's endpoint: %v", c2.ip, err)
	}

	l.cut(t, 3, false)
	took := eventually(t, 30*time.Second, "host-3's c3 forwarding again after the heal", func() error {
		if !slicesHas(fdbTo(t, l.host(1), h3), c3.mac()) {
			return fmt.Errorf("host-1 has no FDB entry for c3")
		}
		return udpReach(c3, a)
	})
	t.Logf("heal to c3 → a forwarding again: %v", took.Round(time.Millisecond))
	eventually(t, 10*time.Second, "host-3 reporting its conflicts", func() error {
		cs := l.host(3).Controller().Conflicts()
		if len(cs) != 2 || cs[0].Endpoint != "c1" || cs[1].Endpoint != "c2" ||
			!strings.Contains(cs[0].Claim, "endpoint name") || !strings.Contains(cs[1].Claim, "address "+c2.ip.String()) {
			return fmt.Errorf("conflicts %+v", cs)
		}
		return nil
	})
	k := l.keysOf(t, "host-3", netOn(t, l.host(1), "ov").ID())
	if len(k.eps) != 1 || k.eps[0].Name != "c3" || len(k.peers) != 1 {
		t.Errorf("host-3 in the store after the heal: %s, want c3 alone with its peer", k)
	}
	for _, c := range []*ctr{c1, c2} {
		if link := c.link(t); link.Attrs().Flags&net.FlagUp != 0 {
			t.Errorf("%s's interface %s is up after losing its claim", c.ep.Name(), link.Attrs().Name)
		}
		if err := udpReach(c, a); err == nil {
			t.Errorf("%s reaches host-1 after losing its claim", c.ep.Name())
		}
	}
	// Joined again, it would be live twice: refused, naming why.
	if err := c2.ep.Leave(c2.sb); err != nil {
		t.Fatalf("leaving c2: %v", err)
	}
	sb, err := sandbox(l.host(3).Controller(), t.TempDir(), "c2-again")
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.ep.Join(sb); err == nil || !types.IsForbidden(err) {
		t.Errorf("joining c2 again after it lost its address: %v, want Forbidden", err)
	}
	for _, f := range fdbTo(t, l.host(1), h3) {
		if strings.HasPrefix(f, c1.mac()+" ") || strings.HasPrefix(f, c2.mac()+" ") {
			t.Errorf("host-1 forwards to a conflicting endpoint of host-3: %s", f)
		}
	}
}

// hasHostEndpoints reports whether nw lists an endpoint of host id.
func hasHostEndpoints(nw *libnetwork.Network, id string) bool {
	for _, e := range nw.ClusterEndpoints() {
		if e.Host == id {
			return true
		}
	}
	return false
}

// slicesHas reports whether an FDB entry for mac is among fdb.
func slicesHas(fdb []string, mac string) bool {
	for _, f := range fdb {
		if strings.HasPrefix(f, mac+" ") {
			return true
		}
	}
	return false
}
