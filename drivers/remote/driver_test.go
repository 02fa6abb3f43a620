package remote_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/remote"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/plugins"
	"github.com/opencnm/libnetwork/plugins/plugintest"
	"github.com/opencnm/libnetwork/types"
)

func mustCIDR(t *testing.T, s string) *net.IPNet {
	t.Helper()
	n, err := types.ParseCIDR(s)
	require.NoError(t, err)
	return n
}

func TestLifecycle(t *testing.T) {
	for _, tr := range []transport{viaSocket, viaSpec, viaJSONSpec} {
		t.Run(tr.String(), func(t *testing.T) { testLifecycle(t, tr) })
	}
}

func testLifecycle(t *testing.T, tr transport) {
	p := newFakePlugin()
	p.caps = network.CapabilitiesResponse{Scope: network.GlobalScope, ConnectivityScope: network.LocalScope}
	p.epReply = &network.EndpointInterface{MacAddress: "02:42:ac:11:00:09", AddressIPv6: "2001:db8::9/64"}
	p.joinReply = &network.JoinResponse{
		InterfaceName: network.InterfaceName{SrcName: "veth-fake0", DstPrefix: "eth"},
		Gateway:       "10.10.0.1",
		GatewayIPv6:   "2001:db8::1",
		StaticRoutes: []*network.StaticRoute{
			{Destination: "192.168.50.0/24", RouteType: types.NEXTHOP, NextHop: "10.10.0.254"},
			{Destination: "192.168.60.0/24", RouteType: types.CONNECTED},
		},
		DisableGatewayService: true,
	}
	p.infoValue = map[string]string{"vlan": "42"}
	p.allocateOut = map[string]string{"vni": "4096"}

	d, capa, _ := newDriver(t, p, tr)
	assert.Equal(t, driverapi.Capability{DataScope: "global", ConnectivityScope: "local"}, capa)
	assert.Equal(t, "fake", d.Type())

	v4 := []driverapi.IPAMData{{
		AddressSpace: "LocalDefault",
		Pool:         mustCIDR(t, "10.10.0.0/24"),
		Gateway:      mustCIDR(t, "10.10.0.1/24"),
		AuxAddresses: map[string]*net.IPNet{"router": mustCIDR(t, "10.10.0.2/24")},
	}}
	v6 := []driverapi.IPAMData{{AddressSpace: "LocalDefault", Pool: mustCIDR(t, "2001:db8::/64")}}

	out, err := d.NetworkAllocate("n1", map[string]string{"a": "b"}, v4, v6)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"vni": "4096"}, out)

	require.NoError(t, d.CreateNetwork(driverapi.CreateNetworkRequest{
		NetworkID: "n1",
		Options: map[string]any{
			netlabel.GenericData: options.Generic{"mode": "vlan"},
			netlabel.EnableIPv6:  true,
		},
		IPv4Data: v4,
		IPv6Data: v6,
	}))
	// What the plugin received, in its own types.
	p.mu.Lock()
	got := p.networks["n1"]
	alloc := p.allocated["n1"]
	p.mu.Unlock()
	require.NotNil(t, got)
	require.Len(t, got.IPv4Data, 1)
	assert.Equal(t, network.IPAMData{
		AddressSpace: "LocalDefault", Pool: "10.10.0.0/24", Gateway: "10.10.0.1/24",
		AuxAddresses: map[string]any{"router": "10.10.0.2/24"},
	}, *got.IPv4Data[0])
	require.Len(t, got.IPv6Data, 1)
	assert.Equal(t, "2001:db8::/64", got.IPv6Data[0].Pool)
	assert.Empty(t, got.IPv6Data[0].Gateway)
	assert.Equal(t, map[string]any{"mode": "vlan"}, got.Options[netlabel.GenericData])
	assert.Equal(t, true, got.Options[netlabel.EnableIPv6])
	require.NotNil(t, alloc)
	assert.Equal(t, map[string]string{"a": "b"}, alloc.Options)
	assert.Equal(t, "10.10.0.0/24", alloc.IPv4Data[0].Pool)

	// Endpoint: libnetwork supplies the IPv4 address, the plugin picks MAC and IPv6.
	iface, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{
		NetworkID:  "n1",
		EndpointID: "e1",
		Interface:  driverapi.Interface{Address: mustCIDR(t, "10.10.0.5/24")},
		Options:    map[string]any{"k": "v"},
	})
	require.NoError(t, err)
	require.NotNil(t, iface)
	assert.Equal(t, "02:42:ac:11:00:09", iface.MacAddress.String())
	assert.Equal(t, "2001:db8::9/64", iface.AddressIPv6.String())
	assert.Nil(t, iface.Address, "a field libnetwork set is not returned as chosen")
	p.mu.Lock()
	ep := p.endpoints["e1"]
	p.mu.Unlock()
	require.NotNil(t, ep)
	assert.Equal(t, network.EndpointInterface{Address: "10.10.0.5/24"}, *ep.Interface)
	assert.Equal(t, "v", ep.Options["k"])

	res, err := d.Join(driverapi.JoinRequest{
		NetworkID: "n1", EndpointID: "e1", SandboxKey: "/run/netns/abc",
		Options: map[string]any{"label": "x"},
	})
	require.NoError(t, err)
	assert.Equal(t, "veth-fake0", res.SrcName)
	assert.Equal(t, "eth", res.DstPrefix)
	assert.Empty(t, res.DstName)
	assert.Equal(t, "10.10.0.1", res.Gateway.String())
	assert.Equal(t, "2001:db8::1", res.GatewayIPv6.String())
	assert.True(t, res.DisableGatewayService)
	require.Len(t, res.StaticRoutes, 2)
	assert.Equal(t, "192.168.50.0/24", res.StaticRoutes[0].Destination.String())
	assert.Equal(t, types.NEXTHOP, res.StaticRoutes[0].RouteType)
	assert.Equal(t, "10.10.0.254", res.StaticRoutes[0].NextHop.String())
	assert.Equal(t, types.CONNECTED, res.StaticRoutes[1].RouteType)
	assert.Nil(t, res.StaticRoutes[1].NextHop)
	p.mu.Lock()
	jr := p.joined["e1"]
	p.mu.Unlock()
	require.NotNil(t, jr)
	assert.Equal(t, "/run/netns/abc", jr.SandboxKey)
	assert.Equal(t, "x", jr.Options["label"])

	info, err := d.EndpointOperInfo("n1", "e1")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"vlan": "42"}, info)

	pm := []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}
	require.NoError(t, d.ProgramExternalConnectivity("n1", "e1", map[string]any{netlabel.PortMap: pm}))
	p.mu.Lock()
	ext := p.extConn["e1"]
	p.mu.Unlock()
	require.NotNil(t, ext)
	assert.Contains(t, ext.Options, netlabel.PortMap)
	require.NoError(t, d.RevokeExternalConnectivity("n1", "e1"))

	require.NoError(t, d.DiscoverNew(driverapi.NodeDiscovery, driverapi.NodeDiscoveryData{Address: "192.0.2.1", Self: true}))
	require.NoError(t, d.DiscoverNew(2, "datastore config is not forwarded"))
	require.NoError(t, d.DiscoverDelete(3, nil))
	p.mu.Lock()
	require.Len(t, p.discovered, 1)
	assert.Equal(t, 1, p.discovered[0].DiscoveryType)
	assert.Equal(t, map[string]any{"Address": "192.0.2.1", "BindAddress": "", "Self": true}, p.discovered[0].DiscoveryData)
	p.mu.Unlock()

	require.NoError(t, d.Leave("n1", "e1"))
	require.NoError(t, d.DeleteEndpoint("n1", "e1"))
	require.NoError(t, d.DeleteNetwork("n1"))
	require.NoError(t, d.NetworkFree("n1"))

	p.mu.Lock()
	assert.Empty(t, p.networks)
	assert.Empty(t, p.allocated)
	assert.Empty(t, p.endpoints)
	assert.Empty(t, p.joined)
	assert.Empty(t, p.extConn)
	p.mu.Unlock()
	assert.Equal(t, []string{
		"GetCapabilities", "AllocateNetwork", "CreateNetwork", "CreateEndpoint", "Join", "EndpointOperInfo",
		"ProgramExternalConnectivity", "RevokeExternalConnectivity", "DiscoverNew",
		"Leave", "DeleteEndpoint", "DeleteNetwork", "FreeNetwork",
	}, p.Calls())
}

