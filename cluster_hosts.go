package libnetwork

import (
	"context"
	"net"
	"net/netip"
	"sort"
	"time"

	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// HostInfo is a live host of the cluster sharing the global store.
type HostInfo struct {
	ID      string     // the host's ID (config HostID, or random and kept)
	Address netip.Addr // its discovery (underlay) address; zero if none was configured
	Started time.Time  // when its current session was opened
	Self    bool       // it is this controller's host
}

// ClusterHosts lists the hosts whose sessions are live in the global
// store, sorted by ID. A controller without a store is Forbidden; a store
// that does not answer within config KVTimeout is NoService.
func (c *Controller) ClusterHosts() (_ []HostInfo, err error) {
	defer classify(&err)
	if c.cl == nil {
		return nil, types.ForbiddenErrorf("listing cluster hosts: the controller has no global store")
	}
	hs, err := c.cl.st.Hosts(context.Background())
	if err != nil {
		return nil, types.Wrapf(err, "listing cluster hosts")
	}
	out := make([]HostInfo, 0, len(hs))
	for _, h := range hs {
		out = append(out, HostInfo{ID: h.ID, Address: h.Address, Started: h.Started, Self: h.ID == c.cl.host.ID})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// EvictHost revokes host id's lease at once, as if it had died and its
// TTL had passed: its endpoints, their names and addresses and its peer
// records leave the store in one revision, and the other hosts stop
// forwarding to it. An unknown host is NotFound, this controller's own
// host Forbidden (Stop it instead), as is a controller without a store;
// a store that does not answer within config KVTimeout is NoService.
func (c *Controller) EvictHost(id string) (err error) {
	defer classify(&err)
	if id == "" {
		return types.BadRequestErrorf("evicting host: a host ID is required")
	}
	if c.cl == nil {
		return types.ForbiddenErrorf("evicting host %s: the controller has no global store", id)
	}
	if id == c.cl.host.ID {
		return types.ForbiddenErrorf("evicting host %s: it is this controller's own host", id)
	}
	// One deadline for the whole call: each store call bounds itself by
	// the timeout too, and three in a row must not take three times it.
	ctx, cancel := context.WithTimeout(context.Background(), c.cl.timeout)
	defer cancel()
	hs, err := c.cl.st.Hosts(ctx)
	if err != nil {
		return types.Wrapf(err, "evicting host %s", id)
	}
	known := false
	for _, h := range hs {
		known = known || h.ID == id
	}
	if !known {
		return types.NotFoundErrorf("evicting host %s: no live host of that ID in the global store", id)
	}
	if err := c.cl.st.Evict(ctx, id); err != nil {
		return types.Wrapf(err, "evicting host %s", id)
	}
	if c.mirror != nil {
		c.mirror.awaitHostGone(ctx, id)
	}
	return nil
}

// hostAddress parses the discovery address and checks that it is one of
// the host namespace's, so the VTEP other hosts are told is reachable.
func hostAddress(c *Controller, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, types.BadRequestErrorf("invalid discovery address %q: %w", s, err)
	}
	a = a.Unmap()
	addrs, err := c.hostNL.AddrList(nil, 0)
	if err != nil {
		return netip.Addr{}, types.InternalErrorf("checking discovery address %s: listing the host namespace's addresses: %w", a, err)
	}
	for _, ad := range addrs {
		if b, ok := netip.AddrFromSlice(ad.IP); ok && b.Unmap() == a {
			return a, nil
		}
	}
	return netip.Addr{}, types.BadRequestErrorf("invalid discovery address %s: it is not an address of the host network namespace", a)
}

// hostDialer makes the global store's connections from inside the host
// namespace, so a controller of another namespace reaches the store over
// that namespace's routes. A unix socket is a path: it is dialed as is.
func hostDialer(ns *netnsutil.NS) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		if network == "unix" || network == "unixpacket" {
			return d.DialContext(ctx, network, addr)
		}
		var conn net.Conn
		err := ns.Do(func() error {
			var err error
			conn, err = d.DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
}
