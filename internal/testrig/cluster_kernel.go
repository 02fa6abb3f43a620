package testrig

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// VXLANState is what the kernel holds on one VXLAN device of a host:
// its VNI, the static FDB entries ("<mac> dst <vtep>") and permanent
// neighbour entries ("<ip> lladdr <mac>").
type VXLANState struct {
	VNI   int
	MTU   int
	FDB   []string
	Neigh []string
}

// VXLANs reads every VXLAN device the host's controller made, in any
// network namespace bind-mounted under its ExecRoot (where overlay data
// planes live, whatever their file names) and in the host namespace
// itself. It looks at the kernel only, so it finds leftovers a driver
// forgot as well as what it manages.
func (h *Host) VXLANs(t testing.TB) []VXLANState {
	t.Helper()
	var out []VXLANState
	out = append(out, vxlansIn(t, h.NS.Netlink)...)
	_ = filepath.WalkDir(filepath.Join(h.dir, "run"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isNetNS(p) {
			return nil
		}
		ns, err := netnsutil.Open(p)
		if err != nil {
			return nil // gone meanwhile
		}
		defer ns.Close()
		nh, err := netlink.NewHandleAt(ns.Handle())
		if err != nil {
			t.Fatalf("netlink in %s: %v", p, err)
		}
		defer nh.Close()
		out = append(out, vxlansIn(t, nh)...)
		return nil
	})
	return out
}

// isNetNS reports whether p is a mounted network namespace file.
func isNetNS(p string) bool {
	var st unix.Statfs_t
	if unix.Statfs(p, &st) != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

func vxlansIn(t testing.TB, nh *netlink.Handle) []VXLANState {
	t.Helper()
	links, err := nh.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []VXLANState
	for _, l := range links {
		vx, ok := l.(*netlink.Vxlan)
		if !ok {
			continue
		}
		st := VXLANState{VNI: vx.VxlanId, MTU: vx.MTU}
		fdb, err := nh.NeighList(vx.Index, unix.AF_BRIDGE)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range fdb {
			if e.Flags&netlink.NTF_SELF != 0 && e.Flags&netlink.NTF_MASTER == 0 && e.IP != nil && !e.IP.IsUnspecified() {
				st.FDB = append(st.FDB, fmt.Sprintf("%s dst %s", e.HardwareAddr, e.IP))
			}
		}
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			ns, err := nh.NeighList(vx.Index, fam)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ns {
				if e.State&netlink.NUD_PERMANENT != 0 {
					st.Neigh = append(st.Neigh, fmt.Sprintf("%s lladdr %s", e.IP, e.HardwareAddr))
				}
			}
		}
		slices.Sort(st.FDB)
		slices.Sort(st.Neigh)
		out = append(out, st)
	}
	return out
}

// HasMAC reports whether the state has an FDB entry for mac.
func (s VXLANState) HasMAC(mac string) bool {
	return slices.ContainsFunc(s.FDB, func(e string) bool { return strings.HasPrefix(e, strings.ToLower(mac)+" ") })
}

// HasIP reports whether the state has a neighbour entry for ip.
func (s VXLANState) HasIP(ip string) bool {
	return slices.ContainsFunc(s.Neigh, func(e string) bool { return strings.HasPrefix(e, ip+" ") })
}

// LinkMTU is the MTU of link name in the namespace of h.
func LinkMTU(t testing.TB, h *netlink.Handle, name string) int {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l.Attrs().MTU
}
