// Package resolvconf reads a host's resolv.conf and derives the file a
// sandbox (container) gets from it.
//
// It is a pure file/text package: every path is a parameter, so a controller
// with its own data directory, or a test using t.TempDir(), never touches the
// machine's files. The controller decides when to call it; this package only
// parses, builds and writes.
//
// Differences from upstream libnetwork, on purpose:
//   - A sandbox left without a usable nameserver gets none. Upstream appended
//     Google's public servers (8.8.8.8, 8.8.4.4), silently sending a
//     container's queries off-site.
//   - Loopback nameservers removed from the container's file are returned to
//     the caller (flagged HostLoopback) so the embedded resolver, which can
//     forward from the host's namespace, still uses them.
//   - The hash of what was written is returned and kept beside the file after
//     every write, including the embedded-resolver rewrite, so a later refresh
//     can always tell whether the user has edited the file since.
package resolvconf

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"

	"github.com/opencnm/libnetwork/types"
)

const (
	// DefaultPath is the host's resolv.conf, used when the caller passes "".
	DefaultPath = "/etc/resolv.conf"
	// DefaultSystemdPath is the file systemd-resolved keeps with the real
	// upstream servers, used when the caller passes "".
	DefaultSystemdPath = "/run/systemd/resolve/resolv.conf"
	// SystemdStub is the address of systemd-resolved's local stub listener.
	SystemdStub = "127.0.0.53"
	// EmbeddedNameserver is the address the embedded resolver answers on
	// inside a sandbox.
	EmbeddedNameserver = "127.0.0.11"
)

// File is a parsed resolv.conf. The zero value is an empty file (no
// nameservers, no search domains, no options), which is what a missing host
// file amounts to.
type File struct {
	nameservers []netip.Addr
	search      []string
	options     []string
	// other holds directive lines this package does not interpret (sortlist,
	// lookup, ...), kept verbatim so building from the host file does not
	// silently drop them.
	other []string
}

// Load reads and parses the resolv.conf at path. A missing file is a NotFound
// error that also satisfies errors.Is(err, fs.ErrNotExist); callers that
// treat it as empty can use &File{} instead.
func Load(path string) (*File, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, types.NotFoundErrorf("loading resolv.conf %q: %w", path, err)
		}
		return nil, types.InternalErrorf("loading resolv.conf %q: %w", path, err)
	}
	return Parse(content), nil
}

// Parse parses resolv.conf content. It never fails: like the C resolver, it
// skips what it does not understand.
//
// Rules, following glibc: lines starting with '#' or ';' are comments, and
// text from a '#' or ';' onwards is ignored; "nameserver" lines accumulate
// (unparsable addresses are skipped); the last "search" or "domain" line
// wins (a "domain d" line is the same as "search d"). The last "options" line
// wins too, as upstream libnetwork had it; glibc instead applies every options
// line in turn, which differs only for files with several options lines.
func Parse(content []byte) *File {
	f := &File{}
	for line := range strings.Lines(string(content)) {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) < 2 {
				continue
			}
			if a, err := netip.ParseAddr(fields[1]); err == nil {
				f.nameservers = append(f.nameservers, a)
			}
		case "search", "domain":
			f.search = append([]string(nil), fields[1:]...)
		case "options":
			f.options = append([]string(nil), fields[1:]...)
		default:
			f.other = append(f.other, strings.Join(fields, " "))
		}
	}
	return f
}

// Nameservers returns the nameserver addresses in file order.
func (f *File) Nameservers() []netip.Addr { return clone(f.nameservers) }

// Search returns the search domains of the last search (or domain) line.
func (f *File) Search() []string { return clone(f.search) }

// Options returns the options of the last options line.
func (f *File) Options() []string { return clone(f.options) }

// Path returns the file to read the host's DNS configuration from:
// hostPath, unless its only nameserver is systemd-resolved's stub
// (127.0.0.53), which is unreachable from a container; then systemdPath,
// provided that file exists. Empty arguments mean DefaultPath and
// DefaultSystemdPath.
func Path(hostPath, systemdPath string) string {
	if hostPath == "" {
		hostPath = DefaultPath
	}
	if systemdPath == "" {
		systemdPath = DefaultSystemdPath
	}
	f, err := Load(hostPath)
	if err != nil {
		return hostPath
	}
	ns := f.nameservers
	if len(ns) != 1 || ns[0] != netip.MustParseAddr(SystemdStub) {
		return hostPath
	}
	if _, err := os.Stat(systemdPath); err != nil {
		return hostPath
	}
	return systemdPath
}

// isLoopback reports whether a nameserver is only reachable from the host's
// own namespace (127.0.0.0/8, ::1, and IPv4-mapped forms of them).
func isLoopback(a netip.Addr) bool {
	return a.Unmap().IsLoopback()
}

// isIPv6 reports whether a nameserver needs IPv6 in the sandbox.
func isIPv6(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6()
}

func clone[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return append([]T(nil), s...)
}

// errNdots is the cause of every invalid-ndots error, so callers and tests
// can tell it apart with errors.Is.
var errNdots = errors.New("invalid number for ndots option")

// validateOptions checks resolver options the way the resolver reads them:
// "ndots:N" needs an integer N >= 0. Other options pass through unchecked.
func validateOptions(opts []string) (ndotsSet bool, err error) {
	for _, o := range opts {
		v, ok := strings.CutPrefix(o, "ndots:")
		if !ok {
			continue
		}
		if !isNonNegativeInt(v) {
			return false, types.BadRequestErrorf("validating dns option %q: %w", o, errNdots)
		}
		ndotsSet = true
	}
	return ndotsSet, nil
}

func isNonNegativeInt(s string) bool {
	if s == "" || len(s) > 9 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validWord reports whether s can be written as one whitespace-separated
// token of a resolv.conf line without changing the file's meaning.
func validWord(s string) bool {
	return s != "" && !strings.ContainsAny(s, "#;") && len(strings.Fields(s)) == 1 && strings.TrimSpace(s) == s
}

func validateWords(kind string, words []string) error {
	for _, w := range words {
		if !validWord(w) {
			return types.BadRequestErrorf("validating dns %s %q: %w", kind, w, fmt.Errorf("must be one word without '#' or ';'"))
		}
	}
	return nil
}
