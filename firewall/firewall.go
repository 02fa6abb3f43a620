// Package firewall programs the iptables rules of bridge networks and
// published ports in one network namespace, in upstream libnetwork's layout
// (nat DOCKER; filter DOCKER, DOCKER-ISOLATION-STAGE-1/2, DOCKER-USER) with
// the userland proxy off: published ports are reachable from the host's
// loopback and from other containers (hairpin).
//
// Every rule we write carries "-m comment --comment cnm-<owner>", the owner
// being a network (cnm-net-ID), an endpoint (cnm-ep-ID) or the global
// chains (cnm-global); every port map element carries its endpoint's tag
// as its comment. The Firewall keeps an in-memory record of the rules
// it installed, by owner. Operations are expressed as desired state per
// owner; the difference to the record is rendered as one iptables-restore
// script per family, so an operation costs one exec however many rules it
// touches, and no chain is listed or rewritten per operation.
//
// Published ports are not iptables rules: their DNAT is an element of a
// native nftables map in a table of our own (PortMaps, firewall/nftports),
// and what they need of iptables (accepting DNATed traffic into a bridge,
// masquerading a container that reaches its own network through a
// published port) is one rule per network. Why: on each transaction that
// adds a rule, nf_tables re-validates every rule reachable from that
// table's base chains (~0.27 µs a rule and hook), so with one DNAT per
// port in iptables' nat table, publishing one port among 2,000 cost
// ~0.6-0.85 ms more than among none, and no layout of iptables rules
// avoids it. Adding an element with plain data to a map triggers no such
// validation, and the ports' table is made once and never changed but
// for its elements: a publish costs ~10-20 µs of kernel time, among 2,000
// ports as among none, and so does an unpublish (no rule is deleted, so
// none of iptables-nft's 10-20 ms deleting transactions either). An SCTP
// port still adds its checksum rule in mangle POSTROUTING.
//
// The kernel is read only in Setup (whole tables and the port maps,
// adopting rules and elements a previous process left), by Check and
// Repair (which puts back what another tool removed; see repair.go), and
// when a script fails (just the chains it touched, to recover; see
// commitLocked).
package firewall

import (
	"errors"
	"sort"
	"sync"

	"github.com/opencnm/libnetwork/types"
)

// Firewall programs one namespace's iptables. It is safe for concurrent use.
type Firewall struct {
	runner Runner
	maps   PortMaps
	fams   []Family // families programmed: IPv4, and IPv6 when enabled

	// mu serialises commits (so the record and the kernel move together)
	// and guards the fields below.
	mu      sync.Mutex
	present map[ruleKey]string     // rules we know are installed -> owner
	owners  map[string]*ownerRules // owner -> its installed rules
	chains  map[chainKey]bool      // our chains known to exist
	global  map[Family]bool        // families whose global chains are set up
	elems   map[elemKey]PortElem   // port map elements we know are installed
	ports   map[string]*portOwner  // endpoint owner -> its elements
	// placed: where each recorded rule was put (see repair.go), so a
	// repair puts a vanished rule back where it was.
	placed   map[ruleKey]placement
	seq      uint64              // orders placements
	policies map[chainKey]string // built-in chain policies we set
	// listed: the record holds everything of ours the kernel had at
	// Setup, and no PruneUnclaimed has run since (the first one, right
	// after a restart's Setup, need not list the kernel again).
	listed bool
}

type ownerRules struct {
	rules   map[ruleKey]Rule // installed rules of the owner
	claimed bool             // set up by this process (false: adopted leftover)
}

type chainKey struct {
	fam   Family
	table string
	chain string
}

func chainKeyOf(k ruleKey) chainKey { return chainKey{k.fam, k.table, k.chain} }

// New returns a Firewall driving runner for iptables and maps for the
// published ports' native table. With ipv6 the global chains, the
// networks' IPv6 subnets and IPv6 port bindings are programmed too. Call
// Setup before anything else.
func New(runner Runner, maps PortMaps, ipv6 bool) *Firewall {
	fams := []Family{IPv4}
	if ipv6 {
		fams = append(fams, IPv6)
	}
	return &Firewall{
		runner:   runner,
		maps:     maps,
		fams:     fams,
		present:  map[ruleKey]string{},
		owners:   map[string]*ownerRules{},
		chains:   map[chainKey]bool{},
		global:   map[Family]bool{},
		elems:    map[elemKey]PortElem{},
		ports:    map[string]*portOwner{},
		placed:   map[ruleKey]placement{},
		policies: map[chainKey]string{},
	}
}

// IPv6 reports whether ip6tables is programmed.
func (fw *Firewall) IPv6() bool { return len(fw.fams) == 2 }

func (fw *Firewall) ownerLocked(owner string) *ownerRules {
	o := fw.owners[owner]
	if o == nil {
		o = &ownerRules{rules: map[ruleKey]Rule{}}
		fw.owners[owner] = o
	}
	return o
}

func (fw *Firewall) setPresentLocked(k ruleKey, owner string) {
	if prev, ok := fw.present[k]; ok && prev != owner {
		if o := fw.owners[prev]; o != nil {
			delete(o.rules, k)
		}
	}
	fw.present[k] = owner
	o := fw.ownerLocked(owner)
	o.rules[k] = Rule{Family: k.fam, Table: k.table, Chain: k.chain, Spec: k.spec}
}

