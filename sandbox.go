package libnetwork

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/internal/sandboxdns"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/osl"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// Sandbox is a container's network stack: a network namespace with the
// interfaces of the endpoints joined to it, and its resolv.conf and hosts.
type Sandbox struct {
	ctrl        *Controller
	id          string
	containerID string
	key         string

	// opMu serialises this sandbox's slow operations (join, leave, delete,
	// SetKey, Refresh); it is taken before ctrl.mu, never after.
	opMu sync.Mutex
	cfg  sandboxConfig  // replaced only by Refresh, under opMu
	dns  sandboxdns.DNS // hosts, resolv.conf and resolver; under opMu

	osSbox    *osl.Sandbox                 // guarded by ctrl.mu; nil until SetKey for an external key
	endpoints []*Endpoint                  // joined endpoints in priority order; guarded by ctrl.mu
	prio      map[string]int               // endpoint ID -> JoinOptionPriority; guarded by ctrl.mu
	aliases   map[string]map[string]string // endpoint ID -> alias -> name; guarded by ctrl.mu
	gw        sandboxGateway               // the endpoint providing the default gateway
	deleting  bool                         // guarded by ctrl.mu
}

// NewSandbox creates the sandbox of containerID: a new network namespace
// (or the host's with OptionUseDefaultSandbox, or none until SetKey with
// OptionUseExternalKey) and its DNS files.
func (c *Controller) NewSandbox(containerID string, opts ...SandboxOption) (_ *Sandbox, err error) {
	defer classify(&err)
	if strings.TrimSpace(containerID) == "" {
		return nil, InvalidContainerIDError(containerID)
	}
	sb := &Sandbox{ctrl: c, id: generateID(), containerID: containerID,
		prio: map[string]int{}, aliases: map[string]map[string]string{}}
	sb.gw.sb = sb
	sb.cfg.apply(opts)
	if sb.cfg.optErr != nil {
		return nil, sb.cfg.optErr
	}
	if sb.cfg.useDefaultSandbox {
		sb.key = filepath.Join(c.cfg.ExecRoot, "netns", "default")
	} else {
		sb.key = filepath.Join(c.cfg.ExecRoot, "netns", sb.id[:12])
	}

	c.mu.Lock()
	for _, other := range c.sandboxes {
		if other.containerID == containerID {
			c.mu.Unlock()
			return nil, types.ForbiddenErrorf("container %s already has sandbox %s", containerID, other.id[:12])
		}
	}
	// Registered at once (with no namespace yet) so a concurrent NewSandbox
	// for the same container is refused; Delete undoes it on failure.
	c.sandboxes[sb.id] = sb
	c.mu.Unlock()

	c.gcMu.RLock()
	defer c.gcMu.RUnlock()
	ok := false
	defer func() {
		if !ok {
			c.mu.Lock()
			delete(c.sandboxes, sb.id)
			c.mu.Unlock()
		}
	}()
	var undo undo.Stack
	defer undo.Unless(&ok)

	if err := sb.dns.Setup(sb.dnsConfig()); err != nil {
		return nil, err
	}
	undo.PushFunc(sb.dns.Remove)

	var osSbox *osl.Sandbox
	switch {
	case sb.cfg.useDefaultSandbox:
		osSbox, err = c.acquireDefaultSandbox(sb.key)
	case sb.cfg.useExternalKey:
	default:
		osSbox, err = c.nsPool.New(sb.key)
	}
	if err != nil {
		return nil, types.Wrapf(err, "creating network namespace for container %s", containerID)
	}
	if osSbox != nil {
		undo.PushFunc(func() { sb.releaseOS(osSbox) })
	}
	if err := c.commit(c.recSandbox(sb)); err != nil {
		return nil, err
	}
	c.mu.Lock()
	sb.osSbox = osSbox
	c.mu.Unlock()
	ok = true
	return sb, nil
}

// acquireDefaultSandbox returns the sandbox of the host namespace, shared by
// every sandbox made with OptionUseDefaultSandbox.
func (c *Controller) acquireDefaultSandbox(key string) (*osl.Sandbox, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.defaultSb == nil {
		// The controller's own handle keeps the host namespace reachable
		// even if the thread New ran on is gone.
		src := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), c.host.Fd())
		s, err := osl.Adopt(key, src)
		if err != nil {
			return nil, err
		}
		c.defaultSb = s
	}
	c.defaultN++
	return c.defaultSb, nil
}

// releaseOS gives up a sandbox's namespace: the shared host one when its
// last user goes, its own at once.
func (sb *Sandbox) releaseOS(s *osl.Sandbox) error {
	c := sb.ctrl
	if sb.cfg.useDefaultSandbox {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.defaultN--; c.defaultN > 0 || c.defaultSb == nil {
			return nil
		}
		s, c.defaultSb = c.defaultSb, nil
	}
	return s.Destroy()
}

