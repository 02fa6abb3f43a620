package bridge

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

// Gateway modes and trusted host interfaces: what is implemented is
// parsed in both option forms; anything else is BadRequest naming the
// option, before anything is made.
func TestParseProtectionOptions(t *testing.T) {
	parse := func(labels map[string]string) (*networkConfig, error) {
		return parseNetworkOptions(testNID, map[string]any{netlabel.GenericData: labels})
	}
	c, err := parse(map[string]string{GatewayModeIPv4: "nat", GatewayModeIPv6: "nat-unprotected", TrustedHostInterfaces: "eth3:vxlan.1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.GatewayModeIPv4 != "nat" || c.GatewayModeIPv6 != "nat-unprotected" || !reflect.DeepEqual(c.TrustedIfaces, []string{"eth3", "vxlan.1"}) {
		t.Fatalf("got %+v", c)
	}
	g, err := parseNetworkOptions(testNID, map[string]any{netlabel.GenericData: options.Generic{
		"GatewayModeIPv4": "nat-unprotected", "TrustedHostInterfaces": "eth3"}})
	if err != nil || g.GatewayModeIPv4 != "nat-unprotected" || !reflect.DeepEqual(g.TrustedIfaces, []string{"eth3"}) {
		t.Fatalf("generic form: %+v, %v", g, err)
	}
	if c, err := parse(map[string]string{GatewayModeIPv4: "isolated", netlabel.Internal: "true"}); err != nil || !c.isolated(false) || c.isolated(true) {
		t.Fatalf("isolated IPv4 on an internal network: %+v, %v", c, err)
	}
	if c, err := parse(map[string]string{GatewayModeIPv4: "routed", GatewayModeIPv6: "nat"}); err != nil || c.GatewayModeIPv4 != "routed" {
		t.Fatalf("routed IPv4: %+v, %v", c, err)
	}
	if c, err := parse(nil); err != nil || c.TrustedIfaces != nil || c.GatewayModeIPv4 != "" {
		t.Fatalf("defaults: %+v, %v", c, err)
	}

	for _, tc := range []struct {
		labels map[string]string
		names  string
	}{
		{map[string]string{GatewayModeIPv4: "routed", netlabel.Internal: "true"}, GatewayModeIPv4},
		{map[string]string{GatewayModeIPv6: "isolated"}, GatewayModeIPv6}, // not internal
		{map[string]string{GatewayModeIPv6: "NAT"}, GatewayModeIPv6},
		{map[string]string{GatewayModeIPv4: "nat-unprotected", netlabel.Internal: "true"}, GatewayModeIPv4},
		{map[string]string{TrustedHostInterfaces: "eth+"}, TrustedHostInterfaces},
		{map[string]string{TrustedHostInterfaces: "-j"}, TrustedHostInterfaces},
		{map[string]string{TrustedHostInterfaces: "eth0:--goto"}, TrustedHostInterfaces},
		{map[string]string{TrustedHostInterfaces: "-"}, TrustedHostInterfaces},
		{map[string]string{TrustedHostInterfaces: "..x"}, TrustedHostInterfaces},
		{map[string]string{TrustedHostInterfaces: ".x"}, TrustedHostInterfaces},
		{map[string]string{TrustedHostInterfaces: "eth0::eth1"}, TrustedHostInterfaces},
		{map[string]string{TrustedHostInterfaces: "!eth0"}, TrustedHostInterfaces},
		{map[string]string{TrustedHostInterfaces: "a-name-longer-than-15"}, TrustedHostInterfaces},
		{map[string]string{TrustedHostInterfaces: "br-0123456789ab"}, TrustedHostInterfaces}, // its own bridge
		{map[string]string{TrustedHostInterfaces: "eth0", netlabel.Internal: "true"}, TrustedHostInterfaces},
	} {
		_, err := parse(tc.labels)
		if !types.IsBadRequest(err) || !strings.Contains(err.Error(), tc.names) {
			t.Errorf("%v: got %v, want BadRequest naming %s", tc.labels, err, tc.names)
		}
	}
}

// noBridgeNF passes through to the namespace's own sysctls except the
// bridge-nf-call keys, which it reports absent: a kernel without
// br_netfilter.
type noBridgeNF struct{ firewall.Sysctl }

func (s noBridgeNF) Get(key string) (string, error) {
	if strings.HasPrefix(key, "net/bridge/") {
		return "", types.InternalErrorf("reading sysctl %s: %w", key, fs.ErrNotExist)
	}
	return s.Sysctl.Get(key)
}

// An ICC-off network is not made where br_netfilter is absent and cannot
// be loaded: its DROP would never see a bridged frame. Nothing of it is
// left. An ICC-on network does not need it.
func TestICCOffNeedsBridgeNetfilter(t *testing.T) {
	d, host := newTestDriver(t, nil)
	hf := d.fw.(*hostFirewall)
	hf.sys = noBridgeNF{hf.sys}
	var loaded []string
	hf.loadModule = func(name string) error {
		loaded = append(loaded, name)
		return errors.New("modprobe: module not found")
	}
	before := hostState(t, host.Netlink)
	req := netReq(t, "iccoff1", "10.71.0.1/24", map[string]string{EnableICC: "false"})
	err := d.CreateNetwork(req)
	if !types.IsNotImplemented(err) || !strings.Contains(err.Error(), "br_netfilter") {
		t.Fatalf("CreateNetwork with ICC off and no br_netfilter: %v, want NotImplemented naming br_netfilter", err)
	}
	if !reflect.DeepEqual(loaded, []string{firewall.BridgeNetfilterModule}) {
		t.Errorf("modules loaded: %v", loaded)
	}
	if after := hostState(t, host.Netlink); after != before {
		t.Errorf("failed create left links:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if owners := hf.fw.Owners(); owners[firewall.NetworkOwner("iccoff1")] {
		t.Errorf("failed create left firewall rules: %v", owners)
	}
	if err := d.CreateNetwork(netReq(t, "iccon1", "10.72.0.1/24", nil)); err != nil {
		t.Fatalf("ICC-on network without br_netfilter: %v", err)
	}
	if err := d.DeleteNetwork("iccon1"); err != nil {
		t.Fatal(err)
	}
}

// Without iptables there is no ICC DROP at all: an ICC-off network is
// refused before anything is made, naming the option.
func TestICCOffNeedsIPTables(t *testing.T) {
	d, host := newTestDriver(t, noIPTables)
	before := hostState(t, host.Netlink)
	err := d.CreateNetwork(netReq(t, "iccoff2", "10.73.0.1/24", map[string]string{EnableICC: "false"}))
	if !types.IsBadRequest(err) || !strings.Contains(err.Error(), EnableICC) {
		t.Fatalf("ICC off without iptables: %v, want BadRequest naming %s", err, EnableICC)
	}
	if after := hostState(t, host.Netlink); after != before {
		t.Errorf("refused create left links:\n%s", after)
	}
}
