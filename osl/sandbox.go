// Package osl is the OS sandbox layer: a container's network namespace,
// bind-mounted at a key path so it outlives any process, plus a netlink
// handle opened inside it through which every kernel change is made.
//
// Nothing here re-executes the binary or switches the calling thread's
// namespace. Links, addresses and routes go through the sandbox's netlink
// handle; the few things netlink cannot do (sysctls under /proc/sys, binding
// sockets) go through Do, which is internal/netnsutil's NS.Do.
package osl

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// netlinkTimeout bounds every netlink round trip on the sandbox handle, so a
// wedged kernel path fails an operation instead of hanging the controller.
const netlinkTimeout = 3 * time.Second

// Sandbox is one network namespace mounted at Key. It is safe for
// concurrent use. Interface operations on one sandbox are serialised.
type Sandbox struct {
	key string

	// life guards ns and nl: every operation holds it for reading while it
	// uses them, Destroy holds it for writing to close them. Without it a
	// concurrent Destroy could close the namespace fd under a running Do, and
	// the fd number could be reused for another namespace.
	life      sync.RWMutex
	ns        *netnsutil.NS
	nl        *netlink.Handle
	destroyed bool

	// ipv6Conf is the namespace's /proc/sys/net/ipv6/conf, opened for the
	// IPv6 sysctl writes (resolved from /proc/sys each would cost
	// O(namespaces on the machine), see netnsutil.SysctlDir) and kept from
	// the first interface with IPv6 until the handles close. Guarded by
	// confMu (and life, like ns).
	confMu   sync.Mutex
	ipv6Conf *netnsutil.SysctlDir

	// fresh is true for namespaces made by New: we own their IPv6 policy
	// (disabled until an interface gets an IPv6 address).
	fresh bool

	// mu guards the interface records and name reservations, and is held
	// through a whole AddInterface/RemoveInterface so names cannot race.
	mu       sync.Mutex
	ifaces   map[string]*iface // by in-sandbox name
	reserved map[string]struct{}
	// loIPv6 is set while AddInterface's enabling of IPv6 on lo stands;
	// a fresh namespace starts with it off. Sysctl writes are not free
	// (the first one of a sandbox resolves /proc/sys/net, whose cost grows
	// with the namespaces on the machine: see ipv6Conf), so lo is only
	// turned off again if it was turned on.
	loIPv6 bool
}

// New creates a network namespace bind-mounted at key and returns a
// sandbox in it, with lo up. As upstream does, IPv6 is disabled on "all"
// and "default" in the fresh namespace, so interfaces without an IPv6
// address get no link-local address, no DAD and no router solicitations;
// AddInterface enables IPv6 on an interface (and lo) that gets an IPv6
// address. A stale mount at key from a crashed run is replaced.
func New(key string) (*Sandbox, error) {
	if key == "" {
		return nil, types.BadRequestErrorf("creating sandbox: empty key")
	}
	s, err := prepare()
	if err != nil {
		return nil, types.Wrapf(err, "creating sandbox %s", key)
	}
	if err := s.mount(key); err != nil {
		return nil, err
	}
	return s, nil
}

// prepare makes a sandbox in a new, not yet mounted namespace: lo up and
// IPv6 off, everything New does but giving it a key.
func prepare() (_ *Sandbox, retErr error) {
	ns, err := netnsutil.NewUnmounted()
	if err != nil {
		return nil, types.InternalErrorf("%w", err)
	}
	s, err := open("(new)", ns)
	if err != nil {
		ns.Close()
		return nil, err
	}
	s.fresh = true
	if err := s.setIPv6("all", false); err != nil {
		s.closeHandles()
		return nil, err
	}
	// Kept open only by sandboxes that get IPv6: one fd less for the rest.
	s.closeIPv6Conf()
	return s, nil
}

// mount gives a prepared sandbox its key; on failure the sandbox is
// released.
func (s *Sandbox) mount(key string) error {
	if err := s.ns.Mount(key); err != nil {
		s.closeHandles()
		return types.InternalErrorf("creating sandbox %s: %w", key, err)
	}
	s.key = key
	return nil
}

// Adopt bind-mounts the existing network namespace file src (for example
// /proc/PID/ns/net of a container started by a runtime, or the host's own
// namespace for the "default" sandbox) onto key and returns a sandbox in it,
// with lo up. IPv6 settings of the adopted namespace are left alone.
// Destroy later unmounts key only: the adopted namespace lives on as long
// as its processes or other mounts hold it.
func Adopt(key, src string) (_ *Sandbox, retErr error) {
	if key == "" || src == "" {
		return nil, types.BadRequestErrorf("adopting namespace %q at %q: empty path", src, key)
	}
	if err := checkNetNS(src); err != nil {
		return nil, fmt.Errorf("adopting namespace %s: %w", src, err)
	}
	if err := bindMount(src, key); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			_ = netnsutil.Remove(key)
		}
	}()
	ns, err := netnsutil.Open(key)
	if err != nil {
		return nil, types.InternalErrorf("adopting namespace %s: %w", src, err)
	}
	s, err := open(key, ns)
	if err != nil {
		ns.Close()
		return nil, err
	}
	return s, nil
}

