// Package names owns the rules for the names and IDs that reach the
// kernel or a firewall rule: interface names (bridges, the prefixes of
// container interfaces, links a plugin names) and the IDs of networks,
// endpoints and sandboxes (link aliases, rule and port map element
// comments, file names under ExecRoot).
//
// Both are allowlists, not lists of characters known to be dangerous: an
// interface name may be an iptables wildcard (`+` at its end), a kernel
// name template (`%d`), an option (`-x`) or a path; an ID ends up in a
// comment iptables prints quoted, in an nftables comment and in a path.
// Letters, digits, `_`, `.` and `-` (what Docker allows in names) mean the
// same thing everywhere they go. Callers wrap the error with the field it
// came from; every error here is BadRequest.
package names

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/opencnm/libnetwork/types"
)

// MaxIDLen is the longest ID accepted, in bytes: Docker's IDs are 64 hex
// digits. With it every tag made from an ID fits the kernel's limits with
// room to spare (see Tag).
const MaxIDLen = 64

// MaxIfaceLen is the longest interface name the kernel takes (IFNAMSIZ-1).
const MaxIfaceLen = 15

// ID checks an ID of a network, endpoint or sandbox: 1 to MaxIDLen bytes
// of ASCII letters, digits, `_`, `.` and `-`, starting with a letter or a
// digit (so it is never an option, a hidden file, `.` or `..`).
func ID(id string) error {
	switch {
	case id == "":
		return types.BadRequestErrorf("empty id")
	case len(id) > MaxIDLen:
		return types.BadRequestErrorf("id %s... is %d bytes long, more than %d", quote(id[:16]), len(id), MaxIDLen)
	case !alnum(id[0]):
		return types.BadRequestErrorf("id %s does not start with a letter or a digit", quote(id))
	}
	if i := strings.IndexFunc(id, func(r rune) bool { return !nameChar(r) }); i >= 0 {
		return types.BadRequestErrorf("id %s: character %s at byte %d is not a letter, digit, '_', '.' or '-'", quote(id), quote(id[i:i+1]), i)
	}
	return nil
}

// Iface checks an interface name: 1 to MaxIfaceLen bytes of ASCII
// letters, digits, `_`, `.` and `-`, starting with a letter, a digit or
// `_`. This rules out what the kernel refuses (`/`, `:`, spaces, `.`,
// `..`), what it would take for a template (`%`), what iptables reads as
// a wildcard (`+`) or a negation (`!`), and anything a rule or a listing
// would need to quote.
func Iface(name string) error {
	switch {
	case name == "":
		return types.BadRequestErrorf("empty interface name")
	case len(name) > MaxIfaceLen:
		return types.BadRequestErrorf("interface name %s is longer than %d bytes", quote(name), MaxIfaceLen)
	case !alnum(name[0]) && name[0] != '_':
		return types.BadRequestErrorf("interface name %s does not start with a letter, a digit or '_'", quote(name))
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return !nameChar(r) }); i >= 0 {
		return types.BadRequestErrorf("interface name %s: character %s at byte %d is not a letter, digit, '_', '.' or '-'", quote(name), quote(name[i:i+1]), i)
	}
	return nil
}

// IfacePrefix checks the prefix of numbered interface names (eth for
// eth0, eth1, ...): an interface name that leaves room for a three-digit
// index.
func IfacePrefix(prefix string) error {
	if err := Iface(prefix); err != nil {
		return err
	}
	if len(prefix) > MaxIfaceLen-3 {
		return types.BadRequestErrorf("interface prefix %s is longer than %d bytes (a three-digit index must fit)", quote(prefix), MaxIfaceLen-3)
	}
	return nil
}

// Tag encodes id for a comment or label that must read back byte for byte
// and tell any two IDs apart: letters, digits and `-` stay as they are
// (iptables prints them unquoted), every other byte becomes `_` and its
// two lowercase hex digits. The encoding is injective for any string, so
// no two IDs share a tag ("a.b" is "a_2eb", "a_b" is "a_5fb"), and IDs of
// letters, digits and `-` only (all generated IDs: hex) keep the tag they
// always had. A valid ID's tag is at most 3*MaxIDLen = 192 bytes: with
// the "cnm-net-" prefix within the 255 bytes of an iptables comment and
// an nftables element comment.
func Tag(id string) string {
	var b strings.Builder
	b.Grow(len(id))
	for i := 0; i < len(id); i++ {
		c := id[i]
		if alnum(c) || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteString(strconv.FormatUint(uint64(c)>>4, 16))
		b.WriteString(strconv.FormatUint(uint64(c)&0xf, 16))
	}
	return b.String()
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func nameChar(r rune) bool {
	return r < 0x80 && (alnum(byte(r)) || r == '_' || r == '.' || r == '-')
}

// quote shows a hostile value safely in a message: control characters,
// quotes and invalid UTF-8 escaped.
func quote(s string) string { return fmt.Sprintf("%+q", s) }
