package remote

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/sdk"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/plugins/plugintest"
	"github.com/opencnm/libnetwork/types"
)

// stateIPAM is an IPAM plugin that keeps its state and refuses duplicates
// as real ones do: a pool it already gave, or an address already
// allocated, is an error. It reports the capabilities it is given, and its
// answers can be bent (another pool, another gateway, another address than
// asked) to see what the controller does with them.
type stateIPAM struct {
	caps ipamCaps

	mu        sync.Mutex
	pools     map[string]netip.Prefix // pool ID -> pool
	addrs     map[string]bool         // "<pool ID> <addr>" allocated
	opts      map[string]map[string]string
	poolFor   map[string]string // asked pool -> pool answered instead
	gwAnswer  string            // answer to every gateway request when set
	addrFor   map[string]string // asked address -> address answered instead
	requested []string          // "RequestPool <pool>" / "RequestAddress <addr>" as asked
}

// ipamCaps is the full capabilities answer; go-plugins-helpers' ipam
// package knows only RequiresMACAddress.
type ipamCaps struct{ RequiresMACAddress, RequiresRequestReplay bool }

// stateIPAMHandler serves p as an IPAM plugin with go-plugins-helpers' sdk,
// route by route as its ipam package does, so that GetCapabilities can
// carry RequiresRequestReplay.
func stateIPAMHandler(p *stateIPAM) plugintest.Handler {
	h := sdk.NewHandler(`{"Implements": ["IpamDriver"]}`)
	ipamRoute(h, "GetCapabilities", func(*struct{}) (any, error) { return p.caps, nil })
	ipamRoute(h, "GetDefaultAddressSpaces", func(*struct{}) (any, error) { return p.GetDefaultAddressSpaces() })
	ipamRoute(h, "RequestPool", func(r *ipam.RequestPoolRequest) (any, error) { return p.RequestPool(r) })
	ipamRoute(h, "ReleasePool", func(r *ipam.ReleasePoolRequest) (any, error) { return struct{}{}, p.ReleasePool(r) })
	ipamRoute(h, "RequestAddress", func(r *ipam.RequestAddressRequest) (any, error) { return p.RequestAddress(r) })
	ipamRoute(h, "ReleaseAddress", func(r *ipam.ReleaseAddressRequest) (any, error) { return struct{}{}, p.ReleaseAddress(r) })
	return h
}

func ipamRoute[Req any](h sdk.Handler, method string, fn func(*Req) (any, error)) {
	h.HandleFunc("/IpamDriver."+method, func(w http.ResponseWriter, r *http.Request) {
		req := new(Req)
		if r.ContentLength != 0 {
			if err := sdk.DecodeRequest(w, r, req); err != nil {
				return
			}
		}
		res, err := fn(req)
		if err != nil {
			sdk.EncodeResponse(w, ipam.NewErrorResponse(err.Error()), true)
			return
		}
		sdk.EncodeResponse(w, res, false)
	})
}

func newStateIPAM(caps ipamCaps) *stateIPAM {
	return &stateIPAM{caps: caps, pools: map[string]netip.Prefix{}, addrs: map[string]bool{},
		opts: map[string]map[string]string{}, poolFor: map[string]string{}, addrFor: map[string]string{}}
}

func (p *stateIPAM) GetDefaultAddressSpaces() (*ipam.AddressSpacesResponse, error) {
	return &ipam.AddressSpacesResponse{LocalDefaultAddressSpace: "st", GlobalDefaultAddressSpace: "stg"}, nil
}

func (p *stateIPAM) RequestPool(r *ipam.RequestPoolRequest) (*ipam.RequestPoolResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requested = append(p.requested, "RequestPool "+r.Pool)
	asked := r.Pool
	if asked == "" {
		asked = "10.86.0.0/24"
	}
	if other, ok := p.poolFor[asked]; ok {
		asked = other
	}
	pool, err := netip.ParsePrefix(asked)
	if err != nil || r.V6 {
		return nil, fmt.Errorf("bad pool %q", asked)
	}
	id := "st-" + pool.String()
	if _, dup := p.pools[id]; dup {
		return nil, fmt.Errorf("pool %s already allocated", pool)
	}
	p.pools[id] = pool
	return &ipam.RequestPoolResponse{PoolID: id, Pool: pool.String()}, nil
}

