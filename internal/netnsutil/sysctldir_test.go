package netnsutil_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testutil"
)

func readSysctlIn(t testing.TB, ns *netnsutil.NS, rel string) string {
	t.Helper()
	var v []byte
	if err := ns.Do(func() error {
		var err error
		v, err = os.ReadFile("/proc/sys/" + rel)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(v))
}

func TestSysctlDirWritesItsNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		t.Skip("kernel without IPv6")
	}
	a, b := testutil.NewNamedNS(t, "a"), testutil.NewNamedNS(t, "b")
	d, err := a.OpenSysctlDir("net/ipv6/conf")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	before := readSysctlIn(t, b.NS, "net/ipv6/conf/lo/disable_ipv6")
	want := "1"
	if before == "1" {
		want = "0"
	}
	if err := d.Write("lo/disable_ipv6", want); err != nil {
		t.Fatal(err)
	}
	if v := readSysctlIn(t, a.NS, "net/ipv6/conf/lo/disable_ipv6"); v != want {
		t.Errorf("lo/disable_ipv6 in the directory's namespace = %s, want %s", v, want)
	}
	if v := readSysctlIn(t, b.NS, "net/ipv6/conf/lo/disable_ipv6"); v != before {
		t.Errorf("lo/disable_ipv6 in another namespace changed to %s", v)
	}

	if err := d.Write("nosuch0/disable_ipv6", "1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("write to an absent interface: %v, want os.ErrNotExist", err)
	}
	for _, bad := range []string{"../../ipv4/ip_forward", "/proc/sys/net/ipv4/ip_forward", ""} {
		if err := d.Write(bad, "1"); err == nil {
			t.Errorf("write to %q outside the directory was accepted", bad)
		}
	}
	if _, err := a.OpenSysctlDir("net/nosuch"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("opening an absent directory: %v, want os.ErrNotExist", err)
	}
}

// BenchmarkSysctlWrite writes one sysctl of a namespace while others
// made after it exist that have looked up /proc/sys/net (as every sandbox
// has): by path
// from /proc/sys, the cost grows with their number; through an open
// SysctlDir it does not. SYSCTL_NS sets how many others (default 1,000).
func BenchmarkSysctlWrite(b *testing.B) {
	testutil.RequireRoot(b)
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		b.Skip("kernel without IPv6")
	}
	others := 1000
	if v := os.Getenv("SYSCTL_NS"); v != "" {
		fmt.Sscan(v, &others)
	}
	// The target's dentries come first: a hash chain is searched newest
	// first, and the host namespace is older than its sandboxes.
	target := testutil.NewNamedNS(b, "target")
	readSysctlIn(b, target.NS, "net/ipv6/conf/lo/disable_ipv6")
	for range others {
		ns, err := netnsutil.NewUnmounted()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ns.Close() })
		readSysctlIn(b, ns, "net/ipv6/conf/lo/disable_ipv6")
	}
	b.Run(fmt.Sprintf("path/others=%d", others), func(b *testing.B) {
		for range b.N {
			err := target.Do(func() error {
				return os.WriteFile("/proc/sys/net/ipv6/conf/lo/disable_ipv6", []byte("1"), 0o644)
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("dir/others=%d", others), func(b *testing.B) {
		d, err := target.OpenSysctlDir("net/ipv6/conf")
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		for range b.N {
			if err := d.Write("lo/disable_ipv6", "1"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
