package options

import (
	"net"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

// Link-local addresses given to CreateOptionIpam are reported by the
// endpoint and put on the container's interface at Join, with upstream's
// prefix lengths (/16 for IPv4, /64 for IPv6).
func TestLinkLocalAddresses(t *testing.T) {
	c, _ := testrig.NewPrivController(t)
	n, err := c.NewNetwork("bridge", "ll", "", libnetwork.NetworkOptionIpam("default", "",
		[]*libnetwork.IpamConf{{PreferredPool: "10.62.0.0/24"}}, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	ll := []net.IP{net.ParseIP("169.254.7.7"), net.ParseIP("fe80::7:7")}
	ep, err := n.CreateEndpoint("ep", libnetwork.CreateOptionIpam(nil, nil, ll, nil))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range ep.Info().Iface().LinkLocalAddresses() {
		got = append(got, a.String())
	}
	if want := []string{"169.254.7.7/16", "fe80::7:7/64"}; !slices.Equal(got, want) {
		t.Fatalf("LinkLocalAddresses: %v, want %v", got, want)
	}
	sb, err := c.NewSandbox("ctr-ll")
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	_, h := testrig.SandboxNS(t, sb)
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	all, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, a := range all {
		addrs = append(addrs, a.IPNet.String())
	}
	for _, want := range []string{"169.254.7.7/16", "fe80::7:7/64"} {
		if !slices.Contains(addrs, want) {
			t.Fatalf("eth0 addresses %v: %s missing", addrs, want)
		}
	}
	if err := ep.Leave(sb); err != nil {
		t.Fatal(err)
	}
	if err := sb.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := ep.Delete(false); err != nil {
		t.Fatal(err)
	}

	// Not link-local: refused.
	if _, err := n.CreateEndpoint("bad", libnetwork.CreateOptionIpam(nil, nil, []net.IP{net.ParseIP("10.9.9.9")}, nil)); !types.IsBadRequest(err) {
		t.Fatalf("non-link-local address: want BadRequest, got %v", err)
	}
}

// An IPv6 network without a pool gets a /64 from the default pools, as
// moby 27 does: a ULA /48 (fdXX:XXXX:XXXX::/48, its 40-bit global ID
// random per DataDir and kept there) split into /64s. Each network gets
// its own /64, and endpoints addresses in it; after a restart new
// networks come from the same /48.
func TestIPv6WithoutPoolGetsULA(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	mk := func(c *libnetwork.Controller, name, v4 string) *net.IPNet {
		t.Helper()
		n, err := c.NewNetwork("bridge", name, "", libnetwork.NetworkOptionEnableIPv6(true),
			libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: v4}}, nil, nil))
		if err != nil {
			t.Fatalf("IPv6 network without a pool: %v", err)
		}
		_, v6 := n.IpamInfo()
		if len(v6) != 1 || v6[0].Pool == nil {
			t.Fatalf("network %s: IPv6 pools %v", name, v6)
		}
		p := v6[0].Pool
		if ones, _ := p.Mask.Size(); ones != 64 || p.IP[0] != 0xfd {
			t.Fatalf("network %s: IPv6 pool %s, want a ULA /64 (fd00::/8)", name, p)
		}
		ep, err := n.CreateEndpoint("ep-" + name)
		if err != nil {
			t.Fatal(err)
		}
		if a := ep.Info().Iface().AddressIPv6(); a == nil || !p.Contains(a.IP) {
			t.Fatalf("endpoint address %v not in %s", a, p)
		}
		return p
	}
	p1 := mk(c, "v6a", "10.63.0.0/24")
	p2 := mk(c, "v6b", "10.63.1.0/24")
	if p1.String() == p2.String() {
		t.Fatalf("two networks got the same pool %s", p1)
	}
	same48 := func(a, b *net.IPNet) bool {
		return a.IP.Mask(net.CIDRMask(48, 128)).Equal(b.IP.Mask(net.CIDRMask(48, 128)))
	}
	if !same48(p1, p2) {
		t.Fatalf("pools %s and %s are not in one /48", p1, p2)
	}
	c = r.Start()
	if p3 := mk(c, "v6c", "10.63.2.0/24"); !same48(p1, p3) {
		t.Fatalf("after restart: pool %s not in the /48 of %s", p3, p1)
	}
}