func TestCapabilities(t *testing.T) {
	for _, tc := range []struct {
		scope, conn string
		want        driverapi.Capability
		bad         bool
	}{
		{scope: "local", want: driverapi.Capability{DataScope: "local", ConnectivityScope: "local"}},
		{scope: "global", want: driverapi.Capability{DataScope: "global", ConnectivityScope: "global"}},
		{scope: "local", conn: "global", want: driverapi.Capability{DataScope: "local", ConnectivityScope: "global"}},
		{scope: "", bad: true},
		{scope: "swarm", bad: true},
		{scope: "local", conn: "planet", bad: true},
	} {
		p := newFakePlugin()
		p.caps = network.CapabilitiesResponse{Scope: tc.scope, ConnectivityScope: tc.conn}
		c, _ := servePlugin(t, network.NewHandler(p), viaSocket, 5*time.Second)
		d, capa, err := remote.New(c)
		if tc.bad {
			assert.Error(t, err, "%+v", tc)
			assert.Nil(t, d)
			continue
		}
		require.NoError(t, err, "%+v", tc)
		assert.Equal(t, tc.want, capa)
	}
}

func TestPluginErrors(t *testing.T) {
	p := newFakePlugin()
	p.joinErr = errors.New("no vlan left for you")
	d, _, _ := newDriver(t, p, viaSocket)
	require.NoError(t, d.CreateNetwork(driverapi.CreateNetworkRequest{NetworkID: "n1"}))

	_, err := d.Join(driverapi.JoinRequest{NetworkID: "n1", EndpointID: "e1"})
	require.Error(t, err)
	assert.Equal(t, "remote: no vlan left for you", err.Error())
	assert.True(t, types.IsInternal(err), "got %v", err)
	var pe *plugins.PluginError
	require.True(t, errors.As(err, &pe))
	assert.Equal(t, "NetworkDriver.Join", pe.Method)

	err = d.CreateNetwork(driverapi.CreateNetworkRequest{NetworkID: "n1"})
	assert.EqualError(t, err, "remote: network exists")
	_, err = d.EndpointOperInfo("n1", "nope")
	assert.EqualError(t, err, "remote: no such endpoint")
}

