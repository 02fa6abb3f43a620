// Package fakeipt is an in-memory stand-in for iptables in one network
// namespace. It keeps tables, chains and rules per family, applies restore
// scripts with the kernel's semantics that matter here (per-table commit,
// -D of a missing rule fails, -N of an existing chain fails, -I past the end
// fails, a user chain declared with ":NAME - [0:0]" is created or flushed)
// and renders each table like `iptables -S`, so tests compare rule layouts
// as text without root.
//
// Rules are stored as written: the fake does not normalise a rule spec the
// way the kernel does (adding "-m tcp", "/32", dropping "-d 0.0.0.0/0").
// Callers write specs in the canonical form instead, which is what keeps the
// fake's listing identical to the kernel's.
package fakeipt

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/opencnm/libnetwork/firewall"
)

// builtinChains lists each table's built-in chains in `iptables -S` order.
var builtinChains = map[string][]string{
	"filter": {"INPUT", "FORWARD", "OUTPUT"},
	"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":    {"PREROUTING", "OUTPUT"},
}

// standardTargets are the -j targets that are not chains.
var standardTargets = map[string]bool{
	"ACCEPT": true, "DROP": true, "RETURN": true, "REJECT": true, "LOG": true,
	"MASQUERADE": true, "SNAT": true, "DNAT": true, "CHECKSUM": true, "MARK": true,
}

type chain struct {
	policy string // "" for user chains
	rules  []string
}

type table map[string]*chain

func newTable(name string) table {
	t := table{}
	for _, c := range builtinChains[name] {
		t[c] = &chain{policy: "ACCEPT"}
	}
	return t
}

func (t table) clone() table {
	c := make(table, len(t))
	for name, ch := range t {
		c[name] = &chain{policy: ch.policy, rules: append([]string(nil), ch.rules...)}
	}
	return c
}

// Fake is an in-memory Runner. The zero value is not usable; call New.
type Fake struct {
	mu       sync.Mutex                                   // guards the fields below
	tables   map[firewall.Family]map[string]table         // family -> table name -> chains
	restores int                                          // Restore calls so far
	scripts  []string                                     // every script, for tests that look at batching
	failLine func(fam firewall.Family, line string) error // injected failure, nil = none
}

// New returns an empty fake: every table has only its built-in chains with
// policy ACCEPT, as in a fresh network namespace.
func New() *Fake {
	return &Fake{tables: map[firewall.Family]map[string]table{}}
}

var _ firewall.Runner = (*Fake)(nil)

// FailLine makes a restore line fail whenever fn returns an error for it,
// as a kernel refusing that rule would: the line's table and the tables
// after it are not applied, the tables before it are. nil clears it.
func (f *Fake) FailLine(fn func(fam firewall.Family, line string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failLine = fn
}

// Restores returns how many Restore calls were made.
func (f *Fake) Restores() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restores
}

// Scripts returns a copy of every script passed to Restore, in order.
func (f *Fake) Scripts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.scripts...)
}

func (f *Fake) tableLocked(fam firewall.Family, name string) (table, error) {
	if _, ok := builtinChains[name]; !ok {
		return nil, fmt.Errorf("fake iptables: unknown table %q", name)
	}
	tabs := f.tables[fam]
	if tabs == nil {
		tabs = map[string]table{}
		f.tables[fam] = tabs
	}
	t := tabs[name]
	if t == nil {
		t = newTable(name)
		tabs[name] = t
	}
	return t, nil
}

// Restore applies script like `iptables-restore --noflush`.
func (f *Fake) Restore(fam firewall.Family, script string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restores++
	f.scripts = append(f.scripts, script)
	var (
		name string // current table, "" outside *table ... COMMIT
		work table  // uncommitted copy of it
		orig table  // the committed table, as the transaction started
	)
	for i, line := range strings.Split(script, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fail := func(err error) error {
			return fmt.Errorf("fake %s-restore: line %d failed: %w", famBinary(fam), i+1, err)
		}
		if f.failLine != nil && !strings.HasPrefix(line, "*") && line != "COMMIT" {
			if err := f.failLine(fam, line); err != nil {
				return fail(err)
			}
		}
		switch {
		case strings.HasPrefix(line, "*"):
			if name != "" {
				return fail(fmt.Errorf("table %s not committed", name))
			}
			t, err := f.tableLocked(fam, line[1:])
			if err != nil {
				return fail(err)
			}
			name, work, orig = line[1:], t.clone(), t
		case line == "COMMIT":
			if name == "" {
				return fail(fmt.Errorf("COMMIT outside a table"))
			}
			f.tables[fam][name] = work
			name, work = "", nil
		case name == "":
			return fail(fmt.Errorf("command outside a table: %q", line))
		case strings.HasPrefix(line, ":"):
			if err := declare(work, line[1:]); err != nil {
				return fail(err)
			}
		default:
			args, err := split(line)
			if err != nil {
				return fail(err)
			}
			if err := apply(work, orig, args); err != nil {
				return fail(err)
			}
		}
	}
	if name != "" {
		return fmt.Errorf("fake %s-restore: table %s not committed", famBinary(fam), name)
	}
	return nil
}

// declare handles ":CHAIN POLICY [p:b]": a built-in chain gets its policy,
// a user chain is created, or flushed when it exists.
func declare(t table, decl string) error {
	fields := strings.Fields(decl)
	if len(fields) < 2 {
		return fmt.Errorf("bad chain declaration %q", decl)
	}
	name, policy := fields[0], fields[1]
	if c, ok := t[name]; ok && c.policy != "" {
		if policy != "ACCEPT" && policy != "DROP" {
			return fmt.Errorf("bad policy %q", policy)
		}
		c.policy = policy
		return nil
	}
	t[name] = &chain{}
	return nil
}

