package testrig

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/fakeipt"
	"github.com/opencnm/libnetwork/firewall/fakenft"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
)

// Tables a network's or an endpoint's rules live in.
var ruleTables = firewall.Tables()

// KernelRules lists the host namespace's rules of one family, as
// "<table> -A <chain> <spec>" (iptables -S form).
func KernelRules(t *testing.T, host *testutil.HostNS, fam firewall.Family) []string {
	t.Helper()
	bin := "iptables"
	if fam == firewall.IPv6 {
		bin = "ip6tables"
	}
	var out []string
	for _, table := range ruleTables {
		for _, line := range strings.Split(InNS(t, host.NS, bin, "-w", "-t", table, "-S"), "\n") {
			if strings.HasPrefix(line, "-A ") {
				out = append(out, table+" "+line)
			}
		}
	}
	return out
}

// optBool reads a bridge option given as a label or as the driver's field
// name; def when absent.
func optBool(t *testing.T, opts map[string]string, label, field string, def bool) bool {
	t.Helper()
	for _, k := range []string{label, field} {
		if v, ok := opts[k]; ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				t.Fatalf("option %s=%q is not a bool", k, v)
			}
			return b
		}
	}
	return def
}

// optString reads a bridge option given as a label or as the driver's
// field name; "" when absent.
func optString(opts map[string]string, label, field string) string {
	if v, ok := opts[label]; ok {
		return v
	}
	return opts[field]
}

// wantNetworkRules returns the rules bridge network n must have in fam,
// in kernelRules' form, rendered by the firewall package itself (on fakes)
// from the network's configuration as the bridge driver passes it: the
// layout is the library's, the check is that the kernel holds all of it.
// The controller's driver runs without the userland proxy (hairpin NAT on)
// and with ip6tables.
func wantNetworkRules(t *testing.T, n *libnetwork.Network, br string, fam firewall.Family) []string {
	t.Helper()
	opts := n.DriverOptions()
	cfg := firewall.NetworkConfig{ID: n.ID(), Bridge: br, Internal: n.Internal(), Hairpin: true,
		ICC:        optBool(t, opts, bridge.EnableICC, "EnableICC", true),
		Masquerade: optBool(t, opts, bridge.EnableIPMasquerade, "EnableIPMasquerade", true)}
	for _, k := range []string{netlabel.HostIP, "HostIP"} {
		if v := opts[k]; v != "" {
			cfg.HostIP = net.ParseIP(v)
		}
	}
	cfg.GatewayModeIPv4 = firewall.GatewayMode(optString(opts, bridge.GatewayModeIPv4, "GatewayModeIPv4"))
	cfg.GatewayModeIPv6 = firewall.GatewayMode(optString(opts, bridge.GatewayModeIPv6, "GatewayModeIPv6"))
	v4, v6 := n.IpamInfo()
	if len(v4) > 0 {
		cfg.Subnet = v4[0].Pool
	}
	if n.IPv6Enabled() && len(v6) > 0 {
		cfg.SubnetV6 = v6[0].Pool
	}
	if cfg.Subnet == nil || (fam == firewall.IPv6 && cfg.SubnetV6 == nil) {
		return nil
	}
	fake := fakeipt.New()
	fw := firewall.New(fake, fakenft.New(), true)
	if err := fw.Setup(); err != nil {
		t.Fatal(err)
	}
	if err := fw.SetupNetwork(cfg); err != nil {
		t.Fatalf("rendering the rules of network %s: %v", n.Name(), err)
	}
	owner := "--comment " + firewall.NetworkOwner(n.ID()) + " "
	var want []string
	for _, table := range ruleTables {
		out, err := fake.List(fam, table)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "-A ") && strings.Contains(line, owner) {
				want = append(want, table+" "+line)
			}
		}
	}
	if len(want) == 0 {
		t.Fatalf("no rules rendered for network %s in %s: the check would prove nothing", n.Name(), fam)
	}
	return want
}

// checkNetworkRules: every bridge network of nets has all its rules
// (cnm-net-<id>) in the kernel, in IPv6 too when it has an IPv6 subnet,
// and no rule of its owner that its configuration does not render.
func CheckNetworkRules(t *testing.T, host *testutil.HostNS, nets map[string]*libnetwork.Network) {
	t.Helper()
	for _, p := range NetworkRuleProblems(t, host, nets) {
		t.Error(p)
	}
}

// NetworkRuleProblems returns what checkNetworkRules reports. Bridges are
// found by their tag; checkHostLinks reports a missing one.
func NetworkRuleProblems(t *testing.T, host *testutil.HostNS, nets map[string]*libnetwork.Network) []string {
	t.Helper()
	var problems []string
	links, err := host.Netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	bridgeName := map[string]string{}
	for _, l := range links {
		if id, ok := strings.CutPrefix(l.Attrs().Alias, NetTag); ok {
			bridgeName[id] = l.Attrs().Name
		}
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		have := KernelRules(t, host, fam)
		for id, n := range nets {
			br := bridgeName[id]
			if n.Type() != "bridge" || br == "" {
				continue
			}
			want := wantNetworkRules(t, n, br, fam)
			for _, r := range want {
				if !slices.Contains(have, r) {
					problems = append(problems, fmt.Sprintf("network %s (%s) lacks its %s rule: %s", n.Name(), br, fam, r))
				}
			}
			owner := "--comment " + firewall.NetworkOwner(id) + " "
			for _, r := range have {
				if strings.Contains(r, owner) && !slices.Contains(want, r) {
					problems = append(problems, fmt.Sprintf("network %s (%s) has a %s rule its configuration does not render: %s", n.Name(), br, fam, r))
				}
			}
		}
	}
	return problems
}