// Open returns a sandbox for a namespace already mounted at key, as left by
// a previous controller process (live restore). The interface list is
// rebuilt from the kernel: every link but lo, with its first IPv4 and first
// global IPv6 address. Rebuilt interfaces have no SrcName, so
// RemoveInterface deletes them rather than moving them anywhere.
func Open(key string) (_ *Sandbox, retErr error) {
	if key == "" {
		return nil, types.BadRequestErrorf("opening sandbox: empty key")
	}
	if err := checkNetNS(key); err != nil {
		return nil, fmt.Errorf("opening sandbox %s: %w", key, err)
	}
	ns, err := netnsutil.Open(key)
	if err != nil {
		return nil, types.InternalErrorf("opening sandbox %s: %w", key, err)
	}
	s, err := open(key, ns)
	if err != nil {
		ns.Close()
		return nil, err
	}
	if err := s.rebuild(); err != nil {
		s.closeHandles()
		return nil, err
	}
	return s, nil
}

// open wraps an opened namespace: netlink handle in it, lo up. On error the
// caller still owns ns.
func open(key string, ns *netnsutil.NS) (*Sandbox, error) {
	nl, err := netlink.NewHandleAt(ns.Handle())
	if err != nil {
		return nil, types.InternalErrorf("opening netlink handle in sandbox %s: %w", key, err)
	}
	if err := nl.SetSocketTimeout(netlinkTimeout); err != nil {
		nl.Close()
		return nil, types.InternalErrorf("setting netlink timeout in sandbox %s: %w", key, err)
	}
	lo, err := nl.LinkByName("lo")
	if err == nil {
		err = nl.LinkSetUp(lo)
	}
	if err != nil {
		nl.Close()
		return nil, types.InternalErrorf("bringing lo up in sandbox %s: %w", key, err)
	}
	return &Sandbox{
		key:      key,
		ns:       ns,
		nl:       nl,
		ifaces:   map[string]*iface{},
		reserved: map[string]struct{}{},
	}, nil
}

// checkNetNS fails unless path is a network namespace file, so a typo
// cannot bind-mount (or later unmount) an arbitrary file.
func checkNetNS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return types.NotFoundErrorf("namespace file %s: %w", path, err)
		}
		return types.BadRequestErrorf("namespace file %s: %w", path, err)
	}
	defer f.Close()
	kind, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil || kind != unix.CLONE_NEWNET {
		return types.BadRequestErrorf("%s is not a network namespace", path)
	}
	return nil
}

// bindMount mounts the namespace file src onto key, creating key first.
// It is a mount, not a namespace switch: the calling thread stays put.
func bindMount(src, key string) error {
	if err := os.MkdirAll(dirOf(key), 0o755); err != nil {
		return types.InternalErrorf("creating directory for sandbox key %s: %w", key, err)
	}
	// A stale mount from a crashed run would stack under the new one.
	_ = unix.Unmount(key, unix.MNT_DETACH)
	f, err := os.OpenFile(key, os.O_RDONLY|os.O_CREATE, 0o444)
	if err != nil {
		return types.InternalErrorf("creating sandbox key %s: %w", key, err)
	}
	f.Close()
	if err := unix.Mount(src, key, "none", unix.MS_BIND, ""); err != nil {
		_ = os.Remove(key)
		return types.InternalErrorf("bind-mounting namespace %s at %s: %w", src, key, err)
	}
	return nil
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		return path[:i]
	}
	return "."
}

// Key returns the path the namespace is mounted at (usable as
// nsenter --net=KEY or an OCI runtime's netns path).
func (s *Sandbox) Key() string { return s.key }

// NS returns the open namespace. It is closed by Destroy.
func (s *Sandbox) NS() *netnsutil.NS { return s.ns }

// Netlink returns the netlink handle inside the namespace. It is closed by
// Destroy; callers must not close it.
func (s *Sandbox) Netlink() *netlink.Handle { return s.nl }

// Destroy closes the handles, then unmounts and removes the key. The kernel
// frees the namespace once nothing else holds it, deleting the veths inside
// it (and their host peers); interfaces are not moved back, call
// RemoveInterface first for links that must survive. A sandbox or key that
// is already gone is not an error.
func (s *Sandbox) Destroy() error {
	s.life.Lock()
	defer s.life.Unlock()
	if !s.destroyed {
		s.closeHandlesLocked()
		s.destroyed = true
	}
	if err := netnsutil.Remove(s.key); err != nil {
		return types.InternalErrorf("destroying sandbox %s: %w", s.key, err)
	}
	return nil
}

