// Package fakenft is an in-memory stand-in for the published ports' native
// table (firewall.PortMaps), with the kernel's semantics that matter here:
// a transaction is all or nothing, deleting a missing element fails,
// adding an element whose key is there with other data fails, adding the
// same element again is a no-op, and creating an existing table fails
// (Ensure then adopts it). Dump renders the maps as text for golden files.
package fakenft

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/opencnm/libnetwork/firewall"
)

// Fake is an in-memory PortMaps. The zero value is not usable; call New.
type Fake struct {
	mu      sync.Mutex
	tables  map[firewall.Family]map[firewall.ElemKey]firewall.PortElem // family -> elements; nil map: no table
	updates int                                                        // Update calls that changed something
	fail    func(fam firewall.Family, add, del []firewall.PortElem) error
}

var _ firewall.PortMaps = (*Fake)(nil)

// New returns a fake namespace without the table.
func New() *Fake {
	return &Fake{tables: map[firewall.Family]map[firewall.ElemKey]firewall.PortElem{}}
}

// FailUpdate makes Update fail (changing nothing) whenever fn returns an
// error; nil stops it.
func (f *Fake) FailUpdate(fn func(fam firewall.Family, add, del []firewall.PortElem) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fn
}

// Ensure creates fam's table when missing and returns its elements.
func (f *Fake) Ensure(fam firewall.Family) ([]firewall.PortElem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tables[fam] == nil {
		f.tables[fam] = map[firewall.ElemKey]firewall.PortElem{}
		return nil, nil
	}
	return f.listLocked(fam), nil
}

// Update applies del then add, all or nothing.
func (f *Fake) Update(fam firewall.Family, add, del []firewall.PortElem) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		if err := f.fail(fam, add, del); err != nil {
			return err
		}
	}
	t := f.tables[fam]
	if t == nil {
		return fmt.Errorf("%s table does not exist", fam)
	}
	next := make(map[firewall.ElemKey]firewall.PortElem, len(t))
	for k, e := range t {
		next[k] = e
	}
	for _, e := range del {
		// The kernel deletes by key alone, whatever data the request
		// carries; so does the fake.
		if _, ok := next[e.Key()]; !ok {
			return fmt.Errorf("deleting %s: no such element", e)
		}
		delete(next, e.Key())
	}
	for _, e := range add {
		if e.Family() != fam {
			return fmt.Errorf("adding %s to the %s maps: wrong family", e, fam)
		}
		if cur, ok := next[e.Key()]; ok {
			if !sameData(cur, e) {
				return fmt.Errorf("adding %s: key exists with %s", e, cur)
			}
			continue // the kernel keeps the element (and its comment)
		}
		next[e.Key()] = e
	}
	f.tables[fam] = next
	f.updates++
	return nil
}

func sameData(a, b firewall.PortElem) bool {
	return a.ContainerIP == b.ContainerIP && a.ContainerPort == b.ContainerPort
}

// List returns fam's elements, sorted.
func (f *Fake) List(fam firewall.Family) ([]firewall.PortElem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listLocked(fam), nil
}

func (f *Fake) listLocked(fam firewall.Family) []firewall.PortElem {
	var out []firewall.PortElem
	for _, e := range f.tables[fam] {
		out = append(out, e)
	}
	firewall.SortElems(out)
	return out
}

// Remove deletes fam's table.
func (f *Fake) Remove(fam firewall.Family) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.tables, fam)
	return nil
}

// Updates counts the Update calls that changed the maps.
func (f *Fake) Updates() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.updates
}

// Delete removes an element behind the firewall's back (as an admin
// would), for tests of Check.
func (f *Fake) Delete(e firewall.PortElem) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tables[e.Family()]
	if _, ok := t[e.Key()]; !ok {
		return errors.New("no such element")
	}
	delete(t, e.Key())
	return nil
}

// Dump renders the tables of fams, one "# <family> port maps" header each
// followed by one element a line, or "" when none exists.
func (f *Fake) Dump(fams ...firewall.Family) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, fam := range fams {
		if f.tables[fam] == nil {
			continue
		}
		fmt.Fprintf(&b, "# %s port maps\n", fam)
		for _, e := range f.listLocked(fam) {
			b.WriteString(e.String() + "\n")
		}
	}
	return b.String()
}
