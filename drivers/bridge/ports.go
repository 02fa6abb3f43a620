package bridge

import (
	"slices"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/types"
)

// MaxBridgePorts is how many ports a Linux bridge takes: port numbers are
// 10 bits and 0 is reserved (the kernel's BR_MAX_PORTS is 1,024). One more
// fails in the kernel with EXFULL ("exchange full").
const MaxBridgePorts = 1023

// vethReaper is what the driver needs of the reaper (reaper.go); tests
// put a fake in its place.
type vethReaper interface {
	retire(index int) (ticket uint64, err error)
	reapedUpTo() uint64
	flush() error
	close()
}

// portCount is the driver's count of one bridge's ports, kept so that a
// join at the limit is refused before anything is made, without asking
// the kernel (listing a bridge's ports is O(N) per join). It counts
// veths of joined endpoints and joins in flight, and veths that Leave
// retired and the reaper has not deleted yet: those are still ports.
//
// It can only overcount (a veth that went with its sandbox's namespace
// stays counted until its endpoint leaves), never undercount ports the
// driver made; ports someone else added to an adopted bridge are not
// counted, and the kernel's EXFULL is the backstop for those.
type portCount struct {
	inUse   int      // joined endpoints' veths and joins in flight
	retired []uint64 // reaper tickets of retired veths, ascending
}

// used returns the bridge's port count, forgetting retired veths the
// reaper has deleted (tickets up to reaped).
func (p *portCount) used(reaped uint64) int {
	i := 0
	for i < len(p.retired) && p.retired[i] <= reaped {
		i++
	}
	if i > 0 {
		p.retired = slices.Delete(p.retired, 0, i)
	}
	return p.inUse + len(p.retired)
}

// retire moves one port from in use to waiting for the reaper; ticket 0
// (the veth was already gone) frees it at once.
func (p *portCount) retire(ticket uint64) {
	p.inUse--
	if ticket == 0 {
		return
	}
	// Concurrent leaves may come back out of ticket order.
	i, _ := slices.BinarySearch(p.retired, ticket)
	p.retired = slices.Insert(p.retired, i, ticket)
}

// reservePort marks the endpoint busy and takes a port of its network's
// bridge for a join. A full bridge first makes the reaper delete what it
// holds (a port freed by a Leave just before is then usable) and is
// Forbidden if still full. Nothing is changed when it fails.
func (d *Driver) reservePort(nid, eid string) (*network, *endpoint, error) {
	flushed := false
	for {
		d.mu.Lock()
		n, ep, err := d.joinableLocked(nid, eid)
		if err != nil {
			d.mu.Unlock()
			return nil, nil, err
		}
		if n.ports.used(d.reaper.reapedUpTo()) < MaxBridgePorts {
			n.ports.inUse++
			ep.busy = true
			d.mu.Unlock()
			return n, ep, nil
		}
		d.mu.Unlock()
		if flushed {
			return nil, nil, errBridgeFull(n.cfg, eid)
		}
		// A failed delete shows as a still full bridge on the next round.
		_ = d.reaper.flush()
		flushed = true
	}
}

func (d *Driver) joinableLocked(nid, eid string) (*network, *endpoint, error) {
	n, err := d.readyNetworkLocked(nid)
	if err != nil {
		return nil, nil, err
	}
	ep := n.endpoints[eid]
	if ep == nil {
		return nil, nil, driverapi.ErrNoEndpoint(eid)
	}
	if ep.busy || ep.hostIfIndex != 0 {
		return nil, nil, types.ForbiddenErrorf("joining bridge endpoint %s: already joined or being joined", eid)
	}
	return n, ep, nil
}

func errBridgeFull(c *networkConfig, eid string) error {
	return types.ForbiddenErrorf("joining bridge endpoint %s: bridge %s of network %s is full: a Linux bridge takes at most %d ports (leave or delete an endpoint of the network first)",
		eid, c.BridgeName, c.ID, MaxBridgePorts)
}
