package bridge

import (
	"errors"
	"net"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// network is the driver's record of one network.
type network struct {
	cfg *networkConfig // immutable after CreateNetwork

	// The fields below are guarded by Driver.mu.
	creating    bool // CreateNetwork's kernel work is in flight
	bridgeIndex int  // ifindex of the bridge in the host namespace
	deleting    bool // DeleteNetwork's kernel work is in flight
	teardown    undo.Stack
	endpoints   map[string]*endpoint
	ports       portCount // the bridge's ports (ports.go)
}

// CreateNetwork creates the network's bridge (or adopts an existing bridge
// of the configured name) and gives it the IPAM gateway address.
//
// The network is reserved in the driver's map, with its ID, bridge name and
// subnets, before any kernel work; so of several concurrent creates that
// conflict, exactly one proceeds and the others fail with Forbidden.
func (d *Driver) CreateNetwork(req driverapi.CreateNetworkRequest) error {
	if req.NetworkID == "" {
		return types.BadRequestErrorf("creating bridge network: empty network id")
	}
	c, err := parseNetworkOptions(req.NetworkID, req.Options)
	if err != nil {
		return err
	}
	if err := c.applyIPAM(req.IPv4Data, req.IPv6Data); err != nil {
		return err
	}
	if !c.EnableICC && !d.firewalled() {
		// Only the firewall's DROP keeps containers on one bridge apart.
		return types.BadRequestErrorf("creating bridge network %s: option %s=false needs iptables (EnableIPTables is off)", c.ID, EnableICC)
	}

	d.mu.Lock()
	if err := d.conflictLocked(c); err != nil {
		d.mu.Unlock()
		return err
	}
	n := &network{cfg: c, creating: true, endpoints: map[string]*endpoint{}}
	d.networks[c.ID] = n
	d.mu.Unlock()

	teardown, brIndex, err := d.setupNetwork(c)

	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		delete(d.networks, c.ID)
		return err
	}
	n.creating = false
	n.teardown = teardown
	n.bridgeIndex = brIndex
	return nil
}

// DeleteNetwork removes what CreateNetwork made (the bridge if it created
// it, addresses and sysctls it added to a pre-existing one) and any veth an
// endpoint still has. An unknown network is already gone: nil.
func (d *Driver) DeleteNetwork(nid string) error {
	d.mu.Lock()
	n := d.networks[nid]
	if n == nil {
		d.mu.Unlock()
		return nil
	}
	if n.creating || n.deleting {
		d.mu.Unlock()
		return types.ForbiddenErrorf("deleting bridge network %s: another operation on it is in progress", nid)
	}
	var veths []int
	var ips []net.IP
	for _, ep := range n.endpoints {
		if ep.busy {
			d.mu.Unlock()
			return types.ForbiddenErrorf("deleting bridge network %s: endpoint %s is joining or leaving", nid, ep.id)
		}
		if ep.hostIfIndex != 0 {
			veths = append(veths, ep.hostIfIndex)
			ips = append(ips, ep.neighbours().ips...)
		}
	}
	n.deleting = true
	teardown, brIndex := n.teardown, n.bridgeIndex
	d.mu.Unlock()

	var errs []error
	for _, idx := range veths {
		_, err := d.reaper.retire(idx)
		errs = append(errs, err)
	}
	// A bridge the driver made takes them along; an adopted one stays.
	errs = append(errs, d.forgetNeighbours(n.cfg, brIndex, ips))
	// Whatever the network made is gone when DeleteNetwork returns: the
	// veths of its endpoints retired here, and those of endpoints that
	// left or were deleted just before and may still wait for the reaper's
	// lull (flush returns at once when nothing waits). Its error counts
	// only for veths retired here: it is the reaper's last failure, which
	// stays until the next delete, and the retired veths stay in the group
	// for the next delete to take.
	if err := d.reaper.flush(); len(veths) > 0 {
		errs = append(errs, err)
	}
	errs = append(errs, teardown.Run())
	err := errors.Join(errs...)

	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		// Every undo is idempotent, so a retry can run the stack again.
		n.deleting = false
		return types.Wrapf(err, "deleting bridge network %s", nid)
	}
	delete(d.networks, nid)
	return nil
}