// handWritten serves a plugin from plain handlers, for answers
// go-plugins-helpers cannot give (an Err field in a 200 reply, missing
// methods).
func handWritten(t *testing.T, routes map[string]any) *remote.Driver {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"Implements": ["NetworkDriver"]}`)
	})
	mux.HandleFunc("/NetworkDriver.GetCapabilities", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"Scope": "local"}`)
	})
	for path, reply := range routes {
		mux.HandleFunc("/NetworkDriver."+path, func(w http.ResponseWriter, r *http.Request) {
			json.NewEncoder(w).Encode(reply)
		})
	}
	c, _ := servePlugin(t, plugintest.HTTP{Handler: mux}, viaSocket, 5*time.Second)
	d, _, err := remote.New(c)
	require.NoError(t, err)
	return d
}

func TestErrFieldInOKReply(t *testing.T) {
	d := handWritten(t, map[string]any{"Join": map[string]string{"Err": "sandbox is on fire"}})
	_, err := d.Join(driverapi.JoinRequest{NetworkID: "n", EndpointID: "e"})
	assert.EqualError(t, err, "remote: sandbox is on fire")
	assert.True(t, types.IsInternal(err))
}

func TestExternalConnectivityNotImplemented(t *testing.T) {
	d := handWritten(t, nil)
	assert.NoError(t, d.ProgramExternalConnectivity("n", "e", nil), "404 is tolerated")
	assert.NoError(t, d.RevokeExternalConnectivity("n", "e"), "404 is tolerated")
	// Other calls a plugin lacks are errors.
	err := d.CreateNetwork(driverapi.CreateNetworkRequest{NetworkID: "n"})
	assert.True(t, types.IsNotImplemented(err), "got %v", err)
}

func TestCreateEndpointRollback(t *testing.T) {
	for name, tc := range map[string]struct {
		sent  driverapi.Interface
		reply network.EndpointInterface
		msg   string
	}{
		"mac already set": {
			sent:  driverapi.Interface{MacAddress: net.HardwareAddr{2, 0, 0, 0, 0, 1}},
			reply: network.EndpointInterface{MacAddress: "02:00:00:00:00:02"},
			msg:   "MacAddress",
		},
		"address already set": {
			sent:  driverapi.Interface{Address: mustCIDR(t, "10.0.0.2/24")},
			reply: network.EndpointInterface{Address: "10.0.0.3/24"},
			msg:   "Address",
		},
		"ipv6 already set": {
			sent:  driverapi.Interface{AddressIPv6: mustCIDR(t, "2001:db8::2/64")},
			reply: network.EndpointInterface{AddressIPv6: "2001:db8::3/64"},
			msg:   "AddressIPv6",
		},
		"bad mac":            {reply: network.EndpointInterface{MacAddress: "not-a-mac"}, msg: "MacAddress"},
		"address not cidr":   {reply: network.EndpointInterface{Address: "10.0.0.3"}, msg: "CIDR"},
		"ipv6 in v4 field":   {reply: network.EndpointInterface{Address: "2001:db8::3/64"}, msg: "IPv4"},
		"ipv4 in ipv6 field": {reply: network.EndpointInterface{AddressIPv6: "10.0.0.3/24"}, msg: "IPv6"},
	} {
		t.Run(name, func(t *testing.T) {
			p := newFakePlugin()
			p.epReply = &tc.reply
			d, _, _ := newDriver(t, p, viaSocket)
			require.NoError(t, d.CreateNetwork(driverapi.CreateNetworkRequest{NetworkID: "n1"}))
			iface, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n1", EndpointID: "e1", Interface: tc.sent})
			require.Error(t, err)
			assert.Nil(t, iface)
			assert.Contains(t, err.Error(), tc.msg)
			assert.Contains(t, err.Error(), "remote:")
			assert.True(t, types.IsInternal(err), "got %v", err)
			assert.Equal(t, []string{"GetCapabilities", "CreateNetwork", "CreateEndpoint", "DeleteEndpoint"}, p.Calls())
			p.mu.Lock()
			assert.Empty(t, p.endpoints, "the plugin-side endpoint was rolled back")
			p.mu.Unlock()
		})
	}

	// The plugin choosing nothing is fine and returns a nil interface.
	p := newFakePlugin()
	d, _, _ := newDriver(t, p, viaSocket)
	require.NoError(t, d.CreateNetwork(driverapi.CreateNetworkRequest{NetworkID: "n1"}))
	iface, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n1", EndpointID: "e1"})
	require.NoError(t, err)
	assert.Nil(t, iface)
}

