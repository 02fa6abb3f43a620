package firewall

import (
	"strings"

	"github.com/opencnm/libnetwork/internal/names"
)

// Rule is one iptables rule as data. Spec is the rule exactly as
// `iptables -S` prints it after "-A CHAIN " (canonical form: -s/-d with a
// prefix length, then -i/-o, then -p with its -m, then other matches, the
// comment last, then -j), so the in-memory record, restore scripts and
// kernel listings compare as plain strings.
type Rule struct {
	Family Family
	Table  string
	Chain  string
	Spec   string
	// Pos, when > 0, inserts the rule at that 1-based position (-I CHAIN
	// Pos); 0 appends it. It does not take part in identity.
	Pos int
}

type ruleKey struct {
	fam   Family
	table string
	chain string
	spec  string // "" for a chain itself
}

func (r Rule) key() ruleKey { return ruleKey{r.Family, r.Table, r.Chain, r.Spec} }

// commentPrefix starts every comment this package writes, so leftovers of
// a crashed process are recognisable (and adoptable) in a kernel listing.
const commentPrefix = "cnm-"

// ownerGlobal tags the rules of the global chains and their jumps.
const ownerGlobal = commentPrefix + "global"

// NetworkOwner is the comment tag of the rules of network id. Tags are
// injective (names.Tag): two networks never share rules, whatever their
// IDs. Tags of hex IDs are what they always were; a tag an older version
// derived lossily from another ID is adopted at Setup like any leftover and
// pruned, its network having been set up again under its new tag.
func NetworkOwner(id string) string { return commentPrefix + "net-" + names.Tag(id) }

// EndpointOwner is the comment tag of the port rules and port map elements
// of endpoint id; injective as NetworkOwner.
func EndpointOwner(id string) string { return commentPrefix + "ep-" + names.Tag(id) }

// spec joins rule arguments, inserting "-m comment --comment owner" before
// the -j part (where iptables prints it when written there).
func spec(owner string, matches string, target string) string {
	var b strings.Builder
	if matches != "" {
		b.WriteString(matches)
		b.WriteByte(' ')
	}
	b.WriteString("-m comment --comment ")
	b.WriteString(owner)
	b.WriteString(" -j ")
	b.WriteString(target)
	return b.String()
}

// ownerOf returns the owner tag in a listed rule spec, or "" when the rule
// is not ours (no comment, a quoted comment, or another prefix).
func ownerOf(spec string) string {
	f := strings.Fields(spec)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "--comment" && strings.HasPrefix(f[i+1], commentPrefix) {
			return f[i+1]
		}
	}
	return ""
}

// listing is a parsed `iptables -t T -S`.
type listing struct {
	policies map[string]string   // built-in chain -> policy
	chains   map[string]bool     // every chain, built-in or not
	rules    map[string][]string // chain -> specs in order
}

func parseListing(out string) listing {
	l := listing{policies: map[string]string{}, chains: map[string]bool{}, rules: map[string][]string{}}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		cmd, rest, _ := strings.Cut(line, " ")
		name, arg, _ := strings.Cut(rest, " ")
		switch cmd {
		case "-P":
			l.policies[name] = arg
			l.chains[name] = true
		case "-N":
			l.chains[name] = true
		case "-A":
			l.rules[name] = append(l.rules[name], arg)
		}
	}
	return l
}

func (l listing) has(chain, spec string) bool {
	for _, s := range l.rules[chain] {
		if s == spec {
			return true
		}
	}
	return false
}
