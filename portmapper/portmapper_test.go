package portmapper_test

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/fakeipt"
	"github.com/opencnm/libnetwork/firewall/fakenft"
	"github.com/opencnm/libnetwork/portmapper"
	"github.com/opencnm/libnetwork/types"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// dump renders the tables and the port maps port mapping touches, for
// golden comparison.
func dump(t testing.TB, r firewall.Runner, m firewall.PortMaps, fams ...firewall.Family) string {
	t.Helper()
	var b strings.Builder
	for _, fam := range fams {
		for _, table := range firewall.Tables() {
			out, err := r.List(fam, table)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "# %s %s\n%s", fam, table, out)
		}
	}
	for _, fam := range fams {
		es, err := m.List(fam)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "# %s port maps\n", fam)
		for _, e := range es {
			b.WriteString(e.String() + "\n")
		}
	}
	return b.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

type rig struct {
	pm   *portmapper.PortMapper
	fw   *firewall.Firewall
	ipt  *fakeipt.Fake
	maps *fakenft.Fake
	res  *fakeReserver
	ct   *fakeConntrack
	base string // listing after Setup, before any port
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{ipt: fakeipt.New(), maps: fakenft.New(), res: newFakeReserver(), ct: &fakeConntrack{}}
	r.fw = firewall.New(r.ipt, r.maps, true)
	if err := r.fw.Setup(); err != nil {
		t.Fatal(err)
	}
	r.base = dump(t, r.ipt, r.maps, firewall.IPv4, firewall.IPv6)
	r.pm = portmapper.New(r.res, r.fw, r.ct)
	return r
}

var ep1 = portmapper.Endpoint{ID: "ep1", Bridge: "br-n1", IPv4: net.ParseIP("172.18.0.2").To4(), IPv6: net.ParseIP("fd00:1::2")}

// goldenBindings cover both families, one address, a range of protocols.
var goldenBindings = []types.PortBinding{
	{Proto: types.TCP, Port: 80, HostPort: 8080},                                    // v4 + v6
	{Proto: types.UDP, Port: 53, HostPort: 5353, HostIP: net.ParseIP("127.0.0.1")},  // v4 only, one address
	{Proto: types.SCTP, Port: 9, HostPort: 9999, HostIP: net.ParseIP("0.0.0.0")},    // v4 + v6
	{Proto: types.TCP, Port: 80, HostPort: 8081, HostIP: net.ParseIP("fd00:ff::1")}, // v6 only
}

func TestMapGoldenAndUnmap(t *testing.T) {
	r := newRig(t)
	n := r.ipt.Restores()
	got, err := r.pm.MapPorts(ep1, goldenBindings)
	if err != nil {
		t.Fatal(err)
	}
	if d := r.ipt.Restores() - n; d != 2 {
		t.Errorf("MapPorts ran %d restores, want one per family", d)
	}
	var ops []string
	for _, b := range got {
		ops = append(ops, b.String())
	}
	want := "tcp/172.18.0.2:80/0.0.0.0:8080 tcp/[fd00:1::2]:80/[::]:8080 udp/172.18.0.2:53/127.0.0.1:5353 " +
		"sctp/172.18.0.2:9/0.0.0.0:9999 sctp/[fd00:1::2]:9/[::]:9999 tcp/[fd00:1::2]:80/[fd00:ff::1]:8081"
	if strings.Join(ops, " ") != want {
		t.Errorf("operational bindings:\n%s\nwant\n%s", strings.Join(ops, " "), want)
	}
	if r.res.count() != 6 {
		t.Errorf("%d ports held, want 6", r.res.count())
	}
	golden(t, "map", dump(t, r.ipt, r.maps, firewall.IPv4, firewall.IPv6))
	if m := r.pm.Mapped("ep1"); len(m) != 6 {
		t.Errorf("Mapped = %v", m)
	}

	if err := r.pm.UnmapPorts("ep1"); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, r.ipt, r.maps, firewall.IPv4, firewall.IPv6); got != r.base {
		t.Errorf("unmap left rules:\n%s", got)
	}
	if r.res.count() != 0 {
		t.Errorf("%d ports still held", r.res.count())
	}
	// The UDP binding's flows are flushed at map (by the worker, hence
	// the Flush) and at unmap.
	if err := r.pm.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(r.ct.flows) != 2 || r.ct.flows[1].HostPort != 5353 || r.ct.flows[1].Proto != types.UDP || !r.ct.flows[1].HostIP.Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("conntrack flushes: %+v", r.ct.flows)
	}
	if err := r.pm.UnmapPorts("ep1"); err != nil {
		t.Errorf("second unmap: %v", err)
	}
}

