package restart

import (
	"fmt"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

// The host reaches a container (its own connections to a published port
// included) through the permanent neighbour entry the driver keeps on the
// bridge: the ports proxy ARP and are not flooded, so without that entry
// the host's ARP requests never reach the container and its established
// flows stall until the entry is back. A restart that keeps the sandbox
// must therefore never delete the entry, not even briefly: any change of
// the bridge's hardware address (setting it to the value it already has
// included) makes the kernel flush every neighbour of the bridge.
func TestRestartKeepsHostNeighbourOfKeptSandbox(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.BridgeNet(t, c, "net", "cnmnbr0", "10.94.0.0/24")
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("web"))
	ports := []types.PortBinding{{Proto: types.TCP, Port: 80}}
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("web", libnetwork.OptionPortMapping(ports)))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	ip := ep.Info().Iface().Address().IP
	br, err := r.Host.Netlink.LinkByName("cnmnbr0")
	if err != nil {
		t.Fatal(err)
	}
	permanent := func() bool {
		nbs, err := r.Host.Netlink.NeighList(br.Attrs().Index, unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		for _, nb := range nbs {
			if nb.IP.Equal(ip) && nb.State&netlink.NUD_PERMANENT != 0 {
				return true
			}
		}
		return false
	}
	if !permanent() {
		t.Fatalf("no permanent neighbour entry for %s on the bridge: the check below would prove nothing", ip)
	}
	ns, _ := testrig.SandboxNS(t, sb)
	testrig.Serve(t, ns, "tcp", ip.String()+":80", "web")
	addr := fmt.Sprintf("127.0.0.1:%d", testrig.PublishedPort(t, ep))
	testrig.MustFetch(t, r.Host.NS, "tcp", addr, "web")

	updates := make(chan netlink.NeighUpdate, 4096)
	done := make(chan struct{})
	h := r.Host.Handle()
	if err := netlink.NeighSubscribeWithOptions(updates, done, netlink.NeighSubscribeOptions{Namespace: &h}); err != nil {
		t.Fatal(err)
	}
	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{
		libnetwork.OptionPortMapping(ports)}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	// A marker change after the restart: once it arrives, every event of
	// the restart has been read.
	marker := &netlink.Neigh{LinkIndex: br.Attrs().Index, IP: []byte{10, 94, 0, 250},
		HardwareAddr: []byte{2, 0, 0, 0, 0, 1}, State: netlink.NUD_PERMANENT, Family: unix.AF_INET}
	if err := r.Host.Netlink.NeighAdd(marker); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Host.Netlink.NeighDel(marker) }()
	var deleted int
	timeout := time.After(30 * time.Second)
read:
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				t.Fatal("neighbour subscription ended before the marker arrived")
			}
			if u.IP.Equal(marker.IP) {
				break read
			}
			if u.Type == unix.RTM_DELNEIGH && u.IP.Equal(ip) {
				deleted++
			}
		case <-timeout:
			t.Fatal("the marker neighbour's event never arrived")
		}
	}
	close(done)
	if deleted > 0 {
		t.Errorf("the restart deleted the host's neighbour entry of kept container %s %d times: its flows stall until it is back", ip, deleted)
	}
	if !permanent() {
		t.Errorf("no permanent neighbour entry for %s on the bridge after the restart", ip)
	}
	testrig.MustFetch(t, r.Host.NS, "tcp", addr, "web")
}
