package portmapper

import (
	"errors"
	"net"
	"time"

	"github.com/opencnm/libnetwork/types"
)

// Release unpublishes an endpoint's ports. The DNAT goes at once (a map
// element each, ~10-30 µs to remove: see the firewall package), so no new
// connection reaches the old container, nor whoever gets its address next.
// The rest happens off the caller's path: a background worker removes
// SCTP ports' checksum rules, flushes the conntrack entries of its UDP
// ports and only then closes its sockets, so a host port is never handed
// out while traffic to it could still reach the old container.
//
// Why: a conntrack flush walks the whole table (~12 ms), and an SCTP
// port's checksum rule goes in an iptables-nft transaction that deletes,
// which costs the kernel 10-20 ms. The worker takes every mapping released
// while it was busy in one batch: one firewall update and one conntrack
// walk for all. (An endpoint with SCTP ports keeps its DNAT until then
// too, so its rules all go in one update; a failed immediate removal is
// left to the worker the same way.)
//
// The worker does not start a batch while ports are being published: a
// deleting transaction holds the kernel's nf_tables commit lock for its
// whole duration, so a MapPorts arriving meanwhile would wait that long.
// It starts one once MapPorts and Release have been quiet for
// releaseIdle, when the oldest release has waited releaseMaxDelay, or at
// once when someone waits for it (Flush, Close, or a MapPorts that needs
// a port still being released).
//
// Until the worker is done with it, the mapping's ports stay reserved: a
// chosen or ranged port skips them, and a MapPorts asking for one of them
// by number (or for the same endpoint) waits for the release instead of
// failing. An endpoint with nothing mapped is success.
func (pm *PortMapper) Release(endpointID string) error {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	m, ok := pm.endpoints[endpointID]
	if !ok {
		return nil
	}
	if m.busy {
		return types.ForbiddenErrorf("releasing ports of endpoint %s: a map or unmap is in progress", endpointID)
	}
	if pm.closing {
		return types.ForbiddenErrorf("releasing ports of endpoint %s: port mapper is closed", endpointID)
	}
	delete(pm.endpoints, endpointID)
	m.busy = true
	pm.pending[endpointID] = m
	if pm.fw != nil && !hasSCTP(m.bindings) {
		// Off mu: the firewall talks to the kernel. The mapping is pending
		// and busy meanwhile, so nothing maps its ports or endpoint.
		pm.inflight++
		pm.mu.Unlock()
		_ = pm.fw.RemovePortForwards(endpointID) // on failure the worker retries
		pm.mu.Lock()
		pm.inflight--
		pm.cond.Broadcast()
		if pm.closing {
			// Close came meanwhile: it releases every pending mapping,
			// this one included, and no worker may start after it.
			return nil
		}
	}
	now := time.Now()
	if len(pm.queue) == 0 && len(pm.flushQ) == 0 {
		pm.oldest = now
	}
	pm.active = now
	pm.queue = append(pm.queue, m)
	pm.queued++
	pm.wakeWorkerLocked()
	return nil
}

func hasSCTP(bs []types.PortBinding) bool {
	for _, b := range bs {
		if b.Proto == types.SCTP {
			return true
		}
	}
	return false
}

// Flush waits until every release queued before the call is finished,
// and the conntrack flushes of earlier MapPorts calls with it.
// Releases that failed earlier are tried once more first. It returns an
// error when some mapping's rules still could not be removed (its ports
// then stay reserved).
func (pm *PortMapper) Flush() error {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	var stuck []*mapping
	for _, m := range pm.pending {
		if m.stuck {
			stuck = append(stuck, m)
		}
	}
	if len(stuck) > 0 && !pm.closing {
		for _, m := range stuck {
			m.stuck = false
			pm.queue = append(pm.queue, m)
			pm.queued++
		}
		pm.wakeWorkerLocked()
	}
	// Releases still removing their DNAT count as queued before the call.
	for pm.inflight > 0 {
		pm.cond.Wait()
	}
	target := pm.queued
	pm.urgent++
	pm.cond.Broadcast()
	for (pm.handled < target || len(pm.flushQ) > 0 || pm.flushing) && pm.worker {
		pm.cond.Wait()
	}
	pm.urgent--
	n := 0
	for _, m := range pm.pending {
		if m.stuck {
			n++
		}
	}
	if n > 0 {
		return types.InternalErrorf("releasing published ports: rules of %d endpoints could not be removed: %w", n, pm.lastErr)
	}
	return nil
}

// wakeWorkerLocked starts the worker if it is not running and wakes it
// (and anyone waiting on cond). Caller holds mu.
func (pm *PortMapper) wakeWorkerLocked() {
	if !pm.worker {
		pm.worker = true
		go pm.releaseLoop()
	}
	pm.cond.Broadcast()
}

// releaseLoop is the worker: it runs until Close and handles the queue in
// batches.
func (pm *PortMapper) releaseLoop() {
	defer close(pm.done)
	pm.mu.Lock()
	defer pm.mu.Unlock()
	for {
		for !pm.closing && ((len(pm.queue) == 0 && len(pm.flushQ) == 0) || !pm.dueLocked()) {
			pm.cond.Wait()
		}
		if len(pm.queue) == 0 && len(pm.flushQ) == 0 {
			pm.worker = false
			pm.cond.Broadcast()
			return
		}
		batch, fq := pm.queue, pm.flushQ
		pm.queue, pm.flushQ = nil, nil
		pm.flushing = true
		pm.mu.Unlock()
		err, ferr := pm.releaseBatch(batch, fq)
		pm.logBatch(batch, err, ferr)
		pm.mu.Lock()
		pm.flushing = false
		for _, m := range batch {
			if err != nil {
				m.stuck = true
				continue
			}
			if rerr := pm.releaseLocked(m); rerr != nil {
				ferr = errors.Join(ferr, rerr)
			}
			delete(pm.pending, m.ep.ID)
		}
		pm.lastErr = errors.Join(err, ferr)
		pm.handled += uint64(len(batch))
		pm.cond.Broadcast()
	}
}