// ID returns the sandbox's ID.
func (sb *Sandbox) ID() string { return sb.id }

// ContainerID returns the ID of the container the sandbox belongs to.
func (sb *Sandbox) ContainerID() string { return sb.containerID }

// Key returns the path of the sandbox's network namespace,
// <ExecRoot>/netns/<first 12 of the sandbox ID>.
func (sb *Sandbox) Key() string { return sb.key }

// Labels returns a copy of the sandbox's labels (OptionGeneric, port maps).
func (sb *Sandbox) Labels() map[string]any {
	sb.opMu.Lock()
	defer sb.opMu.Unlock()
	return sb.cfg.labels()
}

// Endpoints returns the joined endpoints in priority order.
func (sb *Sandbox) Endpoints() []*Endpoint {
	sb.ctrl.mu.Lock()
	defer sb.ctrl.mu.Unlock()
	return append([]*Endpoint(nil), sb.endpoints...)
}

// Statistics returns per-interface counters keyed by in-sandbox name.
func (sb *Sandbox) Statistics() (_ map[string]*types.InterfaceStatistics, err error) {
	defer classify(&err)
	sb.ctrl.mu.Lock()
	s := sb.osSbox
	sb.ctrl.mu.Unlock()
	if s == nil {
		return map[string]*types.InterfaceStatistics{}, nil
	}
	stats, err := s.Statistics()
	if err != nil {
		return nil, types.Wrapf(err, "reading interface statistics of sandbox %s", sb.id[:12])
	}
	return stats, nil
}

// Delete leaves and deletes every endpoint joined to the sandbox, then
// removes its namespace and files. Deleting a sandbox already gone succeeds.
func (sb *Sandbox) Delete() (err error) {
	defer classify(&err)
	c := sb.ctrl
	sb.opMu.Lock()
	defer sb.opMu.Unlock()
	c.mu.Lock()
	if cur, ok := c.sandboxes[sb.id]; !ok || cur != sb || sb.deleting {
		c.mu.Unlock()
		return nil
	}
	sb.deleting = true
	eps := append([]*Endpoint(nil), sb.endpoints...)
	osSbox := sb.osSbox
	c.mu.Unlock()

	// Only a namespace we made dies with the sandbox, but a process
	// still in it keeps it alive: every interface is detached (cut off)
	// as at any Leave, whoever owns the namespace.
	nsGoing := osSbox != nil && !sb.cfg.useDefaultSandbox && !sb.cfg.useExternalKey
	var errs []error
	for _, ep := range eps {
		if err := sb.leave(ep, nsGoing); err != nil {
			errs = append(errs, err)
		}
		if err := ep.Delete(true); err != nil {
			errs = append(errs, err)
		}
	}
	if osSbox != nil {
		if err := sb.releaseOS(osSbox); err != nil {
			errs = append(errs, types.Wrapf(err, "removing namespace of sandbox %s", sb.id[:12]))
		}
	}
	sb.dns.Remove()
	_ = c.commit(recDelete(records.KindSandbox, sb.id))
	c.mu.Lock()
	delete(c.sandboxes, sb.id)
	sb.osSbox = nil
	c.mu.Unlock()
	return joinErrors(errs)
}

// SetKey gives a sandbox made with OptionUseExternalKey its namespace:
// path (such as /proc/PID/ns/net) is bind-mounted at Key() and the
// interfaces of endpoints already joined are moved into it. Called again
// (a runtime that makes a fresh namespace at every container start), it
// moves the sandbox into the new namespace with its endpoints re-plumbed
// there; a failure leaves the sandbox in the old one. A sandbox with a
// namespace of its own (not OptionUseExternalKey) is Forbidden.
func (sb *Sandbox) SetKey(path string) (err error) {
	defer classify(&err)
	if path == "" {
		return types.BadRequestErrorf("invalid sandbox key %q", path)
	}
	c := sb.ctrl
	sb.opMu.Lock()
	defer sb.opMu.Unlock()
	c.mu.Lock()
	switch {
	case sb.deleting:
		c.mu.Unlock()
		return types.ForbiddenErrorf("sandbox %s is being deleted", sb.id[:12])
	case sb.osSbox != nil && !sb.cfg.useExternalKey:
		c.mu.Unlock()
		return types.ForbiddenErrorf("sandbox %s has a network namespace of its own", sb.id[:12])
	}
	eps := append([]*Endpoint(nil), sb.endpoints...)
	old := sb.osSbox
	c.mu.Unlock()

	c.gcMu.RLock()
	defer c.gcMu.RUnlock()
	if old != nil {
		return sb.rekey(old, path, eps)
	}
	s, err := osl.Adopt(sb.key, path)
	if err != nil {
		return types.Wrapf(err, "setting key %s of sandbox %s", path, sb.id[:12])
	}
	var undo undo.Stack
	ok := false
	defer undo.Unless(&ok)
	undo.Push(s.Destroy)
	for _, ep := range eps {
		// Pushed first: depopulate also removes what a failed populate left.
		undo.Push(func() error { return sb.depopulate(s, ep, false) })
		if err := sb.populate(s, ep); err != nil {
			return err
		}
	}
	c.mu.Lock()
	sb.osSbox = s
	sb.gw.ep = nil
	c.mu.Unlock()
	undo.PushFunc(func() {
		c.mu.Lock()
		sb.osSbox = nil
		c.mu.Unlock()
	})
	if err := sb.gw.update(); err != nil {
		return err
	}
	undo.PushFunc(sb.gw.release)
	if err := sb.updateResolver(nil, sb.dns.IPv6()); err != nil {
		return err
	}
	ok = true
	return c.commit(append([]func() (*store.Op, error){c.recSandbox(sb)}, sb.gw.operPortRecords(nil)...)...)
}

