package libnetwork

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/types"
)

// Global networks: those of a driver of global data scope on a controller
// with a global store. They live in the store (one record and its claims,
// made in one transaction); every controller of the cluster makes its own
// *Network of them from that record, on a lookup miss or when its mirror
// sees the record, and keeps a local record so a restart with the store
// away still has them.

// maxGlobalTries bounds how often a create picks again after losing a
// pool, ID or address to another host.
const maxGlobalTries = 5

// refuseClusterIDs fails a network whose driver needs cluster-wide IDs on
// a controller without a global store.
func (n *Network) refuseClusterIDs() error {
	if _, ok := n.driver.Driver.(driverapi.ClusterIDRequester); ok && n.ctrl.cl == nil {
		return types.ForbiddenErrorf("creating network %s: driver %s needs a global store (config.OptionKVProvider)", n.name, n.networkType)
	}
	return nil
}

// bindGlobal takes the network's pools (from the mirror with the default
// IPAM, or from its IPAM plugin) and cluster IDs and claims them with the
// name in the store, in one transaction, picking again when another host
// took a pool or an ID first.
func (cr *creatingNetwork) bindGlobal() error {
	n, c := cr.n, cr.n.ctrl
	m := c.mirror
	ctx, cancel := context.WithTimeout(context.Background(), c.cl.timeout) // one deadline for every store call
	defer cancel()
	m.setPending(n.id, true)
	cr.undo.PushFunc(func() { m.setPending(n.id, false) })
	if n.ipamType == ipamapi.DefaultIPAM && !n.addressLess() {
		n.ipam = c.globalIPAMEntry(n.id)
	} else if !n.addressLess() {
		var err error
		if n.ipam, err = c.ipamDriver(n.ipamType); err != nil {
			return err
		}
	}
	// The mirror may lag behind a network made a moment ago elsewhere: a
	// pool claim is one exact prefix, so an overlapping pool of another
	// network would pass the transaction. One read of every network
	// closes that gap but for creates racing each other.
	nets, _, err := c.cl.store().Networks(ctx)
	if err != nil {
		return types.Wrapf(err, "creating network %s: listing global networks", n.name)
	}
	m.learn(nets)
	var lastErr error
	for try := 0; try < maxGlobalTries; try++ {
		var pick undo.Stack
		if !n.addressLess() {
			if err := n.allocatePools(&pick); err != nil {
				_ = pick.Run()
				return err
			}
		}
		ids, fixed, err := n.pickClusterIDs(&pick)
		if err != nil {
			_ = pick.Run()
			return err
		}
		n.clusterIDs = ids
		err = n.claimGlobal(ctx, ids)
		if err == nil {
			cr.undo.Push(pick.Run)
			cr.undo.PushFunc(func() {
				m.markGone(n.id) // its record's events may come after the undo
				// Retried until the store takes it: else the record and its
				// name, pool and ID claims would stay for good.
				m.write(n.id, "undo create of network "+n.name, func(ctx context.Context) error {
					return c.cl.store().DeleteNetwork(ctx, n.id)
				})
			})
			return n.refuseOverlap(ctx)
		}
		_ = pick.Run()
		n.ipamV4Info, n.ipamV6Info, n.clusterIDs = nil, nil, nil
		var ce *globalstore.ClaimError
		if !errors.As(err, &ce) {
			return types.Wrapf(err, "creating network %s in the global store", n.name)
		}
		switch ce.Claim.Kind {
		case globalstore.ClaimNetworkName:
			return NetworkNameError(n.name)
		case globalstore.ClaimVNI:
			if fixed {
				return types.ForbiddenErrorf("creating network %s: %w", n.name, ce)
			}
		case globalstore.ClaimPool:
			if n.userPool(ce.Claim.Name) {
				return types.ForbiddenErrorf("creating network %s: %w", n.name, ce)
			}
		default:
			return types.ForbiddenErrorf("creating network %s: %w", n.name, ce)
		}
		m.hint(ce.Claim)
		lastErr = err
	}
	return types.Wrapf(lastErr, "creating network %s: another host took what it picked %d times", n.name, maxGlobalTries)
}

