package libnetwork

import (
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/opencnm/libnetwork/etchosts"
	"github.com/opencnm/libnetwork/resolvconf"
	"github.com/opencnm/libnetwork/resolver"
	"github.com/opencnm/libnetwork/types"
)

// dnsState is a sandbox's hosts and resolv.conf bookkeeping; it is only
// touched under the sandbox's opMu.
type dnsState struct {
	hosts     *etchosts.File
	ownRecs   map[string][]etchosts.Record // endpoint ID -> records added at join
	resolv    string                       // path of the sandbox's resolv.conf
	ownFiles  string                       // directory we created for default paths ("" if none)
	overrides bool                         // the user set DNS, search or options
	ipv6      bool                         // resolv.conf was last built for IPv6
	embedded  bool                         // resolv.conf was last built pointing at the embedded resolver
	ext       []resolvconf.ExtServer       // upstream servers from the last build of resolv.conf
	res       *resolver.Resolver           // the running embedded resolver, or nil
	rulePorts [2]int                       // udp, tcp ports the namespace's redirect leads to (zero: none or unknown)
	prep      *resolverPrep                // resolver being readied during a join, or nil
}

// filesDir is where a sandbox's DNS files go when no path is given.
func (sb *Sandbox) filesDir() string { return filepath.Join(sb.ctrl.cfg.ExecRoot, "files", sb.id) }

// hostMode reports whether the sandbox shares the host's namespace.
func (sb *Sandbox) hostMode() bool { return sb.cfg.useDefaultSandbox }

// setupDNSFiles writes the sandbox's hosts and resolv.conf (at creation
// and on Refresh).
func (sb *Sandbox) setupDNSFiles() error {
	cfg := &sb.cfg
	st := &sb.dns
	st.ownRecs = map[string][]etchosts.Record{}
	hostsPath, resolvPath := cfg.hostsPath, cfg.resolvConfPath
	if hostsPath == "" || resolvPath == "" {
		if err := os.MkdirAll(sb.filesDir(), 0o755); err != nil {
			return types.InternalErrorf("creating files directory of sandbox %s: %w", sb.id[:12], err)
		}
		st.ownFiles = sb.filesDir()
	}
	if hostsPath == "" {
		hostsPath = filepath.Join(sb.filesDir(), "hosts")
	}
	if resolvPath == "" {
		resolvPath = filepath.Join(sb.filesDir(), "resolv.conf")
	}
	// A user-named path may be in a directory that does not exist yet; as
	// upstream, it is made (and, being the user's, kept at Delete).
	for _, p := range []string{cfg.hostsPath, cfg.resolvConfPath} {
		if p == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return types.InternalErrorf("creating directory of %s for sandbox %s: %w", p, sb.id[:12], err)
		}
	}
	st.hosts = etchosts.New(hostsPath)
	st.resolv = resolvPath
	st.overrides = len(cfg.dns) > 0 || len(cfg.dnsSearch) > 0 || len(cfg.dnsOpts) > 0

	if err := sb.buildHosts(); err != nil {
		return err
	}
	return sb.buildResolvConf(false)
}

func (sb *Sandbox) buildHosts() error {
	cfg := &sb.cfg
	if sb.hostMode() && len(cfg.extraHosts) == 0 {
		origin := cfg.originHosts
		if origin == "" {
			origin = "/etc/hosts"
		}
		content, err := os.ReadFile(origin)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return types.InternalErrorf("reading hosts file %s: %w", origin, err)
		}
		if err := os.WriteFile(sb.dns.hosts.Path(), content, etchosts.FileMode); err != nil {
			return types.InternalErrorf("writing hosts file of sandbox %s: %w", sb.id[:12], err)
		}
		return nil
	}
	var extra []etchosts.Record
	for _, h := range cfg.extraHosts {
		ip, err := netip.ParseAddr(h.ip)
		if err != nil {
			return types.BadRequestErrorf("invalid extra host %s=%s: %w", h.name, h.ip, err)
		}
		extra = append(extra, etchosts.Record{IP: ip, Names: []string{h.name}})
	}
	if err := sb.dns.hosts.Build(extra, nil); err != nil {
		return types.Wrapf(err, "writing hosts file of sandbox %s", sb.id[:12])
	}
	return nil
}

