package dns

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/internal/dnsnat"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
)

// Two containers on a bridge network find each other and an alias through
// 127.0.0.11 inside their namespaces; other names go to the host's
// loopback resolver; a container on another network sees none of it; names
// come and go as endpoints join, leave and are deleted.
func TestEmbeddedResolver(t *testing.T) {
	c, host := testrig.NewPrivController(t)
	upstream := testrig.FakeUpstream(t, host.NS, "127.0.0.1", map[string]string{"outside.test.": "192.0.2.80"})
	origin := testrig.WriteTemp(t, "resolv.conf", "search corp.test\nnameserver 127.0.0.1\n")
	n := testrig.BridgeNet(t, c, "dnsnet", "cnmdns0", "10.78.0.0/24")

	sbWeb := testrig.KernelSandbox(t, c, "c-web", libnetwork.OptionOriginResolvConfPath(origin))
	sbDB := testrig.KernelSandbox(t, c, "c-db", libnetwork.OptionOriginResolvConfPath(origin))
	web := testrig.Joined(t, n, sbWeb, "web", libnetwork.CreateOptionMyAlias("frontend"))
	db := testrig.Joined(t, n, sbDB, "db")
	nsWeb, _ := testrig.SandboxNS(t, sbWeb)
	nsDB, _ := testrig.SandboxNS(t, sbDB)

	const embedded = "search corp.test\nnameserver 127.0.0.11\noptions ndots:0\n"
	for _, sb := range []*libnetwork.Sandbox{sbWeb, sbDB} {
		if got := testrig.ReadSandboxFile(t, c, sb, "resolv.conf"); got != embedded {
			t.Fatalf("resolv.conf of %s:\n%s\nwant:\n%s", sb.ContainerID(), got, embedded)
		}
	}

	for _, network := range []string{"udp", "tcp"} {
		testrig.Expect(t, nsWeb, network, "db", dns.TypeA, testrig.EpIP(db))
		testrig.Expect(t, nsDB, network, "web", dns.TypeA, testrig.EpIP(web))
	}
	testrig.Expect(t, nsDB, "udp", "frontend", dns.TypeA, testrig.EpIP(web))
	testrig.Expect(t, nsDB, "udp", "FrontEnd.dnsnet", dns.TypeA, testrig.EpIP(web))
	testrig.Expect(t, nsDB, "udp", "web", dns.TypeAAAA) // known, no IPv6: empty NOERROR
	rev := testrig.Must[string](t)(dns.ReverseAddr(testrig.EpIP(db)))
	testrig.Expect(t, nsWeb, "udp", rev, dns.TypePTR, "db.dnsnet.")
	if n := upstream.Load(); n != 0 {
		t.Fatalf("local names reached the upstream server (%d queries)", n)
	}

	// Forwarding from the host namespace to its loopback resolver.
	testrig.Expect(t, nsWeb, "udp", "outside.test", dns.TypeA, "192.0.2.80")
	testrig.Expect(t, nsWeb, "tcp", "outside.test", dns.TypeA, "192.0.2.80")
	testrig.Expect(t, nsWeb, "udp", "nosuch.test", dns.TypeA, "NXDOMAIN")
	if n := upstream.Load(); n != 3 {
		t.Fatalf("upstream got %d queries, want 3", n)
	}

	// The redirect lives in the sandbox only; the host has no rule and no
	// socket for it.
	if p, ok, err := dnsnat.Get(nsWeb); err != nil || !ok || p.UDP == 0 || p.TCP == 0 || testrig.RedirectRules(t, nsWeb) != 4 {
		t.Fatalf("sandbox redirect = %+v, %v, %v with %d rules", p, ok, err, testrig.RedirectRules(t, nsWeb))
	}
	if hostRules := testrig.NatRules(t, host.NS); strings.Contains(hostRules, "127.0.0.11") || testrig.RedirectRules(t, host.NS) != 0 {
		t.Fatalf("host has resolver rules:\n%s", hostRules)
	}

	// Another network: its container sees neither name, and they do not see it.
	n2 := testrig.BridgeNet(t, c, "dnsnet2", "cnmdns1", "10.78.1.0/24")
	sbLone := testrig.KernelSandbox(t, c, "c-lone", libnetwork.OptionOriginResolvConfPath(origin))
	lone := testrig.Joined(t, n2, sbLone, "lone")
	nsLone, _ := testrig.SandboxNS(t, sbLone)
	testrig.Expect(t, nsLone, "udp", "web", dns.TypeA, "NXDOMAIN")
	testrig.Expect(t, nsLone, "udp", "db.dnsnet", dns.TypeA, "NXDOMAIN")
	testrig.Expect(t, nsLone, "udp", rev, dns.TypePTR, "NXDOMAIN")
	testrig.Expect(t, nsWeb, "udp", "lone", dns.TypeA, "NXDOMAIN")

	// web joins the second network too: lone appears for it, and goes
	// again when it leaves.
	web2 := testrig.Joined(t, n2, sbWeb, "web2")
	testrig.Expect(t, nsWeb, "udp", "lone", dns.TypeA, testrig.EpIP(lone))
	testrig.Expect(t, nsLone, "udp", "web2", dns.TypeA, testrig.EpIP(web2))
	if err := web2.Leave(sbWeb); err != nil {
		t.Fatal(err)
	}
	testrig.Expect(t, nsWeb, "udp", "lone", dns.TypeA, "NXDOMAIN")
	testrig.Expect(t, nsWeb, "udp", "db", dns.TypeA, testrig.EpIP(db)) // resolver still up for dnsnet

	// A deleted container's name disappears.
	if err := sbDB.Delete(); err != nil {
		t.Fatal(err)
	}
	testrig.Expect(t, nsWeb, "udp", "db", dns.TypeA, "NXDOMAIN")

	// The last resolving endpoint leaves: the resolver goes, the file
	// points at the real (here: no usable) nameservers again.
	if err := web.Leave(sbWeb); err != nil {
		t.Fatal(err)
	}
	if got := testrig.ReadSandboxFile(t, c, sbWeb, "resolv.conf"); got != "search corp.test\n" {
		t.Fatalf("resolv.conf after last leave = %q", got)
	}
	if _, err := testrig.Query(nsWeb, "udp", "web", dns.TypeA); err == nil {
		t.Fatal("127.0.0.11 still answers after the last leave")
	}
	// And it comes back on the next join, on new ports, with the chains
	// refilled rather than added to.
	testrig.Joined(t, n, sbWeb, "web-again")
	testrig.Expect(t, nsWeb, "udp", "web-again.dnsnet", dns.TypeA, testrig.Must[*libnetwork.Endpoint](t)(n.EndpointByName("web-again")).Info().Iface().Address().IP.String())
	testrig.Expect(t, nsWeb, "tcp", "web-again", dns.TypeA, testrig.Must[*libnetwork.Endpoint](t)(n.EndpointByName("web-again")).Info().Iface().Address().IP.String())
	if n := testrig.RedirectRules(t, nsWeb); n != 4 {
		t.Fatalf("%d redirect rules after restart of the resolver, want 4", n)
	}
}