func (p *stateIPAM) ReleasePool(r *ipam.ReleasePoolRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pools[r.PoolID]; !ok {
		return fmt.Errorf("pool %s not allocated", r.PoolID)
	}
	delete(p.pools, r.PoolID)
	return nil
}

func (p *stateIPAM) RequestAddress(r *ipam.RequestAddressRequest) (*ipam.RequestAddressResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requested = append(p.requested, "RequestAddress "+r.Address)
	pool, ok := p.pools[r.PoolID]
	if !ok {
		return nil, fmt.Errorf("pool %s not allocated", r.PoolID)
	}
	addr := r.Address
	switch {
	case r.Options["RequestAddressType"] == "com.docker.network.gateway" && p.gwAnswer != "":
		addr = p.gwAnswer
	case p.addrFor[addr] != "":
		addr = p.addrFor[addr]
	case addr == "":
		for a := pool.Addr().Next().Next(); pool.Contains(a); a = a.Next() {
			if !p.addrs[r.PoolID+" "+a.String()] {
				addr = a.String()
				break
			}
		}
	}
	if p.addrs[r.PoolID+" "+addr] {
		return nil, fmt.Errorf("address %s already allocated", addr)
	}
	p.addrs[r.PoolID+" "+addr] = true
	p.opts[addr] = r.Options
	return &ipam.RequestAddressResponse{Address: fmt.Sprintf("%s/%d", addr, pool.Bits())}, nil
}

func (p *stateIPAM) ReleaseAddress(r *ipam.ReleaseAddressRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := r.PoolID + " " + r.Address
	if !p.addrs[k] {
		return fmt.Errorf("address %s not allocated", r.Address)
	}
	delete(p.addrs, k)
	return nil
}

// held lists the pools and addresses handed out and not given back.
func (p *stateIPAM) held() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for id := range p.pools {
		out = append(out, id)
	}
	for k := range p.addrs {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (p *stateIPAM) asked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requested)
}

func (p *stateIPAM) set(f func()) { p.mu.Lock(); f(); p.mu.Unlock() }

func stateNet(t *testing.T, c *libnetwork.Controller, name, pool, gw string) (*libnetwork.Network, error) {
	t.Helper()
	var confs []*libnetwork.IpamConf
	if pool != "" {
		confs = []*libnetwork.IpamConf{{PreferredPool: pool, Gateway: gw}}
	}
	return c.NewNetwork("bridge", name, "", libnetwork.NetworkOptionIpam("stipam", "", confs, nil, nil))
}

// Across a restart, pools and addresses are replayed only to an IPAM
// plugin whose capabilities ask for it. One that keeps its state (and
// refuses a pool twice) is asked nothing and the network comes back as
// recorded; one that asks for replay, restarted with no state, gets back
// exactly the pool, gateway and addresses it had handed out.
func TestRemoteIPAMRestartReplay(t *testing.T) {
	t.Parallel()
	for _, replay := range []bool{false, true} {
		t.Run(fmt.Sprintf("replay=%t", replay), func(t *testing.T) {
			r := testrig.NewRestartable(t)
			dir := plugintest.Dir(t)
			opts := []config.Option{config.OptionPluginDirs(dir), config.OptionPluginTimeout(5 * testrig.PluginTimeout)}
			caps := ipamCaps{RequiresRequestReplay: replay}
			p := newStateIPAM(caps)
			srv := testrig.Publish(t, dir, "stipam", testrig.ViaSocket, stateIPAMHandler(p))

			c := r.Start(opts...)
			n := testrig.Must[*libnetwork.Network](t)(stateNet(t, c, "st", "", ""))
			ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep"))
			held := p.held()
			if len(held) != 3 {
				t.Fatalf("plugin holds %v, want the pool, the gateway and one address", held)
			}
			if replay {
				// A plugin whose state was in memory comes back empty.
				srv.Kill()
				p = newStateIPAM(caps)
				testrig.Publish(t, dir, "stipam", testrig.ViaSocket, stateIPAMHandler(p))
			}
			c = r.Start(opts...)
			if err := c.RestoreError(); err != nil {
				t.Fatalf("restore: %v", err)
			}
			n2 := testrig.Must[*libnetwork.Network](t)(c.NetworkByName("st"))
			ep2 := testrig.Must[*libnetwork.Endpoint](t)(n2.EndpointByName("ep"))
			if got, want := ep2.Info().Iface().Address().String(), ep.Info().Iface().Address().String(); got != want {
				t.Fatalf("endpoint address %s, want %s", got, want)
			}
			if got := p.held(); !slices.Equal(got, held) {
				t.Fatalf("plugin holds %v after restart, want %v", got, held)
			}
			if !replay && len(p.asked()) != 3 {
				t.Fatalf("plugin without replay was asked again: %v", p.asked())
			}
			if err := ep2.Delete(false); err != nil {
				t.Fatal(err)
			}
			if err := n2.Delete(); err != nil {
				t.Fatal(err)
			}
			if got := p.held(); len(got) != 0 {
				t.Fatalf("plugin still holds %v", got)
			}
		})
	}
}

