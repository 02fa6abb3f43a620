// Package resolver is the embedded DNS server of a sandbox: it answers A,
// AAAA and PTR queries for container names from a Backend and forwards other
// names to upstream servers.
//
// The resolver does not create its sockets or touch any namespace or
// firewall: the controller opens the UDP and TCP sockets inside the sandbox's
// namespace (on 127.0.0.11, random ports), installs the redirect from port 53,
// and hands the sockets over. Outgoing connections to upstream servers go
// through Config.Dial, so the controller decides from which namespace each
// upstream is reached (host-loopback servers only work from the host's).
//
// Differences from upstream libnetwork, on purpose: the per-attempt timeout is
// configurable (upstream: fixed 4 s); an upstream that keeps failing is put at
// the back of the list for a while instead of being waited on for every
// query; a truncated UDP answer from upstream is retried over TCP so the
// client gets the full answer when it fits; an NXDOMAIN from upstream is
// final (upstream asked the next server whenever the NXDOMAIN was not
// authoritative, which recursive servers never are).
package resolver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/opencnm/libnetwork/types"
)

// Backend answers for the names the sandbox can see (its networks' endpoints
// and aliases).
type Backend interface {
	// ResolveName returns the addresses of name (lower case, no trailing
	// dot) of the family ipType (types.IPv4 or types.IPv6; types.IP for
	// either). The bool reports that the name is known but has no address of
	// that family: the resolver then answers "no records" instead of asking
	// upstream.
	ResolveName(name string, ipType int) ([]net.IP, bool)
	// ResolveIP returns the name to answer a PTR query for ip with, or "".
	ResolveIP(ip string) string
}

// Upstream is a server the resolver forwards to.
type Upstream struct {
	AddrPort netip.AddrPort
	// HostLoopback marks a server on the host's loopback, which Config.Dial
	// must reach from the host's namespace.
	HostLoopback bool
}

// DialFunc opens a connection to an upstream server ("udp" or "tcp").
type DialFunc func(ctx context.Context, network string, u Upstream) (net.Conn, error)

// Defaults for the zero values of Config.
const (
	DefaultTimeout       = 4 * time.Second
	DefaultTTL           = 600
	DefaultMaxForwards   = 1024
	DefaultFailThreshold = 3
	DefaultDownFor       = 30 * time.Second
)

// Config configures a Resolver. UDP and TCP are owned by the resolver from
// New on (Close closes them); at least one is required.
type Config struct {
	UDP     net.PacketConn
	TCP     net.Listener
	Backend Backend
	// Upstreams to forward unknown names to, tried in order. None means
	// unknown names get SERVFAIL (internal networks).
	Upstreams []Upstream
	// Dial reaches an upstream; nil dials from the caller's namespace.
	Dial DialFunc
	// Timeout bounds one attempt (one upstream, one transport).
	Timeout time.Duration
	// TTL of local answers, in seconds.
	TTL uint32
	// MaxForwards bounds concurrent forwarded queries; beyond it, SERVFAIL.
	MaxForwards int
	// FailThreshold consecutive transport failures put an upstream at the
	// back of the list for DownFor.
	FailThreshold int
	DownFor       time.Duration
	// Logger receives forwarding failures; nil discards them.
	Logger *slog.Logger
}

// plainPacketConn hides the concrete type of a PacketConn from miekg/dns.
type plainPacketConn struct{ net.PacketConn }

// Resolver serves DNS on the given sockets until Close.
type Resolver struct {
	cfg     Config
	dial    DialFunc
	sem     chan struct{} // bounds concurrent forwards
	ctx     context.Context
	cancel  context.CancelFunc
	servers []*dns.Server
	wg      sync.WaitGroup // ActivateAndServe goroutines

	mu        sync.Mutex // guards upstreams, started, closed
	upstreams []*upstream
	started   bool
	closed    bool
}

