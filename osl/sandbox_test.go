package osl

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

func TestNewDestroy(t *testing.T) {
	testutil.RequireRoot(t)
	key := filepath.Join(t.TempDir(), "netns", "abcdef012345")
	s, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	if s.Key() != key {
		t.Fatalf("Key() = %q, want %q", s.Key(), key)
	}
	if !isMounted(t, key) {
		t.Fatal("key is not a mount point")
	}
	if err := checkNetNS(key); err != nil {
		t.Fatalf("key is not a network namespace: %v", err)
	}
	lo, err := s.Netlink().LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if lo.Attrs().Flags&net.FlagUp == 0 {
		t.Error("lo is not up")
	}
	for _, k := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6", "net/ipv6/conf/lo/disable_ipv6"} {
		if v := readSysctl(t, s, k); v != "1" {
			t.Errorf("%s = %s in a fresh sandbox, want 1", k, v)
		}
	}

	if err := s.Destroy(); err != nil {
		t.Fatal(err)
	}
	if isMounted(t, key) {
		t.Error("key still mounted after Destroy")
	}
	if _, err := os.Stat(key); !os.IsNotExist(err) {
		t.Errorf("key file still there: %v", err)
	}
	if err := s.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
	// A destroyed sandbox refuses work with a classed error.
	if _, err := s.Statistics(); !types.IsForbidden(err) {
		t.Errorf("Statistics after Destroy: %v, want Forbidden", err)
	}
	if err := s.Do(func() error { return nil }); !types.IsForbidden(err) {
		t.Errorf("Do after Destroy: %v, want Forbidden", err)
	}
}

func TestNewReplacesStaleMount(t *testing.T) {
	testutil.RequireRoot(t)
	key := filepath.Join(t.TempDir(), "sb")
	first, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a crash: the handles go, the mount stays.
	first.closeHandles()
	s, err := New(key)
	if err != nil {
		t.Fatalf("New over a stale mount: %v", err)
	}
	if err := s.Destroy(); err != nil {
		t.Fatal(err)
	}
	if isMounted(t, key) {
		t.Fatal("a stacked mount survived Destroy")
	}
}

func TestAdoptLeavesSourceAlive(t *testing.T) {
	container := testutil.NewNamedNS(t, "container")
	if err := container.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}, PeerName: "probe1"}); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "netns", "adopted")
	s, err := Adopt(key, container.Path())
	if err != nil {
		t.Fatal(err)
	}
	if !isMounted(t, key) {
		t.Fatal("key is not a mount point")
	}
	if _, err := s.Netlink().LinkByName("probe0"); err != nil {
		t.Fatalf("adopted sandbox does not see the source's links: %v", err)
	}
	if !s.NS().Handle().Equal(container.Handle()) {
		t.Fatal("adopted sandbox is a different namespace")
	}
	if err := s.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(key); !os.IsNotExist(err) {
		t.Errorf("key file still there: %v", err)
	}
	// The source namespace and its links live on.
	if _, err := container.Netlink.LinkByName("probe0"); err != nil {
		t.Fatalf("source namespace lost its link: %v", err)
	}
	if err := checkNetNS(container.Path()); err != nil {
		t.Fatalf("source namespace gone: %v", err)
	}
}

func TestAdoptRejectsNonNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Adopt(filepath.Join(dir, "k1"), plain); !types.IsBadRequest(err) {
		t.Errorf("Adopt of a regular file: %v, want BadRequest", err)
	}
	if _, err := Adopt(filepath.Join(dir, "k2"), filepath.Join(dir, "missing")); !types.IsNotFound(err) {
		t.Errorf("Adopt of a missing file: %v, want NotFound", err)
	}
	if _, err := Open(plain); !types.IsBadRequest(err) {
		t.Errorf("Open of an unmounted file: %v, want BadRequest", err)
	}
	if _, err := Open(filepath.Join(dir, "missing")); !types.IsNotFound(err) {
		t.Errorf("Open of a missing key: %v, want NotFound", err)
	}
	for _, k := range []string{"k1", "k2"} {
		if _, err := os.Stat(filepath.Join(dir, k)); !os.IsNotExist(err) {
			t.Errorf("failed Adopt left %s behind", k)
		}
	}
}

