package libnetwork

import (
	"context"
	"time"
)

// awaitHostGone waits (until ctx ends: the caller's one deadline) until the
// watch has delivered the deletes of host id's endpoints, so that once
// EvictHost returns, this controller's candidates no longer hold the
// evicted host's addresses and names: a caller can claim them here at once.
func (m *mirror) awaitHostGone(ctx context.Context, id string) {
	for ; ctx.Err() == nil; time.Sleep(5 * time.Millisecond) {
		if !m.hasHost(id) {
			return
		}
	}
	m.log.Warn("global store: the watch has not delivered an evicted host's endpoints gone", "host", id)
}

// hasHost reports whether the mirror holds an endpoint of host id.
func (m *mirror) hasHost(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, eps := range m.eps {
		for _, e := range eps {
			if e.Host == id {
				return true
			}
		}
	}
	return false
}
