package restart

import (
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
)

// A network that fails to come back at a restart stays recorded for the
// next start, and so do its endpoints' records: once the cause is gone,
// the next start brings back the network with its endpoints, not a
// network whose endpoints were deleted.
func TestRestoreFailedNetworkKeepsEndpoints(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.BridgeNet(t, c, "wait", "cnmwait0", "10.91.0.0/24")
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e1"))
	c.Stop()

	// The bridge's name now belongs to a link that is not a bridge, so
	// the bridge driver refuses to create the network again.
	h := r.Host.Netlink
	br, err := h.LinkByName("cnmwait0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel(br); err != nil {
		t.Fatal(err)
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "cnmwait0"}, PeerName: "cnmwait1"}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	c2 := r.Start()
	if c2.RestoreError() == nil {
		t.Fatal("restore with the bridge's name taken: want an error")
	}
	if _, err := c2.NetworkByName("wait"); err == nil {
		t.Fatal("network restored although its bridge could not be made")
	}
	c2.Stop()
	if _, ok := testrig.StoredEndpoints(t, c2.Config().DataDir)[ep.ID()]; !ok {
		t.Fatal("the endpoint record of the network that failed to come back was deleted")
	}

	if err := h.LinkDel(veth); err != nil {
		t.Fatal(err)
	}
	c3 := r.Start()
	if err := c3.RestoreError(); err != nil {
		t.Fatalf("restore once the name is free: %v", err)
	}
	n3, err := c3.NetworkByName("wait")
	if err != nil {
		t.Fatalf("network after the retry: %v", err)
	}
	if _, err := n3.EndpointByName("e1"); err != nil {
		t.Fatalf("endpoint after the retry: %v", err)
	}
}
