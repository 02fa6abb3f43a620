package macvlan

import (
	"errors"
	"regexp"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/types"
)

// subIfaceName matches upstream's 802.1q sub-interface parent form:
// <parent>.<vlan id>.
var subIfaceName = regexp.MustCompile(`^(.+)\.([0-9]{1,4})$`)

// vlanSupport remembers the kernel's answer to whether it can make 802.1q
// links, asked once.
type vlanSupport struct {
	probe func() error // nil: 8021q is there; test seams replace it
	once  sync.Once
	err   error
}

func (v *vlanSupport) check() error {
	v.once.Do(func() {
		if v.probe != nil {
			v.err = v.probe()
		}
	})
	return v.err
}

// errNo8021q is the probe's verdict on a kernel without 802.1q.
var errNo8021q = errors.New("the kernel has no 802.1q VLAN support (8021q): the vlan link type is unknown to it")

// probeVLAN asks the kernel whether it knows the vlan link type, without
// making anything: a vlan RTM_NEWLINK with no lower device. A kernel
// without the type refuses the kind (EOPNOTSUPP) before it looks at
// anything else; one with it refuses the missing lower device (EINVAL).
// Either way nothing is created.
func probeVLAN(h *netlink.Handle) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "cnmvlanprobe"
	err := h.LinkAdd(&netlink.Vlan{LinkAttrs: attrs, VlanId: 1})
	switch {
	case errors.Is(err, unix.EOPNOTSUPP):
		return errNo8021q
	case err == nil:
		// Never expected without a lower device; leave nothing behind.
		_ = h.LinkDel(&netlink.Vlan{LinkAttrs: attrs})
	}
	return nil
}

// subInterfaceError explains why a parent named like an 802.1q
// sub-interface that does not exist is refused: upstream creates it, this
// driver does not, and on this kernel nothing could. base is the part
// before the dot; it must exist, else the parent is simply missing.
func (d *Driver) subInterfaceError(what, parent, base string) error {
	if _, err := d.nl.LinkByName(base); err != nil {
		return types.BadRequestErrorf("%s: parent %s does not exist, nor does %s to make it a VLAN sub-interface of", what, parent, base)
	}
	if err := d.vlan.check(); err != nil {
		return types.NotImplementedErrorf("%s: parent %s is an 802.1q sub-interface of %s that does not exist, and it cannot be made: %w", what, parent, base, err)
	}
	return types.NotImplementedErrorf("%s: parent %s is an 802.1q sub-interface of %s that does not exist: the driver does not create VLAN sub-interfaces; create %s and pass it as the parent", what, parent, base, parent)
}
