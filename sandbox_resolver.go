package libnetwork

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/opencnm/libnetwork/internal/dnsnat"
	"github.com/opencnm/libnetwork/osl"
	"github.com/opencnm/libnetwork/resolvconf"
	"github.com/opencnm/libnetwork/resolver"
	"github.com/opencnm/libnetwork/types"
)

// The embedded resolver of a sandbox. It listens on 127.0.0.11 at two
// random ports inside the sandbox's namespace; an nftables redirect in that
// namespace (internal/dnsnat) sends 127.0.0.11:53 there and rewrites the
// answers' source back to :53. The host's namespace never gets a socket on
// port 53 nor a rule. Upstream
// servers are dialled from the controller's host namespace, so a resolver
// on the host's loopback (systemd-resolved, dnsmasq) works as well as any.
//
// Life: readied (sockets and rules) in the background as soon as a join
// that will need it begins, started at the end of that join, stopped when
// no endpoint wants it any more (its redirect stays, leading to a closed
// port, until the next start rebinds those ports or replaces it, or the
// namespace goes), and at Delete.

// resolverNeedsLocked decides, from the sandbox's endpoints other than
// exclude, whether it should run a resolver (some endpoint on a network
// that serves names, without CreateOptionDisableResolution) and whether
// that resolver may forward (some endpoint on a network that is neither
// internal nor address-less). Caller holds ctrl.mu.
func (sb *Sandbox) resolverNeedsLocked(exclude *Endpoint) (need, forward bool) {
	for _, ep := range sb.endpoints {
		if ep == exclude {
			continue
		}
		n := ep.network
		if n.servesNames() && !ep.disableResolution {
			need = true
		}
		if !n.special() && !n.internal {
			forward = true
		}
	}
	return need, forward
}

// updateResolver starts or stops the sandbox's resolver to match its
// endpoints (ignoring exclude, an endpoint on its way out), rebuilds
// resolv.conf for the resolver mode and ipv6 if either changed, and gives
// the resolver the upstream servers it may forward to. The caller holds
// sb.opMu. On error the resolver is as it was.
func (sb *Sandbox) updateResolver(exclude *Endpoint, ipv6 bool) error {
	c := sb.ctrl
	c.mu.Lock()
	s := sb.osSbox
	need, forward := sb.resolverNeedsLocked(exclude)
	deleting := sb.deleting
	c.mu.Unlock()
	if s == nil || sb.hostMode() {
		need = false
	}
	st := &sb.dns
	started := false
	switch {
	case need && st.res == nil:
		if err := sb.startResolver(s); err != nil {
			return err
		}
		started = true
	case !need && st.res != nil:
		// The redirect stays: it lives in the sandbox's own namespace,
		// which goes with the sandbox, and now leads to a closed port that
		// resolv.conf no longer names; the next start binds the same ports
		// again. Removing it would cost a deleting nftables transaction
		// (7-19 ms) on a path that otherwise takes ~0.1 ms.
		sb.stopResolver(s, false)
	}
	if !deleting {
		if err := sb.rebuildResolvConf(ipv6); err != nil {
			if started {
				sb.stopResolver(s, true)
				return err
			}
			if st.res != nil {
				return err
			}
			// Stopping goes on: the resolver is gone whatever the file says.
		}
	}
	if st.res != nil {
		st.res.SetUpstreams(upstreams(st.ext, forward))
	}
	return nil
}

// rebuildResolvConf rewrites resolv.conf if it was last built for another
// IPv6 setting or resolver mode; host-mode files are copies and stay.
func (sb *Sandbox) rebuildResolvConf(ipv6 bool) error {
	st := &sb.dns
	if sb.hostMode() || (st.ipv6 == ipv6 && st.embedded == (st.res != nil)) {
		return nil
	}
	return sb.buildResolvConf(ipv6)
}

// upstreams turns resolv.conf's external servers into the resolver's list;
// a sandbox with no way out forwards nothing.
func upstreams(ext []resolvconf.ExtServer, forward bool) []resolver.Upstream {
	if !forward {
		return nil
	}
	ups := make([]resolver.Upstream, 0, len(ext))
	for _, e := range ext {
		ups = append(ups, resolver.Upstream{AddrPort: netip.AddrPortFrom(e.Addr, 53), HostLoopback: e.HostLoopback})
	}
	return ups
}

// resolverSockets are a resolver's sockets, bound inside the sandbox's
// namespace, with the redirect that leads to them installed.
type resolverSockets struct {
	udp net.PacketConn
	tcp net.Listener
}

func (rs *resolverSockets) close() {
	rs.udp.Close()
	rs.tcp.Close()
}

// resolverPrep is a resolver's sockets and redirect being readied in the
// background while a join does its driver work (~0.4 ms that depends on
// nothing the driver does).
type resolverPrep struct {
	done  chan struct{}
	rs    *resolverSockets // set before done is closed, nil on error
	ports [2]int           // the ports the redirect leads to; zero on error
	err   error
}

// prepareResolver starts readying a resolver in the background if joining
// ep will start one: ep wants a resolver, the sandbox has a namespace of
// its own and runs none yet. The caller holds sb.opMu and must call
// dropResolverPrep before releasing it; joinDNS consumes the result.
func (sb *Sandbox) prepareResolver(ep *Endpoint, s *osl.Sandbox) {
	st := &sb.dns
	if s == nil || sb.hostMode() || st.res != nil || st.prep != nil ||
		!ep.network.servesNames() || ep.disableResolution {
		return
	}
	p := &resolverPrep{done: make(chan struct{})}
	st.prep = p
	ports := st.rulePorts
	go func() {
		defer close(p.done)
		p.rs, p.ports, p.err = sb.readyResolver(s, ports)
	}()
}

