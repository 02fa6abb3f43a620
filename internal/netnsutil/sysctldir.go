package netnsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// SysctlDir is a directory under /proc/sys/net opened inside one
// namespace, for writing the sysctls below it by relative path.
//
// Resolving a path from /proc/sys costs O(namespaces) at its first
// component: every namespace that has looked up /proc/sys/net has its own
// "net" dentry under the one /proc/sys dentry, all with the same name
// hash, so the kernel compares them newest first (each under a global
// lock) until it finds the one the calling thread's namespace can see. A
// namespace older than a thousand sandboxes (the host's) pays ~0.1 ms a
// write for that walk, and a new one pays it for its first lookup. Below
// the directory every dentry's parent is this namespace's own, so
// relative lookups are O(1) (BenchmarkSysctlWrite).
//
// The directory belongs to the namespace it was opened in; writes switch
// into that namespace too, since /proc/sys entries resolve against the
// calling thread's namespace.
type SysctlDir struct {
	ns  *NS
	dir *os.File
	rel string
}

// OpenSysctlDir opens /proc/sys/<rel> inside n; rel must lie under "net".
// A kernel without the directory (no IPv6) gives an error matching
// os.ErrNotExist.
func (n *NS) OpenSysctlDir(rel string) (*SysctlDir, error) {
	var f *os.File
	err := n.Do(func() error {
		var err error
		f, err = os.OpenFile(filepath.Join("/proc/sys", rel), os.O_RDONLY|unix.O_DIRECTORY, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &SysctlDir{ns: n, dir: f, rel: rel}, nil
}

// Write writes value to the sysctl at name, relative to the directory
// ("eth0/disable_ipv6"). An absent entry gives an error matching
// os.ErrNotExist.
func (d *SysctlDir) Write(name, value string) error {
	if filepath.IsAbs(name) || !filepath.IsLocal(name) {
		return fmt.Errorf("writing sysctl %s/%s: not a path below the directory", d.rel, name)
	}
	return d.ns.Do(func() error {
		fd, err := unix.Openat(int(d.dir.Fd()), name, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: filepath.Join("/proc/sys", d.rel, name), Err: err}
		}
		f := os.NewFile(uintptr(fd), filepath.Join("/proc/sys", d.rel, name))
		_, werr := f.Write([]byte(value))
		return errors.Join(werr, f.Close())
	})
}

// Close closes the directory.
func (d *SysctlDir) Close() error {
	if d == nil {
		return nil
	}
	return d.dir.Close()
}
