package libnetwork

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// collectGarbage removes what no record accounts for: namespace files and
// sandbox file directories under ExecRoot, and (through the drivers that
// can) bridges, veths and rules tagged with IDs that are gone, in the host
// namespace and inside the sandboxes kept.
func (c *Controller) collectGarbage() error {
	var errs []error
	c.mu.Lock()
	keys := map[string]bool{}
	sbIDs := map[string]bool{}
	var sbKeys []string
	for _, sb := range c.sandboxes {
		keys[filepath.Base(sb.key)] = true
		if sb.key != "" {
			sbKeys = append(sbKeys, sb.key)
		}
		sbIDs[sb.id] = true
	}
	liveNets := map[string]bool{}
	joined := map[string]bool{}
	for id, n := range c.networks {
		liveNets[id] = true
		for eid, ep := range n.endpoints {
			if ep.sandboxID != "" {
				joined[eid] = true
			}
		}
	}
	c.mu.Unlock()
	netnsDir := filepath.Join(c.cfg.ExecRoot, "netns")
	if entries, err := os.ReadDir(netnsDir); err == nil {
		for _, e := range entries {
			if !keys[e.Name()] {
				errs = append(errs, netnsutil.Remove(filepath.Join(netnsDir, e.Name())))
			}
		}
	}
	filesDir := filepath.Join(c.cfg.ExecRoot, "files")
	if entries, err := os.ReadDir(filesDir); err == nil {
		for _, e := range entries {
			if !sbIDs[e.Name()] {
				errs = append(errs, os.RemoveAll(filepath.Join(filesDir, e.Name())))
			}
		}
	}
	for _, e := range c.drv.allDrivers() {
		if gc, ok := e.(driverapi.GarbageCollector); ok {
			errs = append(errs, gc.CollectGarbage(liveNets, joined))
		}
		if gc, ok := e.(driverapi.SandboxGarbageCollector); ok {
			errs = append(errs, gc.CollectSandboxGarbage(sbKeys, joined))
		}
	}
	return errors.Join(errs...)
}

// CollectGarbage removes kernel objects and files the library made that no
// network, endpoint or sandbox accounts for any more (leftovers of a crash),
// as New does at start. It is safe to call at any time.
func (c *Controller) CollectGarbage() (err error) {
	defer classify(&err)
	c.gcMu.Lock()
	defer c.gcMu.Unlock()
	return c.collectGarbage()
}
