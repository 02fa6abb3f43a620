package libnetwork

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/iptables"
	"github.com/opencnm/libnetwork/osl"
	"github.com/opencnm/libnetwork/resolvconf"
	"github.com/opencnm/libnetwork/resolver"
	"github.com/opencnm/libnetwork/types"
)

// The embedded resolver of a sandbox. It listens on 127.0.0.11 at two
// random ports inside the sandbox's namespace; nat rules in that namespace
// send 127.0.0.11:53 there and rewrite the answers' source back to :53. The
// host's namespace never gets a socket on port 53 nor a rule. Upstream
// servers are dialled from the controller's host namespace, so a resolver
// on the host's loopback (systemd-resolved, dnsmasq) works as well as any.
//
// Life: readied (sockets and rules) in the background as soon as a join
// that will need it begins, started at the end of that join, stopped when
// no endpoint wants it any more (its rules stay, leading to a closed port,
// until the next start refills them or the namespace goes), and at Delete.

// Chains in the sandbox's nat table, with upstream's names so tools that
// know Docker's layout recognise them.
const (
	dnsOutputChain      = "DOCKER_OUTPUT"
	dnsPostroutingChain = "DOCKER_POSTROUTING"
)

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
		// The nat rules stay: they live in the sandbox's own namespace,
		// which goes with the sandbox, and now lead to a closed port that
		// resolv.conf no longer names; the next start flushes and refills
		// them. Removing them would cost an iptables-restore (~10-15 ms
		// with iptables-nft) on a path that otherwise takes ~0.1 ms.
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
// namespace, with the nat rules that lead to them installed.
type resolverSockets struct {
	udp net.PacketConn
	tcp net.Listener
}

func (rs *resolverSockets) close() {
	rs.udp.Close()
	rs.tcp.Close()
}