// refuseOverlap closes the gap the check before the commit leaves to
// creates racing each other: a pool claim is one exact prefix, so two
// networks with overlapping pools can both commit. Of the two, the one
// that committed later (higher revision) is refused; its caller undoes it.
func (n *Network) refuseOverlap(ctx context.Context) error {
	if _, ours := n.ipam.Ipam.(*globalIPAM); !ours || n.addressLess() {
		return nil
	}
	nets, _, err := n.ctrl.cl.store().Networks(ctx)
	if err != nil {
		return types.Wrapf(err, "creating network %s: listing global networks", n.name)
	}
	var mine int64
	for _, o := range nets {
		if o.ID == n.id {
			mine = o.Revision
		}
	}
	for _, info := range append(append([]*IpamInfo(nil), n.ipamV4Info...), n.ipamV6Info...) {
		p := ipNetToPrefix(info.Pool).Masked()
		for _, o := range nets {
			if o.ID == n.id || o.Revision > mine {
				continue
			}
			for _, cl := range o.Claims {
				q, err := netip.ParsePrefix(cl.Name)
				if cl.Kind == globalstore.ClaimPool && cl.Scope == info.AddressSpace && err == nil && p.Overlaps(q) {
					return types.ForbiddenErrorf("creating network %s: pool %s overlaps pool %s of network %s", n.name, p, q, o.Name)
				}
			}
		}
	}
	return nil
}

// userPool reports whether cidr is a pool the user asked for.
func (n *Network) userPool(cidr string) bool {
	for _, conf := range append(append([]*IpamConf(nil), n.ipamV4Config...), n.ipamV6Config...) {
		if p, err := netip.ParsePrefix(conf.PreferredPool); err == nil && p.Masked().String() == cidr {
			return true
		}
	}
	return false
}

// pickClusterIDs asks the driver which cluster IDs the network needs and
// picks them: the fixed ones, or the lowest free per the mirror. fixed
// reports the former (a taken one is then the user's conflict).
func (n *Network) pickClusterIDs(pick *undo.Stack) (ids []uint32, fixed bool, err error) {
	r, ok := n.driver.Driver.(driverapi.ClusterIDRequester)
	if !ok {
		return nil, false, nil
	}
	req, err := r.ClusterIDs(n.id, n.driverOptions())
	if err != nil {
		return nil, false, types.Wrapf(err, "creating network %s on driver %s", n.name, n.networkType)
	}
	if len(req.Fixed) > 0 {
		return append([]uint32(nil), req.Fixed...), true, nil
	}
	m := n.ctrl.mirror
	m.mu.Lock()
	defer m.mu.Unlock()
	held := map[uint32]bool{}
	for _, gn := range m.nets {
		for _, c := range gn.Claims {
			if c.Kind == globalstore.ClaimVNI {
				if v, err := strconv.ParseUint(c.Name, 10, 32); err == nil {
					held[uint32(v)] = true
				}
			}
		}
	}
	// Lowest first; after a recent loss, among the lowest few at random.
	want := req.Count
	if m.contendedLocked(globalstore.ClaimVNI, "") || m.contendedLocked(globalstore.ClaimPool, ipamapi.GlobalDefaultAddressSpace) {
		want += spread
	}
	var cands []uint32
	for v := uint64(req.Min); v <= uint64(req.Max) && len(cands) < want; v++ {
		if !held[uint32(v)] && !m.takenLocked(globalstore.VNI(uint32(v))) {
			cands = append(cands, uint32(v))
		}
	}
	if len(cands) > req.Count {
		rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		cands = cands[:req.Count]
		slices.Sort(cands)
	}
	for _, v := range cands {
		cl := globalstore.VNI(v)
		m.inflight[cl] = true
		ids = append(ids, v)
		pick.PushFunc(func() {
			m.mu.Lock()
			delete(m.inflight, cl)
			m.mu.Unlock()
		})
	}
	if len(ids) < req.Count {
		return nil, false, types.NoServiceErrorf("creating network %s: no %d free cluster IDs in [%d, %d]", n.name, req.Count, req.Min, req.Max)
	}
	return ids, false, nil
}

// claimGlobal writes the network's record with its name, pools, IDs,
// gateways and aux addresses (the last three with the default IPAM only:
// a plugin owns its pools) in one transaction.
func (n *Network) claimGlobal(ctx context.Context, ids []uint32) error {
	c := n.ctrl
	data, err := n.globalData()
	if err != nil {
		return err
	}
	rec := globalstore.Network{ID: n.id, Name: n.name, Driver: n.networkType, Host: c.cl.hostID(), Data: data}
	for _, id := range ids {
		rec.Claims = append(rec.Claims, globalstore.VNI(id))
	}
	if _, ours := n.ipam.Ipam.(*globalIPAM); ours {
		for _, info := range append(append([]*IpamInfo(nil), n.ipamV4Info...), n.ipamV6Info...) {
			rec.Claims = append(rec.Claims, globalstore.Pool(info.AddressSpace, ipNetToPrefix(info.Pool)))
			if info.Gateway != nil {
				rec.Claims = append(rec.Claims, globalstore.Address(n.id, ipToAddr(info.Gateway.IP)))
			}
			for _, aux := range info.AuxAddresses {
				rec.Claims = append(rec.Claims, globalstore.Address(n.id, ipToAddr(aux.IP)))
			}
		}
	}
	return c.cl.store().CreateNetwork(ctx, rec)
}

