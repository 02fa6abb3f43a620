// Package dataplane owns the kernel side of one overlay network on one
// host: a network namespace holding a bridge and a VXLAN device, the
// static forwarding (FDB) and neighbour entries that send frames for
// remote endpoints to their hosts, and the veths that plug local
// endpoints into the bridge. It knows nothing of the store: the overlay
// driver tells it which peers exist (AddPeer, RemovePeer, Reconcile) and
// which local endpoints to plumb (Attach, Detach).
//
// Shape, per network per host:
//
//	host namespace (underlay)          network namespace (NSPath)
//	  UDP socket :4789  <───────────── vx-<vni>  (VXLAN, nolearning, proxy, no group)
//	  eth0 192.168.100.x                  │
//	                                    br0 ──── ve<hash>  ══ veth ══  eth0 in the container
//
// The VXLAN device is created by a netlink request sent from the host
// namespace with the network namespace as its target (IFLA_NET_NS_FD), so
// the kernel binds its UDP socket in the host namespace, on the underlay,
// while the device itself sits in the network namespace. Creating it in
// the host namespace and moving it gives the same socket placement but
// costs ~25 ms against ~0.6 ms (the move waits for an RCU grace period).
//
// No learning and no multicast: every remote endpoint is a Peer whose
// MAC gets a permanent FDB entry (MAC → its host's VTEP, NTF_SELF) and
// whose addresses get permanent neighbour entries on the VXLAN device.
// The device answers ARP and IPv6 neighbour solicitations from those
// entries itself (proxy), so resolution never floods across hosts. There
// are no all-zero (flood) FDB entries: with one per remote host, a frame
// for a MAC whose peer was removed would still be flooded to that host
// while it has other endpoints, so removing a peer would not stop
// traffic to it. Broadcast and multicast other than ARP/ND therefore stay
// on one host.
//
// Entries are reference counted by the peers that claim them. Two peers
// may claim the same key (an address reused on another host, or a MAC
// derived from a reused address, before the old peer is removed); the
// newest claim is programmed, and removing a peer reprograms the key to
// the newest remaining claim or deletes it when none is left. Reconcile
// diffs the kernel against the claims and repairs drift.
//
// First packets: Attach returns once the endpoint is reachable (its
// bridge port forwards, its IPv6 address has its local route: both come
// asynchronously after the veth is up, port.go), and AddPeer announces
// the new peer to the local endpoints (an unsolicited ARP reply and
// neighbour advertisement on the bridge, announce.go), so a container
// that tried to reach the address before the peer existed does not wait
// for its own neighbour retry (1 s by default).
//
// MTU: the underlay link's MTU (the link holding the local VTEP address)
// minus the VXLAN overhead, 50 bytes over IPv4 and 70 over IPv6, unless
// the caller sets one; a larger MTU than the underlay can carry is
// refused. Overlay networks are internal: the bridge has no address and
// no route leaves the network namespace.
//
// Teardown: deleting a link costs the kernel an RCU wait (~20 ms) under
// the rtnl lock. Detach therefore only cuts the endpoint off (its bridge
// end down and in a reap group, one request) and a reaper deletes the
// group in batches in the background (reap.go); Attach, Delete and
// Release flush it where a waiting veth matters, and Adopt and
// RemoveLeftover delete what a crash left in the group.
//
// API, for the overlay driver: Create(Config) per network per host when
// its first local endpoint joins; Attach/Detach per local endpoint
// (Attach returns the Peer to publish); AddPeer/RemovePeer per remote
// endpoint the store reports; Reconcile(all remote peers) after a
// resync and periodically (drift); Delete once the network has no local
// endpoint left.
//
// Every multi-step operation undoes what it did when a step fails;
// teardown treats what is already gone as success. Errors are *Error,
// classed with the markers of package types.
package dataplane