// Refresh re-applies the sandbox's configuration with opts: every endpoint
// leaves, the DNS files are rebuilt, and every endpoint joins again.
func (sb *Sandbox) Refresh(opts ...SandboxOption) (err error) {
	defer classify(&err)
	sb.opMu.Lock()
	c := sb.ctrl
	c.mu.Lock()
	eps := append([]*Endpoint(nil), sb.endpoints...)
	prio := maps.Clone(sb.prio)
	c.mu.Unlock()
	var errs []error
	for _, ep := range eps {
		if err := sb.leave(ep, false); err != nil {
			errs = append(errs, err)
		}
	}
	var cfg sandboxConfig
	cfg.apply(opts)
	if cfg.optErr != nil {
		errs = append(errs, cfg.optErr)
	} else {
		cfg.useDefaultSandbox, cfg.useExternalKey = sb.cfg.useDefaultSandbox, sb.cfg.useExternalKey
		sb.cfg = cfg
	}
	if err := sb.dns.Setup(sb.dnsConfig()); err != nil {
		errs = append(errs, err)
	}
	sb.opMu.Unlock()
	for _, ep := range eps {
		if err := ep.Join(sb, JoinOptionPriority(prio[ep.id])); err != nil {
			errs = append(errs, err)
		}
	}
	return joinErrors(errs)
}

// Rename gives every endpoint joined to the sandbox the name name (as
// Docker does when a container is renamed). On a conflict nothing changes.
func (sb *Sandbox) Rename(name string) (err error) {
	defer classify(&err)
	if strings.TrimSpace(name) == "" {
		return ErrInvalidName(name)
	}
	c := sb.ctrl
	sb.opMu.Lock()
	defer sb.opMu.Unlock()
	c.mu.Lock()
	for _, ep := range sb.endpoints {
		if id, taken := ep.network.epNames[name]; taken && id != ep.id {
			c.mu.Unlock()
			return types.ForbiddenErrorf("endpoint with name %s already exists in network %s", name, ep.network.name)
		}
	}
	var recs []func() (*store.Op, error)
	for _, ep := range sb.endpoints {
		delete(ep.network.epNames, ep.name)
		ep.name = name
		ep.network.epNames[name] = ep.id
		recs = append(recs, c.recEndpoint(ep, records.Ready))
	}
	c.mu.Unlock()
	return c.commit(recs...)
}

// sortEndpointsLocked orders sb.endpoints as upstream: higher priority
// first, then non-internal networks, then endpoints with more gateways
// (v4+v6, v6, v4, none), then by network name. Caller holds ctrl.mu.
func (sb *Sandbox) sortEndpointsLocked() {
	gwRank := func(ep *Endpoint) int {
		r := 0
		if ep.join != nil && ep.join.gw != nil {
			r++
		}
		if ep.join != nil && ep.join.gw6 != nil {
			r += 2
		}
		return r
	}
	sort.SliceStable(sb.endpoints, func(i, j int) bool {
		a, b := sb.endpoints[i], sb.endpoints[j]
		if pa, pb := sb.prio[a.id], sb.prio[b.id]; pa != pb {
			return pa > pb
		}
		if a.network.internal != b.network.internal {
			return !a.network.internal
		}
		if ra, rb := gwRank(a), gwRank(b); ra != rb {
			return ra > rb
		}
		return a.network.name < b.network.name
	})
}

func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return types.Wrapf(errs[0], "%d errors: %s", len(errs), strings.Join(msgs[1:], "; "))
}
