package testrig

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// RouteSet renders the IPv4 routes of nl as "dst via gw dev" strings.
func RouteSet(t *testing.T, nl *netlink.Handle) []string {
	t.Helper()
	routes, err := nl.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range routes {
		dst := "default"
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones > 0 {
				dst = r.Dst.String()
			}
		}
		s := dst
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		if l, err := nl.LinkByIndex(r.LinkIndex); err == nil {
			s += " dev " + l.Attrs().Name
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// CheckJoined looks inside the sandbox for what the plugin's join asked for.
func CheckJoined(t *testing.T, sbNL *netlink.Handle, p *VethPlugin) {
	t.Helper()
	if got := LinkNames(t, sbNL); strings.Join(got, ",") != "eth0,lo" {
		t.Fatalf("sandbox links: %v", got)
	}
	l, err := sbNL.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().HardwareAddr.String() != p.Mac || l.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("eth0: MAC %v up %v", l.Attrs().HardwareAddr, l.Attrs().Flags&net.FlagUp != 0)
	}
	addrs, err := sbNL.AddrList(l, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "10.77.0.2/24" {
		t.Fatalf("eth0 addresses %v %v", addrs, err)
	}
	want := []string{"10.77.0.0/24 dev eth0", "10.98.0.0/24 dev eth0", "10.99.0.0/16 via 10.77.0.254 dev eth0", "default via 10.77.0.1 dev eth0"}
	if got := RouteSet(t, sbNL); !slices.Equal(got, want) {
		t.Fatalf("sandbox routes\n got %v\nwant %v", got, want)
	}
}
