package multihost_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

// settle bounds what the other hosts learn through the store's watch:
// milliseconds on a quiet machine, generous for a loaded one.
const settle = 15 * time.Second

// A network created on one host is found by name and by ID on every other
// host at once (no waiting for the watch), with the same ID and driver.
func TestOverlayFoundEverywhere(t *testing.T) {
	t.Parallel()
	l := newLab(t, 3, testrig.ClusterOptions{})
	nw := overlay(t, l.host(1), "blue", "10.90.0.0/24", "")
	for _, h := range l.Hosts[1:] {
		byName, err := h.Controller().NetworkByName("blue")
		if err != nil {
			t.Fatalf("%s: by name: %v", h.ID, err)
		}
		byID, err := h.Controller().NetworkByID(nw.ID())
		if err != nil {
			t.Fatalf("%s: by ID: %v", h.ID, err)
		}
		if byName.ID() != nw.ID() || byID.Name() != "blue" || byID.Type() != "overlay" {
			t.Fatalf("%s: found %s/%s (%s), want %s/blue (overlay)", h.ID, byName.ID(), byID.Name(), byID.Type(), nw.ID())
		}
	}
	if got := len(l.keys(t, "/claims/netname/blue")); got != 1 {
		t.Fatalf("%d name claims for blue in etcd, want 1", got)
	}
}

// Containers on three hosts reach each other over VXLAN: TCP and UDP
// across every ordered pair, IPv4 and IPv6, the server seeing the
// client's own address.
func TestOverlayTraffic(t *testing.T) {
	t.Parallel()
	l := newLab(t, 3, testrig.ClusterOptions{})
	overlay(t, l.host(1), "ov", "10.91.0.0/24", "fd00:91::/64")
	var cs []*ctr
	for _, h := range l.Hosts {
		cs = append(cs, run(t, h, "ov", "c-"+h.ID))
	}
	for _, c := range cs {
		if !c.v4.IsValid() || !c.v6.IsValid() {
			t.Fatalf("%s: addresses %v %v, want both families", c.name, c.v4, c.v6)
		}
	}
	for _, a := range cs {
		for _, b := range cs {
			if a != b {
				reach(t, a, b)
			}
		}
	}
}

// Over an IPv6 underlay (each host's discovery address is its IPv6 one)
// both families cross hosts, the MTU is the underlay's minus 70, and the
// FDB entries point at the IPv6 VTEPs.
func TestOverlayOverIPv6Underlay(t *testing.T) {
	t.Parallel()
	l := newLab(t, 2, testrig.ClusterOptions{IPv6Underlay: true})
	overlay(t, l.host(1), "ov6", "10.99.0.0/24", "fd00:99::/64")
	a, b := run(t, l.host(1), "ov6", "a"), run(t, l.host(2), "ov6", "b")
	reach(t, a, b)
	reach(t, b, a)
	for _, c := range []*ctr{a, b} {
		if got := testrig.LinkMTU(t, c.nl, "eth0"); got != 1430 {
			t.Errorf("%s: eth0 MTU %d, want 1430", c.name, got)
		}
	}
	if err := sendDF(a, b, 1430-28); err != nil {
		t.Fatalf("a full-MTU datagram: %v", err)
	}
	expectPeers(t, l, a, b)
}

// MTU: the underlay's minus the VXLAN overhead (50 bytes over IPv4) inside
// every container, and a datagram of exactly that size with DF set gets
// across; a larger one is refused at the sender, not lost on the wire.
func TestOverlayMTU(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ underlay, want int }{{1500, 1450}, {1400, 1350}} {
		t.Run(fmt.Sprint(tc.underlay), func(t *testing.T) {
			t.Parallel()
			l := newLab(t, 2, testrig.ClusterOptions{UnderlayMTU: tc.underlay})
			overlay(t, l.host(1), "ov", "10.92.0.0/24", "")
			a, b := run(t, l.host(1), "ov", "a"), run(t, l.host(2), "ov", "b")
			for _, c := range []*ctr{a, b} {
				if got := testrig.LinkMTU(t, c.nl, "eth0"); got != tc.want {
					t.Errorf("%s on %s: eth0 MTU %d, want %d", c.name, c.h.ID, got, tc.want)
				}
			}
			// IPv4 (20) + UDP (8) headers fill the rest of the MTU.
			if err := sendDF(a, b, tc.want-28); err != nil {
				t.Fatalf("a full-MTU datagram: %v", err)
			}
			if err := sendDF(a, b, tc.want-27); err == nil {
				t.Fatal("a datagram one byte over the MTU was sent with DF set")
			}
		})
	}
}

