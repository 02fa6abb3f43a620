package portmapper_test

import (
	"net"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/types"
)

// In a routed family a binding takes no host port: no socket, no DNAT,
// no conntrack flush, and a host port held elsewhere is no conflict; the
// operational binding has host port 0 and the firewall gets the container
// port as a routed forward (the endpoint's accept). The other family maps
// as ever. Unmapping leaves nothing.
func TestRoutedFamilyTakesNoHostPort(t *testing.T) {
	r := newRig(t)
	// 8080 and 5353 held in IPv4 by someone else.
	for _, b := range []types.PortBinding{{Proto: types.TCP, HostPort: 8080}, {Proto: types.UDP, HostPort: 5353}} {
		if _, err := r.res.Reserve(b.Proto, net.IPv4zero, b.HostPort); err != nil {
			t.Fatal(err)
		}
	}
	held := r.res.count()
	ep := ep1
	ep.Routed4 = true
	got, err := r.pm.MapPorts(ep, []types.PortBinding{
		{Proto: types.TCP, Port: 80, HostPort: 8080},                                   // v4 routed + v6 nat
		{Proto: types.UDP, Port: 53, HostPort: 5353, HostIP: net.ParseIP("127.0.0.1")}, // v4 only: routed
		{Proto: types.TCP, Port: 81},                                                   // v4 routed + v6 ephemeral
	})
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, b := range got {
		ops = append(ops, b.String())
	}
	want := "tcp/172.18.0.2:80/0.0.0.0:0 tcp/[fd00:1::2]:80/[::]:8080 udp/172.18.0.2:53/127.0.0.1:0 " +
		"tcp/172.18.0.2:81/0.0.0.0:0 tcp/[fd00:1::2]:81/[::]:40000"
	if strings.Join(ops, " ") != want {
		t.Errorf("operational bindings:\n%s\nwant\n%s", strings.Join(ops, " "), want)
	}
	if n := r.res.count() - held; n != 2 {
		t.Errorf("%d host ports taken, want 2 (the IPv6 ones)", n)
	}
	if es, _ := r.maps.List(firewall.IPv4); len(es) != 0 {
		t.Errorf("IPv4 is routed, yet DNAT elements: %v", es)
	}
	if es, _ := r.maps.List(firewall.IPv6); len(es) != 2 {
		t.Errorf("IPv6 elements: %v, want 2", es)
	}
	rules, err := r.ipt.List(firewall.IPv4, firewall.TableFilter)
	if err != nil {
		t.Fatal(err)
	}
	owner := "-m comment --comment " + firewall.EndpointOwner("ep1") + " -j ACCEPT"
	for _, m := range []string{"-p tcp -m tcp --dport 80 ", "-p udp -m udp --dport 53 ", "-p tcp -m tcp --dport 81 "} {
		if !strings.Contains(rules, "-A DOCKER -d 172.18.0.2/32 ! -i br-n1 -o br-n1 "+m+owner) {
			t.Errorf("no accept %q of the endpoint in:\n%s", m, rules)
		}
	}
	if err := r.pm.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(r.ct.flows) != 0 {
		t.Errorf("conntrack flushes for routed ports: %+v", r.ct.flows)
	}

	if err := r.pm.UnmapPorts("ep1"); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, r.ipt, r.maps, firewall.IPv4, firewall.IPv6); got != r.base {
		t.Errorf("unmap left rules:\n%s", got)
	}
	if r.res.count() != held {
		t.Errorf("%d ports held after unmap, want %d", r.res.count(), held)
	}
	// Both families routed: nothing is reserved at all; the asynchronous
	// release removes the accepts.
	ep.Routed6 = true
	if _, err := r.pm.MapPorts(ep, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}); err != nil {
		t.Fatal(err)
	}
	if r.res.count() != held {
		t.Errorf("both families routed, yet %d ports taken", r.res.count()-held)
	}
	if err := r.pm.Release("ep1"); err != nil {
		t.Fatal(err)
	}
	if err := r.pm.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, r.ipt, r.maps, firewall.IPv4, firewall.IPv6); got != r.base {
		t.Errorf("release left rules:\n%s", got)
	}
}
