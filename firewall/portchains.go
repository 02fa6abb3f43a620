package firewall

import (
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
)

// Port rules are spread over portBuckets chains per kind, an endpoint's
// rules all in the bucket its ID hashes to:
//
//	nat    DOCKER      -> DOCKER-PORTS-<b>    DNAT per published port
//	filter DOCKER      -> DOCKER-PORTS-<b>    ACCEPT per container port
//	nat    POSTROUTING -> DOCKER-HAIRPIN-<b>  MASQUERADE per container address
//
// Why: iptables-nft deletes a rule by spec by fetching and parsing every
// rule of the chain it is in (and of the table's base chains), and the
// kernel rebuilds each chain a transaction touches; with 2,000 ports in one
// DOCKER chain an unpublish cost ~45 ms instead of ~30 and burnt the CPU
// doing it. In a bucket an endpoint's change touches ~1/16th of the rules.
// (What stays proportional to the whole nat table is the kernel's
// validation of every table a rule is added to; see the package comment.)
//
// A bucket chain and the jump into it (tagged cnm-global) are created with
// the first rule that goes there and stay until Teardown: an empty chain
// costs a packet one rule, while deleting chains takes a second
// transaction (iptables-nft refuses to delete a chain in the transaction
// that removed the last jump into it).
const portBuckets = 16

const (
	portChainPrefix    = ChainDocker + "-PORTS-"
	hairpinChainPrefix = ChainDocker + "-HAIRPIN-"
)

// bucketOf is the bucket of an endpoint: stable across restarts, so a new
// process finds an endpoint's rules where it would write them.
func bucketOf(endpointID string) int {
	h := fnv.New32a()
	h.Write([]byte(endpointID))
	return int(h.Sum32() % portBuckets)
}

func portChain(b int) string    { return portChainPrefix + strconv.FormatInt(int64(b), 16) }
func hairpinChain(b int) string { return hairpinChainPrefix + strconv.FormatInt(int64(b), 16) }

// portChainParent returns the chain that jumps into the port chain name of
// table, or "" when name is not one of ours.
func portChainParent(table, name string) string {
	var suffix string
	var parent string
	switch {
	case strings.HasPrefix(name, portChainPrefix) && (table == TableNAT || table == TableFilter):
		suffix, parent = name[len(portChainPrefix):], ChainDocker
	case strings.HasPrefix(name, hairpinChainPrefix) && table == TableNAT:
		suffix, parent = name[len(hairpinChainPrefix):], chainPostroute
	default:
		return ""
	}
	if b, err := strconv.ParseInt(suffix, 16, 0); err != nil || b < 0 || b >= portBuckets || strconv.FormatInt(b, 16) != suffix {
		return ""
	}
	return parent
}

// portChainJump is the rule that sends traffic into a port chain.
func portChainJump(k chainKey) Rule {
	return Rule{Family: k.fam, Table: k.table, Chain: portChainParent(k.table, k.chain), Spec: spec(ownerGlobal, "", k.chain)}
}

// portChainOpsLocked returns the ops creating the port chains want uses
// that do not exist yet, with their jumps, in a stable order.
func (fw *Firewall) portChainOpsLocked(want []Rule) []op {
	need := map[chainKey]bool{}
	for _, r := range want {
		k := chainKey{r.Family, r.Table, r.Chain}
		if portChainParent(r.Table, r.Chain) != "" && !fw.chains[k] {
			need[k] = true
		}
	}
	keys := make([]chainKey, 0, len(need))
	for k := range need {
		keys = append(keys, k)
	}
	sortChainKeys(keys)
	var t tx
	for _, k := range keys {
		t.newChain(k.fam, k.table, k.chain)
		t.add(ownerGlobal, portChainJump(k))
	}
	return t.ops
}

// portChainsIn returns the port chains a listing of table shows.
func portChainsIn(fam Family, table string, l listing) []chainKey {
	var out []chainKey
	for name := range l.chains {
		if portChainParent(table, name) != "" {
			out = append(out, chainKey{fam, table, name})
		}
	}
	sortChainKeys(out)
	return out
}

// portChainsLocked returns the port chains known to exist.
func (fw *Firewall) portChainsLocked() []chainKey {
	var out []chainKey
	for k := range fw.chains {
		if portChainParent(k.table, k.chain) != "" {
			out = append(out, k)
		}
	}
	sortChainKeys(out)
	return out
}

func sortChainKeys(ks []chainKey) {
	sort.Slice(ks, func(i, j int) bool {
		a, b := ks[i], ks[j]
		if a.fam != b.fam {
			return a.fam < b.fam
		}
		if a.table != b.table {
			return a.table < b.table
		}
		return a.chain < b.chain
	})
}
