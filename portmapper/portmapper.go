// Package portmapper publishes container ports on the host: for each
// endpoint it reserves host ports with real sockets in the host namespace
// (so no host process can take them, and a port a host process holds is
// refused), and installs their DNAT (map elements of the firewall's ports
// table; the network's rules accept and hairpin-masquerade the traffic)
// through the firewall package in one batch. There is no proxy process
// per port.
package portmapper

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/types"
)

// Endpoint identifies the endpoint whose ports are published.
type Endpoint struct {
	ID     string // endpoint ID: owner of its rules
	Bridge string // bridge the endpoint is attached to
	IPv4   net.IP // container IPv4 address, nil for none
	IPv6   net.IP // container IPv6 address, nil for none
	// Routed4 and Routed6 say the network's gateway mode in that family
	// is routed: a binding there takes no host port and is published as
	// the container port opened at the container's address (its
	// operational binding has host port 0).
	Routed4, Routed6 bool
	// Trusted4 and Trusted6 are the network's trusted host interfaces in
	// a protected NAT family: from them, a published container port is
	// also reached at the container's address (firewall.PortForward's
	// Trusted). None in a routed family.
	Trusted4, Trusted6 []string
}

// trusted returns the trusted interfaces of the family of ip.
func (ep Endpoint) trusted(ip net.IP) []string {
	if ip.To4() != nil {
		return ep.Trusted4
	}
	return ep.Trusted6
}

// routed reports whether the family of container address ip is routed.
func (ep Endpoint) routed(ip net.IP) bool {
	if ip.To4() != nil {
		return ep.Routed4
	}
	return ep.Routed6
}

// routedBinding reports whether an operational binding holds no host port
// (a routed family's): nothing to reserve, release or flush for it.
func routedBinding(b types.PortBinding) bool { return b.HostPort == 0 }

// PortMapper publishes ports of endpoints in one host namespace. It is safe
// for concurrent use.
type PortMapper struct {
	res Reserver
	fw  *firewall.Firewall // nil: ports are reserved, no rules installed
	ct  Conntrack          // nil: no conntrack flushing
	log *slog.Logger       // the release worker's failures; set before use

	mu        sync.Mutex                 // guards the fields below
	held      map[portKey]map[string]int // proto/family/port -> host IP ("" = any) -> count
	endpoints map[string]*mapping        // endpoint ID -> what it holds
	cursor    uint16                     // next ephemeral port to try (round robin)

	// Asynchronous release (see release.go). A released mapping stays in
	// pending, its ports in held, until its rules are gone.
	cond     *sync.Cond          // on mu: signalled when a release batch ends or close starts
	pending  map[string]*mapping // endpoint ID -> released, rules not yet removed (or stuck)
	queue    []*mapping          // released, waiting for the worker
	queued   uint64              // mappings queued so far
	handled  uint64              // of those, how many the worker has finished with
	lastErr  error               // last failure of a release batch
	worker   bool                // the worker goroutine runs
	closing  bool
	urgent   int       // callers waiting for releases to finish: run now
	inflight int       // Releases removing DNAT off mu, not yet queued
	oldest   time.Time // when the oldest queued release was queued
	active   time.Time // last MapPorts or Release: the worker waits for a lull
	timer    *time.Timer
	flushQ   []Flow        // flows whose conntrack entries the worker flushes at once
	flushing bool          // the worker is running such a flush
	done     chan struct{} // closed when the worker ends
}

type portKey struct {
	proto types.Protocol
	v6    bool
	port  uint16
}

type mapping struct {
	ep       Endpoint
	bindings []types.PortBinding // operational, with real host ports
	closers  []io.Closer
	busy     bool // being mapped or unmapped by a call that dropped mu
	stuck    bool // released, but removing its rules failed: retried by Flush
}

// New returns a PortMapper reserving ports through res and programming fw
// (nil to skip iptables) and flushing conntrack entries through ct (nil to
// skip).
func New(res Reserver, fw *firewall.Firewall, ct Conntrack) *PortMapper {
	pm := &PortMapper{res: res, fw: fw, ct: ct, log: slog.New(slog.DiscardHandler), held: map[portKey]map[string]int{}, endpoints: map[string]*mapping{},
		pending: map[string]*mapping{}, done: make(chan struct{})}
	pm.cond = sync.NewCond(&pm.mu)
	return pm
}

// SetLogger sets where the background release worker reports failures
// (nil: nowhere). Call it before the first MapPorts.
func (pm *PortMapper) SetLogger(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	pm.log = l
}

