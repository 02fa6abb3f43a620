// Package config holds a controller's configuration and the options that
// build it. Nothing here is process-wide: every path the library uses comes
// from a Config, so several controllers can live in one process.
package config

import (
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/opencnm/libnetwork/netlabel"
)

// Defaults for the paths a controller uses.
const (
	DefaultExecRoot = "/run/libnetwork"
	DefaultDataDir  = "/var/lib/libnetwork"
)

// DefaultPluginDirs are where Docker v1 plugins are discovered: sockets in
// the first, spec and json files in the others.
var DefaultPluginDirs = []string{"/run/docker/plugins", "/etc/docker/plugins", "/usr/lib/docker/plugins"}

// NetworkToSplit is a base prefix split into pools of Size bits, as in
// Docker's default-address-pools setting.
type NetworkToSplit struct {
	Base string `json:"base"`
	Size int    `json:"size"`
}

// Config is a controller's whole configuration.
type Config struct {
	DataDir  string // durable state (the local store)
	ExecRoot string // runtime state: sandbox namespace files, sockets, resolv.conf/hosts defaults

	// HostNetNS is the path of the network namespace the controller treats
	// as "the host": bridges, host ends of veths and firewall rules go there.
	// Empty means the namespace of the goroutine that calls New.
	HostNetNS string

	Labels             []string                  // daemon labels (only com.docker.network* are kept)
	DriverCfg          map[string]map[string]any // per network type, as given to OptionDriverConfig
	DefaultAddressPool []*NetworkToSplit         // replaces the built-in local pools when set
	PluginDirs         []string                  // plugin discovery directories
	PluginTimeout      time.Duration             // how long a present but silent plugin socket is retried
	StoreTimeout       time.Duration             // how long New waits for a store file another process holds
	ActiveSandboxes    map[string]any            // sandbox ID -> []SandboxOption to live-restore
	DNSTimeout         time.Duration             // embedded resolver: one forwarding attempt; 0 means 4 s
	// The global store multi-host networks share (see docs/multihost.md).
	// KVProvider empty: none, and every network is local to this host.
	KVProvider       string            // a provider registered with package globalstore ("etcd")
	KVProviderURL    string            // the store's endpoints, comma-separated
	KVOpts           map[string]string // provider options (globalstore.OptCACertFile, ...)
	DiscoveryAddress string            // this host's underlay address (VTEP); one of the host namespace's
	HostID           string            // this host's ID in the store; empty: random, kept in DataDir
	HostLeaseTTL     time.Duration     // how long a host's claims outlive it; 0 means 60 s
	KVTimeout        time.Duration     // bound of every call that needs the store; 0 means 5 s

	// Logger receives what background work did or could not do (firewall
	// repairs, the veth reaper, port releases, DNS forwarding, restore
	// repairs). Never nil: the default discards everything.
	Logger *slog.Logger
}

// Option changes a Config.
type Option func(c *Config)