// globalData is what another host needs to make the same *Network: the
// network's local record, in its ready state.
func (n *Network) globalData() (json.RawMessage, error) {
	op, err := n.ctrl.networkOp(n, records.Ready)
	if err != nil || op == nil {
		persist := n.persist
		n.persist = true
		op, err = n.ctrl.networkOp(n, records.Ready)
		n.persist = persist
		if err != nil {
			return nil, err
		}
	}
	return op.Value, nil
}

// materialize makes this host's *Network of the global network rec (its
// driver's network and a local record), once; a network made already is
// returned as it is. A host with a local network of the same name keeps
// it by that name: the global one is then reached by ID only.
func (c *Controller) materialize(rec globalstore.Network) (*Network, error) {
	m := c.mirror
	m.gMu.Lock()
	defer m.gMu.Unlock()
	c.mu.Lock()
	n, ok := c.networks[rec.ID]
	stopped := c.stopped
	if ok && n.global && !n.deleting {
		// Reached by ID only while a local network had the name: the
		// name is its own again once free.
		if _, taken := c.netNames[n.name]; !taken {
			c.netNames[n.name] = n.id
		}
	}
	c.mu.Unlock()
	if ok {
		return n, nil
	}
	if stopped || m.skip(rec.ID) {
		return nil, ErrNoSuchNetwork(rec.Name)
	}
	// A record read on a lookup miss may be ahead of the watch: its claims
	// (gateway, aux addresses) are candidates' business from now on.
	m.mu.Lock()
	if _, seen := m.nets[rec.ID]; !seen && !m.goneLocked(rec.ID) {
		m.nets[rec.ID] = rec
	}
	m.mu.Unlock()
	var r records.Network
	if err := records.Decode(records.KindNetwork, rec.ID, rec.Data, &r); err != nil {
		return nil, types.InternalErrorf("decoding global network %s: %w", rec.Name, err)
	}
	n, err := networkFromRecord(c, r)
	if err != nil {
		return nil, err
	}
	n.clusterIDs = r.ClusterIDs
	if n.driver, err = c.driver(n.networkType); err != nil {
		return nil, err
	}
	n.scope, n.global = n.driver.scope(), true
	if n.ipamType == ipamapi.DefaultIPAM {
		n.ipam = c.globalIPAMEntry(n.id)
	} else if n.ipam, err = c.ipamDriver(n.ipamType); err != nil {
		return nil, err
	}
	if n.ipamV4Info, err = decodeInfos(r.IpamV4Info); err != nil {
		return nil, err
	}
	if n.ipamV6Info, err = decodeInfos(r.IpamV6Info); err != nil {
		return nil, err
	}
	var u undo.Stack
	ok = false
	defer u.Unless(&ok)
	if err := c.commit(c.recNetwork(n, records.Creating)); err != nil {
		return nil, err
	}
	u.PushFunc(func() { _ = c.commit(recDelete(records.KindNetwork, n.id)) })
	req := driverapi.CreateNetworkRequest{NetworkID: n.id, Options: n.driverOptions(),
		IPv4Data: ipamData(n.ipamV4Info), IPv6Data: ipamData(n.ipamV6Info), ClusterIDs: n.clusterIDs}
	if err := n.driver.CreateNetwork(req); err != nil {
		return nil, types.Wrapf(err, "making global network %s on driver %s", n.name, n.networkType)
	}
	u.PushFunc(func() { _ = n.driver.DeleteNetwork(n.id) })
	if err := c.commit(c.recNetwork(n, records.Ready)); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.networks[n.id] = n
	if owner, taken := c.netNames[n.name]; !taken {
		c.netNames[n.name] = n.id
	} else if owner != n.id {
		m.log.Warn("global network has the name of a local network here: reached by ID only",
			"network", n.name, "id", n.id, "local", owner)
	}
	c.mu.Unlock()
	ok = true
	m.syncPeersLocked(n.id)
	return n, nil
}

