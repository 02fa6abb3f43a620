// Package driverapi is the contract between the controller and network
// drivers. The core interface is small; abilities only some drivers have are
// separate interfaces the controller discovers by type assertion. Drivers
// return what they decided as results; they never write into core objects.
package driverapi

import (
	"net"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/types"
)

// Scopes of a driver's data and connectivity.
const (
	LocalScope  = "local"
	GlobalScope = "global"
)

// Capability describes what a driver's networks span and hold.
type Capability struct {
	DataScope         string
	ConnectivityScope string
	// AddressLess drivers' networks hold no addresses of their own (host,
	// null): the controller asks IPAM for no pools and no endpoint
	// addresses, and their endpoints give a sandbox no gateway, no
	// embedded-DNS names or forwarding and no /etc/hosts entry.
	AddressLess bool
}

// IPAMData is one pool a network got from IPAM.
type IPAMData struct {
	AddressSpace string
	Pool         *net.IPNet
	Gateway      *net.IPNet // gateway address with the pool's mask
	AuxAddresses map[string]*net.IPNet
}

// CreateNetworkRequest is what a driver gets to create a network.
type CreateNetworkRequest struct {
	NetworkID string
	// Options is the network's generic map: netlabel.GenericData holds the
	// driver options (map[string]string or options.Generic), and
	// netlabel.EnableIPv6 / netlabel.Internal hold bools.
	Options  map[string]any
	IPv4Data []IPAMData
	IPv6Data []IPAMData
	// ClusterIDs are the cluster-wide numbers a ClusterIDRequester asked
	// for, claimed by the controller in the global store.
	ClusterIDs []uint32
}

// Interface is an endpoint's interface as libnetwork knows it.
type Interface struct {
	MacAddress  net.HardwareAddr
	Address     *net.IPNet
	AddressIPv6 *net.IPNet
}

// CreateEndpointRequest is what a driver gets to create an endpoint.
type CreateEndpointRequest struct {
	NetworkID  string
	EndpointID string
	Interface  Interface      // addresses IPAM allocated, MAC if the user pinned one
	Options    map[string]any // endpoint generic options
}

// JoinRequest is what a driver gets to attach an endpoint to a sandbox.
type JoinRequest struct {
	NetworkID  string
	EndpointID string
	SandboxKey string // path of the sandbox's network namespace
	// IfaceName returns the name the endpoint's interface will have inside
	// the sandbox for a given prefix ("eth" -> "eth0"). Drivers that create
	// the interface directly inside the namespace call it and report the
	// result in JoinResult.DstName.
	IfaceName func(prefix string) string
	Options   map[string]any // sandbox labels (port maps, exposed ports, ...)
}

// JoinResult is what a driver decided at join.
type JoinResult struct {
	// Either the driver created the interface inside the sandbox already,
	// named DstName, or SrcName names a link in the host namespace that the
	// sandbox moves in and renames with DstPrefix.
	DstName   string
	SrcName   string
	DstPrefix string

	Gateway               net.IP
	GatewayIPv6           net.IP
	StaticRoutes          []*types.StaticRoute
	DisableGatewayService bool
}

// Driver is what every network driver implements.
//
// Every method must be safe for concurrent use. Delete and Leave of
// something already gone succeed. A method that fails leaves nothing of
// its own work behind.
type Driver interface {
	Type() string
	CreateNetwork(req CreateNetworkRequest) error
	DeleteNetwork(nid string) error
	// CreateEndpoint returns the interface fields the driver chose (MAC,
	// addresses) for those the request left empty; it may return a nil
	// Interface when it chose nothing. Setting a field the request already
	// set is an error.
	CreateEndpoint(req CreateEndpointRequest) (*Interface, error)
	DeleteEndpoint(nid, eid string) error
	// EndpointOperInfo returns operational data such as netlabel.MacAddress
	// and netlabel.PortMap.
	EndpointOperInfo(nid, eid string) (map[string]any, error)
	Join(req JoinRequest) (*JoinResult, error)
	Leave(nid, eid string) error
}

// ExternalConnectivity is implemented by drivers that program access to
// and from outside (NAT, published ports) for a sandbox's gateway endpoint.
type ExternalConnectivity interface {
	ProgramExternalConnectivity(nid, eid string, options map[string]any) error
	RevokeExternalConnectivity(nid, eid string) error
}

