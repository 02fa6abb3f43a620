// Package ipamapi is the contract between the controller and IPAM drivers
// (the built-in allocator, the null driver and remote plugins).
package ipamapi

import (
	"net/netip"

	"github.com/opencnm/libnetwork/types"
)

// Names of the IPAM drivers that come with the library, and the plugin
// interface name remote IPAM drivers implement.
const (
	DefaultIPAM        = "default"
	NullIPAM           = "null"
	PluginEndpointType = "IpamDriver"
)

// Address spaces of the built-in allocator.
const (
	LocalDefaultAddressSpace  = "LocalDefault"
	GlobalDefaultAddressSpace = "GlobalDefault"
)

// Option keys understood by RequestAddress.
const (
	// RequestAddressType with value netlabel.Gateway marks a gateway request.
	RequestAddressType = "RequestAddressType"
	// AllocSerialPrefix with value "true" asks for the next free address
	// after the last one handed out instead of the lowest free one.
	AllocSerialPrefix = "com.docker.network.ipam.serial"
)

// Capability tells the controller how to drive an IPAM driver.
type Capability struct {
	RequiresMACAddress    bool // a MAC is generated and passed in RequestAddress options
	RequiresRequestReplay bool // pools and addresses are re-requested on controller start
}

// PoolRequest asks for a pool.
type PoolRequest struct {
	AddressSpace string
	Pool         string // preferred pool (CIDR); empty lets the driver choose
	SubPool      string // range within Pool to allocate addresses from (CIDR)
	Options      map[string]string
	V6           bool
	// Exclude lists prefixes a driver-chosen pool must not overlap (host
	// routes, other networks). Explicitly requested pools ignore it.
	Exclude []netip.Prefix
}

// AllocatedPool is what RequestPool returns.
type AllocatedPool struct {
	PoolID string
	Pool   netip.Prefix
	Meta   map[string]string // may carry netlabel.Gateway = CIDR of a gateway the driver chose
}

// Ipam is what every IPAM driver implements. Methods must be safe for
// concurrent use.
type Ipam interface {
	GetDefaultAddressSpaces() (local, global string, err error)
	RequestPool(req PoolRequest) (AllocatedPool, error)
	ReleasePool(poolID string) error
	// RequestAddress returns prefer (or, if invalid, an address chosen by
	// the driver) as a prefix with the pool's mask. A driver that gives no
	// address (null IPAM) returns the zero Prefix.
	RequestAddress(poolID string, prefer netip.Addr, opts map[string]string) (netip.Prefix, map[string]string, error)
	ReleaseAddress(poolID string, addr netip.Addr) error
	Capabilities() Capability
}

// Errors with the classes callers branch on. Drivers wrap them with %w to
// add the object (pool, address) to the message.
var (
	ErrInvalidAddressSpace = types.BadRequestErrorf("invalid address space")
	ErrInvalidPool         = types.BadRequestErrorf("invalid address pool")
	ErrInvalidSubPool      = types.BadRequestErrorf("invalid address subpool")
	ErrInvalidRequest      = types.BadRequestErrorf("invalid request")
	ErrPoolNotFound        = types.NotFoundErrorf("address pool not found")
	ErrIPOutOfRange        = types.BadRequestErrorf("requested address is out of range")
	ErrBadPool             = types.BadRequestErrorf("address space does not contain specified address pool")
	ErrPoolOverlap         = types.ForbiddenErrorf("address pool overlaps with an existing pool")
	ErrIPAlreadyAllocated  = types.ForbiddenErrorf("address already in use")
	ErrIPNotAllocated      = types.ForbiddenErrorf("address is not allocated")
	ErrNoAvailablePool     = types.NoServiceErrorf("could not find an available, non-overlapping address pool")
	ErrNoAvailableIPs      = types.NoServiceErrorf("no available addresses on this pool")
	ErrNoIPReturned        = types.NoServiceErrorf("no address returned")
)