// decodeInfos is the pools a record names, without asking IPAM.
func decodeInfos(recs []records.IpamInfo) ([]*IpamInfo, error) {
	var out []*IpamInfo
	for _, r := range recs {
		info, err := infoFromRecord(r)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

// insertGlobal puts the network just created here into the model and
// hands its driver the peers that arrived meanwhile.
func (c *Controller) insertGlobal(n *Network) {
	m := c.mirror
	m.gMu.Lock()
	defer m.gMu.Unlock()
	c.mu.Lock()
	c.networks[n.id] = n
	c.mu.Unlock()
	m.setPending(n.id, false)
	m.syncPeersLocked(n.id)
}

// dropGlobal takes apart this host's *Network of a global network deleted
// elsewhere: its driver's network, its local record.
func (c *Controller) dropGlobal(nid string) {
	m := c.mirror
	m.gMu.Lock()
	defer m.gMu.Unlock()
	c.mu.Lock()
	n, ok := c.networks[nid]
	if !ok || !n.global || n.deleting {
		c.mu.Unlock()
		return
	}
	n.deleting = true
	c.mu.Unlock()
	if err := n.driver.DeleteNetwork(n.id); err != nil && !types.IsNotFound(err) {
		m.log.Warn("dropping global network deleted elsewhere", "network", n.name, "error", err)
	}
	n.releasePools()
	_ = c.commit(recDelete(records.KindNetwork, n.id))
	c.mu.Lock()
	delete(c.networks, n.id)
	if c.netNames[n.name] == n.id {
		delete(c.netNames, n.name)
	}
	c.mu.Unlock()
}

// globalNetworks returns the global networks made here.
func (c *Controller) globalNetworks() []*Network {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Network
	for _, n := range c.networks {
		if n.global && !n.deleting {
			out = append(out, n)
		}
	}
	return out
}

// lookupGlobal finds a global network not made here yet, by name or ID, in
// one linearizable read, and makes it. A store that does not answer is
// NoService: the network may exist. A network not to be made here (deleted
// here, or being created) is ErrNoSuchNetwork itself.
func (c *Controller) lookupGlobal(key string, byName bool) (*Network, error) {
	if c.cl == nil {
		return nil, ErrNoSuchNetwork(key)
	}
	st := c.cl.store()
	ctx, cancel := context.WithTimeout(context.Background(), c.cl.timeout) // one deadline for the lookup
	defer cancel()
	var rec globalstore.Network
	var err error
	if byName {
		rec, err = st.NetworkByName(ctx, key)
	} else {
		rec, err = st.Network(ctx, key)
	}
	if types.IsNotFound(err) {
		return nil, ErrNoSuchNetwork(key)
	}
	if err != nil {
		return nil, types.Wrapf(err, "looking up network %s", key)
	}
	n, err := c.materialize(rec)
	var named ErrNoSuchNetwork
	if errors.As(err, &named) {
		return nil, ErrNoSuchNetwork(key)
	}
	if err != nil {
		return nil, types.Wrapf(err, "making global network %s here", rec.Name)
	}
	if byName && n.name != key {
		return nil, ErrNoSuchNetwork(key)
	}
	return n, nil
}

// materializeAll makes here every global network the mirror has.
func (c *Controller) materializeAll() {
	if c.cl == nil {
		return
	}
	for _, rec := range c.mirror.networks() {
		c.mu.Lock()
		_, ok := c.networks[rec.ID]
		c.mu.Unlock()
		if !ok {
			_, _ = c.materialize(rec)
		}
	}
}

// deleteGlobal deletes the network from the store: Forbidden
// *ActiveEndpointsError naming the hosts while any host has endpoints.
func (n *Network) deleteGlobal() error {
	ctx, cancel := context.WithTimeout(context.Background(), n.ctrl.cl.timeout) // one deadline for the delete
	defer cancel()
	err := n.ctrl.cl.store().DeleteNetwork(ctx, n.id)
	var busy *globalstore.ActiveEndpointsError
	if errors.As(err, &busy) {
		var where []string
		for name, host := range busy.Endpoints {
			where = append(where, name+" on host "+host)
		}
		sort.Strings(where)
		return &ActiveEndpointsError{name: n.name, id: n.id, count: len(busy.Endpoints),
			where: strings.Join(where, ", "), cause: err}
	}
	if err != nil {
		return types.Wrapf(err, "deleting network %s from the global store", n.name)
	}
	n.ctrl.mirror.markGone(n.id)
	return nil
}

// localEndpointsWhereLocked names this host's endpoints of n and the host,
// as the store names every host's. Caller holds ctrl.mu.
func (n *Network) localEndpointsWhereLocked() string {
	var where []string
	for name := range n.epNames {
		where = append(where, name+" on host "+n.ctrl.cl.hostID())
	}
	sort.Strings(where)
	return strings.Join(where, ", ")
}