// The endpoints of 3 hosts × 8 goroutines × 30 creates on one network get
// 720 different addresses: none twice in etcd, none twice among the
// endpoints nor in any controller's view of the cluster, and in the kernel
// the joined ones carry the address the store gave them, each different.
func TestConcurrentEndpointsNoDuplicateAddress(t *testing.T) {
	t.Parallel()
	const goroutines, per = 8, 30
	l := newLab(t, 3, testrig.ClusterOptions{})
	nw := overlay(t, l.host(1), "many", "10.93.0.0/22", "")
	var (
		mu  sync.Mutex
		eps = map[string]*libnetwork.Endpoint{} // address → endpoint
		dup []string
		wg  sync.WaitGroup
	)
	errs := make(chan error, len(l.Hosts)*goroutines)
	for _, h := range l.Hosts {
		n := netOn(t, h, "many")
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per {
					name := fmt.Sprintf("e-%d-%d-%d", h.Index, g, i)
					ep, err := n.CreateEndpoint(name)
					if err != nil {
						errs <- fmt.Errorf("%s: %s: %w", h.ID, name, err)
						return
					}
					ip := ep.Info().Iface().Address().IP.String()
					mu.Lock()
					if o := eps[ip]; o != nil {
						dup = append(dup, fmt.Sprintf("%s: %s and %s", ip, o.Name(), name))
					}
					eps[ip] = ep
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(dup) > 0 {
		t.Fatalf("addresses handed out twice: %v", dup)
	}
	if want := len(l.Hosts) * goroutines * per; len(eps) != want {
		t.Fatalf("%d endpoints, want %d", len(eps), want)
	}

	recs, err := l.store(t).Endpoints(t.Context(), nw.ID())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]string{}
	for _, r := range recs {
		for _, p := range r.Addrs {
			if o, ok := seen[p.Addr()]; ok {
				t.Errorf("etcd: %s on both %s and %s", p.Addr(), o, r.Name)
			}
			seen[p.Addr()] = r.Name
		}
	}
	if len(recs) != len(eps) {
		t.Fatalf("etcd holds %d endpoint records, want %d", len(recs), len(eps))
	}
	// One address claim per endpoint, plus the gateway's.
	if got := len(l.keys(t, "/nets/"+nw.ID()+"/addr/")); got != len(eps)+1 {
		t.Errorf("etcd holds %d address claims, want %d", got, len(eps)+1)
	}

	// Every controller's view: Endpoints lists its own host's, and
	// ClusterEndpoints all of them (once the watch delivered the others'),
	// each address once.
	for _, h := range l.Hosts {
		n := netOn(t, h, "many")
		if got, want := len(n.Endpoints()), goroutines*per; got != want {
			t.Errorf("%s: Endpoints lists %d, want its own %d", h.ID, got, want)
		}
		for _, ep := range n.Endpoints() {
			if !strings.HasPrefix(ep.Name(), fmt.Sprintf("e-%d-", h.Index)) {
				t.Errorf("%s: Endpoints lists %s of another host", h.ID, ep.Name())
			}
		}
		eventually(t, settle, h.ID+" sees every endpoint", func() error {
			all := n.ClusterEndpoints()
			if len(all) != len(eps) {
				return fmt.Errorf("ClusterEndpoints lists %d, want %d", len(all), len(eps))
			}
			seen := map[netip.Addr]string{}
			for _, e := range all {
				if want := fmt.Sprintf("host-%s", strings.Split(e.Name, "-")[1]); e.Host != want {
					return fmt.Errorf("%s is on %s, want %s", e.Name, e.Host, want)
				}
				for _, p := range e.Addresses {
					if o, ok := seen[p.Addr()]; ok {
						return fmt.Errorf("%s on both %s and %s", p.Addr(), o, e.Name)
					}
					seen[p.Addr()] = e.Name
				}
			}
			return nil
		})
	}

	// Join one endpoint of each goroutine: the kernel shows the store's
	// addresses, all different.
	inKernel := map[string]string{}
	for _, h := range l.Hosts {
		for g := range goroutines {
			name := fmt.Sprintf("e-%d-%d-0", h.Index, g)
			ep, err := netOn(t, h, "many").EndpointByName(name)
			if err != nil {
				t.Fatalf("%s: %v", h.ID, err)
			}
			sb := sandbox(t, h, name)
			if err := ep.Join(sb); err != nil {
				t.Fatalf("%s: joining %s: %v", h.ID, name, err)
			}
			_, nl := testrig.SandboxNS(t, sb)
			addrs := testrig.AddrsOf(t, nl, "eth0")
			if len(addrs) != 1 {
				t.Fatalf("%s: eth0 of %s has %v", h.ID, name, addrs)
			}
			ip, _, _ := strings.Cut(addrs[0], "/")
			if ip != ep.Info().Iface().Address().IP.String() {
				t.Errorf("%s: eth0 of %s has %s, the store gave %s", h.ID, name, ip, ep.Info().Iface().Address().IP)
			}
			if o, ok := inKernel[ip]; ok {
				t.Errorf("kernel: %s on both %s and %s", ip, o, name)
			}
			inKernel[ip] = name
		}
	}
}

// Names are unique cluster-wide: of three hosts creating a network of the
// same name at once exactly one wins, the others get NetworkNameError;
// likewise for an endpoint name on one network, the losers' error naming
// the network.
func TestNamesUniqueClusterWide(t *testing.T) {
	t.Parallel()
	l := newLab(t, 3, testrig.ClusterOptions{})
	won, errs := race(len(l.Hosts), func(i int) error {
		_, err := createOverlay(l.Hosts[i], "same", fmt.Sprintf("10.94.%d.0/24", i), "")
		return err
	})
	if won != 1 {
		t.Fatalf("%d hosts created network same, want 1 (errors: %v)", won, errs)
	}
	for _, err := range errs {
		var nne libnetwork.NetworkNameError
		if !errors.As(err, &nne) || !types.IsForbidden(err) {
			t.Errorf("losing create: %v (%T), want a Forbidden NetworkNameError", err, err)
		}
	}

	var nets []*libnetwork.Network
	for _, h := range l.Hosts {
		nets = append(nets, netOn(t, h, "same"))
	}
	won, errs = race(len(nets), func(i int) error {
		_, err := nets[i].CreateEndpoint("web")
		return err
	})
	if won != 1 {
		t.Fatalf("%d hosts created endpoint web, want 1 (errors: %v)", won, errs)
	}
	for _, err := range errs {
		if e := forbiddenSaying(err, "web", "same"); e != nil {
			t.Errorf("losing endpoint create: %v", e)
		}
	}
	// A loser may take the name once the winner's endpoint is gone.
	var winner *libnetwork.Endpoint
	for _, h := range l.Hosts {
		if ep, err := netOn(t, h, "same").EndpointByName("web"); err == nil {
			winner = ep
		}
	}
	if winner == nil {
		t.Fatal("no host lists endpoint web")
	}
	if err := winner.Delete(false); err != nil {
		t.Fatal(err)
	}
	for _, h := range l.Hosts {
		ep, err := netOn(t, h, "same").CreateEndpoint("web")
		if err != nil {
			t.Fatalf("%s: web after the first was deleted: %v", h.ID, err)
		}
		if err := ep.Delete(false); err != nil {
			t.Fatal(err)
		}
	}
}

// race runs f(0..n-1) at once and returns how many succeeded and the errors.
func race(n int, f func(i int) error) (int, []error) {
	var wg sync.WaitGroup
	res := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); <-start; res[i] = f(i) }()
	}
	close(start)
	wg.Wait()
	won := 0
	var errs []error
	for _, err := range res {
		if err == nil {
			won++
		} else {
			errs = append(errs, err)
		}
	}
	return won, errs
}

