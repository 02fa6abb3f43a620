package firewall_test

import (
	"net"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/types"
)

// SetLinks writes upstream's pair of DOCKER ACCEPTs per port of a link,
// tagged with the endpoint's link owner, replaces them on a second call
// and removes them all with RemoveLinks; bad links are refused.
func TestSetLinks(t *testing.T) {
	fw, fake := newFW(t, true)
	empty := dump(t, fake, firewall.IPv4, firewall.IPv6)
	l4 := firewall.Link{Bridge: "br-n1", ParentIP: net.ParseIP("10.0.0.2"), ChildIP: net.ParseIP("10.0.0.3"),
		Ports: []types.TransportPort{{Proto: types.TCP, Port: 5432}, {Proto: types.UDP, Port: 53}}}
	l6 := firewall.Link{Bridge: "br-n1", ParentIP: net.ParseIP("fd00::2"), ChildIP: net.ParseIP("fd00::3"),
		Ports: []types.TransportPort{{Proto: types.TCP, Port: 5432}}}
	if err := fw.SetLinks("ep1", []firewall.Link{l4, l6}); err != nil {
		t.Fatal(err)
	}
	got := dump(t, fake, firewall.IPv4, firewall.IPv6)
	for _, want := range []string{
		"-A DOCKER -s 10.0.0.2/32 -d 10.0.0.3/32 -i br-n1 -o br-n1 -p tcp -m tcp --dport 5432 -m comment --comment cnm-link-ep1 -j ACCEPT",
		"-A DOCKER -s 10.0.0.3/32 -d 10.0.0.2/32 -i br-n1 -o br-n1 -p tcp -m tcp --sport 5432 -m comment --comment cnm-link-ep1 -j ACCEPT",
		"-A DOCKER -s 10.0.0.2/32 -d 10.0.0.3/32 -i br-n1 -o br-n1 -p udp -m udp --dport 53 -m comment --comment cnm-link-ep1 -j ACCEPT",
		"-A DOCKER -s fd00::2/128 -d fd00::3/128 -i br-n1 -o br-n1 -p tcp -m tcp --dport 5432 -m comment --comment cnm-link-ep1 -j ACCEPT",
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("missing %q in:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "cnm-link-ep1"); n != 6 {
		t.Fatalf("%d link rules, want 6:\n%s", n, got)
	}
	if err := fw.SetLinks("ep1", []firewall.Link{l6}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(dump(t, fake, firewall.IPv4, firewall.IPv6), "cnm-link-ep1"); n != 2 {
		t.Fatalf("after replacing: %d link rules, want 2", n)
	}
	if err := fw.RemoveLinks("ep1"); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, fake, firewall.IPv4, firewall.IPv6); got != empty {
		t.Fatalf("RemoveLinks left:\n%s", got)
	}
	if err := fw.RemoveLinks("ep1"); err != nil {
		t.Fatalf("second RemoveLinks: %v", err)
	}
	bad := l4
	bad.ChildIP = net.ParseIP("fd00::3")
	if err := fw.SetLinks("ep2", []firewall.Link{bad}); !types.IsBadRequest(err) {
		t.Fatalf("mixed families: want BadRequest, got %v", err)
	}
}
