package osl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencnm/libnetwork/types"
)

// SetSysctl writes value to the sysctl key inside the sandbox's namespace.
// key is in sysctl(8) notation: dotted ("net.ipv4.conf.eth0.route_localnet")
// or, for interface names that contain dots, slashed
// ("net/ipv4/conf/eth0.100/route_localnet"). Only "net" keys are accepted:
// most other sysctls are not per-namespace, and writing them from a sandbox
// would change the whole machine.
func (s *Sandbox) SetSysctl(key, value string) error {
	path, err := sysctlPath(key)
	if err != nil {
		return err
	}
	if err := s.use("setting sysctl " + key); err != nil {
		return err
	}
	defer s.life.RUnlock()
	return s.writeSysctl(path, key, value)
}

// writeSysctl writes under the lifetime read lock held by the caller. The
// file must be opened inside the namespace: /proc/sys/net resolves against
// the opening thread's namespace.
func (s *Sandbox) writeSysctl(path, key, value string) error {
	err := s.ns.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) })
	if err != nil {
		if os.IsNotExist(err) {
			return types.NotFoundErrorf("setting sysctl %s in sandbox %s: %w", key, s.key, err)
		}
		return types.InternalErrorf("setting sysctl %s in sandbox %s: %w", key, s.key, err)
	}
	return nil
}

// sysctlPath maps a sysctl key to its /proc/sys path, refusing keys outside
// net and anything that could climb out of /proc/sys/net.
func sysctlPath(key string) (string, error) {
	rel := key
	if !strings.Contains(rel, "/") {
		rel = strings.ReplaceAll(rel, ".", "/")
	}
	parts := strings.Split(rel, "/")
	if len(parts) < 2 || parts[0] != "net" {
		return "", types.BadRequestErrorf("setting sysctl %q: only net.* keys are per-namespace", key)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return "", types.BadRequestErrorf("setting sysctl %q: malformed key", key)
		}
	}
	return filepath.Join("/proc/sys", rel), nil
}

// setIPv6 enables or disables IPv6 on ifName ("all", "default", "lo",
// eth0...) under the lifetime read lock held by the caller (or during
// construction, when nobody else can see s). Disabling "all" also sets
// "default" in the kernel, so later links start disabled too.
func (s *Sandbox) setIPv6(ifName string, enable bool) error {
	v := "1"
	if enable {
		v = "0"
	}
	err := s.writeIPv6Conf(ifName, v)
	if err == nil && ifName == "all" {
		// "all" propagates to "default" on current kernels; write it anyway
		// so older ones behave the same.
		err = s.writeIPv6Conf("default", v)
	}
	if err != nil {
		key := fmt.Sprintf("net.ipv6.conf.%s.disable_ipv6", ifName)
		if errors.Is(err, os.ErrNotExist) {
			if ifName == "all" {
				// Kernel without IPv6: nothing to disable.
				return nil
			}
			return types.NotFoundErrorf("setting sysctl %s in sandbox %s: %w", key, s.key, err)
		}
		return types.InternalErrorf("setting sysctl %s in sandbox %s: %w", key, s.key, err)
	}
	return nil
}

// writeIPv6Conf writes disable_ipv6 of ifName through the namespace's
// conf directory, opening it at first use.
func (s *Sandbox) writeIPv6Conf(ifName, value string) error {
	s.confMu.Lock()
	defer s.confMu.Unlock()
	if s.ipv6Conf == nil {
		d, err := s.ns.OpenSysctlDir("net/ipv6/conf")
		if err != nil {
			return err
		}
		s.ipv6Conf = d
	}
	return s.ipv6Conf.Write(ifName+"/disable_ipv6", value)
}