// Deleting a network that still has an endpoint on another host is
// Forbidden, naming that host (and, with the first gone, the next one);
// once the last is gone the delete goes through, the other hosts drop the
// network and etcd holds nothing of it.
func TestDeleteForbiddenWhileAnotherHostHasEndpoint(t *testing.T) {
	t.Parallel()
	l := newLab(t, 3, testrig.ClusterOptions{})
	nw := overlay(t, l.host(1), "busy", "10.95.0.0/24", "")
	c := run(t, l.host(2), "busy", "held")
	err := nw.Delete()
	if e := forbiddenSaying(err, l.host(2).ID); e != nil {
		t.Fatalf("delete with an endpoint on %s: %v", l.host(2).ID, e)
	}
	var aee *libnetwork.ActiveEndpointsError
	if !errors.As(err, &aee) {
		t.Errorf("delete with endpoints: %T, want *libnetwork.ActiveEndpointsError", err)
	}
	probe := run(t, l.host(3), "busy", "probe")
	reach(t, probe, c) // the refused delete changed nothing
	if _, err := l.host(3).Controller().NetworkByID(nw.ID()); err != nil {
		t.Fatalf("%s after the refused delete: %v", l.host(3).ID, err)
	}
	c.stop(t)
	if err := forbiddenSaying(nw.Delete(), l.host(3).ID); err != nil {
		t.Fatalf("delete with an endpoint on %s only: %v", l.host(3).ID, err)
	}
	probe.stop(t)
	if err := nw.Delete(); err != nil {
		t.Fatalf("delete after the last endpoint went: %v", err)
	}
	for _, h := range l.Hosts[1:] {
		eventually(t, settle, h.ID+" drops network busy", func() error {
			if _, err := h.Controller().NetworkByID(nw.ID()); !types.IsNotFound(err) {
				return fmt.Errorf("NetworkByID: %v", err)
			}
			if slices.ContainsFunc(h.Controller().Networks(), func(n *libnetwork.Network) bool { return n.ID() == nw.ID() }) {
				return fmt.Errorf("still listed")
			}
			return nil
		})
	}
	if keys := l.keys(t, nw.ID()); len(keys) != 0 {
		t.Fatalf("etcd still holds %v", keys)
	}
}

