package remote

import (
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/plugins/plugintest"
	"github.com/opencnm/libnetwork/types"
)

// slack is what a bounded failure may take beyond the plugin timeout on a
// loaded machine under -race.
const slack = 750 * time.Millisecond

func TestRemoteJoinPluginError(t *testing.T) {
	s := testrig.NewVethSetup(t)
	s.Plugin.SetBefore(func(m string) error {
		if m == "Join" {
			return errors.New("no carrier for you")
		}
		return nil
	})
	err := s.Endpoint.Join(s.Sandbox)
	if err == nil || !strings.Contains(err.Error(), "remote: no carrier for you") || !types.IsInternal(err) {
		t.Fatalf("want the plugin's message as an Internal error, got %v", err)
	}
	s.CheckNotJoined(t)
	// The plugin said the join failed: it has nothing to undo.
	if n := s.Plugin.Count("Leave " + s.Endpoint.ID()); n != 0 {
		t.Fatalf("plugin got %d Leave calls for a join it refused", n)
	}
	if n := s.Plugin.Count("ProgramExternalConnectivity " + s.Endpoint.ID()); n != 0 {
		t.Fatalf("failed join programmed external connectivity")
	}
	s.JoinWorks(t)
}

// A join the plugin accepted but the controller cannot complete is undone
// on both sides: the link goes back to the host and the plugin hears Leave.
func TestRemoteJoinUnusableReply(t *testing.T) {
	cases := []struct {
		name  string
		setup func(p *testrig.VethPlugin)
		want  string
	}{
		{"no such link", func(p *testrig.VethPlugin) { p.SrcName = "nosuchlink0" }, "nosuchlink0"},
		{"bad gateway", func(p *testrig.VethPlugin) { p.Gateway = "not-an-ip" }, "invalid reply to Join"},
		// The link is moved in and configured before the route fails: it
		// must go back to the host under its own name.
		{"unreachable next hop", func(p *testrig.VethPlugin) {
			p.Routes = append(p.Routes, &network.StaticRoute{Destination: "10.66.0.0/16", NextHop: "192.0.2.9"})
		}, "10.66.0.0/16"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testrig.NewVethSetup(t)
			s.Plugin.Mu.Lock()
			saved := s.Plugin.Routes
			tc.setup(s.Plugin)
			s.Plugin.Mu.Unlock()
			err := s.Endpoint.Join(s.Sandbox)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error naming %q, got %v", tc.want, err)
			}
			s.CheckNotJoined(t)
			if n := s.Plugin.Count("Leave " + s.Endpoint.ID()); n != 1 {
				t.Fatalf("plugin got %d Leave calls, want 1: %v", n, s.Plugin.CallList())
			}
			if seen, _ := s.Plugin.LinkSeen("Leave " + s.Endpoint.ID()); !seen {
				t.Fatal("link was not back in the host when the plugin heard Leave")
			}
			s.Plugin.Mu.Lock()
			s.Plugin.SrcName, s.Plugin.Gateway, s.Plugin.Routes = "", "", saved
			s.Plugin.Mu.Unlock()
			s.JoinWorks(t)
		})
	}
}

// A plugin that dies in the middle of a call fails that call at once, and
// later calls within the timeout; the controller's state is as before, and
// the restarted plugin picks up where it was.
func TestRemotePluginDiesMidOperation(t *testing.T) {
	s := testrig.NewVethSetup(t)
	s.Plugin.SetBefore(func(m string) error {
		if m == "Join" {
			s.Server.Kill()
		}
		return nil
	})
	start := time.Now()
	err := s.Endpoint.Join(s.Sandbox)
	if took := time.Since(start); err == nil || took > testrig.PluginTimeout+slack {
		t.Fatalf("join on a dying plugin: %v after %v", err, took)
	}
	if !types.IsInternal(err) && !types.IsTimeout(err) {
		t.Fatalf("join on a dying plugin: want Internal or Timeout, got %v", err)
	}
	s.CheckNotJoined(t)

	// Dead: calls fail as Timeout within the bound and change nothing.
	start = time.Now()
	_, err = s.Net.CreateEndpoint("ep2")
	if took := time.Since(start); !types.IsTimeout(err) || took > testrig.PluginTimeout+slack {
		t.Fatalf("create endpoint on a dead plugin: want Timeout within %v, got %v after %v", testrig.PluginTimeout, err, took)
	}
	if _, err := s.Net.EndpointByName("ep2"); !types.IsNotFound(err) {
		t.Fatalf("failed endpoint listed: %v", err)
	}
	if err := s.Net.Delete(); err == nil {
		t.Fatal("network with an endpoint deleted")
	}
	if got := len(s.Net.Endpoints()); got != 1 {
		t.Fatalf("network has %d endpoints", got)
	}

	// Restarted on the same socket, the plugin serves the same controller.
	s.Server = testrig.Publish(t, s.Dir, "vethnet", testrig.ViaSocket, network.NewHandler(s.Plugin))
	s.JoinWorks(t)
	ep2, err := s.Net.CreateEndpoint("ep2")
	if err != nil {
		t.Fatal(err)
	}
	// The failed create gave its address back.
	if a := ep2.Info().Iface().Address(); a.String() != "10.77.0.3/24" {
		t.Fatalf("ep2 address %v", a)
	}
}

