package firewall

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/opencnm/libnetwork/types"
)

// Chain names, as upstream names them (users' scripts refer to them).
const (
	ChainDocker     = "DOCKER"                   // nat: kept empty (ports are nft maps); filter: DNATed traffic into bridges
	ChainIsolation1 = "DOCKER-ISOLATION-STAGE-1" // filter: traffic leaving a bridge
	ChainIsolation2 = "DOCKER-ISOLATION-STAGE-2" // filter: ... entering another bridge: DROP
	ChainUser       = "DOCKER-USER"              // filter: the user's, first in FORWARD, never flushed
	chainForward    = "FORWARD"
	chainPrerouting = "PREROUTING"
	chainOutput     = "OUTPUT"
	chainPostroute  = "POSTROUTING"
)

// chain describes one of our chains as data: where it lives, the rules it
// must hold (appended, in order), and the rules in built-in chains that jump
// into it. setup, teardown and check below are its verbs.
type chain struct {
	table string
	name  string
	rules []string // specs the chain must contain (appended in order)
	// userOwned chains (DOCKER-USER) are created with their rules when
	// missing, but never flushed, never deleted, and rules are not re-added
	// to an existing one: what is in there belongs to the user.
	userOwned bool
	// jumps into the chain from built-in chains.
	jumps []Rule
	// builtin: the entry is a built-in chain (never created or deleted)
	// that holds global rules of ours, given as jumps.
	builtin bool
}

// globalChains returns the chains every family gets. The FORWARD jumps
// carry positions 1 and 2: DOCKER-USER first, then the isolation stage,
// then (at position 3, see network.go) the networks' rules.
func globalChains(fam Family) []chain {
	ret := spec(ownerGlobal, "", "RETURN")
	local := "-m addrtype --dst-type LOCAL"
	return []chain{
		{table: TableNAT, name: ChainDocker, jumps: []Rule{
			// No "! -d 127.0.0.0/8" on OUTPUT: without a userland proxy the
			// DNAT rules must see the host's loopback traffic too.
			{Family: fam, Table: TableNAT, Chain: chainPrerouting, Spec: spec(ownerGlobal, local, ChainDocker)},
			{Family: fam, Table: TableNAT, Chain: chainOutput, Spec: spec(ownerGlobal, local, ChainDocker)},
		}},
		{table: TableFilter, name: ChainDocker},
		{table: TableFilter, name: ChainIsolation2, rules: []string{ret}},
		{table: TableFilter, name: ChainIsolation1, rules: []string{ret}, jumps: []Rule{
			{Family: fam, Table: TableFilter, Chain: chainForward, Spec: spec(ownerGlobal, "", ChainIsolation1), Pos: 2},
		}},
		{table: TableFilter, name: ChainUser, rules: []string{ret}, userOwned: true, jumps: []Rule{
			{Family: fam, Table: TableFilter, Chain: chainForward, Spec: spec(ownerGlobal, "", ChainUser), Pos: 1},
		}},
		{table: TableMangle, name: chainPrerouting, builtin: true, jumps: loopbackGuard(fam)},
	}
}

// Setup creates the global chains and their jumps in every family, after
// reading the kernel's tables once: rules a previous process left (those
// with our comment) are adopted into the record, so setting their networks
// and ports up again adds nothing twice, and PruneUnclaimed can drop the
// rest. Chains that exist are kept (never flushed), so a restart does not
// interrupt traffic. FORWARD is made to start with the DOCKER-USER jump
// followed by the DOCKER-ISOLATION-STAGE-1 jump. Setup is idempotent.
func (fw *Firewall) Setup() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for _, fam := range fw.fams {
		if err := fw.setupFamilyLocked(fam); err != nil {
			return types.Wrapf(err, "setting up %s firewall chains", fam)
		}
	}
	return nil
}

// adoptRulesLocked records the rules of a table's listing that carry our
// comment as present, owned as the comment says (claimed or not, as the
// record already has them).
func (fw *Firewall) adoptRulesLocked(fam Family, table string, l listing) {
	for name, specs := range l.rules {
		for _, s := range specs {
			if owner := ownerOf(s); owner != "" {
				fw.setPresentLocked(ruleKey{fam, table, name, s}, owner)
			}
		}
	}
}

