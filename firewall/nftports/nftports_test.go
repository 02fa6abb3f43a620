package nftports_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/nftports"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

var (
	lo   = netip.MustParseAddr("127.0.0.1")
	lo2  = netip.MustParseAddr("127.0.0.2")
	own6 = netip.MustParseAddr("fd00:cafe::1") // an address of the host's own
)

func elem(proto types.Protocol, host netip.Addr, hport uint16, ctr netip.Addr, cport uint16) firewall.PortElem {
	return firewall.PortElem{Proto: proto, HostIP: host, HostPort: hport, ContainerIP: ctr, ContainerPort: cport, Owner: "cnm-ep-test"}
}

func newMaps(t testing.TB, ns *testutil.HostNS) *nftports.Maps {
	t.Helper()
	m := nftports.New(ns.NS)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// Elements written are read back as written (owner comment included), by
// the same process and by a new one that adopts the table; the table is
// created once and kept; Remove deletes it and a second Remove is fine.
func TestMapsRoundTrip(t *testing.T) {
	ns := testutil.NewHostNS(t)
	m := newMaps(t, ns)
	want := map[firewall.Family][]firewall.PortElem{
		firewall.IPv4: {
			elem(types.TCP, netip.Addr{}, 8080, netip.MustParseAddr("10.0.0.2"), 80),
			elem(types.UDP, netip.Addr{}, 5353, netip.MustParseAddr("10.0.0.2"), 53),
			elem(types.TCP, netip.MustParseAddr("192.0.2.1"), 8083, netip.MustParseAddr("10.0.0.3"), 83),
		},
		firewall.IPv6: {
			elem(types.TCP, netip.Addr{}, 8080, netip.MustParseAddr("fd00::2"), 80),
			elem(types.SCTP, netip.MustParseAddr("2001:db8::1"), 9000, netip.MustParseAddr("fd00::3"), 90),
		},
	}
	for fam, es := range want {
		if got, err := m.Ensure(fam); err != nil || len(got) != 0 {
			t.Fatalf("%s: Ensure on a fresh namespace: %v, %v", fam, got, err)
		}
		if err := m.Update(fam, es, nil); err != nil {
			t.Fatalf("%s: Update: %v", fam, err)
		}
		firewall.SortElems(es)
		again := newMaps(t, ns)
		got, err := again.Ensure(fam)
		if err != nil || !reflect.DeepEqual(got, es) {
			t.Fatalf("%s: adopting:\n got %v, %v\nwant %v", fam, got, err, es)
		}
		if err := m.Update(fam, nil, es[:1]); err != nil {
			t.Fatalf("%s: deleting: %v", fam, err)
		}
		if got, err := m.List(fam); err != nil || !reflect.DeepEqual(got, es[1:]) {
			t.Fatalf("%s: after deleting one: %v, %v", fam, got, err)
		}
		if err := m.Update(fam, nil, es[:1]); err == nil {
			t.Fatalf("%s: deleting a missing element succeeded", fam)
		}
		if got, err := m.List(fam); err != nil || !reflect.DeepEqual(got, es[1:]) {
			t.Fatalf("%s: a failed update changed the maps: %v, %v", fam, got, err)
		}
	}
	var out []byte
	if err := ns.Do(func() (err error) {
		out, err = exec.Command("nft", "list", "table", "ip", nftports.Table).CombinedOutput()
		return err
	}); err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	if !strings.Contains(string(out), `192.0.2.1 . tcp . 8083 comment "cnm-ep-test" : 10.0.0.3 . 83`) {
		t.Errorf("nft does not show the element as expected:\n%s", out)
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		for i := 0; i < 2; i++ {
			if err := m.Remove(fam); err != nil {
				t.Fatalf("%s: Remove #%d: %v", fam, i+1, err)
			}
		}
		if got, err := m.List(fam); err != nil || len(got) != 0 {
			t.Fatalf("%s: after Remove: %v, %v", fam, got, err)
		}
	}
}

// The chains forward: a port on every address answers on the host's own
// addresses and IPv4 loopback (the OUTPUT hook), a port bound to one
// address only there. [::1] is refused at once (see rules.go), even where
// something listens on it.
func TestMapsForward(t *testing.T) {
	ns := testutil.NewHostNS(t)
	m := newMaps(t, ns)
	loLink, _ := ns.Netlink.LinkByName("lo")
	addr6, _ := netlink.ParseAddr(own6.String() + "/128")
	addr6.Flags = unix.IFA_F_NODAD
	if err := ns.Netlink.AddrAdd(loLink, addr6); err != nil {
		t.Fatal(err)
	}
	// Even without DAD the address is tentative (dropping what is sent
	// to it) until the kernel's address work has run.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		as, err := ns.Netlink.AddrList(loLink, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		settled := false
		for _, a := range as {
			settled = settled || a.IP.Equal(own6.AsSlice()) && a.Flags&unix.IFA_F_TENTATIVE == 0
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still tentative: %v", own6, as)
		}
	}
	var l4, l6 net.Listener
	if err := ns.Do(func() (err error) {
		if l4, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		l6, err = net.Listen("tcp6", "[::]:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l4.Close()
	defer l6.Close()
	go accept(l4)
	go accept(l6)
	p4 := uint16(l4.Addr().(*net.TCPAddr).Port)
	p6 := uint16(l6.Addr().(*net.TCPAddr).Port)
	for fam, es := range map[firewall.Family][]firewall.PortElem{
		firewall.IPv4: {elem(types.TCP, netip.Addr{}, 18080, lo, p4), elem(types.TCP, lo2, 18083, lo, p4)},
		firewall.IPv6: {elem(types.TCP, netip.Addr{}, 18080, own6, p6)},
	} {
		if _, err := m.Ensure(fam); err != nil {
			t.Fatal(err)
		}
		if err := m.Update(fam, es, nil); err != nil {
			t.Fatal(err)
		}
	}
	dial := func(addr string) error {
		return ns.Do(func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	// The first packets to a just-added IPv6 address can be lost (seen
	// with no DNAT at all), so the address is reached directly first.
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := dial(fmt.Sprintf("[%s]:%d", own6, p6))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("[%s]:%d directly: %v", own6, p6, err)
		}
	}
	for _, a := range []string{"127.0.0.1:18080", "127.0.0.3:18080", "[fd00:cafe::1]:18080", "127.0.0.2:18083"} {
		if err := dial(a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	if err := dial("[::1]:18080"); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("[::1]:18080: %v, want connection refused", err)
	}
	if err := dial(fmt.Sprintf("[::1]:%d", p6)); err != nil {
		t.Errorf("[::1] to a port not published: %v", err)
	}
	if err := dial("127.0.0.1:18083"); err == nil {
		t.Errorf("port bound to 127.0.0.2 answered on 127.0.0.1")
	}
}

func accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// A table someone damaged is rebuilt by the next Ensure: flushed rules
// come back with the elements kept; a deleted map comes back empty (the
// firewall re-publishes what its records say).
func TestEnsureRepairsDamagedTable(t *testing.T) {
	ns := testutil.NewHostNS(t)
	m := newMaps(t, ns)
	es := []firewall.PortElem{
		elem(types.TCP, netip.Addr{}, 8080, netip.MustParseAddr("10.0.0.2"), 80),
		elem(types.TCP, netip.MustParseAddr("192.0.2.1"), 8083, netip.MustParseAddr("10.0.0.3"), 83),
	}
	firewall.SortElems(es)
	if _, err := m.Ensure(firewall.IPv4); err != nil {
		t.Fatal(err)
	}
	if err := m.Update(firewall.IPv4, es, nil); err != nil {
		t.Fatal(err)
	}
	nft := func(args ...string) string {
		t.Helper()
		var out []byte
		if err := ns.Do(func() (err error) {
			out, err = exec.Command("nft", args...).CombinedOutput()
			return err
		}); err != nil {
			t.Fatalf("nft %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	rules := func() int { return strings.Count(nft("list", "table", "ip", nftports.Table), "dnat ip to") }
	if n := rules(); n != 4 {
		t.Fatalf("%d dnat rules in a new table, want 4", n)
	}

	nft("flush", "chain", "ip", nftports.Table, nftports.ChainOutput)
	got, err := newMaps(t, ns).Ensure(firewall.IPv4)
	if err != nil || !reflect.DeepEqual(got, es) {
		t.Fatalf("Ensure of a table with a flushed chain:\n got %v, %v\nwant %v", got, err, es)
	}
	if n := rules(); n != 4 {
		t.Fatalf("%d dnat rules after the repair, want 4", n)
	}

	nft("flush", "chain", "ip", nftports.Table, nftports.ChainOutput)
	nft("flush", "chain", "ip", nftports.Table, nftports.ChainPre)
	nft("delete", "map", "ip", nftports.Table, nftports.MapAnyAddr)
	got, err = newMaps(t, ns).Ensure(firewall.IPv4)
	if err != nil || len(got) != 0 {
		t.Fatalf("Ensure of a table missing a map: %v, %v", got, err)
	}
	if n := rules(); n != 4 {
		t.Fatalf("%d dnat rules after rebuilding a missing map, want 4", n)
	}
	if err := m.Update(firewall.IPv4, es, nil); err != nil {
		t.Fatalf("re-publishing into the rebuilt maps: %v", err)
	}
	if got, err := m.List(firewall.IPv4); err != nil || !reflect.DeepEqual(got, es) {
		t.Fatalf("after re-publishing: %v, %v", got, err)
	}
}

// Large batches (a published range, a mass release, GC after many
// containers died, a rebuild keeping many elements) go through: the
// elements are split over several messages of one transaction.
func TestLargeBatches(t *testing.T) {
	ns := testutil.NewHostNS(t)
	m := newMaps(t, ns)
	const n = 1001
	owner := "cnm-ep-" + strings.Repeat("ab", 32) // as long as a real one
	build := func(fam firewall.Family) []firewall.PortElem {
		var es []firewall.PortElem
		for i := 0; i < n; i++ {
			ctr, host := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), netip.AddrFrom4([4]byte{192, 0, 2, 1})
			if fam == firewall.IPv6 {
				ctr = netip.AddrFrom16([16]byte{0xfd, 15: byte(i), 14: byte(i >> 8)})
				host = netip.MustParseAddr("2001:db8::1")
			}
			if i%2 == 1 {
				host = netip.Addr{}
			}
			es = append(es, firewall.PortElem{Proto: types.TCP, HostIP: host, HostPort: uint16(20000 + i), ContainerIP: ctr, ContainerPort: 80, Owner: owner})
		}
		firewall.SortElems(es)
		return es
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		es := build(fam)
		if _, err := m.Ensure(fam); err != nil {
			t.Fatal(err)
		}
		if err := m.Update(fam, es, nil); err != nil {
			t.Fatalf("%s: adding %d elements: %v", fam, n, err)
		}
		if got, err := m.List(fam); err != nil || !reflect.DeepEqual(got, es) {
			for i, bad := 0, 0; i < len(got) && i < len(es) && bad < 5; i++ {
				if got[i] != es[i] {
					t.Errorf("element %d: got %v, want %v", i, got[i], es[i])
					bad++
				}
			}
			t.Fatalf("%s: listed %d elements, %v; want %d", fam, len(got), err, n)
		}
		if err := m.Update(fam, nil, es); err != nil {
			t.Fatalf("%s: deleting %d elements: %v", fam, n, err)
		}
		if got, err := m.List(fam); err != nil || len(got) != 0 {
			t.Fatalf("%s: after deleting all: %d, %v", fam, len(got), err)
		}
	}
	// A rebuild that keeps many elements.
	es := build(firewall.IPv4)
	if err := m.Update(firewall.IPv4, es, nil); err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error {
		return exec.Command("nft", "flush", "chain", "ip", nftports.Table, nftports.ChainOutput).Run()
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := newMaps(t, ns).Ensure(firewall.IPv4); err != nil || !reflect.DeepEqual(got, es) {
		t.Fatalf("rebuild keeping %d elements: got %d, %v", n, len(got), err)
	}
}

// A closed Maps opens no socket again: a late caller gets an error, not a
// netlink socket nobody closes.
func TestClosedMapsRefuse(t *testing.T) {
	ns := testutil.NewHostNS(t)
	m := nftports.New(ns.NS)
	if _, err := m.Ensure(firewall.IPv4); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	e := elem(types.TCP, netip.Addr{}, 8080, netip.MustParseAddr("10.0.0.2"), 80)
	if err := m.Update(firewall.IPv4, []firewall.PortElem{e}, nil); !types.IsForbidden(err) {
		t.Fatalf("Update after Close = %v, want Forbidden", err)
	}
	if _, err := m.List(firewall.IPv4); !types.IsForbidden(err) {
		t.Fatalf("List after Close = %v, want Forbidden", err)
	}
}
