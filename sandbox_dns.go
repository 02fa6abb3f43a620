package libnetwork

import (
	"context"
	"net"
	"path/filepath"

	"github.com/opencnm/libnetwork/etchosts"
	"github.com/opencnm/libnetwork/internal/sandboxdns"
	"github.com/opencnm/libnetwork/resolver"
	"github.com/opencnm/libnetwork/types"
)

// A sandbox's DNS files and embedded resolver are internal/sandboxdns's;
// the sandbox decides what goes in them: its configuration, the names of
// its endpoints, and whether a resolver runs and may forward.

// dnsConfig is the sandbox's DNS as its configuration says. Default paths
// go under <ExecRoot>/files/<sandbox ID>.
func (sb *Sandbox) dnsConfig() sandboxdns.Config {
	c, cfg := sb.ctrl, &sb.cfg
	extra := make([]sandboxdns.ExtraHost, 0, len(cfg.extraHosts))
	for _, h := range cfg.extraHosts {
		extra = append(extra, sandboxdns.ExtraHost{Name: h.name, IP: h.ip})
	}
	return sandboxdns.Config{
		ID: sb.id, Dir: filepath.Join(c.cfg.ExecRoot, "files", sb.id),
		HostsPath: cfg.hostsPath, ResolvPath: cfg.resolvConfPath,
		OriginHosts: cfg.originHosts, OriginResolv: cfg.originRes,
		HostMode: cfg.useDefaultSandbox, ExtraHosts: extra,
		DNS: cfg.dns, Search: cfg.dnsSearch, Options: cfg.dnsOpts,
		Backend: sb, Dial: c.dialUpstream, Timeout: c.cfg.DNSTimeout, Logger: c.cfg.Logger,
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
	if cfg.hostname != "" && cfg.originHosts == "" && !ep.network.addressLess() {
		names := etchosts.Names(cfg.hostname, cfg.domainname)
		var recs []etchosts.Record
		for _, a := range []*net.IPNet{ep.iface.addr, ep.iface.addrv6} {
			if a != nil {
				recs = append(recs, etchosts.Record{IP: ipToAddr(a.IP), Names: names})
			}
		}
		if err := sb.dns.AddNames(ep.id, recs); err != nil {
			return types.Wrapf(err, "adding hosts records of endpoint %s", ep.name)
		}
	}
	return sb.updateResolver(nil, sb.dns.IPv6() || ep.iface.addrv6 != nil)
}

// leaveDNS removes exactly the records joinDNS added for ep, and stops the
// resolver if no endpoint other than ep wants it.
func (sb *Sandbox) leaveDNS(ep *Endpoint) {
	sb.dns.RemoveNames(ep.id)
	// A leave always completes; stopping cannot fail, and a resolver that
	// could not start before is only retried here.
	_ = sb.updateResolver(ep, sb.dns.IPv6())
}

// updateResolver has the sandbox's resolver match its endpoints other than
// exclude (one on its way out): it runs if some endpoint is on a network
// that serves names, without CreateOptionDisableResolution, and it may
// forward if some endpoint is on a network that is neither internal nor
// address-less. The caller holds sb.opMu. On error the resolver is as it
// was.
func (sb *Sandbox) updateResolver(exclude *Endpoint, ipv6 bool) error {
	w := sandboxdns.Want{IPv6: ipv6}
	c := sb.ctrl
	c.mu.Lock()
	s := sb.osSbox
	for _, ep := range sb.endpoints {
		if ep == exclude {
			continue
		}
		n := ep.network
		w.Run = w.Run || (n.servesNames() && !ep.disableResolution)
		w.Forward = w.Forward || (!n.addressLess() && !n.internal)
	}
	w.Keep = sb.deleting
	c.mu.Unlock()
	return sb.dns.Update(sandboxdns.OS(s), w)
}

// dialUpstream connects to an upstream DNS server from the controller's
// host namespace: the socket belongs to the namespace it was made in, so
// the caller can use it from any thread.
func (c *Controller) dialUpstream(ctx context.Context, network string, u resolver.Upstream) (net.Conn, error) {
	var conn net.Conn
	err := c.host.Do(func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, u.AddrPort.String())
		return err
	})
	return conn, err
}

// closeResolvers stops every sandbox's resolver when the controller stops;
// the sandboxes themselves (and their redirects) stay for a later restore.
func (c *Controller) closeResolvers() {
	for _, sb := range c.Sandboxes() {
		sb.opMu.Lock()
		sb.dns.Stop(nil, false)
		sb.opMu.Unlock()
	}
}
