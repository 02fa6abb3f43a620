package libnetwork_test

import (
	"net"
	"slices"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/types"
	"github.com/vishvananda/netlink"
)

// Link-local addresses given to CreateOptionIpam are reported by the
// endpoint and put on the container's interface at Join, with upstream's
// prefix lengths (/16 for IPv4, /64 for IPv6).
func TestLinkLocalAddresses(t *testing.T) {
	c, _ := newPrivController(t)
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
	_, h := sandboxNS(t, sb)
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
