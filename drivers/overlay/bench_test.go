package overlay

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/overlay/internal/ovlab"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// BenchmarkJoinLeave measures a Join and a Leave of one endpoint: "first"
// when it is the network's only local endpoint (the first Join builds the
// data plane; each Leave hands it to the background deletion, which the
// next Join, within retireGrace, takes it back from), "warm" when another
// endpoint keeps the data plane up. Every Join reuses the sandbox's eth0,
// so it waits for the previous veth's deletion.
func BenchmarkJoinLeave(b *testing.B) {
	for _, mode := range []string{"first", "warm"} {
		b.Run(mode, func(b *testing.B) {
			r := newBenchRig(b)
			d := r.d
			if mode == "warm" {
				keep := r.endpoint(b, "keep", 3)
				_, err := d.Join(driverapi.JoinRequest{NetworkID: testNet, EndpointID: keep,
					SandboxKey: testutil.NewNamedNS(b, "keep").Path(), IfaceName: func(string) string { return "eth0" }})
				if err != nil {
					b.Fatal(err)
				}
			}
			eid := r.endpoint(b, "e", 2)
			sb := testutil.NewNamedNS(b, "sb").Path()
			req := driverapi.JoinRequest{NetworkID: testNet, EndpointID: eid, SandboxKey: sb,
				IfaceName: func(string) string { return "eth0" }}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := d.Join(req); err != nil {
					b.Fatal(err)
				}
				if err := d.Leave(testNet, eid); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type benchRig struct{ d *Driver }

func newBenchRig(b *testing.B) *benchRig {
	b.Helper()
	_, hosts := ovlab.Underlay(b, 1, 1500, false)
	hs := hosts[0]
	d, err := New(hs.NS.NS, filepath.Join(b.TempDir(), "overlay"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = d.DeleteNetwork(testNet)
		_ = d.Close()
	})
	if err := d.DiscoverNew(driverapi.NodeDiscovery, driverapi.NodeDiscoveryData{Address: hs.VTEP.String(), Self: true}); err != nil {
		b.Fatal(err)
	}
	if err := d.CreateNetwork(netRequest(testNet, 4097)); err != nil {
		b.Fatal(err)
	}
	return &benchRig{d: d}
}

func (r *benchRig) endpoint(b *testing.B, eid string, x int) string {
	b.Helper()
	in := conformanceInterface(testNet, fmt.Sprint(x))
	if _, err := r.d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: testNet, EndpointID: eid, Interface: in}); err != nil {
		b.Fatal(err)
	}
	return eid
}
