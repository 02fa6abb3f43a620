package bridge

import (
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/macaddr"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

const testNID = "0123456789abcdef0123"

func TestParseNetworkOptions(t *testing.T) {
	defaults := func(mod func(c *networkConfig)) *networkConfig {
		c := &networkConfig{ID: testNID, BridgeName: "br-0123456789ab", EnableIPv4: true, EnableICC: true, EnableIPMasquerade: true, ContainerIfacePrefix: "eth"}
		if mod != nil {
			mod(c)
		}
		return c
	}
	full := func(c *networkConfig) {
		c.BridgeName = "cnm0"
		c.EnableICC = false
		c.EnableIPMasquerade = false
		c.InhibitIPv4 = true
		c.Mtu = 1450
		c.DefaultBindingIP = net.ParseIP("127.0.0.1")
		c.HostIP = net.ParseIP("192.0.2.7")
		c.ContainerIfacePrefix = "ctr"
		c.EnableIPv6 = true
		c.Internal = true
	}
	tests := []struct {
		name    string
		opts    map[string]any
		want    *networkConfig
		wantErr func(error) bool
	}{
		{name: "nothing", opts: nil, want: defaults(nil)},
		{name: "empty labels", opts: map[string]any{netlabel.GenericData: map[string]string{}}, want: defaults(nil)},
		{name: "empty generic keeps icc and masquerade on", opts: map[string]any{netlabel.GenericData: options.Generic{}}, want: defaults(nil)},
		{name: "labels", opts: map[string]any{netlabel.GenericData: map[string]string{
			BridgeName: "cnm0", EnableICC: "false", EnableIPMasquerade: "false", InhibitIPv4: "true",
			netlabel.DriverMTU: "1450", DefaultBindingIP: "127.0.0.1", netlabel.HostIP: "192.0.2.7",
			netlabel.ContainerIfacePrefix: "ctr", netlabel.EnableIPv6: "true", netlabel.Internal: "true",
			"com.example.unrelated": "ignored",
		}}, want: defaults(full)},
		{name: "generic fields", opts: map[string]any{netlabel.GenericData: options.Generic{
			"BridgeName": "cnm0", "EnableICC": false, "EnableIPMasquerade": false, "InhibitIPv4": true,
			"Mtu": 1450, "DefaultBindingIP": net.ParseIP("127.0.0.1"), "HostIP": "192.0.2.7",
			"ContainerIfacePrefix": "ctr", "EnableIPv6": true, "Internal": true,
		}}, want: defaults(full)},
		{name: "plain map with json numbers", opts: map[string]any{netlabel.GenericData: map[string]any{
			"BridgeName": "cnm0", "EnableICC": "false", "EnableIPMasquerade": false, "InhibitIPv4": true,
			"Mtu": float64(1450), "DefaultBindingIP": "127.0.0.1", "HostIP": "192.0.2.7",
			"ContainerIfacePrefix": "ctr",
		}, netlabel.EnableIPv6: true, netlabel.Internal: true}, want: defaults(full)},
		{name: "default bridge name", opts: map[string]any{netlabel.GenericData: map[string]string{DefaultBridge: "true"}},
			want: defaults(func(c *networkConfig) { c.DefaultBridge = true; c.BridgeName = "docker0" })},
		{name: "bad bool label", opts: map[string]any{netlabel.GenericData: map[string]string{EnableICC: "maybe"}}, wantErr: types.IsBadRequest},
		{name: "bad mtu", opts: map[string]any{netlabel.GenericData: map[string]string{netlabel.DriverMTU: "-1"}}, wantErr: types.IsBadRequest},
		{name: "mtu not a number", opts: map[string]any{netlabel.GenericData: map[string]string{netlabel.DriverMTU: "big"}}, wantErr: types.IsBadRequest},
		{name: "fractional mtu", opts: map[string]any{netlabel.GenericData: map[string]any{"Mtu": 1400.5}}, wantErr: types.IsBadRequest},
		{name: "wrong field type", opts: map[string]any{netlabel.GenericData: options.Generic{"EnableICC": 1}}, wantErr: types.IsBadRequest},
		{name: "unknown field", opts: map[string]any{netlabel.GenericData: options.Generic{"NoSuch": true}}, wantErr: types.IsBadRequest},
		{name: "bad ip", opts: map[string]any{netlabel.GenericData: map[string]string{DefaultBindingIP: "nope"}}, wantErr: types.IsBadRequest},
		{name: "host ip must be v4", opts: map[string]any{netlabel.GenericData: map[string]string{netlabel.HostIP: "2001:db8::1"}}, wantErr: types.IsBadRequest},
		{name: "bridge name too long", opts: map[string]any{netlabel.GenericData: map[string]string{BridgeName: "a-very-long-bridge-name"}}, wantErr: types.IsBadRequest},
		{name: "bridge name with slash", opts: map[string]any{netlabel.GenericData: map[string]string{BridgeName: "br/0"}}, wantErr: types.IsBadRequest},
		{name: "enable_ipv6 not bool", opts: map[string]any{netlabel.EnableIPv6: 1}, wantErr: types.IsBadRequest},
		{name: "generic of unknown type", opts: map[string]any{netlabel.GenericData: 42}, wantErr: types.IsBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNetworkOptions(testNID, tt.opts)
			if tt.wantErr != nil {
				if err == nil || !tt.wantErr(err) {
					t.Fatalf("want classed error, got %v (%#v)", err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseDriverConfig(t *testing.T) {
	dc, err := parseDriverConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := driverConfig{EnableIPForwarding: true, EnableIPTables: true, EnableIP6Tables: true}
	if dc != want {
		t.Fatalf("defaults: got %+v want %+v", dc, want)
	}
	for _, g := range []any{
		options.Generic{"EnableIPForwarding": false, "EnableIPTables": false, "EnableIP6Tables": false, "EnableUserlandProxy": true},
		map[string]any{"EnableIPForwarding": false, "EnableIPTables": "false", "EnableIP6Tables": false, "EnableUserlandProxy": true},
		map[string]string{"EnableIPForwarding": "false", "EnableIPTables": "false", "EnableIP6Tables": "0", "EnableUserlandProxy": "1"},
	} {
		dc, err := parseDriverConfig(map[string]any{netlabel.GenericData: g})
		if err != nil {
			t.Fatalf("%T: %v", g, err)
		}
		if want := (driverConfig{EnableUserlandProxy: true}); dc != want {
			t.Fatalf("%T: got %+v want %+v", g, dc, want)
		}
	}
	if _, err := parseDriverConfig(map[string]any{netlabel.GenericData: options.Generic{"EnableIPTables": "yes please"}}); !types.IsBadRequest(err) {
		t.Fatalf("bad bool: want BadRequest, got %v", err)
	}
	if _, err := parseDriverConfig(map[string]any{netlabel.GenericData: options.Generic{"Bogus": true}}); !types.IsBadRequest(err) {
		t.Fatalf("unknown key: want BadRequest, got %v", err)
	}
}

// Daemon labels under LabelPrefix set driver options; explicit driver
// options win over them; an unknown one is a BadRequest naming the label.
func TestParseDriverConfigLabels(t *testing.T) {
	dc, err := parseDriverConfig(map[string]any{
		LabelPrefix + "EnableIPTables":    "false",
		LabelPrefix + "EnableIP6Tables":   "false",
		LabelPrefix + "UserlandProxyPath": "/usr/bin/docker-proxy",
		netlabel.GenericData:              map[string]string{"EnableIP6Tables": "true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := driverConfig{EnableIPForwarding: true, EnableIP6Tables: true, UserlandProxyPath: "/usr/bin/docker-proxy"}
	if dc != want {
		t.Fatalf("got %+v want %+v", dc, want)
	}
	_, err = parseDriverConfig(map[string]any{LabelPrefix + "Bogus": "1"})
	if !types.IsBadRequest(err) || !strings.Contains(err.Error(), LabelPrefix+"Bogus") {
		t.Fatalf("unknown label: want BadRequest naming it, got %v", err)
	}
}

// The userland proxy options are reported once, through Notices, since
// nothing runs for them.
func TestNoticesUserlandProxy(t *testing.T) {
	if n := (&Driver{}).Notices(); len(n) != 0 {
		t.Fatalf("default config: notices %q", n)
	}
	d := &Driver{cfg: driverConfig{EnableUserlandProxy: true, UserlandProxyPath: "/usr/bin/docker-proxy"}}
	n := d.Notices()
	if len(n) != 2 || !strings.Contains(n[0], "EnableUserlandProxy") || !strings.Contains(n[1], "/usr/bin/docker-proxy") {
		t.Fatalf("notices %q", n)
	}
}

func TestApplyIPAM(t *testing.T) {
	v6 := []driverapi.IPAMData{{Pool: mustCIDR(t, "fd00:1::/64"), Gateway: mustCIDR(t, "fd00:1::1/64")}}
	tests := []struct {
		name    string
		v4, v6  []driverapi.IPAMData
		check   func(t *testing.T, c *networkConfig)
		wantErr func(error) bool
	}{
		{name: "v4 only", v4: ipam(t, "10.1.0.1/24"), check: func(t *testing.T, c *networkConfig) {
			if c.AddressIPv4.String() != "10.1.0.1/24" || c.PoolIPv4.String() != "10.1.0.0/24" {
				t.Fatalf("got addr %v pool %v", c.AddressIPv4, c.PoolIPv4)
			}
		}},
		{name: "v4 and v6 with aux gateways", v4: func() []driverapi.IPAMData {
			d := ipam(t, "10.1.0.1/24")
			d[0].AuxAddresses = map[string]*net.IPNet{auxDefaultGatewayIPv4: mustCIDR(t, "10.1.0.254/24")}
			return d
		}(), v6: []driverapi.IPAMData{{Pool: v6[0].Pool, Gateway: v6[0].Gateway, AuxAddresses: map[string]*net.IPNet{auxDefaultGatewayIPv6: mustCIDR(t, "fd00:1::fe/64")}}},
			check: func(t *testing.T, c *networkConfig) {
				if !c.DefaultGatewayIPv4.Equal(net.ParseIP("10.1.0.254")) || !c.DefaultGatewayIPv6.Equal(net.ParseIP("fd00:1::fe")) || c.AddressIPv6.String() != "fd00:1::1/64" {
					t.Fatalf("got %+v", c)
				}
			}},
		{name: "no v4", wantErr: types.IsBadRequest},
		{name: "null ipam pool", v4: []driverapi.IPAMData{{Pool: mustCIDR(t, "0.0.0.0/0")}}, wantErr: types.IsBadRequest},
		{name: "two v4 pools", v4: append(ipam(t, "10.1.0.1/24"), ipam(t, "10.2.0.1/24")...), wantErr: types.IsForbidden},
		{name: "two v6 pools", v4: ipam(t, "10.1.0.1/24"), v6: append(v6, v6...), wantErr: types.IsForbidden},
		{name: "gateway outside", v4: []driverapi.IPAMData{{Pool: mustCIDR(t, "10.1.0.0/24"), Gateway: mustCIDR(t, "10.2.0.1/24")}}, wantErr: types.IsBadRequest},
		{name: "aux gateway outside", v4: func() []driverapi.IPAMData {
			d := ipam(t, "10.1.0.1/24")
			d[0].AuxAddresses = map[string]*net.IPNet{auxDefaultGatewayIPv4: mustCIDR(t, "10.9.0.1/24")}
			return d
		}(), wantErr: types.IsBadRequest},
		{name: "aux v6 gateway outside", v4: ipam(t, "10.1.0.1/24"), v6: []driverapi.IPAMData{{Pool: v6[0].Pool, Gateway: v6[0].Gateway,
			AuxAddresses: map[string]*net.IPNet{auxDefaultGatewayIPv6: mustCIDR(t, "fd00:2::1/64")}}}, wantErr: types.IsBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseNetworkOptions(testNID, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = c.applyIPAM(tt.v4, tt.v6)
			if tt.wantErr != nil {
				if !tt.wantErr(err) {
					t.Fatalf("want classed error, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestMACAndIPv6Derivation(t *testing.T) {
	mac := macFromIPv4(net.ParseIP("172.18.0.5"))
	if mac.String() != "02:42:ac:12:00:05" {
		t.Fatalf("mac %s", mac)
	}
	ip, err := ipv6FromMAC(mustCIDR(t, "fd00:1::/64"), mac)
	if err != nil || ip.String() != "fd00:1::242:ac12:5/64" {
		t.Fatalf("ipv6 %v %v", ip, err)
	}
	if _, err := ipv6FromMAC(mustCIDR(t, "fd00:1::/96"), mac); !types.IsForbidden(err) {
		t.Fatalf("/96: want Forbidden, got %v", err)
	}
	r := macaddr.Random()
	if r[0]&1 != 0 || r[0]&2 == 0 {
		t.Fatalf("random mac %s not unicast locally administered", r)
	}
}
