package firewall

import (
	"errors"
	"fmt"
	"sort"

	"github.com/opencnm/libnetwork/types"
)

// placement is where a rule was put: Pos as given when it was added (0:
// appended), and seq, the order of the adds, so rules inserted at one
// position are put back in the order they had.
type placement struct {
	pos int
	seq uint64
}

// placeLocked remembers where the rule k was put, unless it is known
// already: a repair re-adding a rule at another index keeps the original.
func (fw *Firewall) placeLocked(k ruleKey, pos int) {
	if _, ok := fw.placed[k]; ok {
		return
	}
	fw.seq++
	fw.placed[k] = placement{pos: pos, seq: fw.seq}
}

// Repairs is what one Repair put back into the kernel.
type Repairs struct {
	Chains   []string   // chains re-created, as "ipv4 filter DOCKER"
	Rules    []Rule     // rules re-added (Pos: the index used)
	Policies []string   // built-in chain policies set again, as "ipv4 filter FORWARD DROP"
	Elems    []PortElem // port map elements re-added
}

// Empty reports whether nothing was repaired.
func (r Repairs) Empty() bool {
	return len(r.Chains)+len(r.Rules)+len(r.Policies)+len(r.Elems) == 0
}

// Count is how many objects were put back.
func (r Repairs) Count() int { return len(r.Chains) + len(r.Rules) + len(r.Policies) + len(r.Elems) }

// Add appends o's repairs to r.
func (r *Repairs) Add(o Repairs) {
	r.Chains = append(r.Chains, o.Chains...)
	r.Rules = append(r.Rules, o.Rules...)
	r.Policies = append(r.Policies, o.Policies...)
	r.Elems = append(r.Elems, o.Elems...)
}

// Repair compares the kernel with the record and puts back what another
// tool removed (an `iptables -F`, an `nft flush ruleset`, a firewall
// manager's reload): our chains, the rules of every owner this process set
// up, the FORWARD policy it set (only where FORWARD lost all our rules, so
// a policy the user changed later is not fought), and the published ports'
// table and elements. It only adds: what is there is never deleted and
// re-added, so live traffic on intact rules does not flap, and a Repair
// that finds nothing missing commits nothing.
//
// Rules go back where they were: appended ones at the end of their chain,
// inserted ones right after the last of our rules that were above them (so
// a network's FORWARD rules land after the DOCKER-USER and isolation
// jumps even when another tool put rules on top meanwhile).
//
// What is the user's stays the user's: DOCKER-USER is re-created with
// its RETURN when the chain is gone (as Setup does), but an existing
// DOCKER-USER is never written to, so rules the user flushed stay
// flushed. Rules and elements adopted from a previous process and not
// set up again by this one are not put back: they are forgotten, as the
// kernel no longer has them. When a repair fails (the other tool was still
// changing the tables), the record keeps what is to be put back, for the
// next Repair.
func (fw *Firewall) Repair() (Repairs, error) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	var rep Repairs
	var errs []error
	for _, fam := range fw.fams {
		if !fw.global[fam] {
			continue // not set up, or torn down
		}
		if err := fw.repairRulesLocked(fam, &rep); err != nil {
			errs = append(errs, types.Wrapf(err, "repairing %s firewall rules", fam))
		}
		if err := fw.repairElemsLocked(fam, &rep); err != nil {
			errs = append(errs, types.Wrapf(err, "repairing %s port maps", fam))
		}
	}
	return rep, errors.Join(errs...)
}

// userChains returns fam's user-owned chains.
func userChains(fam Family) map[chainKey]bool {
	out := map[chainKey]bool{}
	for _, c := range globalChains(fam) {
		if c.userOwned {
			out[chainKey{fam, c.table, c.name}] = true
		}
	}
	return out
}

