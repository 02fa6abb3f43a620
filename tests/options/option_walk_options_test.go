package options

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

// optionChecks has a check per option function; optionTests names the
// test that checks an option needing a kernel, a plugin or a restart.
var optionChecks = map[string]func(t *testing.T, w *walkRig){
	"NetworkOptionGeneric": func(t *testing.T, w *walkRig) {
		n := w.network(t, libnetwork.NetworkOptionGeneric(map[string]any{"x": 1}))
		if w.rec.net(t, n).Options["x"] != 1 {
			t.Fatal("generic option not given to the driver")
		}
	},
	"NetworkOptionDriverOpts": func(t *testing.T, w *walkRig) {
		n := w.network(t, libnetwork.NetworkOptionDriverOpts(map[string]string{"k": "v"}))
		if n.DriverOptions()["k"] != "v" {
			t.Fatalf("DriverOptions %v", n.DriverOptions())
		}
	},
	"NetworkOptionEnableIPv4": func(t *testing.T, w *walkRig) {
		n := w.network(t, libnetwork.NetworkOptionEnableIPv4(false), libnetwork.NetworkOptionEnableIPv6(true))
		if n.IPv4Enabled() || len(w.rec.net(t, n).IPv4Data) != 0 {
			t.Fatal("IPv4 not off")
		}
	},
	"NetworkOptionEnableIPv6": func(t *testing.T, w *walkRig) {
		n := w.network(t, libnetwork.NetworkOptionEnableIPv6(true))
		if !n.IPv6Enabled() || w.rec.net(t, n).Options[netlabel.EnableIPv6] != true {
			t.Fatal("IPv6 not on")
		}
	},
	"NetworkOptionInternalNetwork": func(t *testing.T, w *walkRig) {
		n := w.network(t, libnetwork.NetworkOptionInternalNetwork())
		if !n.Internal() || w.rec.net(t, n).Options[netlabel.Internal] != true {
			t.Fatal("not internal")
		}
	},
	"NetworkOptionIpam": func(t *testing.T, w *walkRig) {
		n := w.network(t, libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.88.0.0/24", Gateway: "10.88.0.9"}}, nil, nil))
		req := w.rec.net(t, n)
		if len(req.IPv4Data) != 1 || req.IPv4Data[0].Pool.String() != "10.88.0.0/24" || req.IPv4Data[0].Gateway.IP.String() != "10.88.0.9" {
			t.Fatalf("driver got %v", req.IPv4Data)
		}
	},
	"NetworkOptionLabels": func(t *testing.T, w *walkRig) {
		n := w.network(t, libnetwork.NetworkOptionLabels(map[string]string{"team": "a"}))
		if n.Labels()["team"] != "a" {
			t.Fatalf("Labels %v", n.Labels())
		}
	},
	"EndpointOptionGeneric": func(t *testing.T, w *walkRig) {
		ep := testrig.Must[*libnetwork.Endpoint](t)(w.network(t).CreateEndpoint("g", libnetwork.EndpointOptionGeneric(map[string]any{"x": 2})))
		if w.rec.ep(t, ep).Options["x"] != 2 {
			t.Fatal("generic endpoint option not given to the driver")
		}
	},
	"CreateOptionIpam": func(t *testing.T, w *walkRig) {
		n := w.network(t, libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.89.0.0/24"}}, nil, nil))
		ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ip", libnetwork.CreateOptionIpam(net.ParseIP("10.89.0.77"), nil,
			[]net.IP{net.ParseIP("169.254.1.1")}, nil)))
		if got := ep.Info().Iface().Address().String(); got != "10.89.0.77/24" {
			t.Fatalf("address %s", got)
		}
		if ll := ep.Info().Iface().LinkLocalAddresses(); len(ll) != 1 || ll[0].String() != "169.254.1.1/16" {
			t.Fatalf("link-local %v", ll)
		}
	},
	"CreateOptionExposedPorts": func(t *testing.T, w *walkRig) {
		tp := []types.TransportPort{{Proto: types.UDP, Port: 53}}
		ep := testrig.Must[*libnetwork.Endpoint](t)(w.network(t).CreateEndpoint("x", libnetwork.CreateOptionExposedPorts(tp)))
		if got, _ := w.rec.ep(t, ep).Options[netlabel.ExposedPorts].([]types.TransportPort); !slices.Equal(got, tp) {
			t.Fatalf("driver got %v", got)
		}
	},
	"CreateOptionPortMapping": func(t *testing.T, w *walkRig) {
		pb := []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8081}}
		ep := testrig.Must[*libnetwork.Endpoint](t)(w.network(t).CreateEndpoint("p", libnetwork.CreateOptionPortMapping(pb)))
		if got, _ := w.rec.ep(t, ep).Options[netlabel.PortMap].([]types.PortBinding); len(got) != 1 || got[0].HostPort != 8081 {
			t.Fatalf("driver got %v", got)
		}
	},
	"CreateOptionDNS": labelChecks["DNSServers"],
	"CreateOptionMyAlias": func(t *testing.T, w *walkRig) {
		_, sb := w.joined(t, w.network(t), []libnetwork.EndpointOption{libnetwork.CreateOptionMyAlias("db-alias")})
		if ips, _ := sb.ResolveName("db-alias", types.IPv4); len(ips) != 1 {
			t.Fatalf("alias resolves to %v", ips)
		}
	},
	"JoinOptionPriority": func(t *testing.T, w *walkRig) {
		sb := testrig.Must[*libnetwork.Sandbox](t)(w.c.NewSandbox("prio", libnetwork.OptionUseExternalKey()))
		t.Cleanup(func() { _ = sb.Delete() })
		var eps []*libnetwork.Endpoint
		for i, prio := range []int{1, 5} {
			ep := testrig.Must[*libnetwork.Endpoint](t)(w.network(t).CreateEndpoint("prio" + string(rune('0'+i))))
			if err := ep.Join(sb, libnetwork.JoinOptionPriority(prio)); err != nil {
				t.Fatal(err)
			}
			eps = append(eps, ep)
		}
		if got := sb.Endpoints(); len(got) != 2 || got[0] != eps[1] {
			t.Fatal("the higher priority endpoint is not first")
		}
	},
	"OptionGeneric": func(t *testing.T, w *walkRig) {
		ep, sb := w.joined(t, w.network(t), nil, libnetwork.OptionGeneric(map[string]any{"lbl": "v"}))
		if sb.Labels()["lbl"] != "v" || w.rec.prog(t, ep)["lbl"] != "v" {
			t.Fatal("sandbox label not given to the driver")
		}
	},
	"OptionExposedPorts": labelChecks["ExposedPorts"],
	"OptionPortMapping":  labelChecks["PortMap"],
	"OptionHostname": func(t *testing.T, w *walkRig) {
		dir := t.TempDir()
		n := w.network(t)
		w.joined(t, n, nil, libnetwork.OptionHostname("web"), libnetwork.OptionDomainname("example.com"),
			libnetwork.OptionHostsPath(filepath.Join(dir, "hosts")), libnetwork.OptionExtraHost("db", "192.0.2.9"))
		hosts := fileOf(t, filepath.Join(dir, "hosts"))
		for _, want := range []string{"web.example.com web", "192.0.2.9\tdb"} {
			if !strings.Contains(hosts, want) {
				t.Fatalf("hosts file lacks %q:\n%s", want, hosts)
			}
		}
	},
	"OptionDNS": func(t *testing.T, w *walkRig) {
		dir := t.TempDir()
		sb := testrig.Must[*libnetwork.Sandbox](t)(w.c.NewSandbox("dns", libnetwork.OptionUseExternalKey(),
			libnetwork.OptionResolvConfPath(filepath.Join(dir, "resolv.conf")), libnetwork.OptionDNS("192.0.2.53"),
			libnetwork.OptionDNSSearch("example.com"), libnetwork.OptionDNSOptions("ndots:2")))
		t.Cleanup(func() { _ = sb.Delete() })
		rc := fileOf(t, filepath.Join(dir, "resolv.conf"))
		for _, want := range []string{"nameserver 192.0.2.53", "search example.com", "ndots:2"} {
			if !strings.Contains(rc, want) {
				t.Fatalf("resolv.conf lacks %q:\n%s", want, rc)
			}
		}
	},
	"OptionOriginResolvConfPath": func(t *testing.T, w *walkRig) {
		dir := t.TempDir()
		origin := filepath.Join(dir, "origin")
		if err := os.WriteFile(origin, []byte("nameserver 192.0.2.44\nsearch origin.example\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		sb := testrig.Must[*libnetwork.Sandbox](t)(w.c.NewSandbox("origin", libnetwork.OptionUseExternalKey(),
			libnetwork.OptionResolvConfPath(filepath.Join(dir, "resolv.conf")), libnetwork.OptionOriginResolvConfPath(origin)))
		t.Cleanup(func() { _ = sb.Delete() })
		if rc := fileOf(t, filepath.Join(dir, "resolv.conf")); !strings.Contains(rc, "origin.example") {
			t.Fatalf("resolv.conf not built from the origin:\n%s", rc)
		}
	},
	"OptionUseExternalKey": func(t *testing.T, w *walkRig) {
		sb := testrig.Must[*libnetwork.Sandbox](t)(w.c.NewSandbox("ext", libnetwork.OptionUseExternalKey()))
		t.Cleanup(func() { _ = sb.Delete() })
		if _, err := os.Stat(sb.Key()); err == nil {
			t.Fatal("a namespace was made for an external-key sandbox")
		}
	},
	"config.OptionDataDir": func(t *testing.T, w *walkRig) {
		dir := t.TempDir()
		c := testrig.NewController(t, config.OptionDataDir(dir))
		_ = c
		if _, err := os.Stat(filepath.Join(dir, libnetwork.StoreFile)); err != nil {
			t.Fatalf("no store in DataDir: %v", err)
		}
	},
	"config.OptionExecRoot": func(t *testing.T, w *walkRig) {
		dir := t.TempDir()
		c := testrig.NewController(t, config.OptionExecRoot(dir))
		sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("er", libnetwork.OptionUseExternalKey()))
		t.Cleanup(func() { _ = sb.Delete() })
		if !strings.HasPrefix(sb.Key(), dir+string(filepath.Separator)) {
			t.Fatalf("key %s not under ExecRoot %s", sb.Key(), dir)
		}
	},
	"config.OptionDefaultAddressPoolConfig": func(t *testing.T, w *walkRig) {
		w2 := newWalkRig(t, config.OptionDefaultAddressPoolConfig([]*config.NetworkToSplit{{Base: "10.123.0.0/16", Size: 24}}))
		n := w2.network(t)
		if v4, _ := n.IpamInfo(); len(v4) != 1 || v4[0].Pool.String() != "10.123.0.0/24" {
			t.Fatalf("pool %v, want the first of the configured pools", v4)
		}
	},
	"config.OptionLabels": labelChecks["DriverPrefix"],
	"config.OptionLogger": func(t *testing.T, w *walkRig) {
		var buf syncBuffer
		c := testrig.NewController(t, config.OptionLogger(slog.New(slog.NewTextHandler(&buf, nil))),
			bridgeDriverConfig(options.Generic{"EnableUserlandProxy": true}))
		_ = c
		if !strings.Contains(buf.String(), "EnableUserlandProxy=true") {
			t.Fatalf("controller did not log through OptionLogger: %q", buf.String())
		}
	},
	"config.OptionHostNetNS": func(t *testing.T, w *walkRig) {
		testutil.RequireRoot(t)
		host := testutil.NewHostNS(t)
		c, err := libnetwork.New(config.OptionDataDir(t.TempDir()), config.OptionExecRoot(t.TempDir()), config.OptionHostNetNS(host.Path()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		n := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("bridge", "hostns", "",
			libnetwork.NetworkOptionDriverOpts(map[string]string{bridge.BridgeName: "walkbr0"})))
		defer n.Delete()
		if _, err := host.Netlink.LinkByName("walkbr0"); err != nil {
			t.Fatalf("bridge not in the configured host namespace: %v", err)
		}
	},
	// The timeouts and the plugin directories: option_walk_timeouts_test.go.
	"config.OptionStoreTimeout":  checkStoreTimeout,
	"config.OptionPluginTimeout": checkPluginTimeout,
	"config.OptionPluginDirs":    checkPluginDirs,
	"config.OptionDNSTimeout":    checkDNSTimeout,
	"config.OptionDriverConfig": func(t *testing.T, w *walkRig) {
		c, err := libnetwork.New(config.OptionDataDir(t.TempDir()), config.OptionExecRoot(t.TempDir()),
			config.OptionHostNetNS(newHostPath(t)), bridgeDriverConfig(options.Generic{"NoSuchOption": true}))
		if err == nil {
			c.Stop()
		}
		if !types.IsBadRequest(err) {
			t.Fatalf("bridge driver config naming no option: want BadRequest, got %v", err)
		}
	},
}