// Close releases the sandbox's handles and leaves the namespace, with
// everything in it, as it is: for a process that stops while its
// containers keep running, and a later one opens the namespace again. An
// open handle would keep the namespace alive even after its mount is
// removed. Later operations fail as on a destroyed sandbox.
func (s *Sandbox) Close() {
	s.life.Lock()
	defer s.life.Unlock()
	if !s.destroyed {
		s.closeHandlesLocked()
		s.destroyed = true
	}
}

func (s *Sandbox) closeHandles() {
	s.life.Lock()
	defer s.life.Unlock()
	s.closeHandlesLocked()
}

func (s *Sandbox) closeHandlesLocked() {
	s.closeIPv6Conf()
	s.nl.Close()
	s.ns.Close()
}

func (s *Sandbox) closeIPv6Conf() {
	s.confMu.Lock()
	defer s.confMu.Unlock()
	_ = s.ipv6Conf.Close()
	s.ipv6Conf = nil
}

// use takes the read side of the lifetime lock, failing once destroyed.
// Callers defer s.life.RUnlock() on success.
func (s *Sandbox) use(op string) error {
	s.life.RLock()
	if s.destroyed {
		s.life.RUnlock()
		return types.ForbiddenErrorf("%s: sandbox %s is destroyed", op, s.key)
	}
	return nil
}

// Do runs fn on a thread inside the namespace (sysctls, binding sockets).
// fn must not call methods of s, nor start goroutines that expect to be in
// the namespace.
func (s *Sandbox) Do(fn func() error) error {
	if err := s.use("running in sandbox"); err != nil {
		return err
	}
	defer s.life.RUnlock()
	return s.ns.Do(fn)
}

// ReserveName returns the lowest free "<prefix><n>" (eth0, eth1, ...) among
// the links present in the namespace and the names already reserved, and
// reserves it. The reservation holds until AddInterface is called with that
// DstName (whatever its outcome) or ReleaseName.
func (s *Sandbox) ReserveName(prefix string) string {
	taken := map[string]bool{}
	if s.use("reserving name") == nil {
		// The kernel is the truth: a driver may have created a link inside
		// the namespace that is not recorded yet. On error fall back to the
		// records, which hold every interface added through s.
		if links, err := s.nl.LinkList(); err == nil {
			for _, l := range links {
				taken[l.Attrs().Name] = true
			}
		}
		s.life.RUnlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.ifaces {
		taken[n] = true
	}
	for n := range s.reserved {
		taken[n] = true
	}
	for i := 0; ; i++ {
		name := prefix + strconv.Itoa(i)
		if !taken[name] {
			s.reserved[name] = struct{}{}
			return name
		}
	}
}

// ReleaseName drops a reservation made by ReserveName. Releasing a name
// that is not reserved does nothing.
func (s *Sandbox) ReleaseName(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.reserved, name)
}

// Interfaces returns copies of the interfaces in the sandbox, by name.
func (s *Sandbox) Interfaces() []Interface {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Interface, 0, len(s.ifaces))
	for _, i := range s.ifaces {
		out = append(out, i.copy())
	}
	sort.Slice(out, func(a, b int) bool { return out[a].DstName < out[b].DstName })
	return out
}

// kernelErr classes an error from a netlink call: a missing object is
// NotFound, an existing one Forbidden, a refused value BadRequest, anything
// else Internal. The message names the step; the cause is wrapped.
func kernelErr(err error, format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	var lnf netlink.LinkNotFoundError
	switch {
	case errors.As(err, &lnf), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENOENT), errors.Is(err, unix.ESRCH):
		return types.NotFoundErrorf("%s: %w", msg, err)
	case errors.Is(err, unix.EEXIST), errors.Is(err, unix.EBUSY):
		return types.ForbiddenErrorf("%s: %w", msg, err)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EADDRNOTAVAIL), errors.Is(err, unix.ERANGE), errors.Is(err, unix.ENETUNREACH):
		return types.BadRequestErrorf("%s: %w", msg, err)
	}
	return types.InternalErrorf("%s: %w", msg, err)
}

// isGone reports whether err means the object no longer exists.
func isGone(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EADDRNOTAVAIL)
}

// Remount bind-mounts the sandbox's namespace at its key again, over
// whatever is mounted there now: the way back when the key was given to
// another namespace (a runtime's second SetKey) and that move failed.
func (s *Sandbox) Remount() error {
	if err := s.use("remounting"); err != nil {
		return err
	}
	defer s.life.RUnlock()
	return bindMount(fmt.Sprintf("/proc/self/fd/%d", s.ns.Fd()), s.key)
}