// An internal network resolves its own names but forwards nothing.
func TestEmbeddedResolverInternalNoForwarding(t *testing.T) {
	c, host := testrig.NewPrivController(t)
	upstream := testrig.FakeUpstream(t, host.NS, "127.0.0.1", map[string]string{"outside.test.": "192.0.2.80"})
	origin := testrig.WriteTemp(t, "resolv.conf", "nameserver 127.0.0.1\n")
	n := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("bridge", "inside", "",
		libnetwork.NetworkOptionGeneric(options.Generic{netlabel.GenericData: map[string]string{bridge.BridgeName: "cnmint0"}}),
		libnetwork.NetworkOptionInternalNetwork(),
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.79.0.0/24"}}, nil, nil)))
	sbA := testrig.KernelSandbox(t, c, "a", libnetwork.OptionOriginResolvConfPath(origin))
	sbB := testrig.KernelSandbox(t, c, "b", libnetwork.OptionOriginResolvConfPath(origin))
	testrig.Joined(t, n, sbA, "a")
	b := testrig.Joined(t, n, sbB, "b")
	nsA, _ := testrig.SandboxNS(t, sbA)
	testrig.Expect(t, nsA, "udp", "b", dns.TypeA, testrig.EpIP(b))
	testrig.Expect(t, nsA, "udp", "outside.test", dns.TypeA, "SERVFAIL")
	testrig.Expect(t, nsA, "tcp", "outside.test", dns.TypeA, "SERVFAIL")
	if got := upstream.Load(); got != 0 {
		t.Fatalf("internal network forwarded %d queries", got)
	}
}

// The systemd-resolved stub (127.0.0.53 on the host's loopback) is reached
// from the host namespace; user DNS options are kept in embedded mode.
func TestEmbeddedResolverHostStub(t *testing.T) {
	c, host := testrig.NewPrivController(t)
	stub := testrig.FakeUpstream(t, host.NS, "127.0.0.53", map[string]string{"via-stub.test.": "192.0.2.53"})
	origin := testrig.WriteTemp(t, "resolv.conf", "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
	n := testrig.BridgeNet(t, c, "stubnet", "cnmstub0", "10.80.0.0/24")
	sb := testrig.KernelSandbox(t, c, "c1", libnetwork.OptionOriginResolvConfPath(origin), libnetwork.OptionDNSOptions("ndots:2"))
	testrig.Joined(t, n, sb, "c1")
	ns, _ := testrig.SandboxNS(t, sb)
	if got, want := testrig.ReadSandboxFile(t, c, sb, "resolv.conf"), "search lan\nnameserver 127.0.0.11\noptions ndots:2\n"; got != want {
		t.Fatalf("resolv.conf = %q, want %q", got, want)
	}
	testrig.Expect(t, ns, "udp", "via-stub.test", dns.TypeA, "192.0.2.53")
	if stub.Load() != 1 {
		t.Fatalf("stub got %d queries", stub.Load())
	}
}

// DisableResolution, the legacy default bridge and custom file paths.
func TestEmbeddedResolverNotStarted(t *testing.T) {
	c, host := testrig.NewPrivController(t, config.OptionDNSTimeout(300*time.Millisecond))
	origin := testrig.WriteTemp(t, "resolv.conf", "nameserver 10.0.0.2\n")
	n := testrig.BridgeNet(t, c, "quietnet", "cnmquiet0", "10.81.0.0/24")

	t.Run("disable resolution", func(t *testing.T) {
		dir := t.TempDir()
		resPath := filepath.Join(dir, "resolv.conf")
		sb := testrig.KernelSandbox(t, c, "quiet", libnetwork.OptionOriginResolvConfPath(origin), libnetwork.OptionResolvConfPath(resPath))
		quiet := testrig.Joined(t, n, sb, "quiet", libnetwork.CreateOptionDisableResolution())
		ns, _ := testrig.SandboxNS(t, sb)
		if got := testrig.ReadFile(t, resPath); got != "nameserver 10.0.0.2\n" {
			t.Fatalf("resolv.conf = %q", got)
		}
		if n := testrig.RedirectRules(t, ns); n != 0 {
			t.Fatalf("%d resolver redirect rules installed", n)
		}
		if _, err := testrig.Query(ns, "udp", "quiet", dns.TypeA); err == nil {
			t.Fatal("127.0.0.11 answers in a sandbox with resolution disabled")
		}
		// Its name still resolves for others.
		loud := testrig.KernelSandbox(t, c, "loud", libnetwork.OptionOriginResolvConfPath(origin))
		testrig.Joined(t, n, loud, "loud")
		nsLoud, _ := testrig.SandboxNS(t, loud)
		testrig.Expect(t, nsLoud, "udp", "quiet", dns.TypeA, testrig.EpIP(quiet))
	})

	t.Run("legacy default bridge", func(t *testing.T) {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cnmdef0"}}
		if err := host.Netlink.LinkAdd(br); err != nil {
			t.Fatal(err)
		}
		def := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("bridge", "legacy", "",
			libnetwork.NetworkOptionGeneric(options.Generic{netlabel.GenericData: map[string]string{
				bridge.BridgeName: "cnmdef0", bridge.DefaultBridge: "true"}}),
			libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.82.0.0/24"}}, nil, nil)))
		sb := testrig.KernelSandbox(t, c, "legacy", libnetwork.OptionOriginResolvConfPath(origin))
		testrig.Joined(t, def, sb, "old")
		ns, _ := testrig.SandboxNS(t, sb)
		if got := testrig.ReadSandboxFile(t, c, sb, "resolv.conf"); got != "nameserver 10.0.0.2\n" {
			t.Fatalf("resolv.conf on the default bridge = %q", got)
		}
		if n := testrig.RedirectRules(t, ns); n != 0 {
			t.Fatalf("%d resolver redirect rules on the default bridge", n)
		}
		// Joining a user-defined network as well starts it.
		testrig.Joined(t, n, sb, "old-user")
		if got := testrig.ReadSandboxFile(t, c, sb, "resolv.conf"); !strings.Contains(got, "nameserver 127.0.0.11\n") {
			t.Fatalf("resolv.conf after a user-defined join = %q", got)
		}
		testrig.Expect(t, ns, "udp", "old-user", dns.TypeA, testrig.Must[*libnetwork.Endpoint](t)(n.EndpointByName("old-user")).Info().Iface().Address().IP.String())
		testrig.Expect(t, ns, "udp", "old", dns.TypeA, "SERVFAIL") // default-bridge names are not served; 10.0.0.2 is unreachable
	})

	t.Run("edited file kept", func(t *testing.T) {
		sb := testrig.KernelSandbox(t, c, "edited", libnetwork.OptionOriginResolvConfPath(origin))
		p := filepath.Join(c.Config().ExecRoot, "files", sb.ID(), "resolv.conf")
		if err := os.WriteFile(p, []byte("nameserver 10.10.10.10\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		testrig.Joined(t, n, sb, "edited")
		if got := testrig.ReadFile(t, p); got != "nameserver 10.10.10.10\n" {
			t.Fatalf("edited resolv.conf rewritten: %q", got)
		}
	})
}

// A sandbox with an external key gets its resolver when it gets its
// namespace; Refresh keeps it working with the new options.
func TestEmbeddedResolverExternalKeyAndRefresh(t *testing.T) {
	c, _ := testrig.NewPrivController(t)
	origin := testrig.WriteTemp(t, "resolv.conf", "nameserver 10.0.0.2\n")
	n := testrig.BridgeNet(t, c, "extnet", "cnmext0", "10.84.0.0/24")
	peer := testrig.KernelSandbox(t, c, "peer", libnetwork.OptionOriginResolvConfPath(origin))
	pe := testrig.Joined(t, n, peer, "peer")

	sb := testrig.KernelSandbox(t, c, "ext", libnetwork.OptionUseExternalKey(), libnetwork.OptionOriginResolvConfPath(origin))
	testrig.Joined(t, n, sb, "ext")
	if got := testrig.ReadSandboxFile(t, c, sb, "resolv.conf"); got != "nameserver 10.0.0.2\n" {
		t.Fatalf("resolv.conf before SetKey = %q", got)
	}
	target := testutil.NewNamedNS(t, "container")
	if err := sb.SetKey(target.Path()); err != nil {
		t.Fatal(err)
	}
	if got := testrig.ReadSandboxFile(t, c, sb, "resolv.conf"); got != "nameserver 127.0.0.11\noptions ndots:0\n" {
		t.Fatalf("resolv.conf after SetKey = %q", got)
	}
	testrig.Expect(t, target.NS, "udp", "peer", dns.TypeA, testrig.EpIP(pe))

	if err := sb.Refresh(libnetwork.OptionOriginResolvConfPath(origin), libnetwork.OptionDNSOptions("ndots:5")); err != nil {
		t.Fatal(err)
	}
	if got := testrig.ReadSandboxFile(t, c, sb, "resolv.conf"); got != "nameserver 127.0.0.11\noptions ndots:5\n" {
		t.Fatalf("resolv.conf after Refresh = %q", got)
	}
	testrig.Expect(t, target.NS, "tcp", "peer.extnet", dns.TypeA, testrig.EpIP(pe))
	if n := testrig.RedirectRules(t, target.NS); n != 4 {
		t.Fatalf("%d redirect rules after Refresh, want 4", n)
	}
}

// After a restart with live restore, the resolver runs again in the kept
// namespace, answering as before, without a second set of jumps.
func TestEmbeddedResolverAfterRestart(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	origin := testrig.WriteTemp(t, "resolv.conf", "nameserver 10.0.0.2\n")
	n := testrig.BridgeNet(t, c, "rstnet", "cnmrdns0", "10.85.0.0/24")
	var sbs []*libnetwork.Sandbox
	for _, name := range []string{"web", "db"} {
		sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox(name, libnetwork.OptionOriginResolvConfPath(origin)))
		testrig.Joined(t, n, sb, name)
		sbs = append(sbs, sb)
	}
	dbIP := testrig.EpIP(testrig.Must[*libnetwork.Endpoint](t)(n.EndpointByName("db")))
	ns, _ := testrig.SandboxNS(t, sbs[0])
	testrig.Expect(t, ns, "udp", "db", dns.TypeA, dbIP)

	opts := []libnetwork.SandboxOption{libnetwork.OptionOriginResolvConfPath(origin)}
	c = r.Start(config.OptionActiveSandboxes(map[string]any{sbs[0].ID(): opts, sbs[1].ID(): opts}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	testrig.Expect(t, ns, "udp", "db", dns.TypeA, dbIP)
	testrig.Expect(t, ns, "tcp", "db.rstnet", dns.TypeA, dbIP)
	if n := testrig.RedirectRules(t, ns); n != 4 {
		t.Fatalf("%d redirect rules after restart, want 4", n)
	}
}

// A crash between pointing the redirect at new ports and recording them
// leaves the record naming the old ports: the restart binds what the
// namespace's redirect really leads to, so names still resolve.
func TestEmbeddedResolverRestartFollowsKernelRedirect(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	origin := testrig.WriteTemp(t, "resolv.conf", "nameserver 10.0.0.2\n")
	n := testrig.BridgeNet(t, c, "rednet", "cnmred0", "10.86.0.0/24")
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("web", libnetwork.OptionOriginResolvConfPath(origin)))
	web := testrig.Joined(t, n, sb, "web")
	ns, _ := testrig.SandboxNS(t, sb)
	testrig.Expect(t, ns, "udp", "web", dns.TypeA, testrig.EpIP(web))

	r.Last.Stop()
	r.Last = nil
	moved := dnsnat.Ports{UDP: 45001, TCP: 45002}
	if err := dnsnat.Set(ns, netip.MustParseAddr("127.0.0.11"), moved); err != nil {
		t.Fatal(err)
	}
	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{libnetwork.OptionOriginResolvConfPath(origin)}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	testrig.Expect(t, ns, "udp", "web", dns.TypeA, testrig.EpIP(web))
	testrig.Expect(t, ns, "tcp", "web", dns.TypeA, testrig.EpIP(web))
	if p, ok, err := dnsnat.Get(ns); err != nil || !ok || p != moved {
		t.Fatalf("redirect after restart = %+v, %v, %v; want it left at %+v", p, ok, err, moved)
	}
}
