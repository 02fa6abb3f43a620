package libnetwork_test

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

func ipStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out
}

// Names resolve from CreateEndpoint on, only on the networks the sandbox is
// attached to, case-insensitively, with an optional network suffix.
func TestResolveNameModel(t *testing.T) {
	c := testrig.NewUnitController(t)
	testrig.WithFake(t, c)
	n1 := testrig.FakeNet(t, c, "front", testrig.IPAMOpt("10.90.1.0/24", ""))
	n2 := testrig.FakeNet(t, c, "back.end", testrig.IPAMOpt("10.90.2.0/24", ""))
	web := testrig.Must[*libnetwork.Endpoint](t)(n1.CreateEndpoint("web", libnetwork.CreateOptionMyAlias("www")))
	db := testrig.Must[*libnetwork.Endpoint](t)(n2.CreateEndpoint("db", libnetwork.CreateOptionMyAlias("WWW")))
	sb := testrig.ExtSandbox(t, c, "c1")

	if ips, _ := sb.ResolveName("web", types.IPv4); ips != nil {
		t.Fatalf("resolved web before any join: %v", ips)
	}
	me := testrig.Must[*libnetwork.Endpoint](t)(n1.CreateEndpoint("me"))
	if err := me.Join(sb); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"web", "WEB.", "www", "web.front", "Web.FRONT."} {
		ips, miss := sb.ResolveName(q, types.IPv4)
		if got := ipStrings(ips); !slices.Equal(got, []string{testrig.EpIP(web)}) || miss {
			t.Errorf("ResolveName(%q) = %v, %v; want [%s]", q, got, miss, testrig.EpIP(web))
		}
	}
	// web is known but has no IPv6 address: "no records", not "unknown".
	if ips, miss := sb.ResolveName("web", types.IPv6); ips != nil || !miss {
		t.Errorf("ResolveName(web, IPv6) = %v, %v; want nil, true", ips, miss)
	}
	for _, q := range []string{"db", "db.back.end", "web.back.end", "nosuch", "", "."} {
		if ips, miss := sb.ResolveName(q, types.IPv4); ips != nil || miss {
			t.Errorf("ResolveName(%q) = %v, %v; want nothing", q, ips, miss)
		}
	}
	if got := sb.ResolveIP(testrig.EpIP(web)); got != "web.front" {
		t.Errorf("ResolveIP(web) = %q", got)
	}
	if got := sb.ResolveIP(testrig.EpIP(db)); got != "" {
		t.Errorf("ResolveIP of an address on a network the sandbox is not on = %q", got)
	}

	// A second network: its names appear, including a network name with a
	// dot and an alias shared across networks (first network in order wins).
	me2 := testrig.Must[*libnetwork.Endpoint](t)(n2.CreateEndpoint("me2"))
	if err := me2.Join(sb, libnetwork.CreateOptionAlias("db", "database")); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{"db": testrig.EpIP(db), "db.back.end": testrig.EpIP(db), "database": testrig.EpIP(db),
		"database.back.end": testrig.EpIP(db), "www.back.end": testrig.EpIP(db), "www.front": testrig.EpIP(web)} {
		if got := ipStrings(first(sb.ResolveName(q, types.IPv4))); !slices.Equal(got, []string{want}) {
			t.Errorf("ResolveName(%q) = %v, want [%s]", q, got, want)
		}
	}
	if got := sb.ResolveIP(testrig.EpIP(db)); got != "db.back.end" {
		t.Errorf("ResolveIP(db) = %q", got)
	}
	// Leaving the network hides its names again (join aliases go with it).
	if err := me2.Leave(sb); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"db", "database"} {
		if ips, _ := sb.ResolveName(q, types.IPv4); ips != nil {
			t.Errorf("ResolveName(%q) after leave = %v", q, ips)
		}
	}
	// A deleted endpoint disappears; a left but not deleted one stays.
	other := testrig.ExtSandbox(t, c, "c2")
	if err := web.Join(other); err != nil {
		t.Fatal(err)
	}
	if err := web.Leave(other); err != nil {
		t.Fatal(err)
	}
	if ips, _ := sb.ResolveName("web", types.IPv4); len(ips) != 1 {
		t.Errorf("web after its leave = %v, want still resolvable", ips)
	}
	if err := web.Delete(false); err != nil {
		t.Fatal(err)
	}
	if ips, _ := sb.ResolveName("web", types.IPv4); ips != nil {
		t.Errorf("web after delete = %v", ips)
	}
}

func first(ips []net.IP, _ bool) []net.IP { return ips }

// Host and null networks serve no names.
func TestResolveNameSpecialNetworks(t *testing.T) {
	c := testrig.NewController(t)
	null := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("null", "none", ""))
	ep := testrig.Must[*libnetwork.Endpoint](t)(null.CreateEndpoint("lonely"))
	sb := testrig.ExtSandbox(t, c, "c1")
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	if ips, miss := sb.ResolveName("lonely", types.IP); ips != nil || miss {
		t.Fatalf("null network endpoint resolved: %v %v", ips, miss)
	}
}