// applyIPAM validates the IPAM data and records pools and addresses.
func (c *networkConfig) applyIPAM(v4, v6 []driverapi.IPAMData) error {
	if len(v4) > 1 {
		return types.ForbiddenErrorf("creating bridge network %s: bridge networks support one ipv4 pool, got %d", c.ID, len(v4))
	}
	if len(v6) > 1 {
		return types.ForbiddenErrorf("creating bridge network %s: bridge networks support one ipv6 pool, got %d", c.ID, len(v6))
	}
	var err error
	switch {
	case !c.EnableIPv4:
		if len(v4) > 0 && v4[0].Pool != nil && !isAllZeros(v4[0].Pool) {
			return types.BadRequestErrorf("creating bridge network %s: ipv4 pool %s given with %s=false", c.ID, v4[0].Pool, netlabel.EnableIPv4)
		}
		if len(v6) == 0 || v6[0].Pool == nil {
			return types.BadRequestErrorf("creating bridge network %s: ipv6 pool is empty (%s=false)", c.ID, netlabel.EnableIPv4)
		}
	case len(v4) == 0 || v4[0].Pool == nil || isAllZeros(v4[0].Pool):
		return types.BadRequestErrorf("creating bridge network %s: ipv4 pool is empty", c.ID)
	default:
		c.PoolIPv4, c.AddressIPv4, c.DefaultGatewayIPv4, err = poolAddrs(c.ID, "ipv4", v4[0], auxDefaultGatewayIPv4)
		if err != nil {
			return err
		}
		if c.AddressIPv4 == nil && !c.InhibitIPv4 {
			return types.BadRequestErrorf("creating bridge network %s: no ipv4 gateway for the bridge", c.ID)
		}
	}
	if len(v6) == 1 && v6[0].Pool != nil {
		c.PoolIPv6, c.AddressIPv6, c.DefaultGatewayIPv6, err = poolAddrs(c.ID, "ipv6", v6[0], auxDefaultGatewayIPv6)
		if err != nil {
			return err
		}
	}
	return nil
}

// poolAddrs returns the masked pool, the gateway with the pool's mask and
// the optional container default gateway, checking both lie in the pool.
func poolAddrs(nid, family string, d driverapi.IPAMData, auxKey string) (pool, addr *net.IPNet, defGw net.IP, err error) {
	ip := d.Pool.IP
	if family == "ipv4" {
		ip = ip.To4()
	}
	if ip == nil {
		return nil, nil, nil, types.BadRequestErrorf("creating bridge network %s: %s pool %s is not %s", nid, family, d.Pool, family)
	}
	pool = &net.IPNet{IP: ip.Mask(d.Pool.Mask), Mask: d.Pool.Mask}
	if d.Gateway != nil {
		if !pool.Contains(d.Gateway.IP) {
			return nil, nil, nil, types.BadRequestErrorf("creating bridge network %s: %s gateway %s is outside subnet %s", nid, family, d.Gateway.IP, pool)
		}
		addr = &net.IPNet{IP: normIP(d.Gateway.IP, family), Mask: pool.Mask}
	}
	if aux := d.AuxAddresses[auxKey]; aux != nil {
		if !pool.Contains(aux.IP) {
			return nil, nil, nil, types.BadRequestErrorf("creating bridge network %s: %s %s is outside subnet %s", nid, auxKey, aux.IP, pool)
		}
		defGw = normIP(aux.IP, family)
	}
	return pool, addr, defGw, nil
}

func normIP(ip net.IP, family string) net.IP {
	if v4 := ip.To4(); family == "ipv4" && v4 != nil {
		return v4
	}
	return types.GetIPCopy(ip)
}

// isAllZeros reports the 0.0.0.0/0 pool the null IPAM hands out.
func isAllZeros(p *net.IPNet) bool {
	ones, _ := p.Mask.Size()
	return ones == 0 && p.IP.IsUnspecified()
}

func overlaps(a, b *net.IPNet) bool {
	return a != nil && b != nil && (a.Contains(b.IP) || b.Contains(a.IP))
}

// conflictLocked reports whether c clashes with a network the driver has,
// including networks still being created or deleted.
func (d *Driver) conflictLocked(c *networkConfig) error {
	if _, ok := d.networks[c.ID]; ok {
		return types.ForbiddenErrorf("creating bridge network %s: network already exists", c.ID)
	}
	for id, o := range d.networks {
		switch {
		case o.cfg.BridgeName == c.BridgeName:
			return types.ForbiddenErrorf("creating bridge network %s: bridge name %s is already used by network %s", c.ID, c.BridgeName, id)
		case overlaps(o.cfg.PoolIPv4, c.PoolIPv4):
			return types.ForbiddenErrorf("creating bridge network %s: ipv4 subnet %s overlaps subnet %s of network %s", c.ID, c.PoolIPv4, o.cfg.PoolIPv4, id)
		case overlaps(o.cfg.PoolIPv6, c.PoolIPv6):
			return types.ForbiddenErrorf("creating bridge network %s: ipv6 subnet %s overlaps subnet %s of network %s", c.ID, c.PoolIPv6, o.cfg.PoolIPv6, id)
		}
	}
	return nil
}

// readyNetworkLocked returns a network that endpoints may use.
func (d *Driver) readyNetworkLocked(nid string) (*network, error) {
	n := d.networks[nid]
	if n == nil {
		return nil, driverapi.ErrNoNetwork(nid)
	}
	if n.creating || n.deleting {
		return nil, types.ForbiddenErrorf("bridge network %s is being created or deleted", nid)
	}
	return n, nil
}
