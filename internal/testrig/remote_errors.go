package testrig

import (
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/plugins/plugintest"
	"github.com/vishvananda/netlink"
)

// vethSetup is a controller with a veth plugin on a unix socket, one
// network, one endpoint and one sandbox, ready to join.
type vethSetup struct {
	C    *libnetwork.Controller
	Dir  string
	P    *VethPlugin
	Srv  *plugintest.Server
	N    *libnetwork.Network
	Ep   *libnetwork.Endpoint
	Sb   *libnetwork.Sandbox
	sbNL *netlink.Handle
}

func NewVethSetup(t *testing.T) *vethSetup {
	t.Helper()
	c, host, dir := NewPluginController(t, TestTimeout)
	s := &vethSetup{C: c, Dir: dir, P: NewVethPlugin(t, host)}
	s.Srv = Publish(t, dir, "vethnet", ViaSocket, network.NewHandler(s.P))
	s.N = Must[*libnetwork.Network](t)(c.NewNetwork("vethnet", "rnet", "", IPAMConf("10.77.0.0/24", "10.77.0.1")))
	s.Ep = Must[*libnetwork.Endpoint](t)(s.N.CreateEndpoint("ep1"))
	s.Sb = Must[*libnetwork.Sandbox](t)(c.NewSandbox("c1"))
	t.Cleanup(func() { _ = s.Sb.Delete() })
	_, s.sbNL = SandboxNS(t, s.Sb)
	return s
}

// CheckNotJoined asserts a failed join left nothing: no interface or route
// in the sandbox, the endpoint unattached, the plugin's link in the host.
func (s *vethSetup) CheckNotJoined(t *testing.T) {
	t.Helper()
	if got := LinkNames(t, s.sbNL); strings.Join(got, ",") != "lo" {
		t.Fatalf("sandbox links after failed join: %v", got)
	}
	if got := RouteSet(t, s.sbNL); len(got) != 0 {
		t.Fatalf("sandbox routes after failed join: %v", got)
	}
	if sb := s.Ep.Info().Sandbox(); sb != nil || s.Ep.Info().Gateway() != nil {
		t.Fatalf("endpoint still attached: sandbox %v gateway %v", sb, s.Ep.Info().Gateway())
	}
	if eps := s.Sb.Endpoints(); len(eps) != 0 {
		t.Fatalf("sandbox lists endpoints: %v", eps)
	}
	if pe := s.P.Ep(s.Ep.ID()); pe == nil || !s.P.HostHas(pe.Peer) {
		t.Fatalf("container end of the plugin's veth not back in the host: %+v", pe)
	}
}

// JoinWorks proves the endpoint is usable after a failure.
func (s *vethSetup) JoinWorks(t *testing.T) {
	t.Helper()
	s.P.SetBefore(nil)
	if err := s.Ep.Join(s.Sb); err != nil {
		t.Fatalf("join after the failure: %v", err)
	}
	CheckJoined(t, s.sbNL, s.P)
	if err := s.Ep.Leave(s.Sb); err != nil {
		t.Fatal(err)
	}
}
