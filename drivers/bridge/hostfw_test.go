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
