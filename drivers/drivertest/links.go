package drivertest

import (
	"sort"
	"testing"

	"github.com/vishvananda/netlink"
)

// LinkNames serves a Suite.Objects of a driver that marks the links it owns
// by their alias: the sorted names of the links list returns whose alias
// keep accepts.
func LinkNames(t *testing.T, list func() ([]netlink.Link, error), keep func(alias string) bool) []string {
	t.Helper()
	links, err := list()
	if err != nil {
		t.Fatalf("LinkList: %v", err)
	}
	var names []string
	for _, l := range links {
		if keep(l.Attrs().Alias) {
			names = append(names, l.Attrs().Name)
		}
	}
	sort.Strings(names)
	return names
}
