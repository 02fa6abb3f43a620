package sandboxdns

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/opencnm/libnetwork/resolvconf"
	"github.com/opencnm/libnetwork/resolver"
	"github.com/opencnm/libnetwork/types"
)

// The embedded resolver listens on 127.0.0.11 at two random ports inside
// the sandbox's namespace; a redirect in that namespace sends
// 127.0.0.11:53 there and rewrites the answers' source back to :53. The
// host's namespace never gets a socket on port 53 nor a rule. Upstream
// servers are dialled through Config.Dial (from the host's namespace), so
// a resolver on the host's loopback works as well as any.
//
// Invariants: while ports is non-zero the namespace's redirect leads to
// them (or has been damaged, which Repair fixes); a stopped resolver keeps
// its redirect and ports, so the next start binds the same ports again
// and needs no deleting nftables transaction (7-19 ms, against ~0.3 ms to
// create one and ~0.1 ms for the rest of a start).

// Want is what the owner decided a sandbox's resolver should be.
type Want struct {
	Run     bool // some endpoint wants names served
	Forward bool // the sandbox has a way out: the resolver may forward
	IPv6    bool // resolv.conf is for a sandbox with IPv6
	// Keep leaves resolv.conf as it is (the sandbox is being deleted).
	Keep bool
}

