package overlay

import (
	"sync"
	"time"

	"github.com/opencnm/libnetwork/driverapi"
)

// The last local Leave of a network does not delete its data plane on
// the caller's path: deleting the namespace's devices costs the kernel
// an RCU wait per batch (tens of ms) and would make the overlay's
// teardown many times the bridge's. Leave marks the data plane retiring
// and a goroutine deletes it once retireGrace has passed:
//
//   - a Join before that takes the data plane back as it is (retiring is
//     cleared, the goroutine then finds nothing to do). Without the
//     grace, a Join right after the last Leave (a container replaced,
//     a burst of short-lived ones) would wait for the deletion (~50 ms)
//     and then build anew (~25 ms), and each deletion would stall the
//     host's other link changes on the rtnl lock; an idle data plane
//     costs nothing meanwhile;
//   - once it has begun (deleting), a Join, RestoreJoin, DeleteNetwork,
//     garbage collection or Close waits for it to end, and a Join then
//     builds a new data plane;
//   - a failed deletion keeps the data plane as dead, retried before the
//     next one is built and by DeleteNetwork, garbage collection, the
//     periodic repair and Close.
//
// Invariant: retiring is true only while a deleteRetired goroutine for
// the network is pending, and only with dp set and no local endpoint
// joined.

// retireGrace is how long an idle data plane is kept for a Join to take
// back before its deletion begins.
const retireGrace = time.Second

// retireHooks let tests stop a background deletion before it begins or
// while it runs; nil in production.
type retireHooks struct {
	before func() // in the goroutine, before it takes the network's lock
	during func() // after deletion began, before the kernel work
}

func newNetwork(id string, vni uint32, mtu int) *network {
	n := &network{id: id, vni: vni, mtu: mtu,
		peers: map[string]driverapi.Peer{}, endpoints: map[string]*endpoint{}}
	n.cond = sync.NewCond(&n.mu)
	return n
}

// retire hands n's idle data plane to a background deletion. Caller
// holds n.mu; n.dp is set and no local endpoint is joined.
func (d *Driver) retire(n *network) {
	n.retiring = true
	d.wg.Add(1)
	go d.deleteRetired(n)
}

func (d *Driver) deleteRetired(n *network) {
	defer d.wg.Done()
	t := time.NewTimer(retireGrace)
	select {
	case <-t.C:
	case <-d.stop: // Close deletes what is retiring itself
		t.Stop()
	}
	if d.hooks.before != nil {
		d.hooks.before()
	}
	n.mu.Lock()
	if !n.retiring {
		n.mu.Unlock()
		return // taken back by a Join, or deleted by someone else
	}
	dp := n.dp
	n.dp, n.unsynced, n.retiring, n.deleting = nil, false, false, true
	n.mu.Unlock()
	if d.hooks.during != nil {
		d.hooks.during()
	}
	err := dp.Delete()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.deleting = false
	if err != nil {
		n.dead = dp
		d.log.Warn("deleting the data plane of an overlay network with no local endpoint failed; retried later",
			"network", n.id, "error", err)
	}
	n.cond.Broadcast()
}

// awaitDeletion waits until no background deletion of n's data plane
// runs. Caller holds n.mu, which is released meanwhile: the caller must
// check what it read before again.
func (n *network) awaitDeletion() {
	for n.deleting {
		n.cond.Wait()
	}
}

// retryDead deletes the data plane whose background deletion failed, if
// any. Caller holds n.mu and no deletion runs.
func (n *network) retryDead() error {
	if n.dead == nil {
		return nil
	}
	if err := n.dead.Delete(); err != nil {
		return err
	}
	n.dead = nil
	return nil
}

// deleteDataPlanes deletes, on the caller's path, whatever data plane n
// has: the held one, retiring or not, and a dead one. Caller holds n.mu.
func (n *network) deleteDataPlanes() error {
	n.awaitDeletion()
	if err := n.retryDead(); err != nil {
		return err
	}
	if n.dp != nil {
		if err := n.dp.Delete(); err != nil {
			return err
		}
		n.dp, n.unsynced = nil, false
	}
	n.retiring = false
	return nil
}

// joined reports whether a local endpoint of n is joined. Caller holds n.mu.
func (n *network) joined() bool {
	for _, ep := range n.endpoints {
		if ep.joined {
			return true
		}
	}
	return false
}
