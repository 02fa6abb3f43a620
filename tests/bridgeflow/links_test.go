package bridgeflow

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

func linkOpt(parents, children []string) libnetwork.SandboxOption {
	return libnetwork.OptionGeneric(map[string]any{netlabel.GenericData: options.Generic{
		bridge.ParentEndpoints: parents, bridge.ChildEndpoints: children}})
}

// Legacy links on a network with ICC off, as upstream's link rules: a
// parent reaches its child on the child's exposed ports only; a container
// that is not linked reaches neither. The link is made from the parent's
// join (ChildEndpoints) or from the child's (ParentEndpoints), and its
// rules, tagged with the joining endpoint, go with that endpoint's leave.
func TestLegacyLinksICCOff(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig(t)
	n := r.BridgeNet(t, "links", "10.64.0.0/24",
		libnetwork.NetworkOptionDriverOpts(map[string]string{bridge.EnableICC: "false"}))
	exp := func(ports ...uint16) libnetwork.SandboxOption {
		var tps []types.TransportPort
		for _, p := range ports {
			tps = append(tps, types.TransportPort{Proto: types.TCP, Port: p})
		}
		return libnetwork.OptionExposedPorts(tps)
	}
	db := r.MustRun(t, n, "db", nil, exp(5432))
	testrig.Serve(t, db.NS, "tcp", ":5432", "db:5432")
	testrig.Serve(t, db.NS, "tcp", ":6000", "db:6000")
	web := r.MustRun(t, n, "web", nil, linkOpt(nil, []string{db.Endpoint.ID()}))
	other := r.MustRun(t, n, "other", nil)

	testrig.MustFetch(t, web.NS, "tcp", net.JoinHostPort(db.IP, "5432"), "db:5432")
	testrig.MustNotFetch(t, web.NS, "tcp", net.JoinHostPort(db.IP, "6000"))
	testrig.MustNotFetch(t, other.NS, "tcp", net.JoinHostPort(db.IP, "5432"))

	// A child joining later names its parent.
	cache := r.MustRun(t, n, "cache", nil, exp(7000), linkOpt([]string{web.Endpoint.ID()}, nil))
	testrig.Serve(t, cache.NS, "tcp", ":7000", "cache:7000")
	testrig.Serve(t, cache.NS, "tcp", ":7001", "cache:7001")
	testrig.MustFetch(t, web.NS, "tcp", net.JoinHostPort(cache.IP, "7000"), "cache:7000")
	testrig.MustNotFetch(t, web.NS, "tcp", net.JoinHostPort(cache.IP, "7001"))
	testrig.MustNotFetch(t, other.NS, "tcp", net.JoinHostPort(cache.IP, "7000"))
	// Links go one way: the child does not reach the parent.
	testrig.Serve(t, web.NS, "tcp", ":80", "web:80")
	testrig.MustNotFetch(t, db.NS, "tcp", net.JoinHostPort(web.IP, "80"))

	webOwner := firewall.LinkOwner(web.Endpoint.ID())
	if hits := testrig.RulesNaming(t, r.Host.NS, webOwner); len(hits) != 2 {
		t.Fatalf("link rules of web: %q, want one pair", hits)
	}
	web.Stop(t)
	if hits := testrig.RulesNaming(t, r.Host.NS, webOwner); len(hits) > 0 {
		t.Fatalf("link rules left after web left:\n%s", strings.Join(hits, "\n"))
	}
	cache.Stop(t)
	if hits := testrig.RulesNaming(t, r.Host.NS, "cnm-link-"); len(hits) > 0 {
		t.Fatalf("link rules left:\n%s", strings.Join(hits, "\n"))
	}
}

// A link naming an endpoint that is not on the network, or given with
// the wrong type, fails the join with a BadRequest and leaves it undone.
func TestLegacyLinksRefused(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig(t)
	n := r.BridgeNet(t, "links", "10.65.0.0/24",
		libnetwork.NetworkOptionDriverOpts(map[string]string{bridge.EnableICC: "false"}))
	for name, opt := range map[string]libnetwork.SandboxOption{
		"unknown child": linkOpt(nil, []string{"0123456789ab"}),
		"not a list": libnetwork.OptionGeneric(map[string]any{netlabel.GenericData: options.Generic{
			bridge.ParentEndpoints: "0123456789ab"}}),
	} {
		_, err := r.Run(t, n, "c", nil, opt)
		if !types.IsBadRequest(err) {
			t.Fatalf("%s: want BadRequest, got %v", name, err)
		}
	}
}

// A live-restored parent keeps its link: the rules come back claimed (not
// pruned as leftovers), once, and still let it reach the child's exposed
// port only.
func TestLegacyLinksSurviveRestart(t *testing.T) {
	t.Parallel()
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("bridge", "links", "",
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.67.0.0/24"}}, nil, nil),
		libnetwork.NetworkOptionDriverOpts(map[string]string{bridge.EnableICC: "false"})))
	dbOpts := []libnetwork.SandboxOption{libnetwork.OptionExposedPorts([]types.TransportPort{{Proto: types.TCP, Port: 5432}})}
	dbEP := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("db"))
	dbSB := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("ctr-db", dbOpts...))
	if err := dbEP.Join(dbSB); err != nil {
		t.Fatal(err)
	}
	webOpts := []libnetwork.SandboxOption{linkOpt(nil, []string{dbEP.ID()})}
	webEP := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("web"))
	webSB := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("ctr-web", webOpts...))
	if err := webEP.Join(webSB); err != nil {
		t.Fatal(err)
	}
	owner := firewall.LinkOwner(webEP.ID())
	before := testrig.RulesNaming(t, r.Host.NS, owner)
	if len(before) != 2 {
		t.Fatalf("link rules before the restart: %q", before)
	}

	c = r.Start(config.OptionActiveSandboxes(map[string]any{dbSB.ID(): dbOpts, webSB.ID(): webOpts}))
	if err := c.RestoreError(); err != nil {
		t.Fatal(err)
	}
	if err := c.CollectGarbage(); err != nil {
		t.Fatal(err)
	}
	if after := testrig.RulesNaming(t, r.Host.NS, owner); !slices.Equal(after, before) {
		t.Fatalf("link rules after the restart: %q, want %q", after, before)
	}
	dbNS, _ := testrig.SandboxNS(t, testrig.Must[*libnetwork.Sandbox](t)(c.SandboxByID(dbSB.ID())))
	webNS, _ := testrig.SandboxNS(t, testrig.Must[*libnetwork.Sandbox](t)(c.SandboxByID(webSB.ID())))
	testrig.Serve(t, dbNS, "tcp", ":5432", "db:5432")
	testrig.Serve(t, dbNS, "tcp", ":6000", "db:6000")
	dbIP := dbEP.Info().Iface().Address().IP.String()
	testrig.MustFetch(t, webNS, "tcp", net.JoinHostPort(dbIP, "5432"), "db:5432")
	testrig.MustNotFetch(t, webNS, "tcp", net.JoinHostPort(dbIP, "6000"))
}
