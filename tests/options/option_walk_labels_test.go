package options

import (
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/ipam"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// labelChecks has one check per exported netlabel constant.
var labelChecks = map[string]func(t *testing.T, w *walkRig){
	"Prefix": func(t *testing.T, w *walkRig) {
		got := config.New(config.OptionLabels([]string{netlabel.Prefix + ".x=1", "org.example.y=2"})).Labels
		if !slices.Equal(got, []string{netlabel.Prefix + ".x=1"}) {
			t.Fatalf("labels kept: %v", got)
		}
	},
	"DriverPrefix": func(t *testing.T, w *walkRig) {
		c, err := libnetwork.New(config.OptionDataDir(t.TempDir()), config.OptionExecRoot(t.TempDir()),
			config.OptionHostNetNS(newHostPath(t)), config.OptionLabels([]string{netlabel.DriverPrefix + ".bridge.NoSuchOption=1"}))
		if err == nil {
			c.Stop()
		}
		if !types.IsBadRequest(err) {
			t.Fatalf("a bridge driver label naming no option: want BadRequest, got %v", err)
		}
		// A valid label's value reaches the driver's configuration: the
		// bridge driver says at its start that it runs no userland proxy
		// only when EnableUserlandProxy is true.
		for _, v := range []string{"false", "true"} {
			var buf syncBuffer
			testrig.NewController(t, config.OptionLogger(slog.New(slog.NewTextHandler(&buf, nil))),
				config.OptionLabels([]string{netlabel.DriverPrefix + ".bridge.EnableUserlandProxy=" + v}))
			if got := strings.Contains(buf.String(), "EnableUserlandProxy=true"); got != (v == "true") {
				t.Fatalf("label EnableUserlandProxy=%s: the driver's start log %q", v, buf.String())
			}
		}
	},
	"GenericData": func(t *testing.T, w *walkRig) {
		n := w.network(t, libnetwork.NetworkOptionDriverOpts(map[string]string{"k": "v"}))
		if got, _ := w.rec.net(t, n).Options[netlabel.GenericData].(map[string]string); got["k"] != "v" {
			t.Fatalf("driver got %s = %v", netlabel.GenericData, w.rec.net(t, n).Options[netlabel.GenericData])
		}
	},
	"PortMap": func(t *testing.T, w *walkRig) {
		pb := []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}
		ep, _ := w.joined(t, w.network(t), nil, libnetwork.OptionPortMapping(pb))
		if got, _ := w.rec.prog(t, ep)[netlabel.PortMap].([]types.PortBinding); len(got) != 1 || got[0].HostPort != 8080 {
			t.Fatalf("driver got %s = %v", netlabel.PortMap, got)
		}
		if _, err := w.c.NewSandbox(w.name("bad"), libnetwork.OptionGeneric(map[string]any{netlabel.PortMap: "80:8080"})); !types.IsBadRequest(err) {
			t.Fatalf("%s of the wrong type: want BadRequest, got %v", netlabel.PortMap, err)
		}
	},
	"OperPortMap": func(t *testing.T, w *walkRig) {
		// Written by the controller at a live restore (TestRestartPorts*),
		// read by the bridge driver.
		testutil.RequireRoot(t)
		d, err := bridge.New(testutil.NewHostNS(t).NS, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := d.ProgramExternalConnectivity("n", "e", map[string]any{netlabel.OperPortMap: "8080"}); !types.IsBadRequest(err) {
			t.Fatalf("bridge given %s of the wrong type: want BadRequest, got %v", netlabel.OperPortMap, err)
		}
	},
	"MacAddress": func(t *testing.T, w *walkRig) {
		mac := net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
		ep := testrig.Must[*libnetwork.Endpoint](t)(w.network(t).CreateEndpoint("mac",
			libnetwork.EndpointOptionGeneric(map[string]any{netlabel.MacAddress: mac})))
		if got := ep.Info().Iface().MacAddress(); got.String() != mac.String() {
			t.Fatalf("MAC %s, want %s", got, mac)
		}
		if got := w.rec.ep(t, ep).Interface.MacAddress; got.String() != mac.String() {
			t.Fatalf("driver got MAC %s", got)
		}
	},
	"ExposedPorts": func(t *testing.T, w *walkRig) {
		tp := []types.TransportPort{{Proto: types.TCP, Port: 80}}
		ep, _ := w.joined(t, w.network(t), nil, libnetwork.OptionExposedPorts(tp))
		if got, _ := w.rec.prog(t, ep)[netlabel.ExposedPorts].([]types.TransportPort); !slices.Equal(got, tp) {
			t.Fatalf("driver got %s = %v", netlabel.ExposedPorts, got)
		}
		if _, err := w.c.NewSandbox(w.name("bad"), libnetwork.OptionGeneric(map[string]any{netlabel.ExposedPorts: "80"})); !types.IsBadRequest(err) {
			t.Fatalf("%s of the wrong type: want BadRequest, got %v", netlabel.ExposedPorts, err)
		}
	},
	"DNSServers": func(t *testing.T, w *walkRig) {
		// As upstream, for the driver (a plugin receives it in
		// CreateEndpoint's Options); no built-in driver uses it.
		ep := testrig.Must[*libnetwork.Endpoint](t)(w.network(t).CreateEndpoint("dns", libnetwork.CreateOptionDNS([]string{"192.0.2.53"})))
		if got, _ := w.rec.ep(t, ep).Options[netlabel.DNSServers].([]string); !slices.Equal(got, []string{"192.0.2.53"}) {
			t.Fatalf("driver got %s = %v", netlabel.DNSServers, got)
		}
	},
	"EnableIPv6": func(t *testing.T, w *walkRig) {
		n := w.network(t, libnetwork.NetworkOptionGeneric(map[string]any{netlabel.EnableIPv6: true}))
		if !n.IPv6Enabled() || len(w.rec.net(t, n).IPv6Data) != 1 {
			t.Fatalf("IPv6Enabled %v, driver got IPv6 data %v", n.IPv6Enabled(), w.rec.net(t, n).IPv6Data)
		}
	},
	"EnableIPv4": func(t *testing.T, w *walkRig) {
		n := w.network(t, libnetwork.NetworkOptionGeneric(map[string]any{netlabel.EnableIPv4: false, netlabel.EnableIPv6: true}))
		req := w.rec.net(t, n)
		if n.IPv4Enabled() || len(req.IPv4Data) != 0 || req.Options[netlabel.EnableIPv4] != false {
			t.Fatalf("IPv4Enabled %v, driver got IPv4 data %v and %s=%v", n.IPv4Enabled(), req.IPv4Data, netlabel.EnableIPv4, req.Options[netlabel.EnableIPv4])
		}
	},
	"Internal": func(t *testing.T, w *walkRig) {
		n := w.network(t, libnetwork.NetworkOptionGeneric(map[string]any{netlabel.Internal: true}))
		if !n.Internal() || w.rec.net(t, n).Options[netlabel.Internal] != true {
			t.Fatalf("Internal %v, driver got %v", n.Internal(), w.rec.net(t, n).Options[netlabel.Internal])
		}
	},
	"Gateway": func(t *testing.T, w *walkRig) {
		alloc, err := ipam.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		g := &gwIPAM{Allocator: alloc}
		if err := w.c.RegisterIpamDriver("gw", g); err != nil {
			t.Fatal(err)
		}
		n := w.network(t, libnetwork.NetworkOptionIpam("gw", "", []*libnetwork.IpamConf{{PreferredPool: "10.77.0.0/24"}}, nil, nil))
		if v4, _ := n.IpamInfo(); len(v4) != 1 || v4[0].Gateway.String() != "10.77.0.2/24" {
			t.Fatalf("gateway from the pool's %s metadata: %v", netlabel.Gateway, v4)
		}
		// Without it in the metadata, the gateway request says what it is.
		def, err := ipam.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		rec := &recIPAM{Allocator: def}
		if err := w.c.RegisterIpamDriver("recgw", rec); err != nil {
			t.Fatal(err)
		}
		w.network(t, libnetwork.NetworkOptionIpam("recgw", "", nil, nil, nil))
		if !slices.ContainsFunc(rec.opts, func(o map[string]string) bool { return o[ipamapi.RequestAddressType] == netlabel.Gateway }) {
			t.Fatalf("no address request typed %s: %v", netlabel.Gateway, rec.opts)
		}
	},
	"BridgeGatewayModeIPv4":       refusedByBridge(netlabel.BridgeGatewayModeIPv4, "routed-ish"),
	"BridgeGatewayModeIPv6":       refusedByBridge(netlabel.BridgeGatewayModeIPv6, "routed-ish"),
	"BridgeTrustedHostInterfaces": refusedByBridge(netlabel.BridgeTrustedHostInterfaces, "bad/name"),
	"DriverMTU":                   bridgeLabels,
	"Logger": func(t *testing.T, w *walkRig) {
		testutil.RequireRoot(t)
		var buf syncBuffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		d, err := bridge.New(testutil.NewHostNS(t).NS, map[string]any{netlabel.Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if _, err := d.RepairFirewall(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), "firewall checked") {
			t.Fatalf("the bridge driver did not log through %s: %q", netlabel.Logger, buf.String())
		}
	},
	"ContainerIfacePrefix": bridgeLabels,
	"HostIP":               bridgeLabels,
}

// refusedByBridge checks that the bridge driver reads label: a bad value
// fails NewNetwork with a BadRequest naming it. What valid values do is
// in gateway_mode_test.go (TestGatewayModeNATUnprotected,
// TestGatewayModeIsolated, TestTrustedHostInterfaces).
func refusedByBridge(label, bad string) func(t *testing.T, w *walkRig) {
	return func(t *testing.T, w *walkRig) {
		_, err := w.c.NewNetwork("bridge", w.name("refused"), "", libnetwork.NetworkOptionDriverOpts(map[string]string{label: bad}))
		if !types.IsBadRequest(err) || !strings.Contains(err.Error(), label) {
			t.Fatalf("%s=%s: want BadRequest naming it, got %v", label, bad, err)
		}
	}
}

// bridgeLabels checks the netlabel keys the bridge driver reads, in the
// kernel: the MTU on both ends of the veth, the container interface's
// name prefix, and the SNAT source.
func bridgeLabels(t *testing.T, _ *walkRig) {
	c, host := testrig.NewPrivController(t)
	n := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("bridge", "labels", "",
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.66.0.0/24"}}, nil, nil),
		libnetwork.NetworkOptionDriverOpts(map[string]string{
			netlabel.DriverMTU: "1400", netlabel.ContainerIfacePrefix: "ctr", netlabel.HostIP: "192.0.2.7"})))
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("ctr-labels"))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	_, h := testrig.SandboxNS(t, sb)
	l, err := h.LinkByName("ctr0")
	if err != nil {
		t.Fatalf("%s=ctr: %v", netlabel.ContainerIfacePrefix, err)
	}
	if l.Attrs().MTU != 1400 {
		t.Fatalf("%s=1400: container interface MTU %d", netlabel.DriverMTU, l.Attrs().MTU)
	}
	if rules := testrig.RulesNaming(t, host.NS, "--to-source 192.0.2.7"); len(rules) == 0 {
		t.Fatalf("%s=192.0.2.7: no SNAT rule", netlabel.HostIP)
	}
	if err := ep.Leave(sb); err != nil {
		t.Fatal(err)
	}
}

// notOptions are netlabel constants that are no option: nothing in the
// library stores a value under them (the walk checks no code outside
// netlabel names them), with the reason.
var notOptions = map[string]string{
	"DriverPrivatePrefix": "prefix of LocalKVClient/GlobalKVClient only",
	"LocalKVClient":       "upstream hands drivers a datastore client under it; drivers here get no store",
	"GlobalKVClient":      "upstream hands drivers a datastore client under it; drivers here get no store",
}