func TestJoinRollback(t *testing.T) {
	for name, reply := range map[string]*network.JoinResponse{
		"bad gateway":       {Gateway: "10.0.0.300"},
		"v6 gateway as v4":  {Gateway: "2001:db8::1"},
		"bad v6 gateway":    {GatewayIPv6: "10.0.0.1"},
		"route not cidr":    {StaticRoutes: []*network.StaticRoute{{Destination: "10.1.0.0", NextHop: "10.0.0.1"}}},
		"route no next hop": {StaticRoutes: []*network.StaticRoute{{Destination: "10.1.0.0/16"}}},
		"route bad type":    {StaticRoutes: []*network.StaticRoute{{Destination: "10.1.0.0/16", RouteType: 7}}},
		// Interface names a plugin hands back are interface names, never
		// wildcards, templates or paths.
		"wildcard src":    {InterfaceName: network.InterfaceName{SrcName: "veth+", DstPrefix: "eth"}},
		"template src":    {InterfaceName: network.InterfaceName{SrcName: "veth%d"}},
		"path src":        {InterfaceName: network.InterfaceName{SrcName: "../veth"}},
		"space src":       {InterfaceName: network.InterfaceName{SrcName: "veth 1"}},
		"long src":        {InterfaceName: network.InterfaceName{SrcName: "veth0123456789ab"}},
		"wildcard prefix": {InterfaceName: network.InterfaceName{SrcName: "veth1", DstPrefix: "eth+"}},
		"template prefix": {InterfaceName: network.InterfaceName{SrcName: "veth1", DstPrefix: "eth%d"}},
		"quoted prefix":   {InterfaceName: network.InterfaceName{SrcName: "veth1", DstPrefix: `e"th`}},
		"control prefix":  {InterfaceName: network.InterfaceName{SrcName: "veth1", DstPrefix: "e\x00th"}},
		"long prefix":     {InterfaceName: network.InterfaceName{SrcName: "veth1", DstPrefix: "abcdefghijklm"}},
	} {
		t.Run(name, func(t *testing.T) {
			p := newFakePlugin()
			p.joinReply = reply
			d, _, _ := newDriver(t, p, viaSocket)
			res, err := d.Join(driverapi.JoinRequest{NetworkID: "n1", EndpointID: "e1"})
			require.Error(t, err)
			assert.Nil(t, res)
			assert.Contains(t, err.Error(), "invalid reply to Join")
			assert.True(t, types.IsInternal(err), "a reply the driver cannot use is Internal: %v", err)
			assert.Equal(t, []string{"GetCapabilities", "Join", "Leave"}, p.Calls())
			p.mu.Lock()
			assert.Empty(t, p.joined, "the plugin-side join was rolled back")
			p.mu.Unlock()
		})
	}
}

func TestPluginDiesMidJoin(t *testing.T) {
	const timeout = time.Second
	p := newFakePlugin()
	inJoin := make(chan struct{})
	release := make(chan struct{})
	p.joinHook = func() { close(inJoin); <-release }
	c, srv := servePlugin(t, network.NewHandler(p), viaSpec, timeout)
	d, _, err := remote.New(c)
	require.NoError(t, err)
	t.Cleanup(func() { close(release) })

	go func() { <-inJoin; srv.Kill() }()
	start := time.Now()
	_, err = d.Join(driverapi.JoinRequest{NetworkID: "n1", EndpointID: "e1"})
	require.Error(t, err)
	assert.True(t, types.IsInternal(err) || types.IsTimeout(err), "got %v", err)
	assert.Less(t, time.Since(start), timeout+500*time.Millisecond)

	// Later calls fail within the bound as well, as Timeout: nobody listens.
	start = time.Now()
	err = d.Leave("n1", "e1")
	assert.True(t, types.IsTimeout(err), "got %v", err)
	assert.Less(t, time.Since(start), timeout+500*time.Millisecond)
}
