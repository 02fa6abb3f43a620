package resolvconf

import (
	"bytes"
	"net/netip"
	"strings"

	"github.com/opencnm/libnetwork/types"
)

// Overrides are the user's DNS settings for a sandbox (upstream's OptionDNS,
// OptionDNSSearch, OptionDNSOptions). Each part that is empty keeps the
// host's value for that part only. A Search of just "." means "no search
// domains".
type Overrides struct {
	Nameservers []string
	Search      []string
	Options     []string
}

// Settings describe the sandbox the file is built for.
type Settings struct {
	// IPv6 is true when the sandbox has IPv6 connectivity; without it IPv6
	// nameservers taken from the host are dropped.
	IPv6 bool
	// Embedded is true when the sandbox uses the embedded resolver: the file
	// then points at EmbeddedNameserver and the real servers are returned
	// for the resolver to forward to.
	Embedded bool
}

// ExtServer is an upstream nameserver the embedded resolver forwards to.
type ExtServer struct {
	Addr netip.Addr
	// HostLoopback marks a server on the host's loopback (127.0.0.0/8, ::1):
	// unreachable from the sandbox, so the resolver must forward to it from
	// the host's namespace.
	HostLoopback bool
}

// Build derives a sandbox's resolv.conf from the host's (origin, nil meaning
// empty) and the user's overrides. It returns the file content and the
// servers the embedded resolver should forward to. The list is the same in
// both modes, so a caller can start the resolver later without rebuilding.
//
// Nameservers written to the file:
//   - user-given nameservers (Overrides.Nameservers) are written as given in
//     non-embedded mode: the user may run a resolver inside the container;
//   - host nameservers lose loopback addresses (they point at the host, not
//     the container) and, without IPv6, every IPv6 address;
//   - in embedded mode the file holds EmbeddedNameserver, then any non-loopback
//     IPv6 nameservers kept by the rule above (as upstream did, so IPv6
//     lookups keep working if the resolver cannot reach them);
//   - nothing else: a sandbox left without a usable nameserver gets none
//     (no public-DNS fallback).
//
// Options: in embedded mode "ndots:0" is appended unless the options already
// set ndots, so single-label names are tried as-is against the embedded
// resolver first. A user "ndots:N" option needs an integer N >= 0, else
// Build fails with a BadRequest error ("invalid number for ndots option");
// an invalid ndots taken from the host file is dropped instead, since the
// user cannot fix the host's file through this API.
func Build(origin *File, o Overrides, s Settings) (content []byte, ext []ExtServer, err error) {
	if origin == nil {
		origin = &File{}
	}
	userNS := make([]netip.Addr, 0, len(o.Nameservers))
	for _, n := range o.Nameservers {
		a, err := netip.ParseAddr(strings.TrimSpace(n))
		if err != nil {
			return nil, nil, types.BadRequestErrorf("building resolv.conf: invalid dns server %q: %w", n, err)
		}
		userNS = append(userNS, a)
	}
	if err := validateWords("search domain", o.Search); err != nil {
		return nil, nil, err
	}
	if err := validateWords("option", o.Options); err != nil {
		return nil, nil, err
	}
	if _, err := validateOptions(o.Options); err != nil {
		return nil, nil, err
	}

	search := origin.search
	if len(o.Search) > 0 {
		search = o.Search
	}
	if len(search) == 1 && search[0] == "." {
		search = nil
	}
	options := origin.options
	if len(o.Options) > 0 {
		options = o.Options
	} else {
		options = dropInvalidNdots(options)
	}

	candidates, userGiven := origin.nameservers, false
	if len(userNS) > 0 {
		candidates, userGiven = userNS, true
	}
	ext = extServers(candidates, s.IPv6)

	var servers []netip.Addr
	switch {
	case s.Embedded:
		servers = append(servers, netip.MustParseAddr(EmbeddedNameserver))
		for _, a := range candidates {
			if s.IPv6 && isIPv6(a) && !isLoopback(a) {
				servers = append(servers, a)
			}
		}
		if ndotsSet, _ := validateOptions(options); !ndotsSet {
			options = append(clone(options), "ndots:0")
		}
	case userGiven:
		servers = candidates
	default:
		for _, a := range candidates {
			if !isLoopback(a) && (s.IPv6 || !isIPv6(a)) {
				servers = append(servers, a)
			}
		}
	}
	return render(search, servers, options, origin.other), ext, nil
}

// extServers lists the servers the embedded resolver can reach: every
// loopback one from the host's namespace, IPv4 ones from the sandbox, and
// IPv6 ones only when the sandbox has IPv6.
func extServers(candidates []netip.Addr, ipv6 bool) []ExtServer {
	var ext []ExtServer
	for _, a := range candidates {
		switch {
		case isLoopback(a):
			ext = append(ext, ExtServer{Addr: a, HostLoopback: true})
		case !isIPv6(a) || ipv6:
			ext = append(ext, ExtServer{Addr: a})
		}
	}
	return ext
}

// dropInvalidNdots removes "ndots:" options that are not integers >= 0.
func dropInvalidNdots(opts []string) []string {
	var out []string
	for _, o := range opts {
		if v, ok := strings.CutPrefix(o, "ndots:"); ok && !isNonNegativeInt(v) {
			continue
		}
		out = append(out, o)
	}
	return out
}

// render writes the canonical layout: search, nameservers, options, then
// the host's other directives.
func render(search []string, servers []netip.Addr, options, other []string) []byte {
	var b bytes.Buffer
	if len(search) > 0 {
		b.WriteString("search " + strings.Join(search, " ") + "\n")
	}
	for _, a := range servers {
		b.WriteString("nameserver " + a.String() + "\n")
	}
	if len(options) > 0 {
		b.WriteString("options " + strings.Join(options, " ") + "\n")
	}
	for _, l := range other {
		b.WriteString(l + "\n")
	}
	return b.Bytes()
}
