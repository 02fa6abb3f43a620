package scale

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

// fullBridge is one bridge network filled to the kernel's port limit.
type fullBridge struct {
	c    *libnetwork.Controller
	nw   *libnetwork.Network
	eps  []*libnetwork.Endpoint
	sbs  []*libnetwork.Sandbox
	ips  []string // IPv4 address per container
	ip6s []string // IPv6 address per container
	host *netlink.Handle
	hns  *netnsutil.NS
}

// fillBridge makes n containers on one new bridge network with the
// library's own API, the way an embedder would.
func fillBridge(t *testing.T, n int, name, brName, v4, v6 string) *fullBridge {
	t.Helper()
	c, host := testrig.NewPrivController(t)
	nw := testrig.DualStackNet(t, c, name, brName, v4, v6)
	f := &fullBridge{c: c, nw: nw, host: host.Netlink, hns: host.NS}
	start := time.Now()
	for i := 0; i < n; i++ {
		ep, err := nw.CreateEndpoint(fmt.Sprintf("c%d", i))
		if err != nil {
			t.Fatalf("container %d: %v", i, err)
		}
		sb, err := c.NewSandbox(fmt.Sprintf("c%d", i))
		if err != nil {
			t.Fatalf("container %d: %v", i, err)
		}
		if err := ep.Join(sb); err != nil {
			t.Fatalf("container %d: joining: %v", i, err)
		}
		f.eps = append(f.eps, ep)
		f.sbs = append(f.sbs, sb)
		f.ips = append(f.ips, testrig.HostIP(ep.Info().Iface().Address()))
		f.ip6s = append(f.ip6s, testrig.HostIP(ep.Info().Iface().AddressIPv6()))
	}
	t.Logf("%d containers on one bridge in %v", n, time.Since(start).Round(time.Millisecond))
	return f
}

