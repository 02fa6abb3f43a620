package firewall

import "fmt"

// Family is the IP version a rule belongs to: iptables or ip6tables.
type Family int

// The two families. The zero value is invalid on purpose.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return fmt.Sprintf("family(%d)", int(f))
}

// Tables this package writes to, in the order a restore script lists them.
const (
	TableRaw    = "raw"
	TableMangle = "mangle"
	TableNAT    = "nat"
	TableFilter = "filter"
)

// tableOrder is the fixed order of tables in a rendered restore script, so
// scripts (and golden listings of them) are deterministic.
var tableOrder = []string{TableRaw, TableMangle, TableNAT, TableFilter}

// Tables returns the tables this package writes to, in restore-script
// order: every table a rule of ours may be found in.
func Tables() []string { return append([]string(nil), tableOrder...) }

// Runner is the narrow interface in front of iptables in one network
// namespace: the three calls this package needs. Every change goes through
// Restore, one call per operation and family, because one iptables-restore
// of 200 rules costs about what 4 single iptables execs do.
//
// Implementations: iptables.Exec (execs the binaries inside a namespace,
// single commands through go-iptables) and fakeipt.Fake (in memory, for
// golden listings without root).
type Runner interface {
	// Restore feeds script to `iptables-restore --noflush` (ip6tables-restore
	// for IPv6). Tables are committed one by one at their COMMIT line; a
	// failing line aborts its table and every table after it, so a failed
	// call may have applied the tables before the failing one.
	Restore(fam Family, script string) error
	// List returns `iptables -t table -S`: -P lines for the built-in chains,
	// -N lines for user chains in name order, then the -A lines.
	List(fam Family, table string) (string, error)
	// ListChain returns `iptables -t table -S chain` (its -P or -N line,
	// then its -A lines), or "" when there is no such chain.
	ListChain(fam Family, table, chain string) (string, error)
}
