package libnetwork

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sort"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/internal/macaddr"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/types"
)

// Endpoints of global networks: the record of each lives in the global
// store on its host's lease, made in one transaction with its name and
// addresses; its peer record (where it is reachable) exists while it is
// joined. Deletes and peer writes never fail the caller: when the store
// does not take them they are retried in the background (global_queue.go).

// maxEndpointTries bounds how often a create picks another address after
// losing one to another host.
const maxEndpointTries = 8

// createGlobal gives ep a MAC and addresses and claims them with its name
// in the store, picking again when another host took an address first.
// What it did is pushed on u.
func (ep *Endpoint) createGlobal(u *undo.Stack) error {
	n, c := ep.network, ep.network.ctrl
	if ep.iface.mac == nil {
		ep.iface.mac = macaddr.Random()
	}
	st := c.cl.store()
	ctx, cancel := context.WithTimeout(context.Background(), c.cl.timeout) // one deadline for the session and the store
	defer cancel()
	ss, err := c.cl.session(ctx)
	if err != nil {
		return types.Wrapf(err, "creating endpoint %s on network %s", ep.name, n.name)
	}
	var lastErr error
	for try := 0; try < maxEndpointTries; try++ {
		var pick undo.Stack
		if !n.addressLess() {
			if err := ep.assignAddresses(&pick); err != nil {
				_ = pick.Run()
				return err
			}
		}
		err := st.CreateEndpoint(ctx, ss.Lease(), ep.storeRecord())
		if err == nil {
			u.Push(pick.Run)
			u.PushFunc(func() { ep.deleteGlobal() })
			return nil
		}
		_ = pick.Run()
		ep.iface.addr, ep.iface.addrv6, ep.iface.v4PoolID, ep.iface.v6PoolID = nil, nil, "", ""
		var ce *globalstore.ClaimError
		if !errors.As(err, &ce) {
			return types.Wrapf(err, "creating endpoint %s on network %s in the global store", ep.name, n.name)
		}
		switch ce.Claim.Kind {
		case globalstore.ClaimEndpointName:
			host := "another host"
			if other, err := st.Endpoint(ctx, n.id, ce.Owner); err == nil {
				host = "host " + other.Host
			}
			return types.ForbiddenErrorf("endpoint with name %s already exists in network %s (on %s)", ep.name, n.name, host)
		case globalstore.ClaimAddress:
			if a, err := netip.ParseAddr(ce.Claim.Name); err == nil && ep.explicit(a) {
				return types.ForbiddenErrorf("creating endpoint %s on network %s: address %s: %w", ep.name, n.name, a, ipamapi.ErrIPAlreadyAllocated)
			}
			c.mirror.hint(ce.Claim)
			lastErr = err
		default:
			return types.ForbiddenErrorf("creating endpoint %s on network %s: %w", ep.name, n.name, ce)
		}
	}
	return types.Wrapf(lastErr, "creating endpoint %s on network %s: another host took the address it picked %d times", ep.name, n.name, maxEndpointTries)
}

// storeRecord is the endpoint's record in the global store, with the
// claims of its addresses when the network's IPAM is the global default
// (a plugin's addresses are its own). A heal writes it again as the
// create did, so the store sees the same record, name and claims.
func (ep *Endpoint) storeRecord() globalstore.Endpoint {
	n, c := ep.network, ep.network.ctrl
	rec := globalstore.Endpoint{ID: ep.id, NetworkID: n.id, Name: ep.name, Host: c.cl.hostID(),
		MAC: ep.iface.mac.String(), Addrs: ep.prefixes(), Aliases: ep.myAliases}
	if _, ours := n.ipam.Ipam.(*globalIPAM); ours {
		for _, p := range rec.Addrs {
			rec.Claims = append(rec.Claims, globalstore.Address(n.id, p.Addr()))
		}
	}
	return rec
}

// peerRecord is where the joined endpoint is reachable.
func (ep *Endpoint) peerRecord() globalstore.Peer {
	n, c := ep.network, ep.network.ctrl
	p := globalstore.Peer{EndpointID: ep.id, NetworkID: n.id, Host: c.cl.hostID(), VTEP: c.cl.vtep(),
		MAC: ep.iface.mac.String()}
	for _, pr := range ep.prefixes() {
		p.IPs = append(p.IPs, pr.Addr())
	}
	return p
}

// prefixes are the endpoint's addresses with their pools' lengths.
func (ep *Endpoint) prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, a := range []*net.IPNet{ep.iface.addr, ep.iface.addrv6} {
		if p := ipNetToPrefix(a); p.IsValid() {
			out = append(out, p)
		}
	}
	return out
}

// explicit reports whether a is an address the endpoint was created with.
func (ep *Endpoint) explicit(a netip.Addr) bool {
	return (ep.prefIPv4 != nil && ipToAddr(ep.prefIPv4) == a) || (ep.prefIPv6 != nil && ipToAddr(ep.prefIPv6) == a)
}

// deleteGlobal deletes the endpoint's record, name, addresses and peer
// from the store, now or, if the store does not take it, later.
func (ep *Endpoint) deleteGlobal() {
	n := ep.network
	st := n.ctrl.cl.store()
	n.ctrl.mirror.clearConflict(ep.id)
	n.ctrl.mirror.write(ep.id, "delete endpoint "+ep.name+" of network "+n.name, func(ctx context.Context) error {
		return st.DeleteEndpoint(ctx, n.id, ep.id)
	})
}

// publishPeer writes the peer record of the endpoint just joined: where
// other hosts' drivers send its frames.
func (ep *Endpoint) publishPeer() {
	n, c := ep.network, ep.network.ctrl
	p := ep.peerRecord()
	c.mirror.write(ep.id, "peer of endpoint "+ep.name+" of network "+n.name, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, c.cl.timeout) // one deadline for the session and the store
		defer cancel()
		ss, err := c.cl.session(ctx)
		if err != nil {
			return err
		}
		err = c.cl.store().PutPeer(ctx, ss.Lease(), p)
		if types.IsNotFound(err) {
			// The endpoint is gone from the store (deleted, or kept down
			// after a heal: its record is not there): no peer to publish.
			return nil
		}
		return err
	})
}

// withdrawPeer deletes the peer record of the endpoint that left.
func (ep *Endpoint) withdrawPeer() {
	n, c := ep.network, ep.network.ctrl
	c.mirror.write(ep.id, "withdraw peer of endpoint "+ep.name+" of network "+n.name, func(ctx context.Context) error {
		return c.cl.store().DeletePeer(ctx, n.id, ep.id)
	})
}

// ClusterEndpoint is an endpoint of a global network on any host of the
// cluster, as the global store has it.
type ClusterEndpoint struct {
	ID, Name  string
	Host      string // the ID of the host it is on
	MAC       string
	Addresses []netip.Prefix
	Aliases   []string
}

// ClusterEndpoints lists the endpoints of a global network on every host
// of the cluster, this one included, sorted by name, as this controller's
// mirror of the global store has them (a change on another host shows
// after the store's watch delivers it). Endpoints, by contrast, lists
// only this host's endpoints: those a caller here can join or delete. A
// network that is not global has no cluster endpoints (nil).
func (n *Network) ClusterEndpoints() []ClusterEndpoint {
	if !n.global {
		return nil
	}
	var out []ClusterEndpoint
	for _, e := range n.ctrl.mirror.endpoints(n.id) {
		out = append(out, ClusterEndpoint{ID: e.ID, Name: e.Name, Host: e.Host, MAC: e.MAC,
			Addresses: append([]netip.Prefix(nil), e.Addrs...), Aliases: append([]string(nil), e.Aliases...)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