// queueFlushLocked hands the conntrack flush of freshly mapped UDP
// bindings to the worker. It goes with the next release batch, in the same
// table walk: a walk takes ~12 ms and, while it runs, link changes that
// make the kernel clean conntrack up (a Leave taking a veth down) wait for
// it, so walks are batched and kept out of busy periods like deletions.
func (pm *PortMapper) queueFlushLocked(bs []types.PortBinding) {
	if pm.ct == nil || pm.closing {
		return
	}
	added := false
	for _, b := range bs {
		if b.Proto == types.UDP && !routedBinding(b) {
			if len(pm.queue) == 0 && len(pm.flushQ) == 0 {
				pm.oldest = time.Now()
			}
			pm.flushQ = append(pm.flushQ, Flow{Proto: b.Proto, HostIP: b.HostIP, HostPort: b.HostPort, KeepTo: b.IP})
			added = true
		}
	}
	if !added {
		return
	}
	pm.wakeWorkerLocked()
}

// Batching delays of the release worker (see Release).
const (
	releaseIdle     = 30 * time.Millisecond
	releaseMaxDelay = 250 * time.Millisecond
)

// dueLocked reports whether the worker should start a batch now; if not,
// it arms a timer to wake the worker when it will be.
func (pm *PortMapper) dueLocked() bool {
	if pm.urgent > 0 {
		return true
	}
	now := time.Now()
	wait := min(pm.active.Add(releaseIdle).Sub(now), pm.oldest.Add(releaseMaxDelay).Sub(now))
	if wait <= 0 {
		return true
	}
	if pm.timer == nil {
		pm.timer = time.AfterFunc(wait, func() {
			pm.mu.Lock()
			pm.cond.Broadcast()
			pm.mu.Unlock()
		})
	} else {
		pm.timer.Reset(wait)
	}
	return false
}

// releaseBatch removes the rules of batch in one commit, then flushes the
// conntrack entries of their UDP ports, and the extra flows of fresh
// mappings, in one walk. err is the rule removal's failure (the sockets
// must then stay), ferr the flush's.
func (pm *PortMapper) releaseBatch(batch []*mapping, extra []Flow) (err, ferr error) {
	ids := make([]string, len(batch))
	for i, m := range batch {
		ids[i] = m.ep.ID
	}
	if pm.fw != nil && len(batch) > 0 {
		err = pm.fw.RemovePortForwards(ids...)
	}
	flows := extra
	if err == nil {
		for _, m := range batch {
			for _, b := range m.bindings {
				if b.Proto == types.UDP && !routedBinding(b) {
					flows = append(flows, Flow{Proto: b.Proto, HostIP: b.HostIP, HostPort: b.HostPort})
				}
			}
		}
	}
	if fe := pm.flushFlows(flows); fe != nil {
		ferr = types.InternalMaskableErrorf("flushing conntrack entries of published ports: %w", fe)
	}
	return err, ferr
}

// waitPendingLocked waits, with mu held, until no release in flight holds
// endpointID or a fixed host port reqs ask for. A release whose rule
// removal failed is not waited for: the fixed port then fails as taken.
func (pm *PortMapper) waitPendingLocked(endpointID string, reqs []request) error {
	for !pm.closing {
		m, same := pm.pending[endpointID]
		if same && m.stuck {
			return types.ForbiddenErrorf("mapping ports of endpoint %s: its previous ports could not be released", endpointID)
		}
		if !same && !pm.pendingConflictLocked(reqs) {
			return nil
		}
		pm.urgent++
		pm.cond.Broadcast()
		pm.cond.Wait()
		pm.urgent--
	}
	return nil
}

func (pm *PortMapper) pendingConflictLocked(reqs []request) bool {
	if len(pm.pending) == 0 {
		return false
	}
	for _, r := range reqs {
		b := r.orig
		if b.HostPort == 0 || (b.HostPortEnd != 0 && b.HostPortEnd != b.HostPort) {
			continue
		}
		for _, s := range r.sides {
			for _, m := range pm.pending {
				if m.stuck {
					continue
				}
				for _, h := range m.bindings {
					if h.Proto == s.Proto && h.HostPort == b.HostPort && sameFamily(h.HostIP, s.HostIP) &&
						(h.HostIP.IsUnspecified() || s.HostIP.IsUnspecified() || h.HostIP.Equal(s.HostIP)) {
						return true
					}
				}
			}
		}
	}
	return false
}

func sameFamily(a, b net.IP) bool { return (a.To4() == nil) == (b.To4() == nil) }

// logBatch reports a failed release batch: with err the endpoints' rules
// are still there (and their ports stay held until a retry), ferr is a
// conntrack flush that failed (stale flows may linger).
func (pm *PortMapper) logBatch(batch []*mapping, err, ferr error) {
	if err == nil && ferr == nil {
		return
	}
	ids := make([]string, len(batch))
	for i, m := range batch {
		ids[i] = m.ep.ID
	}
	if err != nil {
		pm.log.Warn("releasing published ports failed; they stay held", "endpoints", ids, "err", err)
	}
	if ferr != nil {
		pm.log.Warn("flushing conntrack entries of released ports failed", "endpoints", ids, "err", ferr)
	}
}
