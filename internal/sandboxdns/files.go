// Package sandboxdns owns a sandbox's DNS: its hosts and resolv.conf files
// (written in place, with resolv.conf's hash sidecar for user edits) and
// the plumbing of its embedded resolver (sockets inside the sandbox's
// namespace, the namespace's redirect from port 53, its repair). What a
// sandbox needs (which names, which servers, whether a resolver runs) is
// decided by its owner and handed in; this package only carries it out.
package sandboxdns

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/opencnm/libnetwork/etchosts"
	"github.com/opencnm/libnetwork/resolvconf"
	"github.com/opencnm/libnetwork/resolver"
	"github.com/opencnm/libnetwork/types"
)

// ExtraHost is a name the user maps to an address in the hosts file; IP
// is parsed when the file is built (an invalid one is BadRequest).
type ExtraHost struct{ Name, IP string }

// Config is what a sandbox's DNS is made of. Paths left empty default to
// files in Dir, which is then the sandbox's own and goes at Remove.
type Config struct {
	ID  string // the sandbox's ID, for messages
	Dir string // where default paths go

	HostsPath, ResolvPath     string // "" for the default in Dir
	OriginHosts, OriginResolv string // files copied or built from ("" for the host's)
	// HostMode: the sandbox shares the host's namespace; its files are
	// copies of the host's unless the user overrides them, and no
	// resolver runs.
	HostMode   bool
	ExtraHosts []ExtraHost
	DNS        []string // nameservers, search domains, options set by the user
	Search     []string
	Options    []string

	// The embedded resolver's collaborators.
	Backend resolver.Backend
	Dial    func(ctx context.Context, network string, u resolver.Upstream) (net.Conn, error)
	Timeout time.Duration
	Logger  *slog.Logger
}

// DNS is one sandbox's DNS files and resolver. Its zero value is ready for
// Setup. It is not safe for concurrent use: the owner serialises calls
// (the sandbox's operation lock).
type DNS struct {
	cfg      Config
	hosts    *etchosts.File
	own      map[string][]etchosts.Record // key (endpoint ID) -> records AddNames put in
	resolv   string                       // path of resolv.conf
	ownDir   string                       // directory we made for default paths ("" if none)
	ipv6     bool                         // resolv.conf was last built for IPv6
	embedded bool                         // resolv.conf was last built naming the embedded resolver
	ext      []resolvconf.ExtServer       // upstream servers from the last build of resolv.conf

	res   *resolver.Resolver // the running resolver, or nil
	ports Ports              // where the namespace's redirect leads (zero: none or unknown)
	prep  *prep              // sockets being readied for a start, or nil
}

func (d *DNS) short() string {
	if len(d.cfg.ID) > 12 {
		return d.cfg.ID[:12]
	}
	return d.cfg.ID
}

// IPv6 reports whether resolv.conf was last built for a sandbox with IPv6.
func (d *DNS) IPv6() bool { return d.ipv6 }

// Setup writes the sandbox's hosts and resolv.conf from cfg (at creation
// and when the sandbox's configuration is replaced). Records added with
// AddNames are forgotten; a running resolver keeps running.
func (d *DNS) Setup(cfg Config) error {
	d.cfg = cfg
	d.own = map[string][]etchosts.Record{}
	hostsPath, resolvPath := cfg.HostsPath, cfg.ResolvPath
	if hostsPath == "" || resolvPath == "" {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return types.InternalErrorf("creating files directory of sandbox %s: %w", d.short(), err)
		}
		d.ownDir = cfg.Dir
	}
	if hostsPath == "" {
		hostsPath = filepath.Join(cfg.Dir, "hosts")
	}
	if resolvPath == "" {
		resolvPath = filepath.Join(cfg.Dir, "resolv.conf")
	}
	// A user-named path may be in a directory that does not exist yet; as
	// upstream, it is made (and, being the user's, kept at Remove).
	for _, p := range []string{cfg.HostsPath, cfg.ResolvPath} {
		if p == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return types.InternalErrorf("creating directory of %s for sandbox %s: %w", p, d.short(), err)
		}
	}
	d.hosts = etchosts.New(hostsPath)
	d.resolv = resolvPath
	if err := d.buildHosts(); err != nil {
		return err
	}
	return d.buildResolvConf(false)
}

func (d *DNS) overrides() bool {
	return len(d.cfg.DNS) > 0 || len(d.cfg.Search) > 0 || len(d.cfg.Options) > 0
}