// claimLocked records that owner wants a rule already installed.
func (fw *Firewall) claimLocked(k ruleKey, owner string) {
	fw.setPresentLocked(k, owner)
	fw.owners[owner].claimed = true
}

func (fw *Firewall) forgetLocked(k ruleKey) {
	owner, ok := fw.present[k]
	if !ok {
		return
	}
	delete(fw.present, k)
	delete(fw.placed, k)
	if o := fw.owners[owner]; o != nil {
		delete(o.rules, k)
		if len(o.rules) == 0 {
			delete(fw.owners, owner)
		}
	}
}

// setOwned makes owner's installed rules exactly want: it adds what is
// missing (in want's order, positions as given) before deleting what is no
// longer wanted, all in one commit. When the owner had no rules before and
// the commit fails, whatever part of want did get installed is removed
// again, so a failed first setup leaves nothing behind. pre are ops of
// shared chains (creating a port chain and its jump) that go first in the
// same commit; they are not undone.
func (fw *Firewall) setOwned(owner string, want []Rule) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.setOwnedLocked(owner, want, nil)
}

func (fw *Firewall) setOwnedLocked(owner string, want []Rule, pre []op) error {
	fresh := fw.owners[owner] == nil
	wantKeys := make(map[ruleKey]bool, len(want))
	t := tx{ops: pre}
	for _, r := range want {
		if wantKeys[r.key()] { // two port bindings can share a filter rule
			continue
		}
		wantKeys[r.key()] = true
		t.add(owner, r)
	}
	if o := fw.owners[owner]; o != nil {
		for _, r := range sortedRules(o.rules) {
			if !wantKeys[r.key()] {
				t.del(r)
			}
		}
	}
	err := fw.commitLocked(t.ops, false)
	if o := fw.owners[owner]; o != nil {
		o.claimed = true
	}
	if err != nil && fresh {
		if uerr := fw.removeOwnerLocked(owner); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}
	return err
}

// removeOwnerLocked deletes every installed rule of owner. Already gone is
// success.
func (fw *Firewall) removeOwnerLocked(owner string) error {
	o := fw.owners[owner]
	if o == nil {
		return nil
	}
	var t tx
	for _, r := range sortedRules(o.rules) {
		t.del(r)
	}
	return fw.commitLocked(t.ops, false)
}

// sortedRules returns rules in a stable order (so scripts are deterministic).
func sortedRules(m map[ruleKey]Rule) []Rule {
	out := make([]Rule, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Family != b.Family {
			return a.Family < b.Family
		}
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		if a.Chain != b.Chain {
			return a.Chain < b.Chain
		}
		return a.Spec < b.Spec
	})
	return out
}

// PruneUnclaimed deletes the rules and port map elements adopted by Setup
// from a previous process whose owner (network or endpoint) was not set up
// again since: after a restart, the caller re-creates its live networks
// and port maps, then calls PruneUnclaimed to drop the leftovers of the
// dead ones. Called again later (garbage collection on demand), it first
// lists the kernel anew: a rule or element with our comment that appeared
// since Setup (left by a teardown that failed half-way, or by a process
// that crashed meanwhile) is only found there, and goes unless its owner
// is one this process set up.
func (fw *Firewall) PruneUnclaimed() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if !fw.listed {
		if err := fw.adoptLeftoversLocked(); err != nil {
			return types.Wrapf(err, "listing leftover rules")
		}
	}
	fw.listed = false
	var owners []string
	for name, o := range fw.owners {
		if !o.claimed && name != ownerGlobal {
			owners = append(owners, name)
		}
	}
	sort.Strings(owners)
	var t tx
	for _, name := range owners {
		for _, r := range sortedRules(fw.owners[name].rules) {
			t.del(r)
		}
	}
	var del []PortElem
	for name, o := range fw.ports {
		if !o.claimed {
			del = append(del, fw.ownerElemsLocked(name)...)
		}
	}
	SortElems(del)
	if err := errors.Join(fw.updateElemsLocked(nil, del), fw.commitLocked(t.ops, false)); err != nil {
		return types.Wrapf(err, "pruning leftover rules")
	}
	return nil
}

// adoptLeftoversLocked records, unclaimed unless their owner is claimed,
// the rules and port map elements with our comment that the kernel holds
// and the record does not.
func (fw *Firewall) adoptLeftoversLocked() error {
	for _, fam := range fw.fams {
		for _, table := range tableOrder {
			out, err := fw.runner.List(fam, table)
			if err != nil {
				return err
			}
			fw.adoptRulesLocked(fam, table, parseListing(out))
		}
		elems, err := fw.maps.List(fam)
		if err != nil {
			return err
		}
		fw.adoptElemsLocked(elems)
	}
	return nil
}

// Owners returns the owners with installed rules or port map elements and
// whether each was claimed by this process (false: adopted from a
// previous one).
func (fw *Firewall) Owners() map[string]bool {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	out := make(map[string]bool, len(fw.owners)+len(fw.ports))
	for name, o := range fw.owners {
		out[name] = o.claimed
	}
	for name, o := range fw.ports {
		out[name] = out[name] || o.claimed
	}
	return out
}
