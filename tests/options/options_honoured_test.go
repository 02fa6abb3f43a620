package options

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

func bridgeDriverConfig(g options.Generic) config.Option {
	return config.OptionDriverConfig("bridge", map[string]any{netlabel.GenericData: g})
}

// With EnableIPTables=false the bridge driver has no NAT to publish a
// port with (upstream publishes nothing either without its userland
// proxy, which this library never runs). Asking for published ports on
// such a driver is a BadRequest naming the option, at CreateEndpoint
// (the endpoint's own ports) or at Join (the sandbox's), and leaves
// nothing; containers without published ports work as before.
func TestEnableIPTablesOffRefusesPorts(t *testing.T) {
	r := testrig.NewPortRig(t, bridgeDriverConfig(options.Generic{"EnableIPTables": false}))
	checkPortsRefused(t, r, "EnableIPTables")
}

func checkPortsRefused(t *testing.T, r *testrig.PortRig, option string) {
	t.Helper()
	n := r.BridgeNet(t, "noipt", "10.60.0.0/24")
	_, err := n.CreateEndpoint("own", libnetwork.CreateOptionPortMapping([]types.PortBinding{testrig.TCP(80, 8080)}))
	if !types.IsBadRequest(err) || !strings.Contains(err.Error(), option) {
		t.Fatalf("endpoint with published ports: want BadRequest naming %s, got %v", option, err)
	}
	if _, err := n.EndpointByName("own"); err == nil {
		t.Fatal("refused endpoint was kept")
	}

	ep, err := n.CreateEndpoint("c1")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := r.Ctrl.NewSandbox("ctr-c1", libnetwork.OptionPortMapping([]types.PortBinding{testrig.TCP(80, 8080)}))
	if err != nil {
		t.Fatal(err)
	}
	err = ep.Join(sb)
	if !types.IsBadRequest(err) || !strings.Contains(err.Error(), option) {
		t.Fatalf("join of a sandbox publishing ports: want BadRequest naming %s, got %v", option, err)
	}
	if ep.Info().Sandbox() != nil || len(sb.Endpoints()) != 0 {
		t.Fatal("refused join left the endpoint joined")
	}
	if n := testrig.Listeners(t, r.Host.NS, 8080); n != 0 {
		t.Fatalf("refused join left %d sockets on port 8080", n)
	}
	if err := sb.Delete(); err != nil {
		t.Fatal(err)
	}

	// Exposed ports alone publish nothing and are fine.
	c2 := r.MustRun(t, n, "c2", nil, libnetwork.OptionExposedPorts([]types.TransportPort{{Proto: types.TCP, Port: 80}}))
	if hits := testrig.RulesNaming(t, r.Host.NS, n.ID()[:12], c2.Endpoint.ID()[:12]); len(hits) > 0 {
		t.Fatalf("rules on a driver without iptables:\n%s", strings.Join(hits, "\n"))
	}
	c2.Stop(t)
	if err := ep.Delete(false); err != nil {
		t.Fatal(err)
	}
}

// No proxy process is ever run (CONTRACT.md): with EnableUserlandProxy
// on, published ports stay reachable from the host's loopback, its own
// addresses, outside and hairpin, exactly as with it off.
// UserlandProxyPath names nothing to run and need not exist; both are
// logged once, through OptionLogger.
func TestUserlandProxyOnKeepsLoopback(t *testing.T) {
	var buf syncBuffer
	r := testrig.NewPortRig(t, config.OptionLogger(slog.New(slog.NewTextHandler(&buf, nil))), bridgeDriverConfig(options.Generic{
		"EnableUserlandProxy": true, "UserlandProxyPath": "/nonexistent/docker-proxy"}))
	n := r.BridgeNet(t, "proxy", "10.61.0.0/24")
	c1 := r.MustRun(t, n, "c1", nil, libnetwork.OptionPortMapping([]types.PortBinding{testrig.TCP(80, 8080)}))
	testrig.Serve(t, c1.NS, "tcp", ":80", "c1")
	testrig.MustFetch(t, r.Host.NS, "tcp", "127.0.0.1:8080", "c1")
	testrig.MustFetch(t, r.Host.NS, "tcp", "10.61.0.1:8080", "c1")
	testrig.MustFetch(t, r.Out.NS, "tcp", testrig.UplinkHost+":8080", "c1")
	testrig.MustFetch(t, c1.NS, "tcp", "10.61.0.1:8080", "c1")
	c1.Stop(t)
	logged := buf.String()
	if strings.Count(logged, "EnableUserlandProxy=true") != 1 || strings.Count(logged, "/nonexistent/docker-proxy") != 1 {
		t.Fatalf("want the proxy options logged once each, got:\n%s", logged)
	}
}

// Daemon labels com.docker.network.driver.bridge.<option>=<value>
// configure the bridge driver as its driver options do (upstream feeds
// com.docker.network.driver.<type>.* labels into that driver's config):
// here EnableIPTables=false, observable as ports being refused.
func TestDriverLabelsConfigureBridge(t *testing.T) {
	r := testrig.NewPortRig(t, config.OptionLabels([]string{
		"com.docker.network.driver.bridge.EnableIPTables=false",
		"com.docker.network.something.else=1", // not a driver's: for other users
	}))
	checkPortsRefused(t, r, "EnableIPTables")
}

// A bridge label naming no bridge driver option, or with a bad value,
// fails New with a BadRequest naming it rather than being ignored.
func TestDriverLabelsUnknownRefused(t *testing.T) {
	for _, l := range []string{
		"com.docker.network.driver.bridge.NoSuchOption=1",
		"com.docker.network.driver.bridge.EnableIPTables=maybe",
	} {
		c, err := libnetwork.New(config.OptionDataDir(t.TempDir()), config.OptionExecRoot(t.TempDir()),
			config.OptionHostNetNS(newHostPath(t)), config.OptionLabels([]string{l}))
		if err == nil {
			c.Stop()
			t.Fatalf("label %s accepted", l)
		}
		if !types.IsBadRequest(err) || !strings.Contains(err.Error(), netlabel.Key(l)) {
			t.Fatalf("label %s: want BadRequest naming it, got %v", l, err)
		}
	}
}

// newHostPath is a throwaway host namespace for a controller the test
// builds itself.
func newHostPath(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	return testutil.NewHostNS(t).Path()
}
