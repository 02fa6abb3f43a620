package macvlan

import (
	"errors"
	"os"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// CollectGarbage deletes, in the host namespace, stand-in parents tagged
// with a network that is gone and macvlan links tagged with an endpoint
// that is not joined (or not through that link): leftovers of a crash.
// The caller makes sure no join is in progress.
func (d *Driver) CollectGarbage(liveNetworks, joinedEndpoints map[string]bool) error {
	links, err := d.nl.LinkList()
	if err != nil {
		return types.InternalErrorf("listing links for macvlan garbage collection: %w", err)
	}
	inUse := d.linksInUse("")
	var errs []error
	for _, l := range links {
		alias := l.Attrs().Alias
		stale := false
		switch {
		case strings.HasPrefix(alias, tagNetwork):
			_, isVeth := l.(*netlink.Veth)
			stale = isVeth && !liveNetworks[strings.TrimPrefix(alias, tagNetwork)]
		case strings.HasPrefix(alias, tagEndpoint):
			stale = staleMacvlan(l, joinedEndpoints, inUse)
		}
		if stale {
			errs = append(errs, ignoreGone(d.nl.LinkDel(l)))
		}
	}
	return errors.Join(errs...)
}

// CollectSandboxGarbage deletes, inside each namespace of sandboxKeys
// (the controller's kept sandboxes), macvlan links tagged with an endpoint
// that is not joined, or joined through another link: what a crash left
// in a sandbox that outlived it. Links of others are never touched.
func (d *Driver) CollectSandboxGarbage(sandboxKeys []string, joinedEndpoints map[string]bool) error {
	var errs []error
	for _, key := range sandboxKeys {
		errs = append(errs, d.collectIn(key, joinedEndpoints))
	}
	return errors.Join(errs...)
}

func (d *Driver) collectIn(key string, joined map[string]bool) error {
	ns, err := netnsutil.Open(key)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return types.InternalErrorf("macvlan garbage collection in %s: %w", key, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns.Handle())
	if err != nil {
		return types.InternalErrorf("macvlan garbage collection in %s: %w", key, err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return types.InternalErrorf("macvlan garbage collection in %s: listing links: %w", key, err)
	}
	inUse := d.linksInUse(key)
	var errs []error
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Alias, tagEndpoint) && staleMacvlan(l, joined, inUse) {
			errs = append(errs, ignoreGone(h.LinkDel(l)))
		}
	}
	return errors.Join(errs...)
}

// linksInUse maps each endpoint joined with a link in the namespace at
// key ("" the host's) to that link's ifindex.
func (d *Driver) linksInUse(key string) map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := map[string]int{}
	for _, n := range d.networks {
		for id, ep := range n.endpoints {
			if ep.ifIndex != 0 && ep.sboxKey == key {
				m[id] = ep.ifIndex
			}
		}
	}
	return m
}

// staleMacvlan reports whether l, tagged with an endpoint, is a macvlan
// that endpoint no longer uses: it is not joined, or it is joined through
// another link of that namespace.
func staleMacvlan(l netlink.Link, joined map[string]bool, inUse map[string]int) bool {
	if _, ok := l.(*netlink.Macvlan); !ok {
		return false
	}
	id := strings.TrimPrefix(l.Attrs().Alias, tagEndpoint)
	idx, known := inUse[id]
	return !joined[id] || known && idx != l.Attrs().Index
}
