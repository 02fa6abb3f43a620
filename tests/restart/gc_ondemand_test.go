package restart

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/nftports"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// IDs no record has: what a crashed process (or a half-failed teardown)
// could have tagged its objects with.
const (
	strayNetID = "5ca1ab1e00000000000000000000000000000000000000000000000000000001"
	strayEpID  = "5ca1ab1e00000000000000000000000000000000000000000000000000000002"
)

// linkSnapshot lists the host namespace's links as "name index alias".
func linkSnapshot(t *testing.T, host *testutil.HostNS) []string {
	t.Helper()
	links, err := host.Netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		a := l.Attrs()
		out = append(out, fmt.Sprintf("%s %d %s", a.Name, a.Index, a.Alias))
	}
	slices.Sort(out)
	return out
}

// ourRules lists the rules and port map elements carrying a cnm- comment.
func ourRules(t *testing.T, host *testutil.HostNS) []string {
	t.Helper()
	out := testrig.RulesNaming(t, host.NS, "cnm-")
	slices.Sort(out)
	return out
}

// addLink creates l in the host namespace with alias and group (0: none).
func addLink(t *testing.T, host *testutil.HostNS, l netlink.Link, alias string, group uint32) {
	t.Helper()
	if err := host.Netlink.LinkAdd(l); err != nil {
		t.Fatalf("adding %s: %v", l.Attrs().Name, err)
	}
	if alias != "" {
		if err := host.Netlink.LinkSetAlias(l, alias); err != nil {
			t.Fatal(err)
		}
	}
	if group != 0 {
		if err := host.Netlink.LinkSetGroup(l, int(group)); err != nil {
			t.Fatal(err)
		}
	}
}

