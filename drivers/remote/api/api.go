// Package api holds the JSON messages of the NetworkDriver plugin protocol,
// field for field as plugins written for Docker expect them. Addresses
// travel as strings: pools, gateways and interface addresses in CIDR form,
// join gateways and next hops as plain IPs.
package api

// Response is the part every reply shares: a non-empty Err is the plugin
// reporting failure in a 200 reply.
type Response struct {
	Err string
}

// GetError returns the plugin's error message, if any.
func (r *Response) GetError() string { return r.Err }

// GetCapabilitiesResponse says what a driver's networks span.
type GetCapabilitiesResponse struct {
	Response
	Scope             string // "local" or "global"
	ConnectivityScope string // empty means the same as Scope
}

// IPAMData is one address pool of a network.
type IPAMData struct {
	AddressSpace string
	Pool         string            // CIDR
	Gateway      string            // CIDR, empty if none
	AuxAddresses map[string]string // name -> CIDR
}

// CreateNetworkRequest asks the plugin to create a network.
type CreateNetworkRequest struct {
	NetworkID string
	Options   map[string]any
	IPv4Data  []IPAMData
	IPv6Data  []IPAMData
}

// CreateNetworkResponse is the reply to CreateNetwork.
type CreateNetworkResponse struct{ Response }

// DeleteNetworkRequest asks the plugin to delete a network.
type DeleteNetworkRequest struct {
	NetworkID string
}

// DeleteNetworkResponse is the reply to DeleteNetwork.
type DeleteNetworkResponse struct{ Response }

// AllocateNetworkRequest asks the plugin to reserve network-wide resources.
type AllocateNetworkRequest struct {
	NetworkID string
	Options   map[string]string
	IPv4Data  []IPAMData
	IPv6Data  []IPAMData
}

// AllocateNetworkResponse carries options to hand to CreateNetwork later.
type AllocateNetworkResponse struct {
	Response
	Options map[string]string
}

// FreeNetworkRequest releases what AllocateNetwork reserved.
type FreeNetworkRequest struct {
	NetworkID string
}

// FreeNetworkResponse is the reply to FreeNetwork.
type FreeNetworkResponse struct{ Response }

// EndpointInterface is an endpoint's interface: addresses in CIDR form, MAC
// as aa:bb:cc:dd:ee:ff. Empty fields are unset.
type EndpointInterface struct {
	Address     string
	AddressIPv6 string
	MacAddress  string
}

// CreateEndpointRequest asks the plugin to create an endpoint. Interface
// holds what libnetwork already decided.
type CreateEndpointRequest struct {
	NetworkID  string
	EndpointID string
	Options    map[string]any
	Interface  *EndpointInterface
}

// CreateEndpointResponse may fill interface fields the request left empty.
type CreateEndpointResponse struct {
	Response
	Interface *EndpointInterface
}

// DeleteEndpointRequest asks the plugin to delete an endpoint.
type DeleteEndpointRequest struct {
	NetworkID  string
	EndpointID string
}

// DeleteEndpointResponse is the reply to DeleteEndpoint.
type DeleteEndpointResponse struct{ Response }

// EndpointInfoRequest asks for an endpoint's operational data.
type EndpointInfoRequest struct {
	NetworkID  string
	EndpointID string
}

// EndpointInfoResponse carries the endpoint's operational data.
type EndpointInfoResponse struct {
	Response
	Value map[string]any
}

// JoinRequest asks the plugin to attach an endpoint to a sandbox.
type JoinRequest struct {
	NetworkID  string
	EndpointID string
	SandboxKey string // path of the sandbox's network namespace
	Options    map[string]any
}

// InterfaceName names the host-side link the sandbox takes in (SrcName) and
// the prefix of its name inside the sandbox (DstPrefix, e.g. "eth").
type InterfaceName struct {
	SrcName   string
	DstPrefix string
	DstName   string // sent by some plugins; not used
}

// StaticRoute is a route the sandbox installs: Destination in CIDR form,
// RouteType 0 (via NextHop) or 1 (directly connected).
type StaticRoute struct {
	Destination string
	RouteType   int
	NextHop     string
}

// JoinResponse is what the plugin decided at join.
type JoinResponse struct {
	Response
	InterfaceName         *InterfaceName
	Gateway               string // plain IP
	GatewayIPv6           string // plain IP
	StaticRoutes          []StaticRoute
	DisableGatewayService bool
}

// LeaveRequest asks the plugin to detach an endpoint from its sandbox.
type LeaveRequest struct {
	NetworkID  string
	EndpointID string
}

// LeaveResponse is the reply to Leave.
type LeaveResponse struct{ Response }

// ProgramExternalConnectivityRequest asks the plugin to give an endpoint
// access to and from outside (Options carries port maps, exposed ports).
type ProgramExternalConnectivityRequest struct {
	NetworkID  string
	EndpointID string
	Options    map[string]any
}

// ProgramExternalConnectivityResponse is the reply to ProgramExternalConnectivity.
type ProgramExternalConnectivityResponse struct{ Response }

// RevokeExternalConnectivityRequest undoes ProgramExternalConnectivity.
type RevokeExternalConnectivityRequest struct {
	NetworkID  string
	EndpointID string
}

// RevokeExternalConnectivityResponse is the reply to RevokeExternalConnectivity.
type RevokeExternalConnectivityResponse struct{ Response }

// DiscoveryNotification announces (DiscoverNew) or withdraws
// (DiscoverDelete) a node; DiscoveryType 1 is node discovery, whose data is
// {Address, BindAddress, Self}.
type DiscoveryNotification struct {
	DiscoveryType int
	DiscoveryData any
}

// DiscoveryResponse is the reply to DiscoverNew and DiscoverDelete.
type DiscoveryResponse struct{ Response }
