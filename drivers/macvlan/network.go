package macvlan

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/types"
)

// network is the driver's record of one network.
type network struct {
	cfg *networkConfig // immutable after CreateNetwork

	// Guarded by Driver.mu.
	creating    bool
	deleting    bool
	parentIndex int              // ifindex of the parent in the host namespace
	parentMAC   net.HardwareAddr // what a passthru macvlan takes
	standIn     bool             // the parent is the driver's veth (internal network)
	endpoints   map[string]*endpoint
}

// in6AddrGenModeNone stops the kernel giving a link an IPv6 link-local
// address (IN6_ADDR_GEN_MODE_NONE).
const in6AddrGenModeNone = 1

// standInNames are the two ends of the veth pair an internal network's
// macvlans hang off: derived from the network ID, so a restore and an
// abandoned create find them by name; hashed, so any valid ID fits.
func standInNames(nid string) (parent, peer string) {
	sum := sha256.Sum256([]byte(nid))
	h := hex.EncodeToString(sum[:])[:11]
	return "mvi-" + h, "mvo-" + h
}

// ValidateNetwork checks a network's ID and options as CreateNetwork
// would, before the controller allocates anything for it
// (driverapi.NetworkValidator); whether the parent exists is checked too,
// since that needs no change.
func (d *Driver) ValidateNetwork(nid string, opts map[string]any) error {
	c, err := parseNetworkOptions(nid, opts)
	if err != nil {
		return err
	}
	if c.Parent == "" {
		return nil
	}
	_, err = d.parentLink(c)
	return err
}

// CreateNetwork checks the parent and, for a network without one, makes
// the stand-in parent (or takes back the one an earlier run made). A
// parent already used by another macvlan network of the driver is
// Forbidden; the network is reserved, with its parent, before any kernel
// work, so of concurrent creates on one parent exactly one proceeds.
func (d *Driver) CreateNetwork(req driverapi.CreateNetworkRequest) error {
	c, err := parseNetworkOptions(req.NetworkID, req.Options)
	if err != nil {
		return err
	}
	if err := c.applyIPAM(req.IPv4Data, req.IPv6Data); err != nil {
		return err
	}
	what := "creating macvlan network " + c.ID

	d.mu.Lock()
	if _, ok := d.networks[c.ID]; ok {
		d.mu.Unlock()
		return types.ForbiddenErrorf("%s: it exists", what)
	}
	for _, o := range d.networks {
		if c.Parent != "" && o.cfg.Parent == c.Parent {
			d.mu.Unlock()
			return types.ForbiddenErrorf("%s: parent %s is already the parent of macvlan network %s", what, c.Parent, o.cfg.ID)
		}
	}
	n := &network{cfg: c, creating: true, endpoints: map[string]*endpoint{}}
	d.networks[c.ID] = n
	d.mu.Unlock()

	var parent netlink.Link
	if c.Parent == "" {
		parent, err = d.ensureStandIn(c)
	} else {
		parent, err = d.parentLink(c)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		delete(d.networks, c.ID)
		return err
	}
	n.creating = false
	n.parentIndex = parent.Attrs().Index
	n.parentMAC = append(net.HardwareAddr(nil), parent.Attrs().HardwareAddr...)
	n.standIn = c.Parent == ""
	return nil
}

// parentLink finds the parent c names and checks it can carry macvlans.
func (d *Driver) parentLink(c *networkConfig) (netlink.Link, error) {
	what := "creating macvlan network " + c.ID
	l, err := d.nl.LinkByName(c.Parent)
	if isLinkNotFound(err) {
		if m := subIfaceName.FindStringSubmatch(c.Parent); m != nil {
			return nil, d.subInterfaceError(what, c.Parent, m[1])
		}
		return nil, types.BadRequestErrorf("%s: parent interface %s does not exist", what, c.Parent)
	}
	if err != nil {
		return nil, types.InternalErrorf("%s: looking up parent %s: %w", what, c.Parent, err)
	}
	a := l.Attrs()
	if a.Flags&net.FlagLoopback != 0 || l.Type() == "loopback" {
		return nil, types.BadRequestErrorf("%s: parent %s is a loopback interface", what, c.Parent)
	}
	if len(a.HardwareAddr) != 6 {
		return nil, types.BadRequestErrorf("%s: parent %s is not an Ethernet interface", what, c.Parent)
	}
	if c.Mtu > 0 && a.MTU > 0 && c.Mtu > a.MTU {
		return nil, types.BadRequestErrorf("%s: mtu %d is more than parent %s's mtu %d", what, c.Mtu, c.Parent, a.MTU)
	}
	return l, nil
}

