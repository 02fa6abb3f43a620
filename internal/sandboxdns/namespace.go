package sandboxdns

import (
	"net/netip"

	"github.com/opencnm/libnetwork/internal/dnsnat"
	"github.com/opencnm/libnetwork/osl"
	"github.com/opencnm/libnetwork/resolvconf"
	"github.com/opencnm/libnetwork/types"
)

// Ports are the ports the namespace's redirect from 127.0.0.11:53 leads
// to; the zero value means none (or not known).
type Ports = dnsnat.Ports

// Namespace is the sandbox's network namespace as the resolver needs it:
// a place to bind sockets and the redirect from port 53.
type Namespace interface {
	// Do runs fn on a thread inside the namespace.
	Do(fn func() error) error
	// SetRedirect points 127.0.0.11:53 at p, replacing any redirect.
	SetRedirect(p Ports) error
	// RemoveRedirect takes the redirect out; none there is success.
	RemoveRedirect() error
	// Redirect reports where the namespace's redirect leads, if it has one.
	Redirect() (p Ports, ok bool, err error)
	// RedirectIntact reports whether the redirect to p is whole.
	RedirectIntact(p Ports) (bool, error)
}

// OS is the Namespace of an osl sandbox, with the redirect kept by
// internal/dnsnat; nil gives nil (no namespace).
func OS(s *osl.Sandbox) Namespace {
	if s == nil {
		return nil
	}
	return osNS{s}
}

type osNS struct{ s *osl.Sandbox }

// embeddedAddr is the resolver's well-known address.
var embeddedAddr = netip.MustParseAddr(resolvconf.EmbeddedNameserver)

func (n osNS) Do(fn func() error) error             { return n.s.Do(fn) }
func (n osNS) SetRedirect(p Ports) error            { return dnsnat.Set(n.s.NS(), embeddedAddr, p) }
func (n osNS) RemoveRedirect() error                { return dnsnat.Remove(n.s.NS()) }
func (n osNS) Redirect() (Ports, bool, error)       { return dnsnat.Get(n.s.NS()) }
func (n osNS) RedirectIntact(p Ports) (bool, error) { return dnsnat.Intact(n.s.NS(), p) }

// AdoptRedirect learns from the kernel where a redirect left in ns (by a
// previous run whose sandbox was kept) leads, so the next start binds
// those ports again instead of replacing it. The kernel, not a record, is
// asked: a crash between redirecting and recording leaves a record stale.
func (d *DNS) AdoptRedirect(ns Namespace) error {
	if ns == nil || d.cfg.HostMode {
		return nil
	}
	p, ok, err := ns.Redirect()
	if err != nil {
		return err
	}
	if ok {
		d.ports = p
	}
	return nil
}

// Repair sets the redirect in ns again if the namespace should hold one
// (its ports are known: a resolver runs, or ran and keeps its ports for
// the next start) and it is not whole. While a start is being readied the
// preparation owns the redirect and Repair leaves it alone.
func (d *DNS) Repair(ns Namespace) (repaired bool, err error) {
	p := d.ports
	if ns == nil || d.cfg.HostMode || d.prep != nil || p.UDP == 0 || p.TCP == 0 {
		return false, nil
	}
	intact, err := ns.RedirectIntact(p)
	if err != nil || intact {
		return false, err
	}
	if err := ns.SetRedirect(p); err != nil {
		return false, types.Wrapf(err, "repairing dns redirect of sandbox %s", d.short())
	}
	return true, nil
}

// Detach stops the resolver and forgets the redirect's ports, leaving the
// redirect in the namespace the sandbox is moving out of; the next Update
// readies a resolver in the new one. reattach makes the old ports known
// again, for moving back (the caller then calls Update).
func (d *DNS) Detach() (reattach func()) {
	old := d.ports
	d.Stop(nil, false)
	d.ports = Ports{}
	return func() { d.ports = old }
}
