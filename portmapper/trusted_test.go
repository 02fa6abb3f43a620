package portmapper_test

import (
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/types"
)

// A NAT family's trusted interfaces get the endpoint's published
// container ports at its address (raw and filter accepts); a routed
// family's forwards take none (their accept is open to every interface).
// Unmapping leaves nothing.
func TestTrustedInterfacesPerFamily(t *testing.T) {
	r := newRig(t)
	ep := ep1
	ep.Trusted4 = []string{"eth3"}
	ep.Routed6, ep.Trusted6 = true, []string{"eth4"}
	if _, err := r.pm.MapPorts(ep, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}); err != nil {
		t.Fatal(err)
	}
	owner := "-m comment --comment " + firewall.EndpointOwner("ep1") + " -j ACCEPT"
	for _, w := range []struct {
		table, rule string
	}{
		{firewall.TableRaw, "-A PREROUTING -d 172.18.0.2/32 -i eth3 -p tcp -m tcp --dport 80 " + owner},
		{firewall.TableFilter, "-A DOCKER -d 172.18.0.2/32 -i eth3 -o br-n1 -p tcp -m tcp --dport 80 " + owner},
	} {
		rules, err := r.ipt.List(firewall.IPv4, w.table)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(rules, w.rule) {
			t.Errorf("no %q in %s:\n%s", w.rule, w.table, rules)
		}
	}
	if got := dump(t, r.ipt, r.maps, firewall.IPv4, firewall.IPv6); strings.Contains(got, "eth4") {
		t.Errorf("the routed IPv6 forward has trusted accepts:\n%s", got)
	}
	if err := r.pm.UnmapPorts("ep1"); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, r.ipt, r.maps, firewall.IPv4, firewall.IPv6); got != r.base {
		t.Errorf("unmap left rules:\n%s", got)
	}
}
