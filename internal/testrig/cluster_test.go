package testrig_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
)

// The rig itself: hosts reach each other over the underlay (both
// families, the underlay's MTU on every port), each runs a controller on
// the shared store, local networks and a global one work, and a restart keeps the local ones (a sandbox the restart
// was not told is live goes, with its endpoint; an unjoined endpoint stays).
func TestClusterRig(t *testing.T) {
	t.Parallel()
	cl := testrig.NewCluster(t, 3, testrig.ClusterOptions{UnderlayMTU: 1400, Store: testrig.MemStore(memstore.New())})
	for _, a := range cl.Hosts {
		if got := testrig.LinkMTU(t, a.NS.Netlink, "eth0"); got != 1400 {
			t.Errorf("%s: eth0 MTU %d, want 1400", a.ID, got)
		}
		for _, b := range cl.Hosts {
			if a == b {
				continue
			}
			for _, ip := range []netip.Addr{b.Addr, b.Addr6} {
				addr := testrig.Serve(t, b.NS.NS, "tcp", netip.AddrPortFrom(ip, 0).String(), b.ID)
				if got := testrig.MustFetch(t, a.NS.NS, "tcp", addr, b.ID); got != a.Addr.String() && got != a.Addr6.String() {
					t.Errorf("%s → %s: the server saw %s", a.ID, addr, got)
				}
			}
		}
	}
	for _, h := range cl.Hosts {
		c := h.Controller()
		nw := testrig.BridgeNet(t, c, "local", "br-local", fmt.Sprintf("10.77.%d.0/24", h.Index))
		testrig.JoinNew(t, c, nw, "c-"+h.ID)
		testrig.Must[*libnetwork.Endpoint](t)(nw.CreateEndpoint("kept-" + h.ID))
	}
	// A global network over the shared in-memory store: made on one host,
	// joined on the two others, carrying traffic between them. The
	// restart below then drops host-2's container and its data plane.
	ov := testrig.Must[*libnetwork.Network](t)(cl.Hosts[0].Controller().NewNetwork("overlay", "ov", "",
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.78.0.0/24"}}, nil, nil)))
	var nss []*netnsutil.NS
	var eps []*libnetwork.Endpoint
	for _, h := range cl.Hosts[1:] {
		n := testrig.Must[*libnetwork.Network](t)(h.Controller().NetworkByID(ov.ID()))
		ep, sb := testrig.JoinNew(t, h.Controller(), n, "o-"+h.ID)
		ns, _ := testrig.SandboxNS(t, sb)
		nss, eps = append(nss, ns), append(eps, ep)
	}
	srv := testrig.Serve(t, nss[1], "tcp", testrig.EpIP(eps[1])+":0", "o-host-3")
	if got := testrig.MustFetch(t, nss[0], "tcp", srv, "o-host-3"); got != testrig.EpIP(eps[0]) {
		t.Errorf("over the overlay: the server saw %s, want %s", got, testrig.EpIP(eps[0]))
	}

	h := cl.Hosts[1]
	c := h.Restart()
	nw, err := c.NetworkByName("local")
	if err != nil {
		t.Fatalf("%s after restart: %v", h.ID, err)
	}
	if _, err := nw.EndpointByName("kept-" + h.ID); err != nil {
		t.Fatalf("%s after restart: endpoint: %v", h.ID, err)
	}
}
