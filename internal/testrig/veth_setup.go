package testrig

import (
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/plugins/plugintest"
)

// VethSetup is a controller with a veth plugin on a unix socket, one
// network, one endpoint and one sandbox, ready to join.
type VethSetup struct {
	Ctrl     *libnetwork.Controller
	Dir      string
	Plugin   *VethPlugin
	Server   *plugintest.Server
	Net      *libnetwork.Network
	Endpoint *libnetwork.Endpoint
	Sandbox  *libnetwork.Sandbox
	sbNL     *netlink.Handle
}

func NewVethSetup(t *testing.T) *VethSetup {
	t.Helper()
	c, host, dir := NewPluginController(t, PluginTimeout)
	s := &VethSetup{Ctrl: c, Dir: dir, Plugin: NewVethPlugin(t, host)}
	s.Server = Publish(t, dir, "vethnet", ViaSocket, network.NewHandler(s.Plugin))
	s.Net = Must[*libnetwork.Network](t)(c.NewNetwork("vethnet", "rnet", "", IPAMOpt("10.77.0.0/24", "10.77.0.1")))
	s.Endpoint = Must[*libnetwork.Endpoint](t)(s.Net.CreateEndpoint("ep1"))
	s.Sandbox = Must[*libnetwork.Sandbox](t)(c.NewSandbox("c1"))
	t.Cleanup(func() { _ = s.Sandbox.Delete() })
	_, s.sbNL = SandboxNS(t, s.Sandbox)
	return s
}

// CheckNotJoined asserts a failed join left nothing: no interface or route
// in the sandbox, the endpoint unattached, the plugin's link in the host.
func (s *VethSetup) CheckNotJoined(t *testing.T) {
	t.Helper()
	if got := LinkNames(t, s.sbNL); strings.Join(got, ",") != "lo" {
		t.Fatalf("sandbox links after failed join: %v", got)
	}
	if got := RouteSet(t, s.sbNL); len(got) != 0 {
		t.Fatalf("sandbox routes after failed join: %v", got)
	}
	if sb := s.Endpoint.Info().Sandbox(); sb != nil || s.Endpoint.Info().Gateway() != nil {
		t.Fatalf("endpoint still attached: sandbox %v gateway %v", sb, s.Endpoint.Info().Gateway())
	}
	if eps := s.Sandbox.Endpoints(); len(eps) != 0 {
		t.Fatalf("sandbox lists endpoints: %v", eps)
	}
	if pe := s.Plugin.Endpoint(s.Endpoint.ID()); pe == nil || !s.Plugin.HostHas(pe.Peer) {
		t.Fatalf("container end of the plugin's veth not back in the host: %+v", pe)
	}
}

// JoinWorks proves the endpoint is usable after a failure.
func (s *VethSetup) JoinWorks(t *testing.T) {
	t.Helper()
	s.Plugin.SetBefore(nil)
	if err := s.Endpoint.Join(s.Sandbox); err != nil {
		t.Fatalf("join after the failure: %v", err)
	}
	CheckJoined(t, s.sbNL, s.Plugin)
	if err := s.Endpoint.Leave(s.Sandbox); err != nil {
		t.Fatal(err)
	}
}