// MapPorts publishes bindings for ep and returns the operational bindings:
// one per address family a binding applies to (a binding on every host
// address yields an IPv4 one and, when the endpoint has IPv6, an IPv6 one
// on the same port), with the host port actually taken. A fixed port that
// is held (by a host process or another mapping) fails with Forbidden;
// a range takes its first free port; HostPort 0 takes one from the
// namespace's ephemeral range. Everything the call took is released when
// it fails. An endpoint already mapped is Forbidden: unmap it first. A
// binding on ::1 is BadRequest: the kernel cannot NAT it to a container.
// In a routed family (ep.Routed4/6) the host address only picks the
// family and the host port is not taken: the operational binding has
// host port 0.
func (pm *PortMapper) MapPorts(ep Endpoint, bindings []types.PortBinding) (_ []types.PortBinding, retErr error) {
	if ep.ID == "" {
		return nil, types.BadRequestErrorf("mapping ports: empty endpoint id")
	}
	reqs, err := expand(ep, bindings, pm.fw == nil || pm.fw.IPv6())
	if err != nil {
		return nil, err
	}

	pm.mu.Lock()
	pm.active = time.Now()
	if err := pm.waitPendingLocked(ep.ID, reqs); err != nil {
		pm.mu.Unlock()
		return nil, err
	}
	if _, ok := pm.endpoints[ep.ID]; ok {
		pm.mu.Unlock()
		return nil, types.ForbiddenErrorf("mapping ports of endpoint %s: already mapped", ep.ID)
	}
	m := &mapping{ep: ep, busy: true}
	pm.endpoints[ep.ID] = m
	var rollback undo.Stack
	success := false
	defer func() { retErr = errors.Join(retErr, rollback.Unless(&success)) }()
	rollback.PushFunc(func() {
		pm.mu.Lock()
		pm.releaseLocked(m)
		delete(pm.endpoints, ep.ID)
		pm.mu.Unlock()
	})
	for _, r := range reqs {
		if err := pm.reserveLocked(m, r); err != nil {
			pm.mu.Unlock()
			return nil, err
		}
	}
	pm.mu.Unlock()

	if pm.fw != nil {
		// Pushed first: a failed set may have left some forwards. They go
		// before the ports, as in UnmapPorts.
		rollback.Push(func() error { return pm.fw.RemovePortForwards(ep.ID) })
		if err := pm.fw.SetPortForwards(ep.ID, ep.Bridge, forwards(ep, m.bindings)); err != nil {
			return nil, types.Wrapf(err, "mapping ports of endpoint %s", ep.ID)
		}
	}
	pm.mu.Lock()
	// Entries made before the DNAT existed (packets to the bare host
	// port) would keep bypassing it; UDP senders retry on the same tuple.
	// The flush walks the whole conntrack table (~12 ms), so the release
	// worker does it right away, off the caller's path.
	pm.queueFlushLocked(m.bindings)
	m.busy = false
	pm.mu.Unlock()
	success = true
	return copyBindings(m.bindings), nil
}

// UnmapPorts removes ep's rules, then closes its sockets and flushes the
// conntrack entries of its UDP ports, so UDP flows stop reaching the old
// container. An endpoint with nothing mapped is success. When the rules
// cannot be removed the ports stay reserved (so no one else gets a port
// whose traffic is still DNATed) and the call can be repeated.
func (pm *PortMapper) UnmapPorts(endpointID string) error {
	pm.mu.Lock()
	m, ok := pm.endpoints[endpointID]
	if !ok {
		pm.mu.Unlock()
		return nil
	}
	if m.busy {
		pm.mu.Unlock()
		return types.ForbiddenErrorf("unmapping ports of endpoint %s: a map or unmap is in progress", endpointID)
	}
	m.busy = true
	pm.mu.Unlock()

	if pm.fw != nil {
		if err := pm.fw.RemovePortForwards(endpointID); err != nil {
			pm.mu.Lock()
			m.busy = false
			pm.mu.Unlock()
			return types.Wrapf(err, "unmapping ports of endpoint %s", endpointID)
		}
	}
	pm.mu.Lock()
	bindings := m.bindings
	err := pm.releaseLocked(m)
	delete(pm.endpoints, endpointID)
	pm.mu.Unlock()
	if ferr := pm.flush(bindings); ferr != nil {
		err = errors.Join(err, types.InternalMaskableErrorf("unmapping ports of endpoint %s: %w", endpointID, ferr))
	}
	return err
}

// Mapped returns the operational bindings of an endpoint (nil if none).
func (pm *PortMapper) Mapped(endpointID string) []types.PortBinding {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if m, ok := pm.endpoints[endpointID]; ok && !m.busy {
		return copyBindings(m.bindings)
	}
	return nil
}

