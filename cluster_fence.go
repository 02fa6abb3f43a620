package libnetwork

import "time"

// fenceMargin is how long before its lease could expire a host stops
// forwarding to other hosts: a quarter of the TTL, so the data plane is
// cut before another host can see this one's endpoints gone and reuse
// their addresses, whatever the TTL (small test TTLs included).
func fenceMargin(ttl time.Duration) time.Duration { return ttl / 4 }

// fenceTick is how often the fence is checked: TTL/20, at least 50 ms.
func fenceTick(ttl time.Duration) time.Duration { return max(ttl/20, 50*time.Millisecond) }

// fenceLoop checks the fence every tick until close, and keeps the
// session's last acknowledged renewal in the lease record (a local write
// only when a renewal was acknowledged since: one per TTL/3).
func (cl *cluster) fenceLoop(tick time.Duration) {
	defer cl.done.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-cl.ctx.Done():
			return
		case <-t.C:
			cl.checkFence()
			cl.keepRenewal()
		}
	}
}

// keepRenewal writes the session's last acknowledged renewal to the lease
// record, so a restart fences from it (see loadLease).
func (cl *cluster) keepRenewal() {
	cl.mu.Lock()
	ss := cl.sess
	cl.mu.Unlock()
	if ss == nil {
		return
	}
	if err := cl.saveLease(ss); err != nil {
		cl.c.cfg.Logger.Debug("global store: keeping the last renewal", "host", cl.host.ID, "err", err)
	}
}

// fenceState says whether the host must be fenced now. With a session
// (published, or opened and healing), it is whether the lease may expire
// within the margin, judged by the host's own clock from the last
// acknowledged renewal (Renewed: the lease cannot expire before
// Renewed+TTL). Without one, a lease was lost (fenced at once: its claims
// are gone, and stay fenced until they are claimed again) or none was
// opened yet in this run: then the previous run's lease may expire from
// its last renewal kept in the lease record plus its TTL (loadLease; a
// record without it fences at once), and with no record at all the clock
// starts at New.
func (cl *cluster) fenceState(now time.Time) bool {
	cl.mu.Lock()
	ss, lost := cl.sess, cl.lost
	if ss == nil {
		ss = cl.pending
	}
	cl.mu.Unlock()
	if lost {
		return true
	}
	last, ttl := cl.started, cl.prevTTL
	if ss != nil {
		last, ttl = ss.Renewed(), ss.TTL()
	}
	if last.IsZero() {
		return true
	}
	return now.Sub(last) > ttl-fenceMargin(ttl)
}

// checkFence tells the subscribers when the fence state changed.
func (cl *cluster) checkFence() {
	cl.nmu.Lock()
	defer cl.nmu.Unlock()
	on := cl.fenceState(time.Now())
	if on == cl.fenced {
		return
	}
	cl.fenced = on
	level := cl.c.cfg.Logger.Info
	if on {
		level = cl.c.cfg.Logger.Warn
	}
	level("global store: cross-host forwarding fence", "host", cl.host.ID, "on", on)
	for _, s := range cl.subs {
		s.fence(on)
	}
}