// Update starts or stops the resolver in ns (nil: the sandbox has no
// namespace yet) to match w, rebuilds resolv.conf if the resolver mode or
// w.IPv6 changed, and gives the resolver the upstream servers it may
// forward to. On error the resolver is as it was.
func (d *DNS) Update(ns Namespace, w Want) error {
	need := w.Run && ns != nil && !d.cfg.HostMode
	started := false
	switch {
	case need && d.res == nil:
		if err := d.start(ns); err != nil {
			return err
		}
		started = true
	case !need && d.res != nil:
		d.Stop(ns, false)
	}
	if !w.Keep {
		if err := d.rebuildResolvConf(w.IPv6); err != nil {
			if started {
				d.Stop(ns, true)
				return err
			}
			if d.res != nil {
				return err
			}
			// A stop goes on: the resolver is gone whatever the file says.
		}
	}
	if d.res != nil {
		d.res.SetUpstreams(upstreams(d.ext, w.Forward))
	}
	return nil
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

// sockets are a resolver's sockets, bound inside the sandbox's namespace,
// with the redirect that leads to them installed.
type sockets struct {
	udp net.PacketConn
	tcp net.Listener
}

func (rs *sockets) close() {
	rs.udp.Close()
	rs.tcp.Close()
}

// prep is a resolver's sockets and redirect being readied in the
// background while a join does its driver work (~0.4 ms that depends on
// nothing the driver does).
type prep struct {
	done  chan struct{}
	rs    *sockets // set before done is closed, nil on error
	ports Ports    // where the redirect leads; zero on error
	err   error
}

// Prepare starts readying a resolver's sockets and redirect in ns in the
// background, for an Update that will start one (the owner calls it only
// when the endpoint joining wants a resolver). It does nothing without a
// namespace, in host mode, or with a resolver running or being readied.
// The owner must call DropPrepared before it lets another call in.
func (d *DNS) Prepare(ns Namespace) {
	if ns == nil || d.cfg.HostMode || d.res != nil || d.prep != nil {
		return
	}
	p := &prep{done: make(chan struct{})}
	d.prep = p
	ports, short := d.ports, d.short()
	go func() {
		defer close(p.done)
		p.rs, p.ports, p.err = ready(ns, ports, short)
	}()
}

// takePrepared waits for a background preparation and hands over its
// result (nil, nil if there was none).
func (d *DNS) takePrepared() (*sockets, error) {
	p := d.prep
	if p == nil {
		return nil, nil
	}
	<-p.done
	d.prep = nil
	if p.err == nil {
		d.ports = p.ports
	}
	return p.rs, p.err
}

// DropPrepared discards a preparation no Update used (the join failed, or
// started no resolver). Its redirect stays, leading to a closed port, as
// after a resolver stops.
func (d *DNS) DropPrepared() {
	if rs, _ := d.takePrepared(); rs != nil {
		rs.close()
	}
}

// ready binds the resolver's sockets inside ns and points the redirect
// from port 53 at them. It touches no state of d, so it may run in the
// background; known are the ports the redirect is known to lead to (zero:
// none or unknown), which it binds again if it can, leaving the redirect
// alone. It returns the ports the redirect now leads to.
func ready(ns Namespace, known Ports, short string) (*sockets, Ports, error) {
	if known.UDP != 0 && known.TCP != 0 {
		if rs, err := bind(ns, known); err == nil {
			return rs, known, nil
		}
		// Taken meanwhile: new ports and a new redirect, below.
	}
	rs, err := bind(ns, Ports{})
	if err != nil {
		return nil, Ports{}, types.InternalErrorf("opening resolver sockets in sandbox %s: %w", short, err)
	}
	ports := Ports{
		UDP: uint16(rs.udp.LocalAddr().(*net.UDPAddr).Port),
		TCP: uint16(rs.tcp.Addr().(*net.TCPAddr).Port),
	}
	if err := ns.SetRedirect(ports); err != nil {
		rs.close()
		return nil, Ports{}, types.Wrapf(err, "redirecting port 53 in sandbox %s", short)
	}
	return rs, ports, nil
}

// bind opens the resolver's UDP and TCP sockets on 127.0.0.11 inside ns,
// at the given ports (zero: any).
func bind(ns Namespace, p Ports) (*sockets, error) {
	rs := &sockets{}
	err := ns.Do(func() error {
		var err error
		if rs.udp, err = net.ListenPacket("udp4", fmt.Sprintf("%s:%d", resolvconf.EmbeddedNameserver, p.UDP)); err != nil {
			return err
		}
		if rs.tcp, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", resolvconf.EmbeddedNameserver, p.TCP)); err != nil {
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

// start serves on sockets readied in the background by Prepare, or
// readies them now. It undoes itself on failure.
func (d *DNS) start(ns Namespace) error {
	rs, err := d.takePrepared()
	if rs == nil && err == nil {
		var ports Ports
		rs, ports, err = ready(ns, d.ports, d.short())
		if err == nil {
			d.ports = ports
		}
	}
	if err != nil {
		return err
	}
	cfg := &d.cfg
	log := cfg.Logger
	if log != nil {
		log = log.With("sandbox", cfg.ID)
	}
	res, err := resolver.New(resolver.Config{
		UDP: rs.udp, TCP: rs.tcp, Backend: cfg.Backend, Dial: cfg.Dial, Timeout: cfg.Timeout, Logger: log,
	})
	if err != nil {
		rs.close()
		d.removeRedirect(ns)
		return types.Wrapf(err, "creating resolver of sandbox %s", d.short())
	}
	// From here on res owns the sockets.
	if err := res.Start(); err != nil {
		res.Close()
		d.removeRedirect(ns)
		return types.Wrapf(err, "starting resolver of sandbox %s", d.short())
	}
	d.res = res
	return nil
}

// Stop closes the resolver; with removeRedirect it also takes its
// redirect out of ns (a namespace that survives the sandbox's use of it).
func (d *DNS) Stop(ns Namespace, removeRedirect bool) {
	if d.res == nil {
		return
	}
	_ = d.res.Close() // Close only ever reports success
	d.res = nil
	if removeRedirect && ns != nil {
		d.removeRedirect(ns)
	}
}

// removeRedirect takes the redirect out of ns. Failure only leaves a
// redirect to a closed port in a namespace the sandbox still owns, which
// the next start replaces.
func (d *DNS) removeRedirect(ns Namespace) {
	if d.ports == (Ports{}) {
		return
	}
	if ns.RemoveRedirect() == nil {
		d.ports = Ports{}
	}
}
