package bridge

import (
	"net"
	"testing"

	"github.com/opencnm/libnetwork/types"
)

// host_binding_ipv4 fills in only a missing host IP: 0.0.0.0 and :: given
// explicitly still publish on every address, and the caller's bindings
// are not changed under it.
func TestDefaultHostIPOnlyWhereNoneGiven(t *testing.T) {
	def := net.ParseIP("127.0.0.1")
	in := []types.PortBinding{
		{Proto: types.TCP, Port: 80, HostPort: 8080},
		{Proto: types.TCP, Port: 81, HostPort: 8081, HostIP: net.IPv4zero},
		{Proto: types.TCP, Port: 82, HostPort: 8082, HostIP: net.IPv6zero},
		{Proto: types.TCP, Port: 83, HostPort: 8083, HostIP: net.ParseIP("192.0.2.1")},
	}
	got := withDefaultHostIP(in, def)
	want := []net.IP{def, net.IPv4zero, net.IPv6zero, net.ParseIP("192.0.2.1")}
	for i, b := range got {
		if !b.HostIP.Equal(want[i]) {
			t.Errorf("binding %d: host IP %v, want %v", i, b.HostIP, want[i])
		}
	}
	if in[0].HostIP != nil {
		t.Errorf("the caller's binding was changed: %v", in[0])
	}
	for _, d := range []net.IP{nil, net.IPv4zero} {
		if got := withDefaultHostIP(in, d); got[0].HostIP != nil {
			t.Errorf("default %v gave a missing host IP %v, want it left to mean every address", d, got[0].HostIP)
		}
	}
}

// The operational bindings of a port published on every address in a
// network routed in one family come back as the one binding they were
// made from: the routed family's (host port 0) joins its twin, which is
// then on every address. A routed binding without a twin (both families
// routed, or one host address) stays as it is.
func TestRejoinRouted(t *testing.T) {
	c4, c6 := net.ParseIP("172.18.0.2").To4(), net.ParseIP("fd00:1::2")
	in := []types.PortBinding{
		{Proto: types.TCP, IP: c4, Port: 80, HostIP: net.IPv4zero.To4()},                  // routed IPv4
		{Proto: types.TCP, IP: c6, Port: 80, HostIP: net.IPv6unspecified, HostPort: 8090}, // its twin
		{Proto: types.UDP, IP: c4, Port: 53, HostIP: net.ParseIP("127.0.0.1")},            // routed, one address
		{Proto: types.TCP, IP: c4, Port: 81, HostIP: net.IPv4zero.To4()},                  // routed, no twin
	}
	got := rejoinRouted(in)
	if len(got) != 3 {
		t.Fatalf("got %v, want 3 bindings", got)
	}
	if b := got[0]; b.Port != 80 || b.HostPort != 8090 || !b.HostIP.Equal(net.IPv4zero) {
		t.Errorf("rejoined binding %v, want 80 on 0.0.0.0:8090", b)
	}
	if got[1].Proto != types.UDP || got[1].HostPort != 0 || got[2].Port != 81 || got[2].HostPort != 0 {
		t.Errorf("bindings without a twin changed: %v", got[1:])
	}
	if !in[1].HostIP.Equal(net.IPv6unspecified) {
		t.Errorf("the caller's binding was changed: %v", in[1])
	}
}
