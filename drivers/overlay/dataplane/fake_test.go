package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fakeTable keeps a VXLAN device's FDB and neighbour tables in memory
// with the kernel's semantics as the peer set uses them: an FDB MAC has
// a list of remotes, NLM_F_REPLACE rewrites the first, a delete names a
// remote and the entry goes with its last; one neighbour entry per
// address. fail, if set, is asked before every change and may fail it.
type fakeTable struct {
	dev   int
	fdb   map[string][]fakeRemote // MAC → remotes
	neigh map[netip.Addr]fakeNeigh
	calls int // changes attempted
	fail  func(call int, n *netlink.Neigh, del bool) error
}

type fakeRemote struct {
	dst   netip.Addr
	state int
}

type fakeNeigh struct {
	mac   net.HardwareAddr
	state int
}

func newFakeTable(dev int) *fakeTable {
	return &fakeTable{dev: dev, fdb: map[string][]fakeRemote{}, neigh: map[netip.Addr]fakeNeigh{}}
}

func (f *fakeTable) check(n *netlink.Neigh, del bool) error {
	f.calls++
	if n.LinkIndex != f.dev {
		return unix.ENODEV
	}
	if f.fail != nil {
		return f.fail(f.calls, n, del)
	}
	return nil
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func (f *fakeTable) NeighSet(n *netlink.Neigh) error {
	if err := f.check(n, false); err != nil {
		return err
	}
	if n.Family == unix.AF_BRIDGE {
		if n.Flags&netlink.NTF_SELF == 0 || len(n.IP) == 0 {
			return unix.EINVAL
		}
		mac := n.HardwareAddr.String()
		r := fakeRemote{dst: addrOf(n.IP), state: n.State}
		if rs := f.fdb[mac]; len(rs) > 0 {
			rs[0] = r
		} else {
			f.fdb[mac] = []fakeRemote{r}
		}
		return nil
	}
	f.neigh[addrOf(n.IP)] = fakeNeigh{mac: slices.Clone(n.HardwareAddr), state: n.State}
	return nil
}

func (f *fakeTable) NeighDel(n *netlink.Neigh) error {
	if err := f.check(n, true); err != nil {
		return err
	}
	if n.Family == unix.AF_BRIDGE {
		if len(n.IP) == 0 {
			return unix.EAFNOSUPPORT // netlink sends an empty NDA_DST
		}
		mac := n.HardwareAddr.String()
		rs := f.fdb[mac]
		i := slices.IndexFunc(rs, func(r fakeRemote) bool { return r.dst == addrOf(n.IP) })
		if i < 0 {
			return unix.ENOENT
		}
		if rs = slices.Delete(rs, i, i+1); len(rs) == 0 {
			delete(f.fdb, mac)
		} else {
			f.fdb[mac] = rs
		}
		return nil
	}
	ip := addrOf(n.IP)
	if _, ok := f.neigh[ip]; !ok {
		return unix.ENOENT
	}
	delete(f.neigh, ip)
	return nil
}

func (f *fakeTable) NeighList(dev, family int) ([]netlink.Neigh, error) {
	if dev != f.dev {
		return nil, unix.ENODEV
	}
	var out []netlink.Neigh
	switch family {
	case unix.AF_BRIDGE:
		for mac, rs := range f.fdb {
			hw, _ := net.ParseMAC(mac)
			for _, r := range rs {
				out = append(out, netlink.Neigh{LinkIndex: dev, Family: family, Flags: netlink.NTF_SELF,
					State: r.state, HardwareAddr: hw, IP: r.dst.AsSlice()})
			}
		}
		// What the bridge dumps for the port is not the device's own.
		out = append(out, netlink.Neigh{LinkIndex: dev, Family: family, Flags: netlink.NTF_MASTER,
			State: netlink.NUD_PERMANENT, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0xee}})
	default:
		for ip, n := range f.neigh {
			if ip.Is4() == (family == netlink.FAMILY_V4) {
				out = append(out, netlink.Neigh{LinkIndex: dev, Family: family, State: n.state,
					HardwareAddr: n.mac, IP: ip.AsSlice()})
			}
		}
	}
	return out, nil
}

// dump renders the tables sorted, one entry a line, for comparisons.
func (f *fakeTable) dump() []string {
	var out []string
	for mac, rs := range f.fdb {
		for _, r := range rs {
			out = append(out, fmt.Sprintf("fdb %s dst %s state %#x", mac, r.dst, r.state))
		}
	}
	for ip, n := range f.neigh {
		out = append(out, fmt.Sprintf("neigh %s lladdr %s state %#x", ip, n.mac, n.state))
	}
	sort.Strings(out)
	return out
}

func wantDump(t *testing.T, f *fakeTable, want ...string) {
	t.Helper()
	got := f.dump()
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("kernel tables:\n  %q\nwant\n  %q", got, want)
	}
}