// TestBridgeAtPortLimit fills one dual-stack bridge to the 1,023 ports
// the kernel allows and checks, over IPv4 and IPv6, that the first, a
// middle and the last container reach the gateway (ping and TCP), the host
// and each other, also once their neighbour entries have expired; that
// the 1,024th join is Forbidden and leaves nothing behind; and that a port
// freed by Leave, by deleting a sandbox or by deleting an endpoint is
// usable by the very next join.
func TestBridgeAtPortLimit(t *testing.T) {
	const gw, gw6 = "10.210.0.1", "fd17:210::1"
	f := fillBridge(t, bridge.MaxBridgePorts, "full", "brfull", "10.210.0.0/21", "fd17:210::/64")
	hostNS := f.hns
	testrig.Serve(t, hostNS, "tcp", net.JoinHostPort(gw, "7000"), "echo")
	testrig.Serve(t, hostNS, "tcp", net.JoinHostPort(gw6, "7000"), "echo")

	probes := []int{0, bridge.MaxBridgePorts / 2, bridge.MaxBridgePorts - 1}
	nss := map[int]*netnsutil.NS{}
	hs := map[int]*netlink.Handle{}
	for _, i := range probes {
		nss[i], hs[i] = testrig.SandboxNS(t, f.sbs[i])
		testrig.Serve(t, nss[i], "tcp", net.JoinHostPort(f.ips[i], "7001"), "echo")
		testrig.Serve(t, nss[i], "tcp", net.JoinHostPort(f.ip6s[i], "7001"), "echo")
	}
	// from reports whether an echo reply came from ip.
	from := func(reply, ip string) bool { return strings.HasPrefix(reply, "echo "+net.JoinHostPort(ip, "")) }
	reach := func(round string) {
		t.Helper()
		for _, fam := range []struct {
			name string
			gw   string
			ips  []string
		}{{"ipv4", gw, f.ips}, {"ipv6", gw6, f.ip6s}} {
			for k, i := range probes {
				peer := probes[(k+1)%len(probes)]
				me, them := fam.ips[i], fam.ips[peer]
				if err := pingFrom(nss[i], fam.gw, 5*time.Second); err != nil {
					t.Errorf("%s %s: container %d pinging the gateway: %v", round, fam.name, i, err)
				}
				if reply, err := testrig.FetchWithin(nss[i], "tcp", net.JoinHostPort(fam.gw, "7000"), 3*time.Second); err != nil || !from(reply, me) {
					t.Errorf("%s %s: container %d to the host over TCP: %q, %v", round, fam.name, i, reply, err)
				}
				if err := pingFrom(nss[i], them, 5*time.Second); err != nil {
					t.Errorf("%s %s: container %d pinging container %d: %v", round, fam.name, i, peer, err)
				}
				if reply, err := testrig.FetchWithin(nss[i], "tcp", net.JoinHostPort(them, "7001"), 3*time.Second); err != nil || !from(reply, me) {
					t.Errorf("%s %s: container %d to container %d over TCP: %q, %v", round, fam.name, i, peer, reply, err)
				}
				if reply, err := testrig.FetchWithin(hostNS, "tcp", net.JoinHostPort(me, "7001"), 3*time.Second); err != nil || !from(reply, fam.gw) {
					t.Errorf("%s %s: host to container %d over TCP: %q, %v", round, fam.name, i, reply, err)
				}
			}
		}
	}
	reach("fresh")
	for _, i := range probes {
		expireNeighbours(t, hs[i])
	}
	expireNeighbours(t, f.host)
	reach("after neighbour expiry")
	if t.Failed() {
		return
	}

	// One too many: Forbidden, naming the network and the limit, and no
	// veth made for it.
	extra := testrig.Must[*libnetwork.Endpoint](t)(f.nw.CreateEndpoint("extra"))
	extraSb := testrig.Must[*libnetwork.Sandbox](t)(f.c.NewSandbox("extra"))
	before := len(testrig.LinkNames(t, f.host))
	err := extra.Join(extraSb)
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "full") || !strings.Contains(err.Error(), fmt.Sprint(bridge.MaxBridgePorts)) {
		t.Fatalf("join of the 1,024th endpoint: %v, want Forbidden naming network full and the limit %d", err, bridge.MaxBridgePorts)
	}
	if after := len(testrig.LinkNames(t, f.host)); after != before {
		t.Errorf("the refused join changed the host's links: %d, then %d", before, after)
	}
	_, sbH := testrig.SandboxNS(t, extraSb)
	if names := testrig.LinkNames(t, sbH); len(names) != 1 {
		t.Errorf("the refused join left links in its sandbox: %v", names)
	}

	// A Leave frees a port for the very next join.
	if err := f.eps[1].Leave(f.sbs[1]); err != nil {
		t.Fatal(err)
	}
	if err := extra.Join(extraSb); err != nil {
		t.Fatalf("join right after a leave at the limit: %v", err)
	}
	// So does deleting a joined container's sandbox (which deletes its
	// endpoint too).
	if err := f.sbs[2].Delete(); err != nil {
		t.Fatal(err)
	}
	if err := f.eps[1].Join(f.sbs[1]); err != nil {
		t.Fatalf("join right after a sandbox delete at the limit: %v", err)
	}
	// And the newcomer reaches its gateway too.
	ens, _ := testrig.SandboxNS(t, extraSb)
	if err := pingFrom(ens, gw, 5*time.Second); err != nil {
		t.Errorf("the endpoint that took a freed port pinging the gateway: %v", err)
	}
	// And so does deleting a joined endpoint outright.
	if err := f.eps[3].Delete(true); err != nil {
		t.Fatal(err)
	}
	extra2 := testrig.Must[*libnetwork.Endpoint](t)(f.nw.CreateEndpoint("extra2"))
	if err := extra2.Join(testrig.Must[*libnetwork.Sandbox](t)(f.c.NewSandbox("extra2"))); err != nil {
		t.Fatalf("join right after an endpoint delete at the limit: %v", err)
	}
}