// ensureStandIn makes the veth pair an internal network's macvlans hang
// off, up, with no IPv6 link-local address (so the host sends nothing on
// it), and tags both ends with the network. A pair an earlier run left
// with this network's tag is taken back as it is. On failure nothing of
// it is left.
func (d *Driver) ensureStandIn(c *networkConfig) (_ netlink.Link, err error) {
	what := "creating macvlan network " + c.ID
	name, peer := standInNames(c.ID)
	if l, err := d.nl.LinkByName(name); err == nil {
		if l.Attrs().Alias == networkTag(c.ID) {
			return l, nil
		}
		return nil, types.ForbiddenErrorf("%s: interface %s exists and is not this network's stand-in parent", what, name)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.MTU = c.Mtu
	if attrs.MTU == 0 {
		attrs.MTU = 1500
	}
	v := &netlink.Veth{LinkAttrs: attrs, PeerName: peer, PeerMTU: uint32(attrs.MTU)}
	if err := d.nl.LinkAdd(v); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, types.ForbiddenErrorf("%s: making stand-in parent %s/%s: %w", what, name, peer, err)
		}
		return nil, types.InternalErrorf("%s: making stand-in parent %s/%s: %w", what, name, peer, err)
	}
	var u undo.Stack
	ok := false
	defer func() {
		if uerr := u.Unless(&ok); uerr != nil {
			err = errors.Join(err, fmt.Errorf("%s: removing stand-in parent %s: %w", what, name, uerr))
		}
	}()
	// Deleting one end deletes the pair.
	u.Push(func() error { return ignoreGone(d.nl.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}})) })
	var links [2]netlink.Link
	for i, n := range []string{name, peer} {
		l, err := d.nl.LinkByName(n)
		if err != nil {
			return nil, types.InternalErrorf("%s: reading back stand-in parent %s: %w", what, n, err)
		}
		if err := d.nl.LinkSetAlias(l, networkTag(c.ID)); err != nil {
			return nil, types.InternalErrorf("%s: tagging stand-in parent %s: %w", what, n, err)
		}
		if err := d.nl.LinkSetIP6AddrGenMode(l, in6AddrGenModeNone); err != nil {
			return nil, types.InternalErrorf("%s: turning off ipv6 link-local on %s: %w", what, n, err)
		}
		links[i] = l
	}
	for _, l := range links {
		if err := d.nl.LinkSetUp(l); err != nil {
			return nil, types.InternalErrorf("%s: bringing stand-in parent %s up: %w", what, l.Attrs().Name, err)
		}
	}
	l, err := d.nl.LinkByName(name)
	if err != nil {
		return nil, types.InternalErrorf("%s: reading back stand-in parent %s: %w", what, name, err)
	}
	ok = true
	return l, nil
}

// DeleteNetwork forgets the network and deletes its stand-in parent (the
// kernel deletes the macvlans on it with it). A parent the user named is
// theirs and stays. An unknown network is already gone: nil.
func (d *Driver) DeleteNetwork(nid string) error {
	d.mu.Lock()
	n := d.networks[nid]
	switch {
	case n == nil:
		d.mu.Unlock()
		return nil
	case n.creating || n.deleting:
		d.mu.Unlock()
		return types.ForbiddenErrorf("deleting macvlan network %s: it is being created or deleted", nid)
	}
	n.deleting = true
	standIn := n.standIn
	d.mu.Unlock()

	var err error
	if standIn {
		name, _ := standInNames(nid)
		err = d.delTagged(name, networkTag(nid))
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	n.deleting = false
	if err != nil {
		return types.InternalErrorf("deleting macvlan network %s: %w", nid, err)
	}
	delete(d.networks, nid)
	return nil
}

// delTagged deletes the host link name if it carries tag; gone is nil.
func (d *Driver) delTagged(name, tag string) error {
	l, err := d.nl.LinkByName(name)
	if err != nil {
		return ignoreGone(err)
	}
	if l.Attrs().Alias != tag {
		return nil
	}
	return ignoreGone(d.nl.LinkDel(l))
}

// AbandonNetwork removes what a CreateNetwork a crash cut short may have
// left: a stand-in parent with this network's derived name, tagged with
// it or not yet tagged at all. A network this driver holds is rolled back
// by deleting it, so that creating it again starts clean.
func (d *Driver) AbandonNetwork(req driverapi.CreateNetworkRequest) error {
	d.mu.Lock()
	_, held := d.networks[req.NetworkID]
	d.mu.Unlock()
	if held {
		return d.DeleteNetwork(req.NetworkID)
	}
	c, err := parseNetworkOptions(req.NetworkID, req.Options)
	if err != nil || c.Parent != "" {
		return nil
	}
	name, _ := standInNames(c.ID)
	l, err := d.nl.LinkByName(name)
	if err != nil {
		return ignoreGone(err)
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return nil
	}
	if a := l.Attrs().Alias; a != "" && a != networkTag(c.ID) {
		return nil
	}
	if err := ignoreGone(d.nl.LinkDel(l)); err != nil {
		return fmt.Errorf("deleting stand-in parent %s of abandoned macvlan network %s: %w", name, c.ID, err)
	}
	return nil
}

func (d *Driver) readyNetworkLocked(nid string) (*network, error) {
	n := d.networks[nid]
	if n == nil || n.creating {
		return nil, driverapi.ErrNoNetwork(nid)
	}
	return n, nil
}