func TestConflicts(t *testing.T) {
	r := newRig(t)
	if _, err := r.pm.MapPorts(ep1, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}); err != nil {
		t.Fatal(err)
	}
	ep2 := portmapper.Endpoint{ID: "ep2", Bridge: "br-n1", IPv4: net.ParseIP("172.18.0.3")}
	before := dump(t, r.ipt, r.maps, firewall.IPv4, firewall.IPv6)
	held := r.res.count()

	// Same port (also on one address: 0.0.0.0 holds them all) -> Forbidden,
	// and the second binding, taken first, is released again.
	for _, hip := range []string{"", "127.0.0.1"} {
		_, err := r.pm.MapPorts(ep2, []types.PortBinding{
			{Proto: types.TCP, Port: 81, HostPort: 9090},
			{Proto: types.TCP, Port: 80, HostPort: 8080, HostIP: net.ParseIP(hip)},
		})
		if !types.IsForbidden(err) || !strings.Contains(err.Error(), ":8080 failed: port is already allocated") {
			t.Fatalf("second map of 8080 (host ip %q): %v", hip, err)
		}
	}
	if r.res.count() != held || dump(t, r.ipt, r.maps, firewall.IPv4, firewall.IPv6) != before {
		t.Error("failed map left ports or rules behind")
	}
	// Other protocol, same port: fine.
	if _, err := r.pm.MapPorts(ep2, []types.PortBinding{{Proto: types.UDP, Port: 80, HostPort: 8080}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.pm.MapPorts(ep2, nil); !types.IsForbidden(err) {
		t.Errorf("mapping an endpoint twice: %v", err)
	}
}

func TestRangeAndEphemeral(t *testing.T) {
	r := newRig(t)
	if _, err := r.res.Reserve(types.TCP, net.IPv4zero, 7000); err != nil { // a host process
		t.Fatal(err)
	}
	got, err := r.pm.MapPorts(ep1, []types.PortBinding{
		{Proto: types.TCP, Port: 80, HostPort: 7000, HostPortEnd: 7002},
		{Proto: types.TCP, Port: 81, HostPort: 7000, HostPortEnd: 7002},
		{Proto: types.TCP, Port: 82},
		{Proto: types.TCP, Port: 83},
	})
	if err != nil {
		t.Fatal(err)
	}
	ports := []uint16{}
	for _, b := range got {
		ports = append(ports, b.HostPort)
	}
	// Each binding: v4 and v6 on the same port.
	if fmt.Sprint(ports) != "[7001 7001 7002 7002 40000 40000 40001 40001]" {
		t.Errorf("host ports %v", ports)
	}
	ep2 := portmapper.Endpoint{ID: "ep2", Bridge: "br-n1", IPv4: net.ParseIP("172.18.0.3")}
	_, err = r.pm.MapPorts(ep2, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 7000, HostPortEnd: 7002}})
	if !types.IsForbidden(err) {
		t.Errorf("exhausted range: %v", err)
	}
	// The ephemeral cursor moves on: a released port is not handed out at once.
	if err := r.pm.UnmapPorts("ep1"); err != nil {
		t.Fatal(err)
	}
	got, err = r.pm.MapPorts(ep2, []types.PortBinding{{Proto: types.TCP, Port: 80}})
	if err != nil || got[0].HostPort != 40002 {
		t.Errorf("ephemeral after unmap: %v %v", got, err)
	}
	// Exhaust the ephemeral range (10 ports, 1 taken).
	var bs []types.PortBinding
	for i := 0; i < 10; i++ {
		bs = append(bs, types.PortBinding{Proto: types.TCP, Port: uint16(100 + i)})
	}
	ep3 := portmapper.Endpoint{ID: "ep3", Bridge: "br-n1", IPv4: net.ParseIP("172.18.0.4")}
	if _, err := r.pm.MapPorts(ep3, bs); !types.IsForbidden(err) {
		t.Errorf("exhausted ephemeral range: %v", err)
	}
	if _, err := r.pm.MapPorts(ep3, bs[:9]); err != nil {
		t.Errorf("nine ports of nine free: %v", err)
	}
}

func TestBadBindings(t *testing.T) {
	r := newRig(t)
	v4only := portmapper.Endpoint{ID: "x", Bridge: "br", IPv4: net.ParseIP("10.0.0.2")}
	for _, b := range []types.PortBinding{
		{Proto: types.ICMP, Port: 80},
		{Proto: types.TCP, Port: 0, HostPort: 80},
		{Proto: types.TCP, Port: 80, HostPort: 90, HostPortEnd: 85},
		{Proto: types.TCP, Port: 80, HostPortEnd: 85},
		{Proto: types.TCP, Port: 80, HostIP: net.ParseIP("::1")},
	} {
		if _, err := r.pm.MapPorts(v4only, []types.PortBinding{b}); !types.IsBadRequest(err) {
			t.Errorf("MapPorts(%s) = %v, want BadRequest", b, err)
		}
	}
	// ::1 is refused even for an endpoint with IPv6 (see expand), also
	// next to a good binding, which is then not published either.
	loop := []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}, {Proto: types.TCP, Port: 81, HostIP: net.ParseIP("::1"), HostPort: 8081}}
	if _, err := r.pm.MapPorts(ep1, loop); !types.IsBadRequest(err) || !strings.Contains(err.Error(), "IPv6 loopback") {
		t.Errorf("MapPorts(%v) = %v, want BadRequest naming the IPv6 loopback", loop, err)
	}
	if got := dump(t, r.ipt, r.maps, firewall.IPv4, firewall.IPv6); got != r.base {
		t.Errorf("refused bindings left rules or elements:\n%s", got)
	}
	if r.res.count() != 0 {
		t.Error("bad input reserved ports")
	}
}

// A firewall failure after the ports were taken releases them all.
func TestFirewallFailureReleases(t *testing.T) {
	r := newRig(t)
	boom := errors.New("injected")
	r.maps.FailUpdate(func(fam firewall.Family, add, del []firewall.PortElem) error {
		if fam == firewall.IPv6 && len(add) > 0 {
			return boom // after the IPv4 elements went in
		}
		return nil
	})
	_, err := r.pm.MapPorts(ep1, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}})
	if !errors.Is(err, boom) {
		t.Fatalf("MapPorts = %v, want the injected error", err)
	}
	r.maps.FailUpdate(nil)
	if r.res.count() != 0 {
		t.Errorf("%d ports still held", r.res.count())
	}
	if got := dump(t, r.ipt, r.maps, firewall.IPv4, firewall.IPv6); got != r.base {
		t.Errorf("failed map left rules:\n%s", got)
	}
	if _, err := r.pm.MapPorts(ep1, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}); err != nil {
		t.Fatalf("map after the failure: %v", err)
	}
}