// apply runs one command on t. orig is the table as committed before the
// transaction: like iptables-nft, a chain still referenced there cannot be
// deleted even if this transaction already deleted the reference.
func apply(t, orig table, args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("bad command %q", strings.Join(args, " "))
	}
	cmd, name, rest := args[0], args[1], args[2:]
	c := t[name]
	if cmd != "-N" && c == nil {
		return fmt.Errorf("chain %s does not exist", name)
	}
	switch cmd {
	case "-N":
		if c != nil {
			return fmt.Errorf("chain %s already exists", name)
		}
		t[name] = &chain{}
	case "-X":
		if c.policy != "" {
			return fmt.Errorf("cannot delete built-in chain %s", name)
		}
		if len(c.rules) > 0 {
			return fmt.Errorf("chain %s is not empty", name)
		}
		for _, tt := range []table{t, orig} {
			for other, oc := range tt {
				for _, r := range oc.rules {
					if jumpTarget(r) == name {
						return fmt.Errorf("chain %s is referenced from %s (device or resource busy)", name, other)
					}
				}
			}
		}
		delete(t, name)
	case "-F":
		c.rules = nil
	case "-P":
		if c.policy == "" || len(rest) != 1 {
			return fmt.Errorf("bad policy command for %s", name)
		}
		c.policy = rest[0]
	case "-A", "-I", "-D":
		pos := len(c.rules) + 1
		if cmd == "-I" {
			pos = 1
			if len(rest) > 0 {
				if n, err := strconv.Atoi(rest[0]); err == nil {
					pos, rest = n, rest[1:]
				}
			}
			if pos < 1 || pos > len(c.rules)+1 {
				return fmt.Errorf("index of insertion too big")
			}
		}
		rule := join(rest)
		if rule == "" {
			return fmt.Errorf("empty rule")
		}
		if cmd == "-D" {
			for i, r := range c.rules {
				if r == rule {
					c.rules = append(c.rules[:i], c.rules[i+1:]...)
					return nil
				}
			}
			return fmt.Errorf("bad rule (does a matching rule exist in that chain?): %s", rule)
		}
		if tgt := jumpTarget(rule); tgt != "" && !standardTargets[tgt] {
			if tc := t[tgt]; tc == nil || tc.policy != "" {
				return fmt.Errorf("couldn't load target %s", tgt)
			}
		}
		c.rules = append(c.rules, "")
		copy(c.rules[pos:], c.rules[pos-1:])
		c.rules[pos-1] = rule
	default:
		return fmt.Errorf("unsupported command %s", cmd)
	}
	return nil
}

// jumpTarget returns the -j argument of a stored rule.
func jumpTarget(rule string) string {
	f := strings.Fields(rule)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "-j" {
			return f[i+1]
		}
	}
	return ""
}

// List renders a table like `iptables -t table -S`.
func (f *Fake) List(fam firewall.Family, tableName string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, err := f.tableLocked(fam, tableName)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	var users []string
	for name, c := range t {
		if c.policy == "" {
			users = append(users, name)
		}
	}
	sort.Strings(users)
	for _, name := range builtinChains[tableName] {
		fmt.Fprintf(&b, "-P %s %s\n", name, t[name].policy)
	}
	for _, name := range users {
		fmt.Fprintf(&b, "-N %s\n", name)
	}
	for _, name := range append(append([]string(nil), builtinChains[tableName]...), users...) {
		for _, r := range t[name].rules {
			fmt.Fprintf(&b, "-A %s %s\n", name, r)
		}
	}
	return b.String(), nil
}

// ListChain renders one chain like `iptables -t table -S chain`, or ""
// when it does not exist.
func (f *Fake) ListChain(fam firewall.Family, tableName, chain string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, err := f.tableLocked(fam, tableName)
	if err != nil {
		return "", err
	}
	c := t[chain]
	if c == nil {
		return "", nil
	}
	var b strings.Builder
	if c.policy != "" {
		fmt.Fprintf(&b, "-P %s %s\n", chain, c.policy)
	} else {
		fmt.Fprintf(&b, "-N %s\n", chain)
	}
	for _, r := range c.rules {
		fmt.Fprintf(&b, "-A %s %s\n", chain, r)
	}
	return b.String(), nil
}

func famBinary(fam firewall.Family) string {
	if fam == firewall.IPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// split tokenises a restore line, honouring double quotes.
func split(line string) ([]string, error) {
	var (
		out   []string
		cur   strings.Builder
		inQ   bool
		inTok bool
	)
	for _, r := range line {
		switch {
		case r == '"':
			inQ, inTok = !inQ, true
		case (r == ' ' || r == '\t') && !inQ:
			if inTok {
				out = append(out, cur.String())
				cur.Reset()
				inTok = false
			}
		default:
			cur.WriteRune(r)
			inTok = true
		}
	}
	if inQ {
		return nil, fmt.Errorf("unterminated quote in %q", line)
	}
	if inTok {
		out = append(out, cur.String())
	}
	return out, nil
}

// join renders tokens back the way `iptables -S` prints them: a token is
// quoted only if it has characters other than letters, digits, '-' and '_'
// and follows --comment (the only free-text argument we write).
func join(args []string) string {
	parts := make([]string, len(args))
	for i, a := range args {
		if i > 0 && args[i-1] == "--comment" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			a = strconv.Quote(a)
		}
		parts[i] = a
	}
	return strings.Join(parts, " ")
}
