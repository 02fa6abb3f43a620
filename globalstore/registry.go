package globalstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/types"
)

// Keys of the provider options map (config.OptionKVOpts), upstream's names.
const (
	OptCACertFile = "kv.cacertfile"
	OptCertFile   = "kv.certfile"
	OptKeyFile    = "kv.keyfile"
)

// Config is what a provider needs to connect.
type Config struct {
	// Endpoints are the store's addresses, e.g. "https://10.0.0.1:2379"
	// or "unix:///run/etcd.sock".
	Endpoints []string
	// TLS, when set, is used for every connection.
	TLS *tls.Config
	// DialTimeout bounds connecting; zero means the provider's default.
	DialTimeout time.Duration
	// Dialer, when set, makes the provider's connections (a controller in
	// another network namespace dials from there).
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ParseConfig builds a Config from upstream's provider URL (endpoints,
// comma-separated) and options map. An unknown option key is a BadRequest:
// an option is never accepted and ignored.
func ParseConfig(url string, opts map[string]string) (Config, error) {
	var c Config
	for _, e := range strings.Split(url, ",") {
		if e = strings.TrimSpace(e); e != "" {
			c.Endpoints = append(c.Endpoints, e)
		}
	}
	if len(c.Endpoints) == 0 {
		return c, types.BadRequestErrorf("global store: no endpoints in provider URL %q", url)
	}
	for k := range opts {
		switch k {
		case OptCACertFile, OptCertFile, OptKeyFile:
		default:
			return c, types.BadRequestErrorf("global store: unknown option %q (known: %s, %s, %s)",
				k, OptCACertFile, OptCertFile, OptKeyFile)
		}
	}
	ca, cert, key := opts[OptCACertFile], opts[OptCertFile], opts[OptKeyFile]
	if ca == "" && cert == "" && key == "" {
		return c, nil
	}
	if (cert == "") != (key == "") {
		return c, types.BadRequestErrorf("global store: %s and %s go together", OptCertFile, OptKeyFile)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return c, types.BadRequestErrorf("global store: %s: %w", OptCACertFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return c, types.BadRequestErrorf("global store: %s %s holds no PEM certificate", OptCACertFile, ca)
		}
		tc.RootCAs = pool
	}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return c, types.BadRequestErrorf("global store: %s/%s: %w", OptCertFile, OptKeyFile, err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	c.TLS = tc
	return c, nil
}

// Provider connects to a store.
type Provider func(Config) (KV, error)

// The provider table is filled by init functions and only read after, the
// one piece of process-wide state the contract allows (as database/sql).
var (
	providersMu sync.RWMutex
	providers   = map[string]Provider{}
)

// Register makes a provider available under name; it panics on a duplicate
// name, as a second registration is a programming error.
func Register(name string, p Provider) {
	providersMu.Lock()
	defer providersMu.Unlock()
	if _, dup := providers[name]; dup {
		panic("globalstore: provider " + name + " registered twice")
	}
	providers[name] = p
}

// Providers lists the registered provider names, sorted.
func Providers() []string {
	providersMu.RLock()
	defer providersMu.RUnlock()
	names := make([]string, 0, len(providers))
	for n := range providers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Open connects through the provider registered as name. An unregistered
// name is NotFound, naming the import that registers it.
func Open(name string, c Config) (KV, error) {
	providersMu.RLock()
	p, ok := providers[name]
	providersMu.RUnlock()
	if !ok {
		hint := ""
		if name == "etcd" {
			hint = `: add import _ "github.com/opencnm/libnetwork/store/etcd" to the program`
		}
		return nil, types.NotFoundErrorf("global store provider %q is not registered%s", name, hint)
	}
	kv, err := p(c)
	if err != nil {
		if types.IsClassed(err) {
			return nil, fmt.Errorf("global store provider %q: %w", name, err)
		}
		return nil, types.NoServiceErrorf("global store provider %q: %w", name, err)
	}
	return kv, nil
}