// NetworkAllocator is implemented by drivers that allocate network-wide
// resources before CreateNetwork (a remote plugin's AllocateNetwork).
type NetworkAllocator interface {
	NetworkAllocate(nid string, options map[string]string, ipv4, ipv6 []IPAMData) (map[string]string, error)
	NetworkFree(nid string) error
}

// Discovery types forwarded to drivers.
const (
	NodeDiscovery = 1
)

// NodeDiscoveryData describes a node announced to a driver.
type NodeDiscoveryData struct {
	Address     string
	BindAddress string
	Self        bool
}

// Discoverer is implemented by drivers that want node discovery events.
type Discoverer interface {
	DiscoverNew(dType int, data any) error
	DiscoverDelete(dType int, data any) error
}

// NetworkValidator is implemented by drivers that can tell from a
// network's ID and options alone that CreateNetwork would refuse them. The
// controller asks before it allocates anything for the network, so a bad
// option (a bridge name that would be a firewall wildcard, say) costs no
// address pool, no record and no kernel object. CreateNetwork still checks.
type NetworkValidator interface {
	ValidateNetwork(nid string, options map[string]any) error
}

// Closer is implemented by drivers holding resources to release at
// controller Stop.
type Closer interface {
	Close() error
}

// Sentinel-like constructors drivers use, with the classes callers expect.
func ErrNoNetwork(nid string) error { return types.NotFoundErrorf("network %s not found", nid) }

// ErrNoEndpoint is returned for an unknown endpoint.
func ErrNoEndpoint(eid string) error { return types.NotFoundErrorf("endpoint %s not found", eid) }

// ErrEndpointExists is returned when an endpoint ID is reused.
func ErrEndpointExists(eid string) error {
	return types.ForbiddenErrorf("endpoint with name %s already exists", eid)
}

// JoinRestorer is implemented by drivers that can take back a join made by
// an earlier run of the controller (live restore): the interface is already
// in the sandbox, and the driver only rebuilds what it keeps in memory
// about it, without touching the data plane.
type JoinRestorer interface {
	RestoreJoin(req JoinRequest, res JoinResult) error
}

// GarbageCollector is implemented by drivers whose kernel objects carry the
// ID of their network or endpoint (link aliases, rule comments). It removes
// those whose network is not in liveNetworks or whose endpoint is not in
// joinedEndpoints: what a crash left behind.
type GarbageCollector interface {
	CollectGarbage(liveNetworks, joinedEndpoints map[string]bool) error
}

// SandboxGarbageCollector is implemented by drivers whose tagged kernel
// objects live inside sandbox namespaces (the macvlan driver's links): it
// removes, in each namespace of sandboxKeys (the controller's kept
// sandboxes), those of endpoints not in joinedEndpoints.
type SandboxGarbageCollector interface {
	CollectSandboxGarbage(sandboxKeys []string, joinedEndpoints map[string]bool) error
}

// NetworkAbandoner is implemented by drivers that can clean up after a
// CreateNetwork a crash cut short, before its kernel objects were tagged
// with the network's ID (so GarbageCollector cannot find them). The
// controller calls it at restore for every network record left in the
// "creating" state, with the request the creation was made with; objects
// already gone are success.
type NetworkAbandoner interface {
	AbandonNetwork(req CreateNetworkRequest) error
}

// FirewallRepairer is implemented by drivers that keep firewall rules of
// their own (the bridge driver). RepairFirewall checks, now, that the
// rules the driver installed are in the kernel, puts back only what is
// missing, and returns what it put back; an error says what could not be
// checked or repaired, the rest still is.
type FirewallRepairer interface {
	RepairFirewall() (firewall.Repairs, error)
}

// NameServer is implemented by drivers some of whose networks keep their
// endpoints out of the controller's embedded resolver (the bridge's
// legacy default bridge, whose containers find each other through links
// in /etc/hosts instead). ServesNames gets the network's generic options
// as CreateNetworkRequest.Options holds them; the controller asks on every
// lookup, so it must be cheap. Networks of drivers without it serve names
// unless they are AddressLess.
type NameServer interface {
	ServesNames(options map[string]any) bool
}

// StateKeeper is implemented by drivers whose networks and endpoints live
// outside the controller's process and outlast it (a plugin keeps them).
// When KeepsState is true, a restarted controller takes them back from its
// own records and does not create them in the driver again, which would
// refuse them as duplicates. Drivers without it keep their state in the
// controller's process and get CreateNetwork and CreateEndpoint again for
// every record at restore.
type StateKeeper interface {
	KeepsState() bool
}