func (fw *Firewall) setupFamilyLocked(fam Family) error {
	tables := map[string]listing{}
	for _, table := range tableOrder {
		out, err := fw.runner.List(fam, table)
		if err != nil {
			return err
		}
		tables[table] = parseListing(out)
		fw.adoptRulesLocked(fam, table, tables[table])
	}
	var t tx
	var heads []Rule // FORWARD head, in order
	for _, c := range globalChains(fam) {
		l := tables[c.table]
		exists := l.chains[c.name]
		if !exists {
			t.newChain(fam, c.table, c.name)
		}
		if !exists || !c.userOwned {
			for _, s := range c.rules {
				if !exists || !l.has(c.name, s) {
					t.add(ownerGlobal, Rule{Family: fam, Table: c.table, Chain: c.name, Spec: s})
				}
			}
		}
		for _, j := range c.jumps {
			if j.Chain == chainForward {
				heads = append(heads, j)
				continue
			}
			if !l.has(j.Chain, j.Spec) {
				t.add(ownerGlobal, j)
			}
		}
	}
	sort.Slice(heads, func(i, j int) bool { return heads[i].Pos < heads[j].Pos })
	fwd := tables[TableFilter].rules[chainForward]
	inPlace := len(fwd) >= len(heads)
	for i, h := range heads {
		inPlace = inPlace && fwd[i] == h.Spec
	}
	if !inPlace {
		for _, h := range heads {
			for _, s := range fwd {
				if s == h.Spec {
					t.del(h)
				}
			}
		}
		for _, h := range heads {
			t.add(ownerGlobal, h)
		}
	}
	if err := fw.commitLocked(t.ops, true); err != nil {
		return err
	}
	for _, h := range heads { // in place: adopted above, now claimed
		fw.claimLocked(h.key(), ownerGlobal)
		fw.placeLocked(h.key(), h.Pos)
	}
	for _, c := range globalChains(fam) {
		fw.chains[chainKey{fam, c.table, c.name}] = true
		if !c.userOwned {
			for _, s := range c.rules {
				fw.claimLocked(ruleKey{fam, c.table, c.name, s}, ownerGlobal)
				fw.placeLocked(ruleKey{fam, c.table, c.name, s}, 0)
			}
		}
		for _, j := range c.jumps {
			fw.claimLocked(j.key(), ownerGlobal)
			fw.placeLocked(j.key(), j.Pos)
		}
	}
	// The published ports' table: made once, then adopted with its
	// elements as they are, so forwarding never stops across a restart.
	elems, err := fw.maps.Ensure(fam)
	if err != nil {
		return err
	}
	fw.adoptElemsLocked(elems)
	fw.global[fam] = true
	fw.listed = true
	return nil
}

// Teardown removes every rule this Firewall installed (all networks and
// ports) and its chains, and the published ports' table, in every family. DOCKER-USER and its FORWARD jump
// stay: the user's rules in there keep their place for the next start.
// Already gone is success.
func (fw *Firewall) Teardown() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	var t tx
	var chains []chainKey
	for _, fam := range fw.fams {
		for _, c := range globalChains(fam) {
			if !c.userOwned && !c.builtin {
				chains = append(chains, chainKey{fam, c.table, c.name})
			}
		}
	}
	keep := map[ruleKey]bool{}
	for _, fam := range fw.fams {
		for _, c := range globalChains(fam) {
			if c.userOwned {
				for _, j := range c.jumps {
					keep[j.key()] = true
				}
				for _, s := range c.rules {
					keep[ruleKey{fam, c.table, c.name, s}] = true
				}
			}
		}
	}
	// Jumps and rules in built-in chains first, then flush+delete ours.
	for _, r := range sortedRules(fw.allRulesLocked()) {
		if !keep[r.key()] {
			t.del(r)
		}
	}
	if err := fw.commitLocked(t.ops, false); err != nil {
		return types.Wrapf(err, "tearing down firewall chains")
	}
	// A second script: iptables-nft refuses (EBUSY) to delete a chain in
	// the same transaction that deleted the last jump into it.
	var t2 tx
	for _, c := range chains {
		if fw.chains[c] {
			t2.delChain(c.fam, c.table, c.chain)
		}
	}
	if err := fw.commitLocked(t2.ops, false); err != nil {
		return types.Wrapf(err, "tearing down firewall chains")
	}
	for _, fam := range fw.fams {
		if err := fw.maps.Remove(fam); err != nil {
			return types.Wrapf(err, "tearing down %s port maps", fam)
		}
		for k, e := range fw.elems {
			if k.fam == fam {
				fw.forgetElemLocked(e)
			}
		}
		delete(fw.global, fam)
	}
	return nil
}

func (fw *Firewall) allRulesLocked() map[ruleKey]Rule {
	out := make(map[ruleKey]Rule, len(fw.present))
	for k := range fw.present {
		out[k] = Rule{Family: k.fam, Table: k.table, Chain: k.chain, Spec: k.spec}
	}
	return out
}

// Check compares the record with the kernel: every chain and rule we
// installed must be there, and FORWARD must start with the DOCKER-USER and
// DOCKER-ISOLATION-STAGE-1 jumps. It lists whole tables, so it is meant for
// health checks and tests, not for every operation.
func (fw *Firewall) Check() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	var problems []string
	for _, fam := range fw.fams {
		tables := map[string]listing{}
		for _, table := range tableOrder {
			out, err := fw.runner.List(fam, table)
			if err != nil {
				return types.Wrapf(err, "checking %s firewall", fam)
			}
			tables[table] = parseListing(out)
		}
		for k := range fw.chains {
			if k.fam == fam && !tables[k.table].chains[k.chain] {
				problems = append(problems, fmt.Sprintf("%s %s chain %s missing", fam, k.table, k.chain))
			}
		}
		for k := range fw.present {
			if k.fam == fam && !tables[k.table].has(k.chain, k.spec) {
				problems = append(problems, fmt.Sprintf("%s %s rule -A %s %s missing", fam, k.table, k.chain, k.spec))
			}
		}
		elemProblems, err := fw.checkElemsLocked(fam)
		if err != nil {
			return types.Wrapf(err, "checking %s port maps", fam)
		}
		problems = append(problems, elemProblems...)
		if fw.global[fam] {
			fwd := tables[TableFilter].rules[chainForward]
			want := []string{spec(ownerGlobal, "", ChainUser), spec(ownerGlobal, "", ChainIsolation1)}
			if len(fwd) < 2 || fwd[0] != want[0] || fwd[1] != want[1] {
				problems = append(problems, fmt.Sprintf("%s FORWARD does not start with the %s and %s jumps", fam, ChainUser, ChainIsolation1))
			}
		}
	}
	if len(problems) > 0 {
		return types.InternalErrorf("checking firewall: %w", errors.New(strings.Join(problems, "; ")))
	}
	return nil
}