// optionTests names, per option, the test that exercises it; the walk
// checks only that the test exists and names the option, so an option
// listed here must be one whose test fails when the option is ignored
// (a check above is better: it is itself behavioural).
var optionTests = map[string]string{
	"NetworkOptionPersist":          "TestRestartRestoresState",
	"CreateOptionDisableResolution": "TestEmbeddedResolverNotStarted",
	"CreateOptionAlias":             "TestResolveNameModel",
	"OptionDomainname":              "TestDNSFileOptions",
	"OptionDNSSearch":               "TestDNSFileOptions",
	"OptionDNSOptions":              "TestDNSFileOptions",
	"OptionExtraHost":               "TestDNSFileOptions",
	"OptionHostsPath":               "TestDNSFileOptions",
	"OptionResolvConfPath":          "TestDNSFileOptions",
	"OptionOriginHostsPath":         "TestDNSFileOptions",
	"OptionUseDefaultSandbox":       "TestHostDriverUsesDefaultSandbox",
	"config.OptionActiveSandboxes":  "TestCrashDuringLeaveKeepsSandbox",
	// The global store's options (root cluster tests).
	"config.OptionKVProvider":       "TestKVProviderWithoutImport",
	"config.OptionKVProviderURL":    "TestKVProviderWithoutImport",
	"config.OptionKVOpts":           "TestKVOptsAreChecked",
	"config.OptionKVTimeout":        "TestClusterSessionBoundedByKVTimeout",
	"config.OptionHostLeaseTTL":     "TestClusterFenceDuringOutage",
	"config.OptionHostID":           "TestClusterHostIDKept",
	"config.OptionDiscoveryAddress": "TestDiscoveryAddress",
}
