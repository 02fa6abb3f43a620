package overlay

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/overlay/internal/ovlab"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/osl"
)

const testNet = "net1"

// rig is a few "hosts" on one underlay, each with its own overlay
// driver (as each host runs its own controller), and one network on all
// of them. The test plays the controller: it creates endpoints, joins
// them into sandboxes and reports every endpoint to the other hosts.
type rig struct {
	t     *testing.T
	hosts []*rigHost
}

type rigHost struct {
	*ovlab.Host
	d *Driver
}

// ctr is an endpoint joined into its own sandbox on a host.
type ctr struct {
	name string
	host *rigHost
	sb   *osl.Sandbox
	peer driverapi.Peer // as the controller reports it to other hosts
	ifc  string         // its interface in the sandbox
}

func newRig(t *testing.T, hosts, mtu int, opts map[string]any, cfg map[string]any) *rig {
	t.Helper()
	return newRigOn(t, hosts, mtu, false, opts, cfg)
}

// newRigOn is newRig over an IPv6 underlay if v6.
func newRigOn(t *testing.T, hosts, mtu int, v6 bool, opts map[string]any, cfg map[string]any) *rig {
	t.Helper()
	_, hs := ovlab.Underlay(t, hosts, mtu, v6)
	r := &rig{t: t}
	for _, h := range hs {
		d := newHostDriver(t, h, cfg)
		req := netRequest(testNet, 4097)
		req.Options = opts
		ovlab.Must(t, d.CreateNetwork(req))
		r.hosts = append(r.hosts, &rigHost{Host: h, d: d})
	}
	return r
}

// newHostDriver is a driver in h, told h's VTEP; whatever it still holds
// when the test ends is deleted.
func newHostDriver(t *testing.T, h *ovlab.Host, cfg map[string]any) *Driver {
	t.Helper()
	return newHostDriverIn(t, h, filepath.Join(t.TempDir(), "overlay"), cfg)
}

func newHostDriverIn(t *testing.T, h *ovlab.Host, dir string, cfg map[string]any) *Driver {
	t.Helper()
	d, err := New(h.NS.NS, dir, cfg)
	ovlab.Must(t, err)
	t.Cleanup(func() {
		d.mu.Lock()
		var ids []string
		for id := range d.networks {
			ids = append(ids, id)
		}
		d.mu.Unlock()
		for _, id := range ids {
			if err := d.DeleteNetwork(id); err != nil {
				t.Errorf("deleting network %s on %s: %v", id, h.Name, err)
			}
		}
		_ = d.Close()
		// What a driver "killed" by the test left for its successor.
		if err := d.CollectGarbage(nil, nil); err != nil {
			t.Errorf("removing data planes on %s: %v", h.Name, err)
		}
	})
	ovlab.Must(t, d.DiscoverNew(driverapi.NodeDiscovery, driverapi.NodeDiscoveryData{Address: h.VTEP.String(), Self: true}))
	return d
}

// endpoint creates endpoint "ep<x>" on host h (1-based) with 10.0.0.x/24
// and fd00:db8::x/64 and returns it not yet joined.
func (r *rig) endpoint(h, x int) *ctr {
	r.t.Helper()
	host := r.hosts[h-1]
	c := &ctr{name: fmt.Sprintf("c%d", x), host: host}
	v4 := netip.MustParsePrefix(fmt.Sprintf("10.0.0.%d/24", x))
	v6 := netip.MustParsePrefix(fmt.Sprintf("fd00:db8::%d/64", x))
	eid := fmt.Sprintf("ep%d", x)
	got, err := host.d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: testNet, EndpointID: eid,
		Interface: driverapi.Interface{Address: ovlab.IPNet(v4), AddressIPv6: ovlab.IPNet(v6)}})
	ovlab.Must(r.t, err)
	c.peer = driverapi.Peer{EndpointID: eid, VTEP: host.VTEP, MAC: got.MacAddress, IPv4: v4.Addr(), IPv6: v6.Addr()}
	return c
}

// join joins c into a new sandbox and configures its interface there as
// the controller's sandbox does.
func (r *rig) join(c *ctr) {
	r.t.Helper()
	sb, err := osl.New(filepath.Join(r.t.TempDir(), c.name+".sandbox"))
	ovlab.Must(r.t, err)
	r.t.Cleanup(func() {
		if err := sb.Destroy(); err != nil {
			r.t.Errorf("destroying sandbox of %s: %v", c.name, err)
		}
	})
	c.sb = sb
	res, err := c.host.d.Join(driverapi.JoinRequest{NetworkID: testNet, EndpointID: c.peer.EndpointID,
		SandboxKey: sb.Key(), IfaceName: sb.ReserveName})
	ovlab.Must(r.t, err)
	if res.DstName == "" || res.Gateway != nil || res.GatewayIPv6 != nil {
		r.t.Fatalf("Join of %s = %+v: want an interface made inside and no gateway", c.name, res)
	}
	c.ifc = res.DstName
	ovlab.Must(r.t, sb.AddInterface(nil, osl.InterfaceConfig{DstName: res.DstName, MacAddress: c.peer.MAC,
		Address:     ovlab.IPNet(netip.PrefixFrom(c.peer.IPv4, 24)),
		AddressIPv6: ovlab.IPNet(netip.PrefixFrom(c.peer.IPv6, 64))}))
}

// announce reports every endpoint of cs to every other host.
func (r *rig) announce(cs ...*ctr) {
	r.t.Helper()
	for _, h := range r.hosts {
		for _, c := range cs {
			if c.host != h {
				ovlab.Must(r.t, h.d.PeerAdd(testNet, c.peer))
			}
		}
	}
}

func (c *ctr) addr(v6 bool) netip.Addr {
	if v6 {
		return c.peer.IPv6
	}
	return c.peer.IPv4
}

func tcp(from, to *ctr, v6 bool) error {
	return ovlab.TCP(from.sb, to.sb, to.addr(v6), from.name)
}

func udp(from, to *ctr, v6 bool) error {
	return ovlab.UDP(from.sb, to.sb, to.addr(v6), from.name, 64, 10*time.Second, false)
}

func blocked(from, to *ctr, v6 bool) bool { return ovlab.Blocked(from.sb, to.sb, to.addr(v6)) }

var families = []struct {
	name string
	v6   bool
}{{"IPv4", false}, {"IPv6", true}}

// nsFile is the data plane namespace of network nid on d.
func nsFile(d *Driver, nid string) string { return filepath.Join(d.dir, nid) }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// conformanceInterface gives each endpoint its own address.
func conformanceInterface(_, eid string) driverapi.Interface {
	h := fnv.New32a()
	h.Write([]byte(eid))
	x := 2 + h.Sum32()%250
	return driverapi.Interface{Address: &net.IPNet{IP: net.IPv4(10, 0, 0, byte(x)).To4(), Mask: net.CIDRMask(24, 32)}}
}

func withRepairEvery(d time.Duration) map[string]any {
	return map[string]any{knobs.OverlayRepairEvery: d}
}