func (d *DNS) buildHosts() error {
	cfg := &d.cfg
	if cfg.HostMode && len(cfg.ExtraHosts) == 0 {
		origin := cfg.OriginHosts
		if origin == "" {
			origin = "/etc/hosts"
		}
		content, err := os.ReadFile(origin)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return types.InternalErrorf("reading hosts file %s: %w", origin, err)
		}
		if err := os.WriteFile(d.hosts.Path(), content, etchosts.FileMode); err != nil {
			return types.InternalErrorf("writing hosts file of sandbox %s: %w", d.short(), err)
		}
		return nil
	}
	var extra []etchosts.Record
	for _, h := range cfg.ExtraHosts {
		ip, err := netip.ParseAddr(h.IP)
		if err != nil {
			return types.BadRequestErrorf("invalid extra host %s=%s: %w", h.Name, h.IP, err)
		}
		extra = append(extra, etchosts.Record{IP: ip, Names: []string{h.Name}})
	}
	if err := d.hosts.Build(extra, nil); err != nil {
		return types.Wrapf(err, "writing hosts file of sandbox %s", d.short())
	}
	return nil
}

// buildResolvConf (re)writes resolv.conf for a sandbox with or without
// IPv6, naming the embedded resolver when one runs, unless the user has
// edited the file since it was last written. The upstream servers the
// resolver forwards to are refreshed either way.
func (d *DNS) buildResolvConf(ipv6 bool) error {
	cfg := &d.cfg
	origin := cfg.OriginResolv
	if origin == "" {
		origin = resolvconf.Path(resolvconf.DefaultPath, resolvconf.DefaultSystemdPath)
	}
	edited := false
	if _, err := os.Stat(d.resolv); err == nil {
		if edited, err = resolvconf.UserModified(d.resolv); err != nil {
			return err
		}
	}
	if edited && cfg.HostMode {
		return nil
	}
	if cfg.HostMode && !d.overrides() {
		content, err := os.ReadFile(origin)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return types.InternalErrorf("reading resolv.conf %s: %w", origin, err)
		}
		_, err = resolvconf.WriteFile(d.resolv, content)
		return types.Wrapf(err, "writing resolv.conf of sandbox %s", d.short())
	}
	f, err := resolvconf.Load(origin)
	if err != nil && !types.IsNotFound(err) && !errors.Is(err, fs.ErrNotExist) {
		return types.Wrapf(err, "reading resolv.conf %s", origin)
	}
	embedded := d.res != nil
	content, ext, err := resolvconf.Build(f, resolvconf.Overrides{
		Nameservers: cfg.DNS, Search: cfg.Search, Options: cfg.Options,
	}, resolvconf.Settings{IPv6: ipv6, Embedded: embedded})
	if err != nil {
		return types.Wrapf(err, "building resolv.conf of sandbox %s", d.short())
	}
	d.ext = ext
	if edited {
		return nil
	}
	if _, err := resolvconf.WriteFile(d.resolv, content); err != nil {
		return types.Wrapf(err, "writing resolv.conf of sandbox %s", d.short())
	}
	d.ipv6, d.embedded = ipv6, embedded
	return nil
}

// rebuildResolvConf rewrites resolv.conf if it was last built for another
// IPv6 setting or resolver mode; host-mode files are copies and stay.
func (d *DNS) rebuildResolvConf(ipv6 bool) error {
	if d.cfg.HostMode || (d.ipv6 == ipv6 && d.embedded == (d.res != nil)) {
		return nil
	}
	return d.buildResolvConf(ipv6)
}

// AddNames adds recs to the hosts file under key; RemoveNames(key) takes
// out exactly those. On error nothing was added.
func (d *DNS) AddNames(key string, recs []etchosts.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if err := d.hosts.Add(recs...); err != nil {
		return err
	}
	d.own[key] = recs
	return nil
}

// RemoveNames takes the records added under key out of the hosts file.
// Records the user removed meanwhile are no error.
func (d *DNS) RemoveNames(key string) {
	if recs := d.own[key]; len(recs) > 0 {
		_ = d.hosts.Delete(recs...)
		delete(d.own, key)
	}
}

// Remove stops the resolver (its redirect stays in the namespace, which
// goes with the sandbox) and deletes the directory made for default paths.
func (d *DNS) Remove() {
	d.Stop(nil, false)
	if d.ownDir != "" {
		_ = os.RemoveAll(d.ownDir)
	}
}
