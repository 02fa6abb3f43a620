package firewall

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/opencnm/libnetwork/types"
)

type opKind int

const (
	opAdd      opKind = iota // -A, or -I at pos
	opDel                    // -D
	opNewChain               // -N
	opDelChain               // -F then -X
	opPolicy                 // :CHAIN POLICY
)

type op struct {
	kind   opKind
	key    ruleKey
	pos    int
	policy string
	owner  string // who claims an added rule
}

// tx collects one operation's changes. Commit renders them as one restore
// script per family, so an operation costs one exec per family however
// many rules it touches.
type tx struct {
	ops []op
}

func (t *tx) add(owner string, r Rule) {
	t.ops = append(t.ops, op{kind: opAdd, key: r.key(), pos: r.Pos, owner: owner})
}

func (t *tx) del(r Rule) { t.ops = append(t.ops, op{kind: opDel, key: r.key()}) }

func (t *tx) newChain(fam Family, table, name string) {
	t.ops = append(t.ops, op{kind: opNewChain, key: ruleKey{fam: fam, table: table, chain: name}})
}

func (t *tx) delChain(fam Family, table, name string) {
	t.ops = append(t.ops, op{kind: opDelChain, key: ruleKey{fam: fam, table: table, chain: name}})
}

func (t *tx) policy(fam Family, table, chain, policy string) {
	t.ops = append(t.ops, op{kind: opPolicy, key: ruleKey{fam: fam, table: table, chain: chain}, policy: policy})
}

func (o op) line() string {
	switch o.kind {
	case opAdd:
		if o.pos > 0 {
			return "-I " + o.key.chain + " " + strconv.Itoa(o.pos) + " " + o.key.spec
		}
		return "-A " + o.key.chain + " " + o.key.spec
	case opDel:
		return "-D " + o.key.chain + " " + o.key.spec
	case opNewChain:
		return "-N " + o.key.chain
	case opDelChain:
		return "-F " + o.key.chain + "\n-X " + o.key.chain
	case opPolicy:
		return ":" + o.key.chain + " " + o.policy + " [0:0]"
	}
	return ""
}

// render builds the restore script of ops (all of one family), tables in
// tableOrder, each table's lines in op order.
func render(ops []op) string {
	var b strings.Builder
	for _, table := range tableOrder {
		started := false
		for _, o := range ops {
			if o.key.table != table {
				continue
			}
			if !started {
				b.WriteString("*" + table + "\n")
				started = true
			}
			b.WriteString(o.line() + "\n")
		}
		if started {
			b.WriteString("COMMIT\n")
		}
	}
	return b.String()
}

// effectiveLocked drops the ops the record says are no-ops: adding a rule
// we already installed (it is claimed instead) and deleting one that is not
// there, which would fail the whole script. The record is consulted in op
// order, so a delete followed by a re-insert of the same rule stays.
func (fw *Firewall) effectiveLocked(ops []op) []op {
	seen := map[ruleKey]bool{} // presence as changed by earlier ops
	present := func(k ruleKey) bool {
		if p, ok := seen[k]; ok {
			return p
		}
		_, ok := fw.present[k]
		return ok
	}
	var out []op
	for _, o := range ops {
		switch o.kind {
		case opAdd:
			if present(o.key) {
				fw.claimLocked(o.key, o.owner)
				fw.placeLocked(o.key, o.pos)
				continue
			}
			seen[o.key] = true
		case opDel:
			if !present(o.key) {
				fw.forgetLocked(o.key) // an owner index entry may still name it
				continue
			}
			seen[o.key] = false
		}
		out = append(out, o)
	}
	return out
}