// resolv.conf and hosts for the option combinations, without a namespace
// (so without the embedded resolver: the file keeps real nameservers).
func TestDNSFileOptions(t *testing.T) {
	c := testrig.NewUnitController(t)
	testrig.WithFake(t, c)
	n := testrig.FakeNet(t, c, "n", testrig.IPAMOpt("10.91.0.0/24", ""))
	origin := testrig.WriteTemp(t, "resolv.conf",
		"search host.example\nnameserver 127.0.0.1\nnameserver 10.0.0.2\nnameserver 2001:db8::53\noptions rotate\n")
	originHosts := testrig.WriteTemp(t, "hosts", "127.0.0.1 localhost\n10.9.9.9 hostbox\n")

	cases := []struct {
		name      string
		opts      []libnetwork.SandboxOption
		wantRes   string
		wantHosts []string // lines the hosts file must have
	}{
		{"host values filtered", nil,
			"search host.example\nnameserver 10.0.0.2\noptions rotate\n", nil},
		{"overrides replace each part",
			[]libnetwork.SandboxOption{libnetwork.OptionDNS("192.0.2.7"), libnetwork.OptionDNSSearch("a.example"),
				libnetwork.OptionDNSSearch("b.example"), libnetwork.OptionDNSOptions("ndots:3")},
			"search a.example b.example\nnameserver 192.0.2.7\noptions ndots:3\n", nil},
		{"search only", []libnetwork.SandboxOption{libnetwork.OptionDNSSearch(".")},
			"nameserver 10.0.0.2\noptions rotate\n", nil},
		{"extra hosts and hostname",
			[]libnetwork.SandboxOption{libnetwork.OptionExtraHost("gw.example", "10.1.1.1"),
				libnetwork.OptionHostname("box"), libnetwork.OptionDomainname("example.com")},
			"search host.example\nnameserver 10.0.0.2\noptions rotate\n",
			[]string{"127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "10.1.1.1\tgw.example", "\tbox.example.com box"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			resPath, hostsPath := filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "hosts")
			opts := append([]libnetwork.SandboxOption{libnetwork.OptionOriginResolvConfPath(origin),
				libnetwork.OptionResolvConfPath(resPath), libnetwork.OptionHostsPath(hostsPath)}, tc.opts...)
			sb := testrig.ExtSandbox(t, c, "opt"+string(rune('a'+i)), opts...)
			ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e" + string(rune('a'+i))))
			if err := ep.Join(sb); err != nil {
				t.Fatal(err)
			}
			if got := testrig.ReadFile(t, resPath); got != tc.wantRes {
				t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, tc.wantRes)
			}
			hosts := testrig.ReadFile(t, hostsPath)
			for _, l := range tc.wantHosts {
				if !strings.Contains(hosts, l) {
					t.Errorf("hosts lacks %q:\n%s", l, hosts)
				}
			}
			if tc.wantHosts != nil {
				if want := testrig.EpIP(ep) + "\tbox.example.com box"; !strings.Contains(hosts, want) {
					t.Errorf("hosts lacks own line %q:\n%s", want, hosts)
				}
				if err := ep.Leave(sb); err != nil {
					t.Fatal(err)
				}
				if strings.Contains(testrig.ReadFile(t, hostsPath), "box.example.com") {
					t.Errorf("own line left after leave:\n%s", testrig.ReadFile(t, hostsPath))
				}
			}
			if err := sb.Delete(); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("only loopback nameservers gives none", func(t *testing.T) {
		lo := testrig.WriteTemp(t, "resolv.conf", "nameserver 127.0.0.53\noptions edns0\n")
		sb := testrig.ExtSandbox(t, c, "lo", libnetwork.OptionOriginResolvConfPath(lo))
		if got := testrig.ReadSandboxFile(t, c, sb, "resolv.conf"); got != "options edns0\n" {
			t.Errorf("resolv.conf = %q", got)
		}
	})
	t.Run("invalid ndots refused", func(t *testing.T) {
		_, err := c.NewSandbox("bad", libnetwork.OptionUseExternalKey(), libnetwork.OptionOriginResolvConfPath(origin),
			libnetwork.OptionDNSOptions("ndots:-1"))
		if !types.IsBadRequest(err) {
			t.Fatalf("want BadRequest, got %v", err)
		}
	})
	t.Run("user edit survives refresh", func(t *testing.T) {
		sb := testrig.ExtSandbox(t, c, "edit", libnetwork.OptionOriginResolvConfPath(origin))
		p := filepath.Join(c.Config().ExecRoot, "files", sb.ID(), "resolv.conf")
		if err := os.WriteFile(p, []byte("nameserver 10.10.10.10\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := sb.Refresh(libnetwork.OptionOriginResolvConfPath(origin), libnetwork.OptionDNS("192.0.2.1")); err != nil {
			t.Fatal(err)
		}
		if got := testrig.ReadFile(t, p); got != "nameserver 10.10.10.10\n" {
			t.Errorf("edited resolv.conf overwritten: %q", got)
		}
	})
	t.Run("host mode copies origin files", func(t *testing.T) {
		testutil.RequireRoot(t) // the default sandbox is the host namespace: root only, and never skipped in CI
		sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("hostmode", libnetwork.OptionUseDefaultSandbox(),
			libnetwork.OptionOriginResolvConfPath(origin), libnetwork.OptionOriginHostsPath(originHosts)))
		t.Cleanup(func() { sb.Delete() })
		if got := testrig.ReadSandboxFile(t, c, sb, "resolv.conf"); got != testrig.ReadFile(t, origin) {
			t.Errorf("host-mode resolv.conf = %q", got)
		}
		if got := testrig.ReadSandboxFile(t, c, sb, "hosts"); got != testrig.ReadFile(t, originHosts) {
			t.Errorf("host-mode hosts = %q", got)
		}
	})
}

// Lookups run concurrently with endpoints coming, going, joining and being
// renamed (run under -race); a stable name keeps resolving throughout.
func TestResolveNameConcurrentWithChanges(t *testing.T) {
	c := testrig.NewUnitController(t)
	testrig.WithFake(t, c)
	n := testrig.FakeNet(t, c, "n", testrig.IPAMOpt("10.92.0.0/24", ""))
	sb := testrig.ExtSandbox(t, c, "reader")
	me := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("me"))
	if err := me.Join(sb); err != nil {
		t.Fatal(err)
	}
	stable := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("stable"))
	done := make(chan struct{})
	errc := make(chan string, 1)
	go func() {
		defer close(errc)
		for {
			select {
			case <-done:
				return
			default:
			}
			if got := ipStrings(first(sb.ResolveName("stable", types.IPv4))); !slices.Equal(got, []string{testrig.EpIP(stable)}) {
				errc <- "stable resolved to " + strings.Join(got, ",")
				return
			}
			sb.ResolveName("churn", types.IP)
			sb.ResolveIP(testrig.EpIP(stable))
		}
	}()
	for i := range 50 {
		ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("churn"))
		other := testrig.ExtSandbox(t, c, "w"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		if err := ep.Join(other); err != nil {
			t.Fatal(err)
		}
		if err := other.Rename("churned"); err != nil {
			t.Fatal(err)
		}
		if err := other.Delete(); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if msg := <-errc; msg != "" {
		t.Fatal(msg)
	}
}

// AAAA and IP answers, and PTR for an IPv6 address.
func TestResolveNameIPv6(t *testing.T) {
	c := testrig.NewUnitController(t)
	testrig.WithFake(t, c)
	n := testrig.FakeNet(t, c, "v6", libnetwork.NetworkOptionEnableIPv6(true), libnetwork.NetworkOptionIpam("default", "",
		[]*libnetwork.IpamConf{{PreferredPool: "10.93.0.0/24"}}, []*libnetwork.IpamConf{{PreferredPool: "fd00:93::/64"}}, nil))
	sb := testrig.ExtSandbox(t, c, "c1")
	me := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("me"))
	if err := me.Join(sb); err != nil {
		t.Fatal(err)
	}
	peer := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("peer"))
	v4, v6 := testrig.EpIP(peer), peer.Info().Iface().AddressIPv6().IP.String()
	if got := ipStrings(first(sb.ResolveName("peer", types.IPv6))); !slices.Equal(got, []string{v6}) {
		t.Fatalf("AAAA peer = %v, want [%s]", got, v6)
	}
	if got := ipStrings(first(sb.ResolveName("peer", types.IP))); !slices.Equal(got, ipStrings([]net.IP{net.ParseIP(v4), net.ParseIP(v6)})) {
		t.Fatalf("IP peer = %v, want %s and %s", got, v4, v6)
	}
	if got := sb.ResolveIP(v6); got != "peer.v6" {
		t.Fatalf("ResolveIP(%s) = %q", v6, got)
	}
}

// A hostname given as an FQDN, with no domain name, gets its short name on
// the container's own hosts line too, as upstream writes it.
func TestHostsFQDNHostnameShortName(t *testing.T) {
	c := testrig.NewUnitController(t)
	testrig.WithFake(t, c)
	n := testrig.FakeNet(t, c, "n", testrig.IPAMOpt("10.92.0.0/24", ""))
	sb := testrig.ExtSandbox(t, c, "fqdn", libnetwork.OptionHostname("somehost.example.com"))
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	hosts := testrig.ReadSandboxFile(t, c, sb, "hosts")
	if want := testrig.EpIP(ep) + "\tsomehost.example.com somehost\n"; !strings.Contains(hosts, want) {
		t.Errorf("hosts lacks %q:\n%s", want, hosts)
	}
	if err := ep.Leave(sb); err != nil {
		t.Fatal(err)
	}
	if hosts := testrig.ReadSandboxFile(t, c, sb, "hosts"); strings.Contains(hosts, "somehost") {
		t.Errorf("own line left after leave:\n%s", hosts)
	}
}
