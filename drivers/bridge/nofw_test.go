package bridge

import (
	"testing"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// Without iptables the driver's firewaller is noFirewall, never nil: the
// whole life cycle runs through it, and what needs rules is refused.
func TestNoIPTablesUsesNoFirewall(t *testing.T) {
	d, _ := newTestDriver(t, noIPTables)
	if _, ok := d.fw.(noFirewall); !ok {
		t.Fatalf("firewaller without iptables is %T, want noFirewall", d.fw)
	}
	if err := d.CreateNetwork(netReq(t, joinNID, "10.14.0.1/24", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: joinNID, EndpointID: "e",
		Interface: driverapi.Interface{Address: mustCIDR(t, "10.14.0.2/24")}}); err != nil {
		t.Fatal(err)
	}
	if err := d.ProgramExternalConnectivity(joinNID, "e", nil); err != nil {
		t.Fatalf("program without ports: %v", err)
	}
	pm := []types.PortBinding{{Proto: types.TCP, Port: 80}}
	if err := d.ProgramExternalConnectivity(joinNID, "e", map[string]any{netlabel.PortMap: pm}); !types.IsBadRequest(err) {
		t.Fatalf("publishing a port without iptables: want BadRequest, got %v", err)
	}
	if err := d.RevokeExternalConnectivity(joinNID, "e"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteEndpoint(joinNID, "e"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteNetwork(joinNID); err != nil {
		t.Fatal(err)
	}
	if _, err := d.RepairFirewall(); err != nil {
		t.Fatalf("RepairFirewall without iptables: %v", err)
	}
}
