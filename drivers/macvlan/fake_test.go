package macvlan

import (
	"fmt"
	"net"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fakeLinks is an in-memory host namespace: enough of netlink for the
// driver's network-level work (looking up parents, making, tagging and
// deleting stand-in veths). Joins need a real sandbox namespace.
type fakeLinks struct {
	mu        sync.Mutex
	next      int
	links     map[string]netlink.Link
	failAlias error // LinkSetAlias fails with it when set
}

func newFakeLinks() *fakeLinks { return &fakeLinks{next: 10, links: map[string]netlink.Link{}} }

func (f *fakeLinks) addDevice(name string, mtu int, mac net.HardwareAddr, flags net.Flags) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.links[name] = &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: name, Index: f.next, MTU: mtu, HardwareAddr: mac, Flags: flags}}
}

func notFound(string) error { return netlink.LinkNotFoundError{} }

func (f *fakeLinks) LinkByName(name string) (netlink.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.links[name]; ok {
		return l, nil
	}
	return nil, notFound(name)
}

func (f *fakeLinks) LinkByIndex(index int) (netlink.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.links {
		if l.Attrs().Index == index {
			return l, nil
		}
	}
	return nil, notFound(fmt.Sprint(index))
}

func (f *fakeLinks) LinkList() ([]netlink.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netlink.Link
	for _, l := range f.links {
		out = append(out, l)
	}
	return out, nil
}

func (f *fakeLinks) LinkAdd(l netlink.Link) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := l.(*netlink.Veth)
	if !ok {
		return unix.EOPNOTSUPP
	}
	if _, ok := f.links[v.Name]; ok {
		return unix.EEXIST
	}
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, byte(f.next)}
	f.next++
	a := v.LinkAttrs
	a.Index, a.HardwareAddr = f.next, mac
	f.links[v.Name] = &netlink.Veth{LinkAttrs: a, PeerName: v.PeerName}
	f.next++
	f.links[v.PeerName] = &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: v.PeerName, Index: f.next, MTU: a.MTU, HardwareAddr: mac}, PeerName: v.Name}
	return nil
}

func (f *fakeLinks) LinkDel(l netlink.Link) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := l.Attrs().Name
	cur, ok := f.links[name]
	if !ok {
		return notFound(name)
	}
	delete(f.links, name)
	if v, ok := cur.(*netlink.Veth); ok {
		delete(f.links, v.PeerName)
	}
	return nil
}

func (f *fakeLinks) LinkSetAlias(l netlink.Link, alias string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAlias != nil {
		return f.failAlias
	}
	cur, ok := f.links[l.Attrs().Name]
	if !ok {
		return notFound(l.Attrs().Name)
	}
	cur.Attrs().Alias = alias
	return nil
}

func (f *fakeLinks) LinkSetUp(l netlink.Link) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.links[l.Attrs().Name]
	if !ok {
		return notFound(l.Attrs().Name)
	}
	cur.Attrs().Flags |= net.FlagUp
	return nil
}

func (f *fakeLinks) LinkSetIP6AddrGenMode(l netlink.Link, mode int) error {
	_, err := f.LinkByName(l.Attrs().Name)
	return err
}

func (f *fakeLinks) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.links {
		out = append(out, n)
	}
	return out
}
