package bridge

import (
	"errors"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/opencnm/libnetwork/firewall"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// fakeFW is an in-memory firewaller: it records what is programmed.
type fakeFW struct {
	mu   sync.Mutex
	nets map[string]bool
	eps  map[string]bool
}

func newFakeFW() *fakeFW { return &fakeFW{nets: map[string]bool{}, eps: map[string]bool{}} }

func (f *fakeFW) addNetwork(c *networkConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nets[c.ID] = true
	return nil
}

func (f *fakeFW) delNetwork(c *networkConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.nets, c.ID)
	return nil
}

func (f *fakeFW) programEndpoint(c *networkConfig, ep endpointAddrs, pbs []types.PortBinding) ([]types.PortBinding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.eps[ep.ID] = true
	var out []types.PortBinding
	for _, b := range pbs {
		b.IP = ep.IPv4.IP
		b.HostPort = 40000 + b.Port
		out = append(out, b)
	}
	return out, nil
}

func (f *fakeFW) revokeEndpoint(c *networkConfig, ep endpointAddrs) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.eps, ep.ID)
	return nil
}

func (f *fakeFW) setLinks(*networkConfig, endpointAddrs, []firewall.Link) error { return nil }
func (f *fakeFW) flush() error                                                  { return nil }
func (f *fakeFW) close() error                                                  { return nil }

