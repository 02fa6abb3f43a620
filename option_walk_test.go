package libnetwork_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/ipam"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

// The option walk: every label the library defines (the exported
// constants of netlabel) and every option function (network, endpoint,
// sandbox and config options) must have a check here that shows it is
// read: setting it changes what a driver or IPAM driver is given, what
// the controller reports or does, or fails as a BadRequest when invalid.
// Options whose behaviour needs a kernel or a plugin are checked by a
// named test; the walk verifies that test exists and uses the option. A
// new label or option without a check fails the walk. The bridge driver's
// own option keys are walked in drivers/bridge (TestEveryBridgeOptionParsed).

// recDriver is a driver that records what it is given.
type recDriver struct {
	mu    sync.Mutex
	nets  map[string]driverapi.CreateNetworkRequest
	eps   map[string]driverapi.CreateEndpointRequest
	joins map[string]map[string]any
	progs map[string]map[string]any
}

func newRecDriver() *recDriver {
	return &recDriver{nets: map[string]driverapi.CreateNetworkRequest{}, eps: map[string]driverapi.CreateEndpointRequest{},
		joins: map[string]map[string]any{}, progs: map[string]map[string]any{}}
}

func (d *recDriver) Type() string { return "rec" }
func (d *recDriver) CreateNetwork(req driverapi.CreateNetworkRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nets[req.NetworkID] = req
	return nil
}
func (d *recDriver) DeleteNetwork(string) error { return nil }
func (d *recDriver) CreateEndpoint(req driverapi.CreateEndpointRequest) (*driverapi.Interface, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.eps[req.EndpointID] = req
	return nil, nil
}
func (d *recDriver) DeleteEndpoint(string, string) error { return nil }
func (d *recDriver) EndpointOperInfo(string, string) (map[string]any, error) {
	return map[string]any{}, nil
}
func (d *recDriver) Join(req driverapi.JoinRequest) (*driverapi.JoinResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.joins[req.EndpointID] = req.Options
	return &driverapi.JoinResult{Gateway: net.ParseIP("10.99.0.1")}, nil
}
func (d *recDriver) Leave(string, string) error { return nil }
func (d *recDriver) ProgramExternalConnectivity(_, eid string, opts map[string]any) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.progs[eid] = opts
	return nil
}
func (d *recDriver) RevokeExternalConnectivity(string, string) error { return nil }

func (d *recDriver) net(t *testing.T, n *libnetwork.Network) driverapi.CreateNetworkRequest {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.nets[n.ID()]
	if !ok {
		t.Fatalf("driver never saw network %s", n.Name())
	}
	return r
}

func (d *recDriver) ep(t *testing.T, ep *libnetwork.Endpoint) driverapi.CreateEndpointRequest {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.eps[ep.ID()]
	if !ok {
		t.Fatalf("driver never saw endpoint %s", ep.Name())
	}
	return r
}

func (d *recDriver) prog(t *testing.T, ep *libnetwork.Endpoint) map[string]any {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.progs[ep.ID()]
	if !ok {
		t.Fatalf("driver never programmed endpoint %s", ep.Name())
	}
	return r
}

// gwIPAM is the built-in allocator whose pools name their gateway in the
// pool's metadata (netlabel.Gateway), as a plugin may.
type gwIPAM struct{ *ipam.Allocator }

func (g *gwIPAM) RequestPool(req ipamapi.PoolRequest) (ipamapi.AllocatedPool, error) {
	p, err := g.Allocator.RequestPool(req)
	if err == nil && !req.V6 {
		p.Meta = map[string]string{netlabel.Gateway: netip.PrefixFrom(p.Pool.Addr().Next().Next(), p.Pool.Bits()).String()}
	}
	return p, err
}

// walkRig is a controller with the recording driver.
type walkRig struct {
	c   *libnetwork.Controller
	rec *recDriver
	seq int
}