// Close finishes the pending asynchronous releases (their rules are
// removed, their ports freed), stops the release worker, then releases
// every port still mapped without touching its rules or conntrack: for a
// process that stops while its containers keep running, so that the next
// process can re-map the same ports. Mappings whose rule removal keeps
// failing keep their rules (tagged with their owner) and lose their sockets.
func (pm *PortMapper) Close() error {
	ferr := pm.Flush()
	pm.mu.Lock()
	pm.closing = true
	pm.cond.Broadcast()
	// A Release between removing its DNAT and queueing must be done with
	// the firewall before the sockets (and the firewall) go.
	for pm.inflight > 0 {
		pm.cond.Wait()
	}
	worker := pm.worker
	pm.mu.Unlock()
	if worker {
		<-pm.done
	}
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if pm.timer != nil {
		pm.timer.Stop()
	}
	errs := []error{ferr}
	for id, m := range pm.endpoints {
		errs = append(errs, pm.releaseLocked(m))
		delete(pm.endpoints, id)
	}
	for id, m := range pm.pending {
		errs = append(errs, pm.releaseLocked(m))
		delete(pm.pending, id)
	}
	return errors.Join(errs...)
}

func (pm *PortMapper) flush(bs []types.PortBinding) error {
	if pm.ct == nil || len(bs) == 0 {
		return nil
	}
	// Only UDP: a TCP or SCTP flow to a port that changed hands ends with
	// its connection, while a UDP sender keeps one conntrack entry alive
	// for as long as it sends. Each flush walks the kernel's whole
	// conntrack hash table (about 12 ms even when empty), so it is not
	// paid for ports that do not need it.
	var flows []Flow
	for _, b := range bs {
		if b.Proto == types.UDP && !routedBinding(b) {
			flows = append(flows, Flow{Proto: b.Proto, HostIP: b.HostIP, HostPort: b.HostPort})
		}
	}
	return pm.flushFlows(flows)
}

func (pm *PortMapper) flushFlows(flows []Flow) error {
	if pm.ct == nil || len(flows) == 0 {
		return nil
	}
	return pm.ct.DeleteFlows(flows)
}

// releaseLocked closes m's sockets and forgets its in-memory reservations.
func (pm *PortMapper) releaseLocked(m *mapping) error {
	var errs []error
	for _, c := range m.closers {
		errs = append(errs, c.Close())
	}
	for _, b := range m.bindings {
		if routedBinding(b) {
			continue
		}
		k := keyOf(b.Proto, b.HostIP, b.HostPort)
		ips := pm.held[k]
		ip := hostIPKey(b.HostIP)
		if ips[ip]--; ips[ip] <= 0 {
			delete(ips, ip)
		}
		if len(ips) == 0 {
			delete(pm.held, k)
		}
	}
	m.closers, m.bindings = nil, nil
	if err := errors.Join(errs...); err != nil {
		return types.InternalErrorf("closing host port sockets of endpoint %s: %w", m.ep.ID, err)
	}
	return nil
}

func keyOf(proto types.Protocol, hostIP net.IP, port uint16) portKey {
	return portKey{proto: proto, v6: hostIP.To4() == nil, port: port}
}

func hostIPKey(ip net.IP) string {
	if ip.IsUnspecified() {
		return ""
	}
	return ip.String()
}

// takenLocked reports whether our own mappings hold the port on hostIP:
// the same address, or either side on every address.
func (pm *PortMapper) takenLocked(proto types.Protocol, hostIP net.IP, port uint16) bool {
	ips := pm.held[keyOf(proto, hostIP, port)]
	if len(ips) == 0 {
		return false
	}
	ip := hostIPKey(hostIP)
	return ip == "" || ips[""] > 0 || ips[ip] > 0
}

func hostPortString(ip net.IP, port uint16) string {
	return net.JoinHostPort(ip.String(), fmt.Sprint(port))
}

func copyBindings(bs []types.PortBinding) []types.PortBinding {
	out := make([]types.PortBinding, len(bs))
	for i, b := range bs {
		out[i] = b.GetCopy()
	}
	return out
}

func forwards(ep Endpoint, bs []types.PortBinding) []firewall.PortForward {
	out := make([]firewall.PortForward, len(bs))
	for i, b := range bs {
		out[i] = firewall.PortForward{Proto: b.Proto, HostIP: b.HostIP, HostPort: b.HostPort, ContainerIP: b.IP, ContainerPort: b.Port,
			Routed: ep.routed(b.IP)}
		if !out[i].Routed {
			out[i].Trusted = ep.trusted(b.IP)
		}
	}
	return out
}