// An IPAM plugin not running at restart costs nothing either: the network
// and its endpoints stay as recorded, RestoreError names it, allocations
// fail with NoService while it is away and reach it once it is back.
func TestRemoteIPAMGoneAtRestart(t *testing.T) {
	t.Parallel()
	r := testrig.NewRestartable(t)
	dir := plugintest.Dir(t)
	opts := []config.Option{config.OptionPluginDirs(dir), config.OptionPluginTimeout(5 * testrig.PluginTimeout)}
	p := newStateIPAM(ipamCaps{})
	srv := testrig.Publish(t, dir, "stipam", testrig.ViaSocket, stateIPAMHandler(p))
	c := r.Start(opts...)
	n := testrig.Must[*libnetwork.Network](t)(stateNet(t, c, "st", "", ""))
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep"))
	addr := ep.Info().Iface().Address().String()

	srv.Kill()
	c = r.Start(opts...)
	if err := c.RestoreError(); !types.IsNoService(err) || !strings.Contains(err.Error(), "stipam") {
		t.Fatalf("RestoreError %v, want NoService naming the IPAM plugin", err)
	}
	n2 := testrig.Must[*libnetwork.Network](t)(c.NetworkByName("st"))
	ep2 := testrig.Must[*libnetwork.Endpoint](t)(n2.EndpointByName("ep"))
	if got := ep2.Info().Iface().Address().String(); got != addr {
		t.Fatalf("endpoint address %s, want %s", got, addr)
	}
	if _, err := n2.CreateEndpoint("away"); !types.IsNoService(err) {
		t.Fatalf("CreateEndpoint with the plugin away: want NoService, got %v", err)
	}

	testrig.Publish(t, dir, "stipam", testrig.ViaSocket, stateIPAMHandler(p))
	more := testrig.Must[*libnetwork.Endpoint](t)(n2.CreateEndpoint("more"))
	if a := more.Info().Iface().Address().String(); a == addr {
		t.Fatalf("address %s handed out twice", a)
	}
	for _, e := range []*libnetwork.Endpoint{ep2, more} {
		if err := e.Delete(false); err != nil {
			t.Fatal(err)
		}
	}
	if err := n2.Delete(); err != nil {
		t.Fatal(err)
	}
	if got := p.held(); len(got) != 0 {
		t.Fatalf("plugin still holds %v", got)
	}
}