// takeResolverPrep waits for a background preparation and hands over its
// result (nil, nil if there was none).
func (sb *Sandbox) takeResolverPrep() (*resolverSockets, error) {
	p := sb.dns.prep
	if p == nil {
		return nil, nil
	}
	<-p.done
	sb.dns.prep = nil
	if p.err == nil {
		sb.dns.rulePorts = p.ports
	}
	return p.rs, p.err
}

// dropResolverPrep discards a preparation the join did not use (it failed,
// or ended up not starting a resolver). Its redirect stays, leading to a
// closed port, as after a resolver stops.
func (sb *Sandbox) dropResolverPrep() {
	if rs, _ := sb.takeResolverPrep(); rs != nil {
		rs.close()
	}
}

// readyResolver binds the resolver's sockets inside s and points the
// redirect from port 53 at them. It only reads immutable sandbox fields, so
// it may run in the background; rulePorts are the ports the namespace's
// redirect is known to lead to (zero: none or unknown). It returns the
// ports the redirect now leads to.
//
// When the redirect is there already (a resolver stopped at a leave, or
// one of a previous run kept with its sandbox across a restart), the same
// ports are bound again and the redirect is left alone: replacing it is a
// deleting nftables transaction (7-19 ms), creating one only ~0.3 ms.
func (sb *Sandbox) readyResolver(s *osl.Sandbox, rulePorts [2]int) (*resolverSockets, [2]int, error) {
	if rulePorts[0] != 0 && rulePorts[1] != 0 {
		if rs, err := bindResolver(s, rulePorts); err == nil {
			return rs, rulePorts, nil
		}
		// Taken meanwhile: new ports and a new redirect, below.
	}
	rs, err := bindResolver(s, [2]int{})
	if err != nil {
		return nil, [2]int{}, types.InternalErrorf("opening resolver sockets in sandbox %s: %w", sb.id[:12], err)
	}
	ports := [2]int{rs.udp.LocalAddr().(*net.UDPAddr).Port, rs.tcp.Addr().(*net.TCPAddr).Port}
	if err := dnsnat.Set(s.NS(), embeddedAddr, dnsnat.Ports{UDP: uint16(ports[0]), TCP: uint16(ports[1])}); err != nil {
		rs.close()
		return nil, [2]int{}, types.Wrapf(err, "redirecting port 53 in sandbox %s", sb.id[:12])
	}
	return rs, ports, nil
}

// embeddedAddr is the resolver's well-known address.
var embeddedAddr = netip.MustParseAddr(resolvconf.EmbeddedNameserver)

// bindResolver opens the resolver's UDP and TCP sockets on 127.0.0.11
// inside s, at the given ports (zero: any).
func bindResolver(s *osl.Sandbox, ports [2]int) (*resolverSockets, error) {
	rs := &resolverSockets{}
	err := s.Do(func() error {
		var err error
		if rs.udp, err = net.ListenPacket("udp4", fmt.Sprintf("%s:%d", resolvconf.EmbeddedNameserver, ports[0])); err != nil {
			return err
		}
		if rs.tcp, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", resolvconf.EmbeddedNameserver, ports[1])); err != nil {
			rs.udp.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rs, nil
}

// startResolver starts serving on sockets readied in the background by
// prepareResolver, or readies them now. It undoes itself on failure.
func (sb *Sandbox) startResolver(s *osl.Sandbox) error {
	c := sb.ctrl
	rs, err := sb.takeResolverPrep()
	if rs == nil && err == nil {
		var ports [2]int
		rs, ports, err = sb.readyResolver(s, sb.dns.rulePorts)
		if err == nil {
			sb.dns.rulePorts = ports
		}
	}
	if err != nil {
		return err
	}
	res, err := resolver.New(resolver.Config{
		UDP: rs.udp, TCP: rs.tcp, Backend: sb, Dial: c.dialUpstream, Timeout: c.cfg.DNSTimeout,
		Logger: c.cfg.Logger.With("sandbox", sb.id),
	})
	if err != nil {
		rs.close()
		sb.removeResolverRules(s)
		return types.Wrapf(err, "creating resolver of sandbox %s", sb.id[:12])
	}
	// From here on res owns the sockets.
	if err := res.Start(); err != nil {
		res.Close()
		sb.removeResolverRules(s)
		return types.Wrapf(err, "starting resolver of sandbox %s", sb.id[:12])
	}
	sb.dns.res = res
	return nil
}

// stopResolver closes the resolver; with removeRules it also takes its
// redirect out of the (surviving) namespace.
func (sb *Sandbox) stopResolver(s *osl.Sandbox, removeRules bool) {
	st := &sb.dns
	if st.res == nil {
		return
	}
	_ = st.res.Close() // Close only ever reports success
	st.res = nil
	if removeRules && s != nil {
		sb.removeResolverRules(s)
	}
}

// removeResolverRules takes the redirect out of the sandbox. Failure only
// leaves a redirect to a closed port in a namespace we still own, which
// the next start replaces.
func (sb *Sandbox) removeResolverRules(s *osl.Sandbox) {
	if sb.dns.rulePorts == [2]int{} {
		return
	}
	if dnsnat.Remove(s.NS()) == nil {
		sb.dns.rulePorts = [2]int{}
	}
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
// the sandboxes themselves (and their rules) stay for a later restore.
func (c *Controller) closeResolvers() {
	for _, sb := range c.Sandboxes() {
		sb.opMu.Lock()
		sb.stopResolver(nil, false)
		sb.opMu.Unlock()
	}
}