func (f *fakeFW) state() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []string
	for k := range f.nets {
		s = append(s, "net "+k)
	}
	for k := range f.eps {
		s = append(s, "ep "+k)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

// recordSteps runs op with a hook that only records step names.
func recordSteps(d *Driver, op func() error) ([]string, error) {
	var steps []string
	d.failAfter = func(s string) error { steps = append(steps, s); return nil }
	defer func() { d.failAfter = nil }()
	return steps, op()
}

var errInjected = errors.New("injected")

func failAt(step string) func(string) error {
	return func(s string) error {
		if s == step {
			return errInjected
		}
		return nil
	}
}

func TestCreateNetworkRollback(t *testing.T) {
	for _, preexisting := range []bool{false, true} {
		name := "new bridge"
		if preexisting {
			name = "preexisting bridge"
		}
		t.Run(name, func(t *testing.T) {
			d, host := newTestDriver(t, noIPTables)
			fw := newFakeFW()
			d.fw = fw
			labels := map[string]string{BridgeName: "cnm0"}
			if preexisting {
				a := netlink.NewLinkAttrs()
				a.Name = "cnm0"
				br := &netlink.Bridge{LinkAttrs: a}
				if err := host.Netlink.LinkAdd(br); err != nil {
					t.Fatal(err)
				}
				if err := host.Netlink.AddrAdd(br, &netlink.Addr{IPNet: mustCIDR(t, "192.168.9.1/24")}); err != nil {
					t.Fatal(err)
				}
			}
			req := netReq(t, "rbnet", "10.11.0.1/24", labels)
			req.Options[netlabel.EnableIPv6] = true
			req.IPv6Data = []driverapi.IPAMData{{Pool: mustCIDR(t, "fd00:11::/64"), Gateway: mustCIDR(t, "fd00:11::1/64")}}

			snapshot := func() string {
				s := hostState(t, host.Netlink)
				if preexisting {
					s += "\nroute_localnet=" + readSysctl(t, d, "net/ipv4/conf/cnm0/route_localnet")
					s += " accept_ra=" + readSysctl(t, d, "net/ipv6/conf/cnm0/accept_ra")
				}
				return s + "\nfw=" + fw.state()
			}
			before := snapshot()

			steps, err := recordSteps(d, func() error { return d.CreateNetwork(req) })
			if err != nil {
				t.Fatal(err)
			}
			if len(steps) < 6 { // bridge, sysctl, 3 addresses, up, firewall
				t.Fatalf("recorded steps %v", steps)
			}
			if fw.state() != "net rbnet" {
				t.Fatalf("firewall not called: %q", fw.state())
			}
			if err := d.DeleteNetwork("rbnet"); err != nil {
				t.Fatal(err)
			}
			if after := snapshot(); after != before {
				t.Fatalf("delete did not restore:\n%s\nvs\n%s", before, after)
			}
			for _, step := range steps {
				d.failAfter = failAt(step)
				err := d.CreateNetwork(req)
				d.failAfter = nil
				if !errors.Is(err, errInjected) {
					t.Fatalf("step %s: want injected error, got %v", step, err)
				}
				if after := snapshot(); after != before {
					t.Fatalf("step %s left state behind:\nbefore:\n%s\nafter:\n%s", step, before, after)
				}
			}
			// The failed creates left no reservation either.
			if err := d.CreateNetwork(req); err != nil {
				t.Fatalf("create after rollbacks: %v", err)
			}
			if err := d.DeleteNetwork("rbnet"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestJoinRollback(t *testing.T) {
	d, host := newTestDriver(t, nil)
	if err := d.CreateNetwork(netReq(t, joinNID, "10.12.0.1/24", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: joinNID, EndpointID: "e",
		Interface: driverapi.Interface{Address: mustCIDR(t, "10.12.0.2/24")}}); err != nil {
		t.Fatal(err)
	}
	sb := testutil.NewNamedNS(t, "sb")
	hostBefore, sbBefore := hostState(t, host.Netlink), hostState(t, sb.Netlink)
	for _, key := range []string{sb.Path(), ""} {
		req := driverapi.JoinRequest{NetworkID: joinNID, EndpointID: "e", SandboxKey: key, IfaceName: ifname0}
		steps, err := recordSteps(d, func() error { _, err := d.Join(req); return err })
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(steps, ",") != "veth,master,port,neighbours" {
			t.Fatalf("steps %v", steps)
		}
		if err := d.Leave(joinNID, "e"); err != nil {
			t.Fatal(err)
		}
		if err := d.reaper.flush(); err != nil {
			t.Fatal(err)
		}
		for _, step := range steps {
			d.failAfter = failAt(step)
			_, err := d.Join(req)
			d.failAfter = nil
			if !errors.Is(err, errInjected) {
				t.Fatalf("step %s: want injected error, got %v", step, err)
			}
			if h, s := hostState(t, host.Netlink), hostState(t, sb.Netlink); h != hostBefore || s != sbBefore {
				t.Fatalf("step %s left state behind:\nhost:\n%s\nsandbox:\n%s", step, h, s)
			}
		}
		// The endpoint is joinable again after every failure.
		if _, err := d.Join(req); err != nil {
			t.Fatalf("join after rollbacks: %v", err)
		}
		if err := d.Leave(joinNID, "e"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExternalConnectivitySeam(t *testing.T) {
	d, _ := newTestDriver(t, noIPTables)
	fw := newFakeFW()
	d.fw = fw
	if err := d.CreateNetwork(netReq(t, joinNID, "10.13.0.1/24", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: joinNID, EndpointID: "e",
		Interface: driverapi.Interface{Address: mustCIDR(t, "10.13.0.2/24")}}); err != nil {
		t.Fatal(err)
	}
	pm := []types.PortBinding{{Proto: types.TCP, Port: 80}}
	if err := d.ProgramExternalConnectivity(joinNID, "e", map[string]any{netlabel.PortMap: pm}); err != nil {
		t.Fatal(err)
	}
	info, err := d.EndpointOperInfo(joinNID, "e")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := info[netlabel.PortMap].([]types.PortBinding)
	if len(got) != 1 || got[0].HostPort != 40080 || !got[0].IP.Equal(net.ParseIP("10.13.0.2")) {
		t.Fatalf("port map %+v", got)
	}
	if err := d.RevokeExternalConnectivity(joinNID, "e"); err != nil {
		t.Fatal(err)
	}
	if info, _ := d.EndpointOperInfo(joinNID, "e"); info[netlabel.PortMap] != nil {
		t.Fatalf("port map after revoke: %v", info[netlabel.PortMap])
	}
	if err := d.DeleteNetwork(joinNID); err != nil {
		t.Fatal(err)
	}
	if fw.state() != "" {
		t.Fatalf("firewall state left: %q", fw.state())
	}
}