// A plugin that stops answering mid-life fails the call as Timeout within
// the bound, leaving nothing behind.
func TestRemotePluginHangs(t *testing.T) {
	s := testrig.NewVethSetup(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the server is killed
	s.Plugin.SetBefore(func(m string) error {
		if m == "Join" {
			<-release
		}
		return nil
	})
	start := time.Now()
	err := s.Endpoint.Join(s.Sandbox)
	took := time.Since(start)
	if !types.IsTimeout(err) || took < testrig.PluginTimeout || took > testrig.PluginTimeout+slack {
		t.Fatalf("join on a hung plugin: want Timeout after %v, got %v after %v", testrig.PluginTimeout, err, took)
	}
	s.CheckNotJoined(t)
}

// A plugin socket or spec that is present but never answers is a Timeout
// within the bound; nothing is created.
func TestRemoteSilentPlugin(t *testing.T) {
	c, _, dir := testrig.NewPluginController(t, testrig.PluginTimeout)
	// A socket that is listened on but never served: connections queue.
	l, err := net.Listen("unix", filepath.Join(dir, "silent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	// A spec naming a port nobody listens on: connections are refused.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plugintest.WriteSpec(t, filepath.Join(dir, "refused.spec"), "tcp://"+free.Addr().String())
	free.Close()

	for _, name := range []string{"silent", "refused"} {
		start := time.Now()
		_, err := c.NewNetwork(name, "n-"+name, "")
		if took := time.Since(start); !types.IsTimeout(err) || took > testrig.PluginTimeout+slack {
			t.Fatalf("%s network plugin: want Timeout within %v, got %v after %v", name, testrig.PluginTimeout, err, took)
		}
		start = time.Now()
		_, err = c.NewNetwork("bridge", "b-"+name, "", libnetwork.NetworkOptionIpam(name, "", nil, nil, nil))
		if took := time.Since(start); !types.IsTimeout(err) || took > testrig.PluginTimeout+slack {
			t.Fatalf("%s IPAM plugin: want Timeout within %v, got %v after %v", name, testrig.PluginTimeout, err, took)
		}
	}
	if nws := c.Networks(); len(nws) != 0 {
		t.Fatalf("failed networks listed: %v", nws)
	}
}

// An unknown driver fails NotFound at once, however long the plugin
// timeout, with other plugins present.
func TestRemoteUnknownDriverFast(t *testing.T) {
	c, host, dir := testrig.NewPluginController(t, 30*time.Second)
	testrig.Publish(t, dir, "vethnet", testrig.ViaSocket, network.NewHandler(testrig.NewVethPlugin(t, host)))
	start := time.Now()
	_, err := c.NewNetwork("nosuch", "n1", "")
	var nte libnetwork.NetworkTypeError
	if !errors.As(err, &nte) || !types.IsNotFound(err) {
		t.Fatalf("unknown network type: want NetworkTypeError, got %v", err)
	}
	_, err = c.NewNetwork("bridge", "n2", "", libnetwork.NetworkOptionIpam("nosuchipam", "", nil, nil, nil))
	if !types.IsNotFound(err) || !strings.Contains(err.Error(), "nosuchipam") {
		t.Fatalf("unknown IPAM driver: want NotFound, got %v", err)
	}
	// Far under the 30 s a lookup waiting on the plugin timeout takes, and
	// generous for two calls on a loaded machine under -race.
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("unknown drivers took %v", took)
	}
	if nws := c.Networks(); len(nws) != 0 {
		t.Fatalf("failed networks listed: %v", nws)
	}
}

// A plugin asked for an interface its handshake does not list is refused
// with NotImplemented naming the interface.
func TestRemoteImplementsMismatch(t *testing.T) {
	c, host, dir := testrig.NewPluginController(t, testrig.PluginTimeout)
	testrig.Publish(t, dir, "onlyipam", testrig.ViaSocket, ipam.NewHandler(newPoolPlugin()))
	testrig.Publish(t, dir, "onlynet", testrig.ViaTCPSpec, network.NewHandler(testrig.NewVethPlugin(t, host)))

	_, err := c.NewNetwork("onlyipam", "n1", "")
	if !types.IsNotImplemented(err) || !strings.Contains(err.Error(), "NetworkDriver") {
		t.Fatalf("IPAM plugin as network type: want NotImplemented naming NetworkDriver, got %v", err)
	}
	_, err = c.NewNetwork("bridge", "n2", "", libnetwork.NetworkOptionIpam("onlynet", "", nil, nil, nil))
	if !types.IsNotImplemented(err) || !strings.Contains(err.Error(), "IpamDriver") {
		t.Fatalf("network plugin as IPAM: want NotImplemented naming IpamDriver, got %v", err)
	}
	// Each plugin still serves what it does implement.
	n, err := c.NewNetwork("bridge", "n3", "", libnetwork.NetworkOptionIpam("onlyipam", "", nil, nil, nil))
	if err != nil {
		t.Fatalf("IPAM plugin as IPAM: %v", err)
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	n, err = c.NewNetwork("onlynet", "n4", "", testrig.IPAMOpt("10.77.0.0/24", "10.77.0.1"))
	if err != nil {
		t.Fatalf("network plugin as network type: %v", err)
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
}

// An IPAM plugin that activates and then stops answering fails the network
// as Timeout within one timeout, not one per call of the driver's start-up.
func TestRemoteIPAMHangsAfterActivation(t *testing.T) {
	c, _, dir := testrig.NewPluginController(t, testrig.PluginTimeout)
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"Implements": ["IpamDriver"]}`)
	})
	mux.HandleFunc("/", func(http.ResponseWriter, *http.Request) { <-release })
	testrig.Publish(t, dir, "hungipam", testrig.ViaSocket, plugintest.HTTP{Handler: mux})
	t.Cleanup(func() { close(release) }) // before the server is killed

	start := time.Now()
	_, err := c.NewNetwork("bridge", "n", "", libnetwork.NetworkOptionIpam("hungipam", "", nil, nil, nil))
	if took := time.Since(start); !types.IsTimeout(err) || took > testrig.PluginTimeout+slack {
		t.Fatalf("want Timeout within %v, got %v after %v", testrig.PluginTimeout, err, took)
	}
}

// A silent plugin being waited for does not hold up the discovery of a
// healthy one.
func TestRemoteSilentPluginDoesNotBlockOthers(t *testing.T) {
	c, host, dir := testrig.NewPluginController(t, 2*testrig.PluginTimeout)
	l, err := net.Listen("unix", filepath.Join(dir, "silent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	testrig.Publish(t, dir, "vethnet", testrig.ViaSocket, network.NewHandler(testrig.NewVethPlugin(t, host)))

	silentDone := make(chan error, 1)
	go func() {
		_, err := c.NewNetwork("silent", "s", "")
		silentDone <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the silent lookup start waiting
	start := time.Now()
	n, err := c.NewNetwork("vethnet", "v", "", testrig.IPAMOpt("10.77.0.0/24", "10.77.0.1"))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	// Held up behind the silent lookup, the healthy create could only
	// end after it: that lookup must still be waiting (a time bound
	// would fail under load without the two being related).
	select {
	case err := <-silentDone:
		t.Fatalf("healthy plugin's network made only after the silent lookup ended (%v), took %v", err, took)
	default:
	}
	if err := <-silentDone; !types.IsTimeout(err) {
		t.Fatalf("silent plugin: want Timeout, got %v", err)
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
}