// commitLocked applies ops. With verified, the ops were computed from a
// fresh kernel listing and are applied as they are; otherwise they are
// first filtered through the record. The record follows what was applied.
//
// When a script fails (someone changed the rules behind our back, or a
// table before the failing one was already committed), the touched tables
// are listed, ops the kernel already reflects are dropped and the rest is
// retried once. If that fails too the record is set to what the kernel has
// and the error returned, so the caller's undo removes exactly what exists.
func (fw *Firewall) commitLocked(ops []op, verified bool) error {
	if !verified {
		ops = fw.effectiveLocked(ops)
	}
	var errs []error
	for _, fam := range []Family{IPv4, IPv6} {
		var famOps []op
		for _, o := range ops {
			if o.key.fam == fam {
				famOps = append(famOps, o)
			}
		}
		if len(famOps) == 0 {
			continue
		}
		if err := fw.applyLocked(fam, famOps); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (fw *Firewall) applyLocked(fam Family, ops []op) error {
	err := fw.runner.Restore(fam, render(ops))
	if err == nil {
		fw.recordLocked(ops)
		return nil
	}
	tables, lerr := fw.listTablesLocked(fam, ops)
	if lerr != nil {
		return types.InternalErrorf("applying %s rules: %w (and listing them to recover: %v)", fam, err, lerr)
	}
	var rest []op
	for _, o := range ops {
		if !reflected(tables[o.key.table], o) {
			rest = append(rest, o)
		}
	}
	retryErr := error(nil)
	if len(rest) > 0 {
		retryErr = fw.runner.Restore(fam, render(rest))
	}
	if retryErr == nil {
		fw.recordLocked(ops)
		return nil
	}
	// Give up: make the record match the kernel for everything touched.
	if tables, lerr = fw.listTablesLocked(fam, ops); lerr != nil {
		return types.InternalErrorf("applying %s rules: %w (and listing them to recover: %v)", fam, retryErr, lerr)
	}
	for _, o := range ops {
		l := tables[o.key.table]
		switch o.kind {
		case opAdd, opDel:
			if l.has(o.key.chain, o.key.spec) {
				owner := o.owner
				if owner == "" {
					owner = ownerOf(o.key.spec)
				}
				fw.setPresentLocked(o.key, owner)
			} else {
				fw.forgetLocked(o.key)
			}
		case opNewChain, opDelChain:
			if l.chains[o.key.chain] {
				fw.chains[chainKeyOf(o.key)] = true
			} else {
				delete(fw.chains, chainKeyOf(o.key))
			}
		}
	}
	return types.InternalErrorf("applying %s rules: %w", fam, retryErr)
}

// listTablesLocked reads, per table, just the chains ops touch (through
// Runner.ListChain), as a listing of those chains: enough to tell which of
// the ops the kernel reflects, at a few chains' cost instead of whole
// tables'.
func (fw *Firewall) listTablesLocked(fam Family, ops []op) (map[string]listing, error) {
	outs := map[string]*strings.Builder{}
	seen := map[chainKey]bool{}
	for _, o := range ops {
		k := chainKeyOf(o.key)
		if seen[k] {
			continue
		}
		seen[k] = true
		out, err := fw.runner.ListChain(fam, k.table, k.chain)
		if err != nil {
			return nil, fmt.Errorf("listing %s chain %s %s: %w", fam, k.table, k.chain, err)
		}
		if outs[k.table] == nil {
			outs[k.table] = &strings.Builder{}
		}
		outs[k.table].WriteString(out)
	}
	tables := make(map[string]listing, len(outs))
	for table, b := range outs {
		tables[table] = parseListing(b.String())
	}
	return tables, nil
}

// reflected reports whether the kernel listing already shows o done.
func reflected(l listing, o op) bool {
	switch o.kind {
	case opAdd:
		return l.has(o.key.chain, o.key.spec)
	case opDel:
		return !l.has(o.key.chain, o.key.spec)
	case opNewChain:
		return l.chains[o.key.chain]
	case opDelChain:
		return !l.chains[o.key.chain]
	case opPolicy:
		return l.policies[o.key.chain] == o.policy
	}
	return false
}

func (fw *Firewall) recordLocked(ops []op) {
	for _, o := range ops {
		switch o.kind {
		case opAdd:
			fw.setPresentLocked(o.key, o.owner)
			fw.placeLocked(o.key, o.pos)
		case opDel:
			fw.forgetLocked(o.key)
		case opNewChain:
			fw.chains[chainKeyOf(o.key)] = true
		case opDelChain:
			delete(fw.chains, chainKeyOf(o.key))
			for k := range fw.present { // a deleted chain takes its rules along
				if k.fam == o.key.fam && k.table == o.key.table && k.chain == o.key.chain {
					fw.forgetLocked(k)
				}
			}
		}
	}
}