func TestOpenRebuildsInterfaces(t *testing.T) {
	host := testutil.NewHostNS(t)
	s := newTestSandbox(t, "restore")
	addHostVeth(t, host, "vh0", "vs0")
	cfg := InterfaceConfig{
		SrcName: "vs0", HostNS: host.NS, DstName: s.ReserveName("eth"),
		Address:     mustCIDR(t, "10.1.0.2/24"),
		AddressIPv6: mustCIDR(t, "fd00:1::2/64"),
		Routes:      []*net.IPNet{mustCIDR(t, "192.168.77.0/24")},
	}
	if err := s.AddInterface(host.Netlink, cfg); err != nil {
		t.Fatal(err)
	}

	// A restarted controller opens the same key.
	r, err := Open(s.Key())
	if err != nil {
		t.Fatal(err)
	}
	defer r.closeHandles()
	if !r.NS().Handle().Equal(s.NS().Handle()) {
		t.Fatal("Open returned a different namespace")
	}
	ifs := r.Interfaces()
	if len(ifs) != 1 {
		t.Fatalf("rebuilt %d interfaces, want 1: %+v", len(ifs), ifs)
	}
	got := ifs[0]
	if got.DstName != "eth0" || got.SrcName != "" {
		t.Errorf("rebuilt names %q/%q, want eth0 and no source", got.DstName, got.SrcName)
	}
	if !types.CompareIPNet(got.Address, cfg.Address) {
		t.Errorf("rebuilt IPv4 %v, want %v", got.Address, cfg.Address)
	}
	if !types.CompareIPNet(got.AddressIPv6, cfg.AddressIPv6) {
		t.Errorf("rebuilt IPv6 %v, want %v", got.AddressIPv6, cfg.AddressIPv6)
	}
	if len(got.Routes) != 1 || got.Routes[0].String() != "192.168.77.0/24" {
		t.Errorf("rebuilt routes %v, want [192.168.77.0/24]", got.Routes)
	}
	if want := s.Interfaces()[0].MacAddress; got.MacAddress.String() != want.String() {
		t.Errorf("rebuilt MAC %v, want %v", got.MacAddress, want)
	}
	// The reopened sandbox knows eth0 is taken.
	if n := r.ReserveName("eth"); n != "eth1" {
		t.Errorf("ReserveName after Open = %s, want eth1", n)
	}
}

func TestSetSysctl(t *testing.T) {
	s := newTestSandbox(t, "sysctl")
	if err := s.SetSysctl("net.ipv4.conf.lo.route_localnet", "1"); err != nil {
		t.Fatal(err)
	}
	if v := readSysctl(t, s, "net/ipv4/conf/lo/route_localnet"); v != "1" {
		t.Errorf("route_localnet = %s, want 1", v)
	}
	if err := s.SetSysctl("net/ipv4/conf/lo/route_localnet", "0"); err != nil {
		t.Fatal(err)
	}
	if v := readSysctl(t, s, "net/ipv4/conf/lo/route_localnet"); v != "0" {
		t.Errorf("route_localnet = %s after slashed write, want 0", v)
	}
	if err := s.SetSysctl("net.ipv4.conf.nope0.forwarding", "1"); !types.IsNotFound(err) {
		t.Errorf("sysctl of a missing interface: %v, want NotFound", err)
	}
	if err := s.SetSysctl("kernel.hostname", "x"); !types.IsBadRequest(err) {
		t.Errorf("non-net sysctl: %v, want BadRequest", err)
	}
}

// Destroy racing with Do and ReserveName must neither crash nor run fn in
// a namespace whose fd was closed (and possibly reused).
func TestConcurrentUseAndDestroy(t *testing.T) {
	testutil.RequireRoot(t)
	s, err := New(filepath.Join(t.TempDir(), "race"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	names := make(chan string, 40)
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			err := s.Do(func() error { return nil })
			if err != nil && !types.IsForbidden(err) {
				t.Errorf("Do: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			names <- s.ReserveName("eth")
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Destroy(); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	}()
	wg.Wait()
	close(names)
	seen := map[string]bool{}
	for n := range names {
		if seen[n] {
			t.Errorf("name %s reserved twice", n)
		}
		seen[n] = true
	}
	if len(seen) != 20 {
		t.Errorf("%d distinct names, want 20", len(seen))
	}
}
