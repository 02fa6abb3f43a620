package ipam

import (
	"fmt"
	"net/netip"

	"github.com/opencnm/libnetwork/ipamapi"
)

// Null IPAM identifiers: its only address space and its only pool.
const (
	NullAddressSpace = "null"
	NullPool         = "0.0.0.0/0"
	NullPoolID       = NullAddressSpace + "/" + NullPool
)

// nullIPAM hands out one placeholder IPv4 pool and no addresses, for
// networks whose endpoints get no IP (the bridge driver refuses it).
type nullIPAM struct{}

// NewNull returns the null IPAM driver.
func NewNull() ipamapi.Ipam { return nullIPAM{} }

func (nullIPAM) GetDefaultAddressSpaces() (string, string, error) {
	return NullAddressSpace, NullAddressSpace, nil
}

func (nullIPAM) RequestPool(req ipamapi.PoolRequest) (ipamapi.AllocatedPool, error) {
	switch {
	case req.AddressSpace != NullAddressSpace:
		return ipamapi.AllocatedPool{}, fmt.Errorf("null ipam: request pool in %q: %w", req.AddressSpace, ipamapi.ErrInvalidAddressSpace)
	case req.Pool != "":
		return ipamapi.AllocatedPool{}, fmt.Errorf("null ipam: request pool %q: only a driver-chosen pool is supported: %w", req.Pool, ipamapi.ErrInvalidPool)
	case req.SubPool != "":
		return ipamapi.AllocatedPool{}, fmt.Errorf("null ipam: request sub-pool %q: %w", req.SubPool, ipamapi.ErrInvalidSubPool)
	case req.V6:
		return ipamapi.AllocatedPool{}, fmt.Errorf("null ipam: request IPv6 pool: %w", ipamapi.ErrInvalidRequest)
	}
	return ipamapi.AllocatedPool{PoolID: NullPoolID, Pool: netip.MustParsePrefix(NullPool)}, nil
}

// ReleasePool accepts the null pool ID any number of times.
func (nullIPAM) ReleasePool(id string) error {
	if id != NullPoolID {
		return fmt.Errorf("null ipam: release pool %q: %w", id, ipamapi.ErrPoolNotFound)
	}
	return nil
}

// RequestAddress returns the zero Prefix: the endpoint gets no address.
func (nullIPAM) RequestAddress(id string, _ netip.Addr, _ map[string]string) (netip.Prefix, map[string]string, error) {
	if id != NullPoolID {
		return netip.Prefix{}, nil, fmt.Errorf("null ipam: request address from %q: %w", id, ipamapi.ErrPoolNotFound)
	}
	return netip.Prefix{}, nil, nil
}

func (nullIPAM) ReleaseAddress(id string, _ netip.Addr) error {
	if id != NullPoolID {
		return fmt.Errorf("null ipam: release address from %q: %w", id, ipamapi.ErrPoolNotFound)
	}
	return nil
}

func (nullIPAM) Capabilities() ipamapi.Capability { return ipamapi.Capability{} }