// An IPAM plugin requiring MAC addresses gets the endpoint's MAC with its
// address request, made before it when the user gave none, and the
// endpoint's interface has that very MAC.
func TestRemoteIPAMRequiresMAC(t *testing.T) {
	t.Parallel()
	c, _, dir := testrig.NewPluginController(t, 5*testrig.PluginTimeout)
	p := newStateIPAM(ipamCaps{RequiresMACAddress: true})
	testrig.Publish(t, dir, "stipam", testrig.ViaSocket, stateIPAMHandler(p))
	n := testrig.Must[*libnetwork.Network](t)(stateNet(t, c, "st", "", ""))

	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("made"))
	mac := ep.Info().Iface().MacAddress()
	addr := ep.Info().Iface().Address().IP.String()
	p.mu.Lock()
	sent := p.opts[addr][netlabel.MacAddress]
	p.mu.Unlock()
	if mac == nil || sent != mac.String() {
		t.Fatalf("plugin got MAC %q with the address request, endpoint has %v", sent, mac)
	}
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c1"))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	_, nl := testrig.SandboxNS(t, sb)
	if l, err := nl.LinkByName("eth0"); err != nil || l.Attrs().HardwareAddr.String() != mac.String() {
		t.Fatalf("eth0 %v: MAC is not the one IPAM was given (%s)", err, mac)
	}

	given := "02:aa:bb:cc:dd:ee"
	ep2 := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("given",
		libnetwork.EndpointOptionGeneric(map[string]any{netlabel.MacAddress: mustMAC(t, given)})))
	p.mu.Lock()
	sent = p.opts[ep2.Info().Iface().Address().IP.String()][netlabel.MacAddress]
	p.mu.Unlock()
	if sent != given || ep2.Info().Iface().MacAddress().String() != given {
		t.Fatalf("given MAC: plugin got %q, endpoint has %v", sent, ep2.Info().Iface().MacAddress())
	}
	// Torn down here, while the plugin still answers.
	if err := sb.Delete(); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*libnetwork.Endpoint{ep, ep2} {
		if err := e.Delete(false); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	if got := p.held(); len(got) != 0 {
		t.Fatalf("plugin still holds %v", got)
	}
}

// A plugin answering with another pool or gateway than asked: its pool is
// used, a gateway in it too; a gateway outside its pool, or an address
// other than the one asked for, fails the call, and exactly what the
// plugin handed out is given back.
func TestRemoteIPAMOtherAnswers(t *testing.T) {
	t.Parallel()
	c, _, dir := testrig.NewPluginController(t, 5*testrig.PluginTimeout)
	p := newStateIPAM(ipamCaps{})
	testrig.Publish(t, dir, "stipam", testrig.ViaSocket, stateIPAMHandler(p))

	p.set(func() { p.poolFor["10.86.1.0/24"] = "10.86.2.0/24"; p.gwAnswer = "10.86.2.254" })
	n := testrig.Must[*libnetwork.Network](t)(stateNet(t, c, "other", "10.86.1.0/24", "10.86.1.1"))
	v4, _ := n.Info().IpamInfo()
	if len(v4) != 1 || v4[0].Pool.String() != "10.86.2.0/24" || v4[0].Gateway.String() != "10.86.2.254/24" {
		t.Fatalf("network IPAM info %+v, want the plugin's pool and gateway", v4)
	}
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep"))
	if a := ep.Info().Iface().Address(); !v4[0].Pool.Contains(a.IP) {
		t.Fatalf("endpoint address %s outside the plugin's pool", a)
	}
	before := p.held()

	// An address other than asked for.
	p.set(func() { p.addrFor["10.86.2.50"] = "10.86.2.51" })
	_, err := n.CreateEndpoint("pinned", libnetwork.CreateOptionIpam(mustIP(t, "10.86.2.50"), nil, nil, nil))
	if _, ok := err.(types.InternalError); !ok {
		t.Fatalf("address other than asked: want Internal, got %v", err)
	}
	if got := p.held(); !slices.Equal(got, before) {
		t.Fatalf("plugin holds %v after the refused endpoint, want %v", got, before)
	}

	// A gateway outside the pool.
	p.set(func() { p.gwAnswer = "10.99.0.1" })
	if _, err := stateNet(t, c, "badgw", "10.86.3.0/24", ""); err == nil {
		t.Fatal("a gateway outside the pool was taken")
	}
	if got := p.held(); !slices.Equal(got, before) {
		t.Fatalf("plugin holds %v after the refused network, want %v", got, before)
	}
	if _, err := c.NetworkByName("badgw"); !types.IsNotFound(err) {
		t.Fatalf("refused network listed: %v", err)
	}
	p.set(func() { p.gwAnswer = "" })
	if err := ep.Delete(false); err != nil {
		t.Fatal(err)
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	if got := p.held(); len(got) != 0 {
		t.Fatalf("plugin still holds %v", got)
	}
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	return testrig.Must[net.HardwareAddr](t)(net.ParseMAC(s))
}

func mustIP(t *testing.T, s string) net.IP {
	t.Helper()
	ip := net.ParseIP(s)
	if ip == nil {
		t.Fatalf("bad IP %q", s)
	}
	return ip
}
