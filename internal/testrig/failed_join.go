package testrig

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/firewall"
)

// FailedJoin is a container whose join was refused, kept exactly as the
// refusal left it: its endpoint and sandbox still exist, so what the
// failed join left behind can be looked at before anything is cleaned up.
type FailedJoin struct {
	n       *libnetwork.Network
	ep      *libnetwork.Endpoint
	sb      *libnetwork.Sandbox
	ip, ip6 net.IP
	Err     error
}

// FailJoin creates an endpoint and a sandbox and joins them, expecting the
// join to fail. Unlike portRig.run it deletes nothing on failure; the test
// calls cleanup once it has checked the leftovers. hostLinks is taken just
// before the join so a leftover veth shows.
func (r *PortRig) FailJoin(t *testing.T, n *libnetwork.Network, name string, epOpts []libnetwork.EndpointOption, sbOpts ...libnetwork.SandboxOption) *FailedJoin {
	t.Helper()
	ep, err := n.CreateEndpoint(name, epOpts...)
	if err != nil {
		t.Fatalf("creating endpoint %s: %v", name, err)
	}
	sb, err := r.Ctrl.NewSandbox("ctr-"+name, sbOpts...)
	if err != nil {
		_ = ep.Delete(false)
		t.Fatalf("creating sandbox for %s: %v", name, err)
	}
	f := &FailedJoin{n: n, ep: ep, sb: sb}
	if a := ep.Info().Iface().Address(); a != nil {
		f.ip = a.IP
	}
	if a := ep.Info().Iface().AddressIPv6(); a != nil {
		f.ip6 = a.IP
	}
	if f.Err = ep.Join(sb); f.Err == nil {
		t.Fatalf("join of %s succeeded, want it refused", name)
	}
	return f
}

// AssertNothingLeft checks, before any cleanup, that the refused join left
// nothing: the endpoint is joined nowhere and the sandbox holds no
// endpoint; no port map element or iptables rule names the endpoint or
// points at its addresses; none of ports has a listening socket; the host
// namespace has exactly hostLinks again (the veth is gone) and the
// sandbox's namespace only lo. The endpoint keeps its address: it was
// allocated by CreateEndpoint (as upstream) and is released by Delete,
// which cleanup checks.
func (f *FailedJoin) AssertNothingLeft(t *testing.T, r *PortRig, hostLinks []string, ports ...uint16) {
	t.Helper()
	if sb := f.ep.Info().Sandbox(); sb != nil {
		t.Errorf("refused endpoint is still joined to sandbox %s", sb.ID())
	}
	if gw := f.ep.Info().Gateway(); gw != nil {
		t.Errorf("refused endpoint still reports gateway %s", gw)
	}
	if eps := f.sb.Endpoints(); len(eps) != 0 {
		t.Errorf("sandbox still holds %d endpoints after the refused join", len(eps))
	}
	owner := firewall.EndpointOwner(f.ep.ID())
	for _, e := range PortMapElems(t, r.Host.NS) {
		if e.Owner == owner || ipIs(e.ContainerIP.AsSlice(), f.ip) || ipIs(e.ContainerIP.AsSlice(), f.ip6) {
			t.Errorf("refused join left port map element %s", e)
		}
	}
	words := []string{f.ep.ID()[:12]}
	if f.ip != nil {
		words = append(words, f.ip.String()+"/", f.ip.String()+":")
	}
	if f.ip6 != nil {
		words = append(words, f.ip6.String()+"/", "["+f.ip6.String()+"]")
	}
	if hits := RulesNaming(t, r.Host.NS, words...); len(hits) > 0 {
		t.Errorf("refused join left rules:\n%s", strings.Join(hits, "\n"))
	}
	for _, p := range ports {
		if got := Listeners(t, r.Host.NS, p); got != 0 {
			t.Errorf("refused join left %d listening sockets on port %d", got, p)
		}
	}
	// Deleting a veth is the driver's background work (tens of ms).
	Eventually(t, "the refused join's veth to leave the host namespace", func() bool {
		return slices.Equal(LinkNames(t, r.Host.Netlink), hostLinks)
	})
	_, h := SandboxNS(t, f.sb)
	Eventually(t, "the sandbox's namespace to hold only lo", func() bool {
		return slices.Equal(LinkNames(t, h), []string{"lo"})
	})
}

// Cleanup deletes the refused container and checks its addresses went
// back to IPAM: a new endpoint asking for exactly them gets them.
func (f *FailedJoin) Cleanup(t *testing.T) {
	t.Helper()
	if err := f.sb.Delete(); err != nil {
		t.Fatalf("deleting the refused sandbox: %v", err)
	}
	if err := f.ep.Delete(false); err != nil {
		t.Fatalf("deleting the refused endpoint: %v", err)
	}
	if f.ip == nil {
		return
	}
	again, err := f.n.CreateEndpoint(f.ep.Name(), libnetwork.CreateOptionIpam(f.ip, f.ip6, nil, nil))
	if err != nil {
		t.Fatalf("address %s / %s not released with the refused endpoint: %v", f.ip, f.ip6, err)
	}
	if err := again.Delete(false); err != nil {
		t.Fatal(err)
	}
}

func ipIs(a, b net.IP) bool { return b != nil && a.Equal(b) }