// The embedded resolver answers, in a container on one host, the names,
// aliases and PTRs of endpoints on other hosts of the networks it joined.
func TestDNSAcrossHosts(t *testing.T) {
	t.Parallel()
	l := newLab(t, 2, testrig.ClusterOptions{})
	overlay(t, l.host(1), "dnsov", "10.96.0.0/24", "fd00:96::/64")
	web := run(t, l.host(1), "dnsov", "web", libnetwork.CreateOptionMyAlias("frontend"))
	db := run(t, l.host(2), "dnsov", "db")
	eventually(t, settle, "db resolves web", func() error {
		_, err := lookup(db, "web", dns.TypeA, web.v4.String())
		return err
	})
	for _, q := range []struct {
		from  *ctr
		name  string
		qtype uint16
		want  string
	}{
		{db, "web", dns.TypeA, web.v4.String()},
		{db, "web", dns.TypeAAAA, web.v6.String()},
		{db, "frontend", dns.TypeA, web.v4.String()},
		{db, "web.dnsov", dns.TypeA, web.v4.String()},
		{web, "db", dns.TypeA, db.v4.String()},
		{web, reverse(t, db.v4), dns.TypePTR, "db.dnsov."},
		{db, reverse(t, web.v4), dns.TypePTR, "web.dnsov."},
		{db, reverse(t, web.v6), dns.TypePTR, "web.dnsov."},
	} {
		testrig.Expect(t, q.from.ns, "udp", q.name, q.qtype, q.want)
	}
	// A name goes with its endpoint on every host.
	web.stop(t)
	eventually(t, settle, "web gone from db's resolver", func() error {
		resp, err := testrig.Query(db.ns, "udp", "web", dns.TypeA)
		if err != nil {
			return err
		}
		if got := testrig.AnswerIPs(resp); slices.Contains(got, web.v4.String()) {
			return fmt.Errorf("web = %v", got)
		}
		return nil
	})
}

// lookup asks c's embedded resolver and compares the one answer.
func lookup(c *ctr, name string, qtype uint16, want string) (string, error) {
	resp, err := testrig.Query(c.ns, "udp", name, qtype)
	if err != nil {
		return "", err
	}
	got := testrig.AnswerIPs(resp)
	if strings.Join(got, ",") != want {
		return "", fmt.Errorf("%s %s = %v, want %s", dns.TypeToString[qtype], name, got, want)
	}
	return want, nil
}

func reverse(t *testing.T, a netip.Addr) string {
	t.Helper()
	return testrig.Must[string](t)(dns.ReverseAddr(a.String()))
}