// New checks cfg and returns a Resolver that serves once Start is called.
func New(cfg Config) (*Resolver, error) {
	if cfg.UDP == nil && cfg.TCP == nil {
		return nil, types.BadRequestErrorf("creating resolver: %w", errors.New("no udp or tcp socket"))
	}
	if cfg.Backend == nil {
		return nil, types.BadRequestErrorf("creating resolver: %w", errors.New("no backend"))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxForwards <= 0 {
		cfg.MaxForwards = DefaultMaxForwards
	}
	if cfg.FailThreshold <= 0 {
		cfg.FailThreshold = DefaultFailThreshold
	}
	if cfg.DownFor <= 0 {
		cfg.DownFor = DefaultDownFor
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Resolver{cfg: cfg, dial: cfg.Dial, sem: make(chan struct{}, cfg.MaxForwards)}
	if r.dial == nil {
		r.dial = func(ctx context.Context, network string, u Upstream) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, u.AddrPort.String())
		}
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.SetUpstreams(cfg.Upstreams)
	h := dns.HandlerFunc(r.serveDNS)
	if cfg.UDP != nil {
		// Hidden behind a plain net.PacketConn, a *net.UDPConn is served
		// with ReadFrom/WriteTo: miekg/dns otherwise asks for and parses
		// the packet-info control message of every query (a third of the
		// allocations per query) to answer from the address it was sent
		// to, which only matters on a wildcard-bound socket.
		pc := cfg.UDP
		if _, ok := pc.(*net.UDPConn); ok {
			pc = plainPacketConn{pc}
		}
		r.servers = append(r.servers, &dns.Server{PacketConn: pc, Handler: h})
	}
	if cfg.TCP != nil {
		r.servers = append(r.servers, &dns.Server{Listener: cfg.TCP, Handler: h})
	}
	return r, nil
}

// Start begins serving and returns once every socket is being served.
func (r *Resolver) Start() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return types.ForbiddenErrorf("starting resolver: %w", errors.New("resolver is closed"))
	}
	if r.started {
		r.mu.Unlock()
		return nil
	}
	r.started = true
	started := make(chan struct{}, len(r.servers))
	errc := make(chan error, len(r.servers))
	for _, s := range r.servers {
		s.NotifyStartedFunc = func() { started <- struct{}{} }
		// Launched under r.mu so that Close, which waits for these
		// goroutines, cannot start waiting before they are counted.
		r.wg.Go(func() {
			if err := s.ActivateAndServe(); err != nil {
				errc <- err
			}
		})
	}
	r.mu.Unlock()
	for range r.servers {
		select {
		case <-started:
		case err := <-errc:
			r.Close()
			return types.InternalErrorf("starting resolver: %w", err)
		}
	}
	return nil
}

// Close stops serving, aborts forwarded queries in flight, closes the sockets
// and waits for the serving goroutines. It may be called more than once.
func (r *Resolver) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	// Not under r.mu: Shutdown waits for handlers, and handlers take r.mu.
	r.cancel()
	for _, s := range r.servers {
		// An error only means this server never got going; its socket is
		// closed below either way, which ends its serving goroutine.
		_ = s.Shutdown()
	}
	if r.cfg.UDP != nil {
		r.cfg.UDP.Close()
	}
	if r.cfg.TCP != nil {
		r.cfg.TCP.Close()
	}
	r.wg.Wait()
	return nil
}

// SetUpstreams replaces the servers unknown names are forwarded to. Health
// history is kept for servers that stay.
func (r *Resolver) SetUpstreams(ups []Upstream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := make(map[Upstream]*upstream, len(r.upstreams))
	for _, u := range r.upstreams {
		old[u.Upstream] = u
	}
	next := make([]*upstream, 0, len(ups))
	for _, u := range ups {
		if o, ok := old[u]; ok {
			next = append(next, o)
			continue
		}
		next = append(next, &upstream{Upstream: u})
	}
	r.upstreams = next
}

// UpstreamStatus is a snapshot of one upstream's counters.
type UpstreamStatus struct {
	Upstream
	Queries  uint64 // attempts sent
	Failures uint64 // attempts that failed (timeout, network error)
	Down     bool   // currently at the back of the list
}

// Upstreams reports each upstream's counters, in configured order.
func (r *Resolver) Upstreams() []UpstreamStatus {
	r.mu.Lock()
	ups := append([]*upstream(nil), r.upstreams...)
	r.mu.Unlock()
	now := time.Now()
	out := make([]UpstreamStatus, 0, len(ups))
	for _, u := range ups {
		out = append(out, u.status(now))
	}
	return out
}