func (fw *Firewall) repairRulesLocked(fam Family, rep *Repairs) error {
	tables := map[string]listing{}
	for _, table := range tableOrder {
		out, err := fw.runner.List(fam, table)
		if err != nil {
			return err
		}
		tables[table] = parseListing(out)
	}
	var t tx
	var fixed Repairs
	created := map[chainKey]bool{}
	builtin := map[chainKey]bool{}
	for _, c := range globalChains(fam) {
		if c.builtin {
			builtin[chainKey{fam, c.table, c.name}] = true
		}
	}
	var chains []chainKey
	for k := range fw.chains {
		// A built-in chain is made by the first rule written to it.
		if k.fam == fam && !builtin[k] && !tables[k.table].chains[k.chain] {
			chains = append(chains, k)
		}
	}
	sort.Slice(chains, func(i, j int) bool {
		if chains[i].table != chains[j].table {
			return chains[i].table < chains[j].table
		}
		return chains[i].chain < chains[j].chain
	})
	for _, k := range chains {
		t.newChain(fam, k.table, k.chain)
		created[k] = true
		fixed.Chains = append(fixed.Chains, fmt.Sprintf("%s %s %s", fam, k.table, k.chain))
	}
	user := userChains(fam)
	for _, c := range globalChains(fam) {
		// A user chain made again gets its rules as Setup gives a new one,
		// even those the record forgot when the user flushed the chain.
		if ck := (chainKey{fam, c.table, c.name}); user[ck] && created[ck] {
			for _, s := range c.rules {
				k := ruleKey{fam, c.table, c.name, s}
				fw.claimLocked(k, ownerGlobal)
				fw.placeLocked(k, 0)
			}
		}
	}
	missing := map[chainKey][]ruleKey{}
	var forget []ruleKey
	for k, owner := range fw.present {
		if k.fam != fam || tables[k.table].has(k.chain, k.spec) {
			continue
		}
		ck := chainKeyOf(k)
		o := fw.owners[owner]
		if (user[ck] && !created[ck]) || o == nil || !o.claimed {
			forget = append(forget, k)
			continue
		}
		missing[ck] = append(missing[ck], k)
	}
	for _, k := range forget {
		fw.forgetLocked(k)
	}
	var cks []chainKey
	for ck := range missing {
		cks = append(cks, ck)
	}
	sort.Slice(cks, func(i, j int) bool {
		if cks[i].table != cks[j].table {
			return cks[i].table < cks[j].table
		}
		return cks[i].chain < cks[j].chain
	})
	for _, ck := range cks {
		for _, r := range fw.placeMissingLocked(ck, tables[ck.table].rules[ck.chain], missing[ck]) {
			t.add(fw.present[r.key()], r)
			fixed.Rules = append(fixed.Rules, r)
		}
	}
	for ck, policy := range fw.policies {
		l := tables[ck.table]
		if ck.fam != fam || l.policies[ck.chain] == policy || fw.oursIn(ck, l.rules[ck.chain]) {
			continue
		}
		t.policy(fam, ck.table, ck.chain, policy)
		fixed.Policies = append(fixed.Policies, fmt.Sprintf("%s %s %s %s", fam, ck.table, ck.chain, policy))
	}
	if len(t.ops) == 0 {
		return nil
	}
	// Not commitLocked: when the script fails (the other tool is still at
	// work: a chain we add to was deleted meanwhile), its recovery would
	// set the record to what the kernel has, forgetting the very rules
	// to put back. The record stays as it is instead, and a later repair
	// tries again; tables the script did commit already match it.
	if err := fw.runner.Restore(fam, render(t.ops)); err != nil {
		return types.InternalErrorf("applying repairs: %w", err)
	}
	fw.recordLocked(t.ops)
	rep.Add(fixed)
	return nil
}

// oursIn reports whether a listed chain still holds one of our rules.
func (fw *Firewall) oursIn(ck chainKey, specs []string) bool {
	for _, s := range specs {
		if _, ok := fw.present[ruleKey{ck.fam, ck.table, ck.chain, s}]; ok {
			return true
		}
	}
	return false
}

// placeMissingLocked orders the missing rules of one chain and gives each
// the index to insert it at, simulating the chain as the kernel lists it
// (have) while they go in: inserted rules first, by their original
// position then the order they were added in, each right after the last
// of our rules that stood above it when it was inserted (a smaller
// original position, or the same one inserted later); appended ones
// after, in the order they were added.
func (fw *Firewall) placeMissingLocked(ck chainKey, have []string, missing []ruleKey) []Rule {
	sort.Slice(missing, func(i, j int) bool {
		a, b := fw.placed[missing[i]], fw.placed[missing[j]]
		if (a.pos == 0) != (b.pos == 0) {
			return b.pos == 0
		}
		if a.pos != b.pos {
			return a.pos < b.pos
		}
		if a.seq != b.seq {
			return a.seq < b.seq
		}
		return missing[i].spec < missing[j].spec
	})
	chain := append([]string(nil), have...)
	out := make([]Rule, 0, len(missing))
	for _, k := range missing {
		r := Rule{Family: k.fam, Table: k.table, Chain: k.chain, Spec: k.spec}
		me := fw.placed[k]
		p := me.pos
		if p == 0 {
			chain = append(chain, k.spec)
			out = append(out, r)
			continue
		}
		at := 0 // 0-based index to insert at
		for i, s := range chain {
			q, ok := fw.placed[ruleKey{ck.fam, ck.table, ck.chain, s}]
			if ok && q.pos > 0 && (q.pos < p || q.pos == p && q.seq > me.seq) {
				at = i + 1
			}
		}
		chain = append(chain, "")
		copy(chain[at+1:], chain[at:])
		chain[at] = k.spec
		r.Pos = at + 1
		out = append(out, r)
	}
	return out
}

// repairElemsLocked makes sure fam's port map table is there and whole
// (Ensure re-creates a missing table and rebuilds a damaged one), then
// adds back the elements of owners this process set up. An element whose
// key now maps elsewhere is replaced in the same transaction.
func (fw *Firewall) repairElemsLocked(fam Family, rep *Repairs) error {
	kernel, err := fw.maps.Ensure(fam)
	if err != nil {
		return err
	}
	have := make(map[elemKey]PortElem, len(kernel))
	for _, e := range kernel {
		have[keyOf(e)] = e
	}
	var add, del, forget []PortElem
	for k, e := range fw.elems {
		if k.fam != fam {
			continue
		}
		cur, ok := have[k]
		if ok && cur == e {
			continue
		}
		if ok && sameElemData(cur, e) {
			continue // only the comment differs: it forwards as recorded
		}
		if o := fw.ports[e.Owner]; o == nil || !o.claimed {
			forget = append(forget, e)
			continue
		}
		if ok {
			del = append(del, cur)
		}
		add = append(add, e)
	}
	for _, e := range forget {
		fw.forgetElemLocked(e)
	}
	if len(add) == 0 {
		return nil
	}
	SortElems(add)
	SortElems(del)
	// As for rules: a failure leaves the record as it is (the elements
	// still to put back), not as the kernel has it.
	if err := fw.maps.Update(fam, add, del); err != nil {
		return types.InternalErrorf("applying repairs: %w", err)
	}
	// The record already says add; del were never in it.
	rep.Elems = append(rep.Elems, add...)
	return nil
}
