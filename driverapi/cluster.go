package driverapi

import (
	"net"
	"net/netip"
)

// Contracts between the controller and drivers of global data scope (the
// overlay, remote plugins declaring GlobalScope) when the controller has a
// global store. The controller owns the store: it claims what must be
// unique cluster-wide and reports other hosts' endpoints; drivers never
// see the store.

// Peer is an endpoint of a global network on another host, and where
// frames for it go.
type Peer struct {
	EndpointID string
	VTEP       netip.Addr // underlay address of the endpoint's host
	MAC        net.HardwareAddr
	IPv4       netip.Addr // zero when the endpoint has none
	IPv6       netip.Addr // zero when the endpoint has none
}

// PeerProgrammer is implemented by global-scope drivers whose data plane
// forwards to endpoints on other hosts (the overlay). For each network of
// the driver the controller reports every endpoint on other hosts,
// whether this host has endpoints there or not; the driver keeps a
// network's peers until DeleteNetwork and programs them into a data plane
// whenever it builds one.
type PeerProgrammer interface {
	// PeerAdd adds or replaces (same EndpointID) one peer.
	PeerAdd(nid string, p Peer) error
	// PeerDelete removes one peer; an unknown one is success.
	PeerDelete(nid, eid string) error
	// PeerSync makes peers the network's whole set: missing ones are
	// added, the others removed, and kernel entries that drifted are
	// repaired. An empty set stops all forwarding to other hosts (a
	// fenced host), while local endpoints still reach each other.
	PeerSync(nid string, peers []Peer) error
}

// ClusterIDRequester is implemented by global-scope drivers whose networks
// need numbers unique across the cluster (the overlay's VXLAN IDs). Before
// CreateNetwork the controller claims them in the global store (the fixed
// ones, or Count free ones from [Min, Max]) and hands them over in
// CreateNetworkRequest.ClusterIDs; a controller without a global store
// refuses such a network.
type ClusterIDRequester interface {
	ClusterIDs(nid string, options map[string]any) (ClusterIDRequest, error)
}

// ClusterIDRequest is what a network needs of cluster-wide numbers.
type ClusterIDRequest struct {
	Fixed    []uint32 // numbers the options name, in order
	Count    int      // when Fixed is empty: how many to choose
	Min, Max uint32   // the range to choose from
}