// resolverPrep is a resolver's sockets and rules being readied in the
// background while a join does its driver work: the iptables-restore that
// installs the rules is the slowest step of a first join (~2-3 ms), and it
// depends on nothing the driver does.
type resolverPrep struct {
	done  chan struct{}
	rs    *resolverSockets // set before done is closed, nil on error
	jumps bool             // the jumps are in place (even if err)
	ports [2]int           // the ports the rules now redirect to
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
	jumps, fresh, ports := st.jumps, st.freshNS, st.rulePorts
	go func() {
		defer close(p.done)
		p.rs, p.jumps, p.ports, p.err = sb.readyResolver(s, jumps, fresh, ports)
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
	sb.dns.jumps = sb.dns.jumps || p.jumps
	if p.err == nil {
		sb.dns.rulePorts = p.ports
	}
	return p.rs, p.err
}

// dropResolverPrep discards a preparation the join did not use (it failed,
// or ended up not starting a resolver). Its rules stay, leading to a closed
// port, as after a resolver stops.
func (sb *Sandbox) dropResolverPrep() {
	if rs, _ := sb.takeResolverPrep(); rs != nil {
		rs.close()
	}
}

// readyResolver binds the resolver's sockets inside s and installs the
// redirect from port 53 to them. It only reads immutable sandbox fields, so
// it may run in the background; jumps and fresh are the caller's view of
// the namespace's rules. It reports whether the jumps are now in place and
// the ports the rules redirect to.
//
// When the rules are in place already (a resolver stopped at a leave, or
// one of a previous run kept with its sandbox across a restart) and their
// ports are known, the same ports are bound again: the rules stay right and
// no iptables process runs at all (~20 ms each in a restored namespace).
func (sb *Sandbox) readyResolver(s *osl.Sandbox, jumps, fresh bool, rulePorts [2]int) (_ *resolverSockets, jumpsNow bool, _ [2]int, err error) {
	if jumps && rulePorts[0] != 0 && rulePorts[1] != 0 {
		rs := &resolverSockets{}
		err := s.Do(func() error {
			var err error
			if rs.udp, err = net.ListenPacket("udp4", fmt.Sprintf("%s:%d", resolvconf.EmbeddedNameserver, rulePorts[0])); err != nil {
				return err
			}
			if rs.tcp, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", resolvconf.EmbeddedNameserver, rulePorts[1])); err != nil {
				rs.udp.Close()
				return err
			}
			return nil
		})
		if err == nil {
			return rs, true, rulePorts, nil
		}
		// Taken meanwhile: new ports and new rules, below.
	}
	rs := &resolverSockets{}
	err = s.Do(func() error {
		var err error
		if rs.udp, err = net.ListenPacket("udp4", resolvconf.EmbeddedNameserver+":0"); err != nil {
			return err
		}
		if rs.tcp, err = net.Listen("tcp4", resolvconf.EmbeddedNameserver+":0"); err != nil {
			rs.udp.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, jumps, rulePorts, types.InternalErrorf("opening resolver sockets in sandbox %s: %w", sb.id[:12], err)
	}
	udpPort := rs.udp.LocalAddr().(*net.UDPAddr).Port
	tcpPort := rs.tcp.Addr().(*net.TCPAddr).Port
	if err := sb.installResolverRules(s, jumps, fresh, udpPort, tcpPort); err != nil {
		rs.close()
		return nil, jumps, rulePorts, err
	}
	return rs, true, [2]int{udpPort, tcpPort}, nil
}

// startResolver starts serving on sockets readied in the background by
// prepareResolver, or readies them now. It undoes itself on failure.
func (sb *Sandbox) startResolver(s *osl.Sandbox) error {
	c := sb.ctrl
	rs, err := sb.takeResolverPrep()
	if rs == nil && err == nil {
		var jumps bool
		var ports [2]int
		rs, jumps, ports, err = sb.readyResolver(s, sb.dns.jumps, sb.dns.freshNS, sb.dns.rulePorts)
		sb.dns.jumps = sb.dns.jumps || jumps
		if err == nil {
			sb.dns.rulePorts = ports
		}
	}
	if err != nil {
		return err
	}
	res, err := resolver.New(resolver.Config{
		UDP: rs.udp, TCP: rs.tcp, Backend: sb, Dial: c.dialUpstream, Timeout: c.cfg.DNSTimeout,
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
// nat rules out of the (surviving) namespace.
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

// installResolverRules redirects 127.0.0.11:53 to the resolver's ports in
// one iptables-restore inside the sandbox. Declaring the chains flushes
// them if an earlier resolver left them; the jumps to them are added once
// (unless jumps says they are there). A namespace we did not just create
// (not fresh: restored after a restart, or given by SetKey) may hold a
// previous run's jumps: it is listed first, so a restart never stacks them.
func (sb *Sandbox) installResolverRules(s *osl.Sandbox, jumps, fresh bool, udpPort, tcpPort int) error {
	ip := resolvconf.EmbeddedNameserver + "/32"
	runner := iptables.New(s.NS())
	var existing string
	if !jumps && !fresh {
		out, err := runner.List(firewall.IPv4, firewall.TableNAT)
		if err != nil {
			return types.Wrapf(err, "listing nat rules of sandbox %s", sb.id[:12])
		}
		existing = out
	}
	script := "*nat\n:" + dnsOutputChain + " - [0:0]\n:" + dnsPostroutingChain + " - [0:0]\n"
	if !jumps {
		for _, j := range []string{
			fmt.Sprintf("-A OUTPUT -d %s -j %s", ip, dnsOutputChain),
			fmt.Sprintf("-A POSTROUTING -d %s -j %s", ip, dnsPostroutingChain),
		} {
			if !strings.Contains(existing, j+"\n") {
				script += j + "\n"
			}
		}
	}
	for _, r := range []struct {
		proto string
		port  int
	}{{"udp", udpPort}, {"tcp", tcpPort}} {
		script += fmt.Sprintf("-A %s -d %s -p %s --dport 53 -j DNAT --to-destination %s:%d\n",
			dnsOutputChain, ip, r.proto, resolvconf.EmbeddedNameserver, r.port)
		script += fmt.Sprintf("-A %s -s %s -p %s --sport %d -j SNAT --to-source :53\n",
			dnsPostroutingChain, ip, r.proto, r.port)
	}
	script += "COMMIT\n"
	if err := runner.Restore(firewall.IPv4, script); err != nil {
		return types.Wrapf(err, "installing resolver rules in sandbox %s", sb.id[:12])
	}
	return nil
}

// removeResolverRules takes the redirect out of the sandbox. Failure only
// leaves rules that point at a closed port in a namespace we still own;
// the next start flushes and refills the chains.
func (sb *Sandbox) removeResolverRules(s *osl.Sandbox) {
	if !sb.dns.jumps {
		return
	}
	ip := resolvconf.EmbeddedNameserver + "/32"
	script := fmt.Sprintf("*nat\n-D OUTPUT -d %s -j %s\n-D POSTROUTING -d %s -j %s\n-F %s\n-F %s\n-X %s\n-X %s\nCOMMIT\n",
		ip, dnsOutputChain, ip, dnsPostroutingChain,
		dnsOutputChain, dnsPostroutingChain, dnsOutputChain, dnsPostroutingChain)
	if iptables.New(s.NS()).Restore(firewall.IPv4, script) == nil {
		sb.dns.jumps = false
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
