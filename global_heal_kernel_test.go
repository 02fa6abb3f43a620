package libnetwork_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// vethFake is a GlobalFake whose joins give the sandbox a real interface:
// one end of a veth made in the host namespace, which the controller
// moves in; DeleteEndpoint deletes it.
type vethFake struct {
	*drivertest.GlobalFake
	host *netlink.Handle
}

func vethNames(eid string) (host, sb string) { return "vh" + eid[:8], "vs" + eid[:8] }

func (f *vethFake) Join(req driverapi.JoinRequest) (*driverapi.JoinResult, error) {
	h, s := vethNames(req.EndpointID)
	if err := f.host.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: h}, PeerName: s}); err != nil {
		return nil, types.InternalErrorf("veth for %s: %w", req.EndpointID, err)
	}
	res, err := f.GlobalFake.Join(req)
	if err != nil {
		if l, lerr := f.host.LinkByName(h); lerr == nil {
			_ = f.host.LinkDel(l)
		}
		return nil, err
	}
	res.SrcName, res.DstPrefix = s, "eth"
	return res, nil
}

func (f *vethFake) DeleteEndpoint(nid, eid string) error {
	for _, name := range []string{"vh" + eid[:8], "vs" + eid[:8]} {
		if l, err := f.host.LinkByName(name); err == nil {
			_ = f.host.LinkDel(l)
		}
	}
	return f.GlobalFake.DeleteEndpoint(nid, eid)
}

// An endpoint kept down after a heal has its interface in the sandbox set
// down (its addresses kept, for when it is claimed again); the endpoints
// claimed again keep theirs up.
func TestGlobalHealSetsKeptDownInterfaceDown(t *testing.T) {
	testutil.RequireRoot(t)
	srv := memstore.New()
	opts := []config.Option{knobs.Set(knobs.NoBuiltinDrivers, true),
		config.OptionHostLeaseTTL(3 * time.Second), config.OptionKVTimeout(500 * time.Millisecond)}
	kva := newCutKV(srv.Client())
	host := testutil.NewHostNS(t)
	a := testrig.NewPrivControllerIn(t, host, append(opts, knobs.Set(knobs.GlobalKV, kva), config.OptionHostID("host-a"))...)
	fa := &vethFake{GlobalFake: drivertest.NewGlobalFake("gfake"), host: host.Netlink}
	if err := a.RegisterDriver("gfake", fa, fa.Capability()); err != nil {
		t.Fatal(err)
	}
	b, _ := newHealHost(t, srv, srv.Client(), "host-b", opts[1:]...)
	n := testrig.Must[*libnetwork.Network](t)(a.NewNetwork("gfake", "g", "", gPool("10.97.0.0/24")))
	bn := testrig.Must[*libnetwork.Network](t)(b.NetworkByID(n.ID()))
	var sbs []*libnetwork.Sandbox
	var eps []*libnetwork.Endpoint
	for i, name := range []string{"keep", "taken"} {
		ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint(name))
		sb := testrig.Must[*libnetwork.Sandbox](t)(a.NewSandbox(fmt.Sprintf("c%d", i)))
		if err := ep.Join(sb); err != nil {
			t.Fatal(err)
		}
		eps, sbs = append(eps, ep), append(sbs, sb)
	}
	up := func(sb *libnetwork.Sandbox) (bool, []string) {
		t.Helper()
		ns, err := netnsutil.Open(sb.Key())
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		h, err := netlink.NewHandleAt(ns.Handle())
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		l, err := h.LinkByName("eth0")
		if err != nil {
			t.Fatalf("eth0 in %s: %v", sb.ContainerID(), err)
		}
		addrs, _ := h.AddrList(l, netlink.FAMILY_V4)
		var out []string
		for _, a := range addrs {
			out = append(out, a.IPNet.String())
		}
		return l.Attrs().Flags&net.FlagUp != 0, out
	}
	for _, sb := range sbs {
		if isUp, _ := up(sb); !isUp {
			t.Fatalf("eth0 of %s down after its join", sb.ContainerID())
		}
	}

	kva.setCut(true)
	t.Cleanup(func() { kva.setCut(false) })
	if err := b.EvictHost("host-a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's endpoints gone from b's view", func() bool { return len(bn.ClusterEndpoints()) == 0 })
	testrig.Must[*libnetwork.Endpoint](t)(bn.CreateEndpoint("other",
		libnetwork.CreateOptionIpam(net.ParseIP(testrig.EpIP(eps[1])), nil, nil, nil)))
	kva.setCut(false)
	eventually(t, "a healed with one conflict", func() bool {
		return onHost(bn, eps[0].ID(), "host-a") && len(a.Conflicts()) == 1
	})
	if isUp, _ := up(sbs[0]); !isUp {
		t.Fatal("the endpoint claimed again has its interface down")
	}
	isUp, addrs := up(sbs[1])
	if isUp {
		t.Fatal("the endpoint kept down has its interface up")
	}
	if len(addrs) != 1 || addrs[0] != testrig.EpIP(eps[1])+"/24" {
		t.Fatalf("the endpoint kept down has addresses %v; want its own kept", addrs)
	}
}