func newWalkRig(t *testing.T, opts ...config.Option) *walkRig {
	t.Helper()
	c := newController(t, opts...)
	rec := newRecDriver()
	if err := c.RegisterDriver("rec", rec, driverapi.Capability{DataScope: "local", ConnectivityScope: "local"}); err != nil {
		t.Fatal(err)
	}
	return &walkRig{c: c, rec: rec}
}

func (w *walkRig) name(prefix string) string {
	w.seq++
	return prefix + string(rune('a'+w.seq%26)) + strings.Repeat("x", w.seq/26)
}

func (w *walkRig) network(t *testing.T, opts ...libnetwork.NetworkOption) *libnetwork.Network {
	t.Helper()
	return must[*libnetwork.Network](t)(w.c.NewNetwork("rec", w.name("net"), "", opts...))
}

// joined creates an endpoint on n and joins it to a new external-key
// sandbox (no namespace needed).
func (w *walkRig) joined(t *testing.T, n *libnetwork.Network, epOpts []libnetwork.EndpointOption, sbOpts ...libnetwork.SandboxOption) (*libnetwork.Endpoint, *libnetwork.Sandbox) {
	t.Helper()
	ep := must[*libnetwork.Endpoint](t)(n.CreateEndpoint(w.name("ep"), epOpts...))
	sb := must[*libnetwork.Sandbox](t)(w.c.NewSandbox(w.name("ctr"), append([]libnetwork.SandboxOption{libnetwork.OptionUseExternalKey()}, sbOpts...)...))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Delete() })
	return ep, sb
}

func fileOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

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
		ep := must[*libnetwork.Endpoint](t)(w.network(t).CreateEndpoint("mac",
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
		ep := must[*libnetwork.Endpoint](t)(w.network(t).CreateEndpoint("dns", libnetwork.CreateOptionDNS([]string{"192.0.2.53"})))
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
	"DriverMTU":            bridgeLabels,
	"ContainerIfacePrefix": bridgeLabels,
	"HostIP":               bridgeLabels,
}

// recIPAM records the options of address requests.
type recIPAM struct {
	*ipam.Allocator
	mu   sync.Mutex
	opts []map[string]string
}

func (g *recIPAM) RequestAddress(pool string, prefer netip.Addr, opts map[string]string) (netip.Prefix, map[string]string, error) {
	g.mu.Lock()
	g.opts = append(g.opts, opts)
	g.mu.Unlock()
	return g.Allocator.RequestAddress(pool, prefer, opts)
}

// bridgeLabels checks the netlabel keys the bridge driver reads, in the
// kernel: the MTU on both ends of the veth, the container interface's
// name prefix, and the SNAT source.
func bridgeLabels(t *testing.T, _ *walkRig) {
	c, host := newPrivController(t)
	n := must[*libnetwork.Network](t)(c.NewNetwork("bridge", "labels", "",
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.66.0.0/24"}}, nil, nil),
		libnetwork.NetworkOptionDriverOpts(map[string]string{
			netlabel.DriverMTU: "1400", netlabel.ContainerIfacePrefix: "ctr", netlabel.HostIP: "192.0.2.7"})))
	ep := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep"))
	sb := must[*libnetwork.Sandbox](t)(c.NewSandbox("ctr-labels"))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	_, h := sandboxNS(t, sb)
	l, err := h.LinkByName("ctr0")
	if err != nil {
		t.Fatalf("%s=ctr: %v", netlabel.ContainerIfacePrefix, err)
	}
	if l.Attrs().MTU != 1400 {
		t.Fatalf("%s=1400: container interface MTU %d", netlabel.DriverMTU, l.Attrs().MTU)
	}
	if rules := rulesNaming(t, host.NS, "--to-source 192.0.2.7"); len(rules) == 0 {
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
		ep := must[*libnetwork.Endpoint](t)(w.network(t).CreateEndpoint("g", libnetwork.EndpointOptionGeneric(map[string]any{"x": 2})))
		if w.rec.ep(t, ep).Options["x"] != 2 {
			t.Fatal("generic endpoint option not given to the driver")
		}
	},
	"CreateOptionIpam": func(t *testing.T, w *walkRig) {
		n := w.network(t, libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.89.0.0/24"}}, nil, nil))
		ep := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ip", libnetwork.CreateOptionIpam(net.ParseIP("10.89.0.77"), nil,
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
		ep := must[*libnetwork.Endpoint](t)(w.network(t).CreateEndpoint("x", libnetwork.CreateOptionExposedPorts(tp)))
		if got, _ := w.rec.ep(t, ep).Options[netlabel.ExposedPorts].([]types.TransportPort); !slices.Equal(got, tp) {
			t.Fatalf("driver got %v", got)
		}
	},
	"CreateOptionPortMapping": func(t *testing.T, w *walkRig) {
		pb := []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8081}}
		ep := must[*libnetwork.Endpoint](t)(w.network(t).CreateEndpoint("p", libnetwork.CreateOptionPortMapping(pb)))
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
		sb := must[*libnetwork.Sandbox](t)(w.c.NewSandbox("prio", libnetwork.OptionUseExternalKey()))
		t.Cleanup(func() { _ = sb.Delete() })
		var eps []*libnetwork.Endpoint
		for i, prio := range []int{1, 5} {
			ep := must[*libnetwork.Endpoint](t)(w.network(t).CreateEndpoint("prio" + string(rune('0'+i))))
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
		sb := must[*libnetwork.Sandbox](t)(w.c.NewSandbox("dns", libnetwork.OptionUseExternalKey(),
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
		sb := must[*libnetwork.Sandbox](t)(w.c.NewSandbox("origin", libnetwork.OptionUseExternalKey(),
			libnetwork.OptionResolvConfPath(filepath.Join(dir, "resolv.conf")), libnetwork.OptionOriginResolvConfPath(origin)))
		t.Cleanup(func() { _ = sb.Delete() })
		if rc := fileOf(t, filepath.Join(dir, "resolv.conf")); !strings.Contains(rc, "origin.example") {
			t.Fatalf("resolv.conf not built from the origin:\n%s", rc)
		}
	},
	"OptionUseExternalKey": func(t *testing.T, w *walkRig) {
		sb := must[*libnetwork.Sandbox](t)(w.c.NewSandbox("ext", libnetwork.OptionUseExternalKey()))
		t.Cleanup(func() { _ = sb.Delete() })
		if _, err := os.Stat(sb.Key()); err == nil {
			t.Fatal("a namespace was made for an external-key sandbox")
		}
	},
	"config.OptionDataDir": func(t *testing.T, w *walkRig) {
		dir := t.TempDir()
		c := newController(t, config.OptionDataDir(dir))
		_ = c
		if _, err := os.Stat(filepath.Join(dir, libnetwork.StoreFile)); err != nil {
			t.Fatalf("no store in DataDir: %v", err)
		}
	},
	"config.OptionExecRoot": func(t *testing.T, w *walkRig) {
		dir := t.TempDir()
		c := newController(t, config.OptionExecRoot(dir))
		sb := must[*libnetwork.Sandbox](t)(c.NewSandbox("er", libnetwork.OptionUseExternalKey()))
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
	"config.OptionHostNetNS": func(t *testing.T, w *walkRig) {
		testutil.RequireRoot(t)
		host := testutil.NewHostNS(t)
		c, err := libnetwork.New(config.OptionDataDir(t.TempDir()), config.OptionExecRoot(t.TempDir()), config.OptionHostNetNS(host.Path()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		n := must[*libnetwork.Network](t)(c.NewNetwork("bridge", "hostns", "",
			libnetwork.NetworkOptionDriverOpts(map[string]string{bridge.BridgeName: "walkbr0"})))
		defer n.Delete()
		if _, err := host.Netlink.LinkByName("walkbr0"); err != nil {
			t.Fatalf("bridge not in the configured host namespace: %v", err)
		}
	},
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

// optionTests names, per option, the function (a test, or the helper
// of the tests named in the comment) that exercises it; the walk checks
// that function exists and uses the option.
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
	// newPluginController: the remote driver and IPAM plugin tests (a
	// plugin found in the directory; a silent one timing out).
	"config.OptionPluginDirs":      "newPluginController",
	"config.OptionPluginTimeout":   "newPluginController",
	"config.OptionStoreTimeout":    "TestStoreHeldOrCorrupt",
	"config.OptionDNSTimeout":      "TestEmbeddedResolverNotStarted",
	"config.OptionActiveSandboxes": "TestCrashDuringLeaveKeepsSandbox",
}

// declared lists the exported top-level names in the non-test Go files of
// dir: constants (funcs false) or functions whose name starts with one of
// prefixes.
func declared(t *testing.T, dir string, funcs bool, prefixes ...string) []string {
	t.Helper()
	pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if funcs && d.Recv == nil && d.Name.IsExported() && slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(d.Name.Name, p) }) {
						out = append(out, d.Name.Name)
					}
				case *ast.GenDecl:
					if funcs || d.Tok != token.CONST {
						continue
					}
					for _, s := range d.Specs {
						for _, n := range s.(*ast.ValueSpec).Names {
							if n.IsExported() {
								out = append(out, n.Name)
							}
						}
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// testBodies returns, per function of the root package's tests, the
// package-qualified identifiers its body names.
func testBodies(t *testing.T) map[string]map[string]bool {
	t.Helper()
	pkgs, err := parser.ParseDir(token.NewFileSet(), ".", func(fi fs.FileInfo) bool {
		return strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Recv != nil || fd.Body == nil {
					continue
				}
				ids := map[string]bool{}
				ast.Inspect(fd.Body, func(n ast.Node) bool {
					switch x := n.(type) {
					case *ast.SelectorExpr:
						if pkg, ok := x.X.(*ast.Ident); ok {
							ids[pkg.Name+"."+x.Sel.Name] = true
						}
					}
					return true
				})
				out[fd.Name.Name] = ids
			}
		}
	}
	return out
}

// referencesOutside reports the non-test files outside netlabel naming
// netlabel.name.
func referencesOutside(t *testing.T, name string) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "netlabel" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "netlabel."+name) {
			hits = append(hits, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

func TestEveryLabelIsRead(t *testing.T) {
	w := newWalkRig(t)
	for _, name := range declared(t, "netlabel", false) {
		check, ok := labelChecks[name]
		reason, skip := notOptions[name]
		switch {
		case ok && skip:
			t.Errorf("netlabel.%s is both checked and listed as no option", name)
		case skip:
			if hits := referencesOutside(t, name); len(hits) > 0 {
				t.Errorf("netlabel.%s is listed as no option (%s) but %v use it: give it a check", name, reason, hits)
			}
		case !ok:
			t.Errorf("netlabel.%s has no check that it is read", name)
		default:
			t.Run(name, func(t *testing.T) { check(t, w) })
		}
	}
}

func TestEveryOptionIsRead(t *testing.T) {
	w := newWalkRig(t)
	bodies := testBodies(t)
	names := declared(t, ".", true, "NetworkOption", "EndpointOption", "CreateOption", "JoinOption", "Option")
	for _, n := range declared(t, "config", true, "Option") {
		names = append(names, "config."+n)
	}
	for _, name := range names {
		check, ok := optionChecks[name]
		ref, byTest := optionTests[name]
		switch {
		case ok && byTest:
			t.Errorf("%s is both checked here and by %s", name, ref)
		case byTest:
			qual := name
			if !strings.Contains(qual, ".") {
				qual = "libnetwork." + qual
			}
			if ids, found := bodies[ref]; !found {
				t.Errorf("%s: checking test %s does not exist", name, ref)
			} else if !ids[qual] {
				t.Errorf("%s: checking test %s does not use it", name, ref)
			}
		case !ok:
			t.Errorf("%s has no check that it is read", name)
		default:
			t.Run(name, func(t *testing.T) { check(t, w) })
		}
	}
}