// New returns a Config with defaults, changed by opts.
func New(opts ...Option) *Config {
	c := &Config{
		DataDir:       DefaultDataDir,
		ExecRoot:      DefaultExecRoot,
		DriverCfg:     map[string]map[string]any{},
		PluginDirs:    append([]string(nil), DefaultPluginDirs...),
		PluginTimeout: 15 * time.Second,
		StoreTimeout:  2 * time.Second,
	}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// OptionDriverConfig sets the configuration handed to the driver of networkType.
func OptionDriverConfig(networkType string, config map[string]any) Option {
	return func(c *Config) { c.DriverCfg[networkType] = config }
}

// OptionDataDir sets where durable state is kept.
func OptionDataDir(dir string) Option { return func(c *Config) { c.DataDir = dir } }

// OptionExecRoot sets where runtime state (namespace files, sockets) is kept.
func OptionExecRoot(dir string) Option { return func(c *Config) { c.ExecRoot = dir } }

// OptionHostNetNS sets the network namespace (a path such as /proc/PID/ns/net
// or a bind-mounted file) the controller treats as the host.
func OptionHostNetNS(path string) Option { return func(c *Config) { c.HostNetNS = path } }

// OptionDefaultAddressPoolConfig replaces the built-in local address pools.
func OptionDefaultAddressPoolConfig(pools []*NetworkToSplit) Option {
	return func(c *Config) { c.DefaultAddressPool = pools }
}

// OptionLabels sets daemon labels; only com.docker.network* labels are kept.
// As upstream, com.docker.network.driver.<type>.<key>=<value> labels are
// passed into the configuration of the built-in driver of that type (the
// bridge reads its driver options from them, and refuses keys it does not
// know).
func OptionLabels(labels []string) Option {
	return func(c *Config) {
		c.Labels = nil
		for _, l := range labels {
			if strings.HasPrefix(l, netlabel.Prefix) {
				c.Labels = append(c.Labels, l)
			}
		}
	}
}

// OptionPluginDirs replaces the plugin discovery directories.
func OptionPluginDirs(dirs ...string) Option {
	return func(c *Config) { c.PluginDirs = append([]string(nil), dirs...) }
}

// OptionPluginTimeout bounds how long a plugin whose socket exists but does
// not answer yet is retried.
func OptionPluginTimeout(d time.Duration) Option { return func(c *Config) { c.PluginTimeout = d } }

// OptionStoreTimeout bounds how long New waits for a store held by another
// process before failing with a Timeout error.
func OptionStoreTimeout(d time.Duration) Option { return func(c *Config) { c.StoreTimeout = d } }

// OptionDNSTimeout bounds one attempt of the embedded resolver to reach an
// upstream server (one server, one transport); 0 keeps the default of 4 s.
func OptionDNSTimeout(d time.Duration) Option { return func(c *Config) { c.DNSTimeout = d } }

// OptionLogger sets where background work reports what it did or could
// not do, as structured records (network, endpoint and sandbox ids,
// counts, errors): firewall repairs, the veth reaper, port releases,
// embedded DNS forwarding failures, restore repairs. nil, or no
// OptionLogger, logs nothing.
func OptionLogger(l *slog.Logger) Option { return func(c *Config) { c.Logger = l } }

// OptionKVProvider names the global store's provider ("etcd"). The
// provider's package registers it when imported: for etcd,
// import _ "github.com/opencnm/libnetwork/store/etcd". Without the import
// New fails with a NotFound error naming it.
func OptionKVProvider(provider string) Option { return func(c *Config) { c.KVProvider = provider } }

// OptionKVProviderURL sets the global store's endpoints, comma-separated
// ("https://10.0.0.1:2379,https://10.0.0.2:2379" or "unix:///path").
func OptionKVProviderURL(url string) Option { return func(c *Config) { c.KVProviderURL = url } }

// OptionKVOpts sets the global store provider's options: kv.cacertfile,
// kv.certfile and kv.keyfile for TLS. An unknown key fails New.
func OptionKVOpts(opts map[string]string) Option {
	return func(c *Config) { c.KVOpts = maps.Clone(opts) }
}

// OptionDiscoveryAddress sets this host's underlay address: where other
// hosts send the overlay's VXLAN traffic for its endpoints. It must be an
// address of the controller's host namespace.
func OptionDiscoveryAddress(address string) Option {
	return func(c *Config) { c.DiscoveryAddress = address }
}

// OptionHostID sets this host's ID in the global store; without it a
// random ID is made once and kept in DataDir.
func OptionHostID(id string) Option { return func(c *Config) { c.HostID = id } }

// OptionHostLeaseTTL sets how long this host's endpoints, names and
// addresses outlive it in the global store when it dies (default 60 s).
func OptionHostLeaseTTL(d time.Duration) Option { return func(c *Config) { c.HostLeaseTTL = d } }

// OptionKVTimeout bounds every call that needs the global store; a store
// that cannot answer in time fails the call with a NoService error
// (default 5 s).
func OptionKVTimeout(d time.Duration) Option { return func(c *Config) { c.KVTimeout = d } }

// OptionActiveSandboxes names sandboxes of a previous run to restore live,
// keyed by sandbox ID with their []libnetwork.SandboxOption as value.
func OptionActiveSandboxes(sandboxes map[string]any) Option {
	return func(c *Config) { c.ActiveSandboxes = sandboxes }
}

// IsValidName reports whether name is usable as a network or endpoint name.
func IsValidName(name string) bool { return strings.TrimSpace(name) != "" }
