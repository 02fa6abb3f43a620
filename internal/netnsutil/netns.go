// Package netnsutil is the one place that switches network namespaces.
//
// Everything else either holds a netlink handle opened inside a namespace
// (netlink.NewHandleAt) or calls NS.Do for the few things with no handle:
// sysctls under /proc/sys, exec of iptables, binding sockets. No other code
// in the module calls runtime.LockOSThread or setns.
package netnsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NS is an open network namespace.
type NS struct {
	path string
	// mu makes Close wait for the entries (Do) in flight, and every later
	// one fail: the number of a closed handle may be given to another file
	// at once, and an entry through it would switch to whatever namespace
	// that file is (the machine's own, say).
	mu     sync.RWMutex
	handle netns.NsHandle // -1 once closed; guarded by mu
}

// ErrClosed is the error of entering a namespace whose handle was closed.
var ErrClosed = errors.New("namespace handle closed")

// Open opens the namespace at path (a bind-mounted file or /proc/PID/ns/net).
func Open(path string) (*NS, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	return &NS{path: path, handle: h}, nil
}

// Current opens the namespace of the calling goroutine's thread. Its Path
// is the /proc path of that thread's namespace link at the time of the call.
func Current() (*NS, error) {
	// The thread must not change under us between gettid and the open.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	path := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("opening current network namespace: %w", err)
	}
	return &NS{path: path, handle: h}, nil
}

// New creates a network namespace and bind-mounts it at path, so it
// outlives the thread that made it and can be entered by path (nsenter
// --net=PATH, an OCI runtime's netns path). Nothing is re-executed.
func New(path string) (*NS, error) {
	ns, err := NewUnmounted()
	if err != nil {
		return nil, err
	}
	if err := ns.Mount(path); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// NewUnmounted creates a network namespace held only by the returned
// handle: nothing on disk refers to it, so if the process dies the kernel
// frees it with the handle. Mount gives it a path later. (Making one costs
// ~0.65 ms of kernel time, most of a sandbox's creation; this lets it be
// made ahead, off the caller's path.)
func NewUnmounted() (*NS, error) {
	h := netns.None()
	err := onThread(
		func() error { return unix.Unshare(unix.CLONE_NEWNET) },
		func() error {
			var err error
			h, err = netns.Get()
			return err
		})
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("creating network namespace: %w", err)
	}
	return &NS{handle: h}, nil
}

// Mount bind-mounts the namespace at path (creating the file), which
// becomes its Path: it then outlives the handle, until Remove.
func (n *NS) Mount(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating namespace directory for %s: %w", path, err)
	}
	// A stale mount from a crashed run would make the bind mount stack;
	// detach it first. Errors mean nothing was mounted there.
	_ = unix.Unmount(path, unix.MNT_DETACH)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating namespace file %s: %w", path, err)
	}
	if f != nil {
		f.Close()
	}
	src := fmt.Sprintf("/proc/self/fd/%d", n.Fd())
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("bind-mounting namespace at %s: %w", path, err)
	}
	n.path = path
	return nil
}

// Remove unmounts and deletes a namespace file made by New. A path that is
// already gone is not an error. The kernel frees the namespace (and any
// veth inside it) once no mount, fd or process refers to it.
func Remove(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing namespace file %s: %w", path, err)
	}
	return nil
}

// Path returns the path the namespace was opened from.
func (n *NS) Path() string { return n.path }

// Handle returns the namespace file handle (valid until Close).
func (n *NS) Handle() netns.NsHandle {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.handle
}

// Fd returns the namespace file descriptor (valid until Close).
func (n *NS) Fd() int { return int(n.Handle()) }

// Close releases the handle, once entries in flight are done. It does not
// remove a bind mount (see Remove).
func (n *NS) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.handle == -1 {
		return nil
	}
	err := n.handle.Close()
	n.handle = -1
	return err
}

// Do runs fn on a thread switched into the namespace and returns its error.
// fn must not start goroutines that expect to be in the namespace, nor
// change other namespaces: only the network namespace is restored.
func (n *NS) Do(fn func() error) error {
	return onThread(func() error {
		n.mu.RLock()
		defer n.mu.RUnlock()
		if n.handle == -1 {
			return fmt.Errorf("entering namespace %s: %w", n.path, ErrClosed)
		}
		if err := setNS(n.handle); err != nil {
			return fmt.Errorf("entering namespace %s: %w", n.path, err)
		}
		return nil
	}, fn)
}

// setNS switches the calling thread; a variable so a test can make the
// switch back fail.
var setNS = netns.Set

// onThread runs enter and then fn on a fresh goroutine whose OS thread is
// locked, and switches the thread back to its original network namespace
// afterwards. The thread is unlocked only if that switch back worked;
// otherwise the goroutine exits locked and the runtime discards the thread,
// so no goroutine ever runs in a namespace it did not ask for. fn does not
// run if enter fails.
func onThread(enter, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread is never ended: a locked goroutine exiting
			// on it parks it for good, which after a failed switch back
			// would keep the namespace alive until the process exits.
			// Holding it locked here, the work lands on another thread.
			errc <- onThread(enter, fn)
			runtime.UnlockOSThread()
			return
		}
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("saving current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := enter(); err != nil {
			// enter may have switched before failing (unshare does not);
			// the switch back below decides whether the thread is reusable.
			if serr := setNS(orig); serr != nil {
				errc <- errors.Join(err, fmt.Errorf("switching back to original namespace: %w", serr))
				return
			}
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		fnErr := fn()
		if err := setNS(orig); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("switching back to original namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}