// On-demand garbage collection on a controller in use: leftovers that look
// like the library's own but that no record accounts for go, and nothing
// live is touched (links, rules, port map elements, namespaces, traffic).
func TestCollectGarbageOnLiveController(t *testing.T) {
	c, host := testrig.NewPrivController(t)
	n := testrig.BridgeNet(t, c, "live", "cnmlive0", "10.94.0.0/24")
	sbA := testrig.KernelSandbox(t, c, "gc-a")
	epA := testrig.Joined(t, n, sbA, "a")
	sbB := testrig.KernelSandbox(t, c, "gc-b", libnetwork.OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 18080}}))
	epB := testrig.Joined(t, n, sbB, "b")
	nsA, _ := testrig.SandboxNS(t, sbA)
	nsB, _ := testrig.SandboxNS(t, sbB)
	ipB := testrig.HostIP(epB.Info().Iface().Address())
	testrig.Serve(t, nsB, "tcp", ipB+":80", "b")
	testrig.MustFetch(t, nsA, "tcp", ipB+":80", "b")
	testrig.MustFetch(t, host.NS, "tcp", "127.0.0.1:18080", "b")

	linksBefore, rulesBefore := linkSnapshot(t, host), ourRules(t, host)
	netnsDir := filepath.Join(c.Config().ExecRoot, "netns")
	keysBefore := dirNames(t, netnsDir)
	if len(keysBefore) != 2 {
		t.Fatalf("namespace files %v, want the two sandboxes'", keysBefore)
	}

	// The leftovers. Links: a bridge tagged with a network nobody has, an
	// untagged bridge in the driver's bridge group (cut off before its
	// tag), a veth in the reap group tagged with an endpoint nobody has,
	// and a retired veth (reap group) tagged with live endpoint a.
	addLink(t, host, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cnmstray0"}}, testrig.NetTag+strayNetID, 0)
	addLink(t, host, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cnmstray1"}}, "", bridge.BridgeGroup)
	addLink(t, host, &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "cnmstrayv0"}, PeerName: "cnmstrayv1"}, testrig.EpTag+strayEpID, bridge.ReapGroup)
	addLink(t, host, &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "cnmstrayv2"}, PeerName: "cnmstrayv3"}, testrig.EpTag+epA.ID(), bridge.ReapGroup)
	// A namespace mount and a files directory with no sandbox.
	strayKey := filepath.Join(netnsDir, "5ca1ab1e0001")
	ns, err := netnsutil.New(strayKey)
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	t.Cleanup(func() { _ = netnsutil.Remove(strayKey) }) // in case the test fails first
	strayFiles := filepath.Join(c.Config().ExecRoot, "files", strayNetID)
	if err := os.MkdirAll(strayFiles, 0o755); err != nil {
		t.Fatal(err)
	}
	// Rules of a network and an endpoint nobody has, both families.
	netC, epC := firewall.NetworkOwner(strayNetID), firewall.EndpointOwner(strayEpID)
	for _, args := range [][]string{
		{"iptables", "-w", "-t", "filter", "-A", "FORWARD", "-i", "cnmstray0", "-o", "cnmstray0", "-m", "comment", "--comment", netC, "-j", "ACCEPT"},
		{"iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", "10.95.0.0/24", "!", "-o", "cnmstray0", "-m", "comment", "--comment", netC, "-j", "MASQUERADE"},
		{"iptables", "-w", "-t", "filter", "-A", "DOCKER", "-d", "10.95.0.2/32", "!", "-i", "cnmstray0", "-o", "cnmstray0", "-p", "tcp", "-m", "tcp", "--dport", "80", "-m", "comment", "--comment", epC, "-j", "ACCEPT"},
		{"ip6tables", "-w", "-t", "filter", "-A", "FORWARD", "-i", "cnmstray0", "-o", "cnmstray0", "-m", "comment", "--comment", netC, "-j", "ACCEPT"},
	} {
		testrig.InNS(t, host.NS, args[0], args[1:]...)
	}
	// A port map element of an endpoint nobody has, forwarding host port
	// 18081 to live container b: effective until collected.
	maps := nftports.New(host.NS)
	defer maps.Close()
	stray := firewall.PortElem{Proto: types.TCP, HostPort: 18081, ContainerIP: netip.MustParseAddr(ipB), ContainerPort: 80, Owner: epC}
	if err := maps.Update(firewall.IPv4, []firewall.PortElem{stray}, nil); err != nil {
		t.Fatalf("planting a port map element: %v", err)
	}
	testrig.MustFetch(t, host.NS, "tcp", "127.0.0.1:18081", "b")
	if got := ourRules(t, host); len(got) != len(rulesBefore)+5 {
		t.Fatalf("planted 5 rules and elements, the listing grew by %d: the checks below would prove nothing", len(got)-len(rulesBefore))
	}

	if err := c.CollectGarbage(); err != nil {
		t.Fatalf("CollectGarbage: %v", err)
	}

	// Exactly the leftovers are gone (links compared with their indexes:
	// nothing live was re-created either).
	if got := linkSnapshot(t, host); !slices.Equal(got, linksBefore) {
		t.Errorf("host links after GC:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(linksBefore, "\n"))
	}
	if got := ourRules(t, host); !slices.Equal(got, rulesBefore) {
		t.Errorf("rules and elements after GC:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(rulesBefore, "\n"))
	}
	if got := dirNames(t, netnsDir); !slices.Equal(got, keysBefore) {
		t.Errorf("namespace files after GC: %v, want %v", got, keysBefore)
	}
	if _, err := os.Stat(strayFiles); !os.IsNotExist(err) {
		t.Errorf("files directory without a sandbox left: %v", err)
	}
	for _, sb := range []*libnetwork.Sandbox{sbA, sbB} {
		var st unix.Statfs_t
		if err := unix.Statfs(sb.Key(), &st); err != nil || st.Type != unix.NSFS_MAGIC {
			t.Errorf("key %s of live sandbox %s is no longer a mounted namespace (%v)", sb.Key(), sb.ContainerID(), err)
		}
	}
	// Traffic still flows: container to container, and through the live
	// published port; the collected element forwards nothing any more.
	testrig.MustFetch(t, nsA, "tcp", ipB+":80", "b")
	testrig.MustFetch(t, host.NS, "tcp", "127.0.0.1:18080", "b")
	testrig.MustNotFetch(t, host.NS, "tcp", "127.0.0.1:18081")

	// A second run finds nothing and changes nothing.
	if err := c.CollectGarbage(); err != nil {
		t.Fatalf("second CollectGarbage: %v", err)
	}
	if got := ourRules(t, host); !slices.Equal(got, rulesBefore) {
		t.Errorf("a second GC changed the rules:\n%s", strings.Join(got, "\n"))
	}
	if got := linkSnapshot(t, host); !slices.Equal(got, linksBefore) {
		t.Errorf("a second GC changed the links:\n%s", strings.Join(got, "\n"))
	}
}

// dirNames lists the entries of dir, sorted (none when it does not exist).
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