// buildResolvConf (re)writes resolv.conf for a sandbox with or without
// IPv6, pointing at the embedded resolver when one runs, unless the user has
// edited the file since we last wrote it. The upstream servers the resolver
// forwards to are refreshed either way.
func (sb *Sandbox) buildResolvConf(ipv6 bool) error {
	cfg := &sb.cfg
	st := &sb.dns
	origin := cfg.originRes
	if origin == "" {
		origin = resolvconf.Path(resolvconf.DefaultPath, resolvconf.DefaultSystemdPath)
	}
	edited := false
	if _, err := os.Stat(st.resolv); err == nil {
		if edited, err = resolvconf.UserModified(st.resolv); err != nil {
			return err
		}
	}
	if edited && sb.hostMode() {
		return nil
	}
	if sb.hostMode() && !st.overrides {
		content, err := os.ReadFile(origin)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return types.InternalErrorf("reading resolv.conf %s: %w", origin, err)
		}
		_, err = resolvconf.WriteFile(st.resolv, content)
		return types.Wrapf(err, "writing resolv.conf of sandbox %s", sb.id[:12])
	}
	f, err := resolvconf.Load(origin)
	if err != nil && !types.IsNotFound(err) && !errors.Is(err, fs.ErrNotExist) {
		return types.Wrapf(err, "reading resolv.conf %s", origin)
	}
	embedded := st.res != nil
	content, ext, err := resolvconf.Build(f, resolvconf.Overrides{
		Nameservers: cfg.dns, Search: cfg.dnsSearch, Options: cfg.dnsOpts,
	}, resolvconf.Settings{IPv6: ipv6, Embedded: embedded})
	if err != nil {
		return types.Wrapf(err, "building resolv.conf of sandbox %s", sb.id[:12])
	}
	st.ext = ext
	if edited {
		return nil
	}
	if _, err := resolvconf.WriteFile(st.resolv, content); err != nil {
		return types.Wrapf(err, "writing resolv.conf of sandbox %s", sb.id[:12])
	}
	st.ipv6, st.embedded = ipv6, embedded
	return nil
}

// removeDNSFiles stops the resolver and deletes the files directory we
// made for default paths.
func (sb *Sandbox) removeDNSFiles() {
	sb.stopResolver(nil, false)
	if sb.dns.ownFiles != "" {
		_ = os.RemoveAll(sb.dns.ownFiles)
	}
}

// joinDNS adds the container's own names for ep's addresses to its hosts
// file, starts the embedded resolver if ep is the sandbox's first endpoint
// that wants one, and rebuilds resolv.conf if the sandbox just gained IPv6
// or the resolver. On error it undoes itself.
func (sb *Sandbox) joinDNS(ep *Endpoint) (err error) {
	defer func() {
		if err != nil {
			sb.leaveDNS(ep)
		}
	}()
	cfg := &sb.cfg
	if cfg.hostname != "" && cfg.originHosts == "" && !ep.network.special() {
		names := etchosts.Names(cfg.hostname, cfg.domainname)
		var recs []etchosts.Record
		for _, a := range []*net.IPNet{ep.iface.addr, ep.iface.addrv6} {
			if a != nil {
				recs = append(recs, etchosts.Record{IP: ipToAddr(a.IP), Names: names})
			}
		}
		if len(recs) > 0 {
			if err := sb.dns.hosts.Add(recs...); err != nil {
				return types.Wrapf(err, "adding hosts records of endpoint %s", ep.name)
			}
			sb.dns.ownRecs[ep.id] = recs
		}
	}
	return sb.updateResolver(nil, sb.dns.ipv6 || ep.iface.addrv6 != nil)
}

// leaveDNS removes exactly the records joinDNS added for ep, and stops the
// resolver if no endpoint other than ep wants it.
func (sb *Sandbox) leaveDNS(ep *Endpoint) {
	if recs := sb.dns.ownRecs[ep.id]; len(recs) > 0 {
		_ = sb.dns.hosts.Delete(recs...)
		delete(sb.dns.ownRecs, ep.id)
	}
	// A leave always completes; stopping cannot fail, and a resolver that
	// could not start before is only retried here.
	_ = sb.updateResolver(ep, sb.dns.ipv6)
}
